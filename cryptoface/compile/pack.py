"""The packing pass: IR nodes of one patch network -> HE-level ops on packed ciphertexts.

Each IR value becomes one ciphertext with a `Layout` (multiplexed with a gap for feature maps,
flat for vectors). Linear IR ops become `LinearTransformPlan`s (diagonal BSGS, one level);
data movement that stays in the slots (flatten, reshape, identity) costs nothing, because a
layout is only a map and the next linear op absorbs it. Linear ops that follow each other
with nothing in between (the average pool, the flatten and the per-patch Gemm) are folded
into one matrix: one level and one set of rotations instead of two.

Per-channel constants (HerPN's b and c, the shortcut's a2) are built in the layout of the
value they meet, replicated with that value's period (BSGS "hybrid" outputs are replicated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from ..errors import CompileError
from ..ir.graph import Graph, Node
from ..program.layout import Layout
from .linear_maps import LinearMap, avgpool_map, conv2d_map, gemm_map, global_avgpool_map
from .linear_transform import LinearTransformPlan, plan_linear_transform
from .lowering import lowering


@dataclass
class PackedOp:
    """One HE-level op producing the ciphertext `name` (an IR value name)."""

    name: str
    kind: str  # a key of lowering.LOWERINGS: input | linear | quadratic | mul_const | ...
    inputs: tuple[str, ...]
    layout: Layout
    period: int  # the value repeats every `period` slots (slots = no repetition)
    plan: LinearTransformPlan | None = None
    consts: dict[str, Callable[[], np.ndarray]] = field(default_factory=dict)
    ir_nodes: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)  # e.g. a conv's kernel and stride, for the report

    @property
    def depth(self) -> int:
        """Levels the op consumes, from the lowering table (the emitter reads the same record)."""
        return lowering(self.kind).levels(self)

    @property
    def join(self) -> bool:
        return len(self.inputs) > 1


@dataclass(frozen=True)
class PackedInput:
    """A ciphertext the client sends: a graph input, or a Slice of one (a patch)."""

    name: str
    source: str  # the graph input it is cut from
    shape: tuple[int, ...]
    slice: dict | None  # starts/ends/axes/steps of the client-side cut, None for the whole input
    layout: Layout


@dataclass
class PackedPartition:
    index: int
    inputs: list[PackedInput]
    output_name: str
    ops: list[PackedOp]

    def rotation_steps(self) -> set[int]:
        return {s for op in self.ops if op.plan is not None for s in op.plan.rotation_steps}


def _per_channel(value: np.ndarray, channels: int, what: str) -> np.ndarray:
    """A constant broadcast per channel ((C,1,1), (1,C,1,1), scalar) as a (C,) vector."""
    v = np.asarray(value, dtype=np.float64)
    squeezed = v.reshape(-1) if v.size in (1, channels) else None
    if squeezed is None or (v.ndim >= 3 and (v.shape[-1] != 1 or v.shape[-2] != 1)):
        raise CompileError(f"{what}: constant of shape {v.shape} is not per-channel for {channels} channels")
    return np.broadcast_to(squeezed, (channels,)).copy() if squeezed.size == 1 else squeezed


def _per_element(value: np.ndarray, layout: Layout, what: str) -> np.ndarray:
    """A constant for a flat vector: scalar or full length."""
    v = np.asarray(value, dtype=np.float64).reshape(-1)
    n = layout.numel
    if v.size == 1:
        return np.full(n, v[0])
    if v.size != n:
        raise CompileError(f"{what}: constant with {v.size} values for a vector of {n}")
    return v


def _compose(outer: LinearMap, inner: LinearMap) -> LinearMap:
    """outer(inner(x)) as one map (used for pool -> flatten -> gemm)."""
    n = inner.slots
    used_mid = np.unique(inner.rows)
    pos = {int(r): k for k, r in enumerate(used_mid)}
    outer_mask = np.isin(outer.cols, used_mid)
    if not np.all(outer_mask):
        raise CompileError(f"cannot fold {inner.name!r} into {outer.name!r}: the outer map reads slots the inner one never writes")
    in_cols = np.unique(inner.cols)
    col_pos = np.searchsorted(in_cols, inner.cols)
    a = np.zeros((used_mid.size, in_cols.size))
    np.add.at(a, (np.array([pos[int(r)] for r in inner.rows]), col_pos), inner.values)
    out_rows = np.unique(outer.rows)
    row_pos = np.searchsorted(out_rows, outer.rows)
    b = np.zeros((out_rows.size, used_mid.size))
    np.add.at(b, (row_pos, np.array([pos[int(c)] for c in outer.cols])), outer.values)
    m = b @ a
    r, c = np.nonzero(m)
    bias = outer.bias.copy() if outer.bias is not None else None
    if inner.bias is not None:
        mid_bias = inner.bias[used_mid]
        extra = np.zeros(n)
        extra[out_rows] = b @ mid_bias
        bias = extra if bias is None else bias + extra
    return LinearMap(inner.in_layout, outer.out_layout, out_rows[r], in_cols[c], m[r, c], bias, name=f"{inner.name}+{outer.name}")


class Packer:
    """Packs one partition; `slots` is the ciphertext's slot count."""

    def __init__(self, graph: Graph, slots: int, make_plans: bool = True) -> None:
        self.graph = graph
        self.slots = slots
        self.make_plans = make_plans  # False: layouts only (sizing the ciphertext is cheap)

    def input_layout(self, shape: tuple[int, ...]) -> Layout:
        """Feature maps (1, C, H, W) are multiplexed; anything else is a flat vector."""
        if len(shape) == 4 and shape[0] == 1:
            return Layout.multiplexed(shape[1], shape[2], shape[3], self.slots)
        return Layout.flat(int(np.prod(shape)), self.slots)

    def partition(self, index: int, nodes: tuple[Node, ...]) -> PackedPartition:
        """Pack one patch network (nodes starting with a Slice of the graph input), or, for a
        graph without patches, the whole graph with its inputs as the ciphertexts."""
        ops: dict[str, PackedOp] = {}
        deferred: dict[str, tuple[LinearMap, str]] = {}  # value -> (map waiting to be folded, its input)
        alias: dict[str, str] = {}  # IR value -> the ciphertext that holds it
        inputs: list[PackedInput] = []
        first = nodes[0]
        if first.op == "slice" and first.inputs[0] in self.graph.inputs:
            shape = self.graph.shape(first.output)
            cut = {k: list(first.attrs[k]) for k in ("starts", "ends", "axes")} | {"steps": list(first.attrs.get("steps") or [])}
            inputs.append(PackedInput(first.output, first.inputs[0], tuple(shape), cut, self.input_layout(shape)))
            body = nodes[1:]
        else:
            used = {i for n in nodes for i in n.inputs}
            for g in self.graph.inputs:
                if g in used:
                    shape = self.graph.shape(g)
                    inputs.append(PackedInput(g, g, tuple(shape), None, self.input_layout(shape)))
            body = nodes
        for inp in inputs:
            ops[inp.name] = PackedOp(inp.name, "input", (), inp.layout, self.slots, ir_nodes=(inp.name,))
        for node in body:
            self._pack(node, ops, deferred, alias)
        out_value = nodes[-1].output
        out = alias.get(out_value, out_value)
        if out in deferred:
            out = self._materialize(out, ops, deferred, alias)
        return PackedPartition(index, inputs, out, list(ops.values()))

    # ---- helpers -----------------------------------------------------------------------------
    def _src(self, value: str, ops, deferred, alias) -> PackedOp:
        v = alias.get(value, value)
        if v in deferred:
            v = self._materialize(v, ops, deferred, alias)
        if v not in ops:
            raise CompileError(f"value {value!r} is not computed on ciphertexts in this partition")
        return ops[v]

    def _materialize(self, value: str, ops, deferred, alias) -> str:
        """A deferred linear map that has to run on its own after all."""
        lmap, src = deferred.pop(value)
        self._add_linear(value, lmap, ops[src], ops, (value,))
        return value

    def _add_linear(self, name: str, lmap: LinearMap, src: PackedOp, ops, ir_nodes) -> None:
        plan = plan_linear_transform(lmap) if self.make_plans else None
        period = plan.output_period if plan is not None else self.slots
        ops[name] = PackedOp(name, "linear", (src.name,), lmap.out_layout, period, plan, ir_nodes=ir_nodes)

    def _linear_input(self, node: Node, ops, deferred, alias) -> tuple[PackedOp, LinearMap | None, str]:
        """The ciphertext a linear op reads, and a deferred map to fold in front of it."""
        v = alias.get(node.inputs[0], node.inputs[0])
        if v in deferred and len(self.graph.consumers(v)) <= 1:
            inner, src = deferred.pop(v)
            return ops[src], inner, v
        return self._src(node.inputs[0], ops, deferred, alias), None, ""

    # ---- the ops: one packing rule per IR kind (`PACKING_RULES`) --------------------------------
    def _pack(self, node: Node, ops, deferred, alias) -> None:
        rule = PACKING_RULES.get(node.op)
        if rule is None:
            raise CompileError(f"op {node.op!r} at node {node.name!r} cannot run on ciphertexts (no packing rule; "
                               f"packed kinds: {', '.join(sorted(PACKING_RULES))})")
        rule(self, node, ops, deferred, alias)

    def _pack_alias(self, node: Node, ops, deferred, alias) -> None:
        """flatten, reshape, identity: a layout is only a map, so the value stays where it is."""
        alias[node.output] = alias.get(node.inputs[0], node.inputs[0])

    def _pack_linear(self, node: Node, ops, deferred, alias) -> None:
        """A linear map (conv, pooling, gemm, transpose); a pool feeding a gemm is deferred and
        folded into it."""
        kind, out = node.op, node.output
        src, inner, inner_name = self._linear_input(node, ops, deferred, alias)
        in_layout = inner.out_layout if inner is not None else src.layout
        lmap = self._linear_map(node, in_layout)
        if inner is not None:
            lmap = _compose(lmap, inner)
        if kind in ("avgpool", "global_avgpool") and self._feeds_linear(out):
            deferred[out] = (lmap, src.name)
            return
        self._add_linear(out, lmap, src, ops, tuple(n for n in (inner_name, node.name) if n))
        if kind == "conv":
            ops[out].meta = {"kernel": int(node.params["weight"].shape[-1]), "stride": int(node.attrs["strides"][0])}

    def _pack_quadratic(self, node: Node, ops, deferred, alias) -> None:
        """a*x^2 + b*x + c with per-channel a, b, c; a non-monic one also carries a and b/a."""
        out = node.output
        x = self._src(node.inputs[0], ops, deferred, alias)
        lay = x.layout
        shape = self.graph.shape(node.output)
        a, b, c = (self._constant(node.params[k], lay, f"{node.name}.{k}", shape) for k in ("a", "b", "c"))
        monic = bool(np.all(a == 1.0))
        if not monic and np.any(a == 0):
            raise CompileError(f"quadratic {node.name!r}: a coefficient is 0 in some channel; fold it to a linear op first")
        consts = {"b": self._vec(lay, b, x.period), "c": self._vec(lay, c, x.period)}
        if not monic:
            consts["a"] = self._vec(lay, a, x.period)
            consts["b_over_a"] = self._vec(lay, b / a, x.period)
        ops[out] = PackedOp(out, "quadratic", (x.name,), lay, x.period, consts=consts, ir_nodes=(node.name,))

    def _pack_const(self, node: Node, ops, deferred, alias) -> None:
        """mul_const, add_const: the constant in the layout of the value it meets."""
        x = self._src(node.inputs[0], ops, deferred, alias)
        val = self._constant(node.params["value"], x.layout, node.name, self.graph.shape(node.output))
        ops[node.output] = PackedOp(node.output, node.op, (x.name,), x.layout, x.period,
                                    consts={"value": self._vec(x.layout, val, x.period)}, ir_nodes=(node.name,))

    def _pack_neg(self, node: Node, ops, deferred, alias) -> None:
        x = self._src(node.inputs[0], ops, deferred, alias)
        ops[node.output] = PackedOp(node.output, "neg", (x.name,), x.layout, x.period, ir_nodes=(node.name,))

    def _pack_join(self, node: Node, ops, deferred, alias) -> None:
        """add, sub, mul, sum of ciphertexts in one layout; an n-ary sum becomes a chain of adds."""
        kind, out = node.op, node.output
        srcs = [self._src(i, ops, deferred, alias) for i in node.inputs]
        layouts = {s.layout for s in srcs}
        if len(layouts) != 1:
            shapes = [self.graph.shape(i) for i in node.inputs]
            raise CompileError(f"{kind} {node.name!r}: operands of shapes {shapes} pack into different layouts "
                               f"({', '.join(s.layout.describe() for s in srcs)}); broadcasting between ciphertexts is not supported")
        period = max(s.period for s in srcs)
        if kind != "sum":
            ops[out] = PackedOp(out, kind, tuple(s.name for s in srcs), srcs[0].layout, period, ir_nodes=(node.name,))
            return
        prev = srcs[0]
        for k, s in enumerate(srcs[1:]):
            name = out if k == len(srcs) - 2 else f"{out}#{k}"
            ops[name] = PackedOp(name, "add", (prev.name, s.name), prev.layout, period, ir_nodes=(node.name,))
            prev = ops[name]
        if len(srcs) == 1:
            alias[out] = srcs[0].name

    def _feeds_linear(self, value: str) -> bool:
        """True when the only path onward is flatten/reshape into a linear op."""
        v = value
        while True:
            cons = self.graph.consumers(v)
            if len(cons) != 1:
                return False
            if cons[0].op in ("flatten", "reshape", "identity"):
                v = cons[0].output
                continue
            return cons[0].op == "linear"

    def _linear_map(self, node: Node, in_layout: Layout) -> LinearMap:
        in_shape = self.graph.shape(node.inputs[0])
        special = not in_layout.is_flat and len(in_shape) == 4 and in_shape[0] == 1 and node.op != "transpose"
        if node.op == "avgpool" and (node.attrs.get("ceil_mode") or any(d != 1 for d in node.attrs.get("dilations", (1, 1)))):
            special = False
        if node.op == "linear":
            special = len(in_shape) == 2 and in_shape[0] == 1 or (not in_layout.is_flat and len(self.graph.shape(node.output)) == 2)
        if not special:
            return self._probed_map(node, in_layout, in_shape)
        p = node.params
        if node.op == "conv":
            a = node.attrs
            if any(d != 1 for d in a["dilations"]) or a["group"] != 1:
                raise CompileError(f"conv {node.name!r}: dilation {a['dilations']} / group {a['group']} are not supported by the packer")
            s = a["strides"]
            if len(s) != 2 or s[0] != s[1]:
                raise CompileError(f"conv {node.name!r}: only 2-D convolutions with equal strides are packed, got strides {s}")
            return conv2d_map(in_layout, p["weight"], p.get("bias"), stride=s[0], pads=a["pads"], name=node.name)
        if node.op == "avgpool":
            a = node.attrs
            k, s = a["kernel"], a["strides"]
            if a.get("ceil_mode") or any(d != 1 for d in a.get("dilations", (1, 1))):
                raise CompileError(f"avgpool {node.name!r}: ceil_mode/dilations are not supported by the packer")
            return avgpool_map(in_layout, tuple(k), tuple(s), pads=a["pads"], count_include_pad=bool(a["count_include_pad"]), name=node.name)
        if node.op == "global_avgpool":
            return global_avgpool_map(in_layout, name=node.name)
        w = p["weight"]
        bias = p.get("bias")
        if bias is not None:
            bias = np.broadcast_to(bias, (w.shape[0],)).astype(np.float64)
        return gemm_map(in_layout, w, bias, name=node.name)

    def _probed_map(self, node: Node, in_layout: Layout, in_shape: tuple[int, ...]) -> LinearMap:
        """Any linear op on small tensors, by running its reference on unit vectors: covers
        the shapes the specialised constructors do not (1-D/3-D convs, batched Gemm...)."""
        from ..ir import ops as irops

        n_in = int(np.prod(in_shape))
        if n_in > 8192:
            raise CompileError(f"{node.op} {node.name!r}: shape {in_shape} is neither a (1, C, H, W) feature map nor small enough to probe")
        out_shape = self.graph.shape(node.output)
        out_layout = Layout.flat(int(np.prod(out_shape)), self.slots)
        bias = irops.evaluate(node, [np.zeros(in_shape)]).reshape(-1)
        cols_in = in_layout.slot_indices().reshape(-1) if not in_layout.is_flat else np.arange(n_in)
        rows, cols, vals = [], [], []
        for j in range(n_in):
            e = np.zeros(n_in)
            e[j] = 1.0
            col = irops.evaluate(node, [e.reshape(in_shape)]).reshape(-1) - bias
            nz = np.flatnonzero(col)
            rows.append(nz)
            cols.append(np.full(nz.size, cols_in[j]))
            vals.append(col[nz])
        b = np.zeros(self.slots)
        b[: bias.size] = bias
        return LinearMap(in_layout, out_layout, np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64),
                         np.concatenate(vals), b if np.any(bias) else None, name=node.name)

    def _constant(self, value: np.ndarray, layout: Layout, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        if layout.is_flat:
            if shape is not None:
                try:
                    return np.broadcast_to(np.asarray(value, dtype=np.float64), shape).reshape(-1).copy()
                except ValueError:
                    raise CompileError(f"{what}: constant of shape {np.shape(value)} does not broadcast to {shape}") from None
            return _per_element(value, layout, what)
        return _per_channel(value, layout.shape[0], what)

    def _vec(self, layout: Layout, values: np.ndarray, period: int) -> Callable[[], np.ndarray]:
        if layout.is_flat:
            def make() -> np.ndarray:
                v = np.zeros(self.slots)
                v[: values.size] = values
                return np.tile(v[:period], self.slots // period) if period < self.slots else v
            return make
        return lambda: layout.channel_vector(values, period=None if period >= self.slots else period)


PackingRule = Callable[[Packer, Node, dict, dict, dict], None]

# IR op kind -> how it becomes packed ops (whose levels and instructions are in lowering.py).
PACKING_RULES: Mapping[str, PackingRule] = MappingProxyType({
    **dict.fromkeys(("flatten", "reshape", "identity"), Packer._pack_alias),
    **dict.fromkeys(("conv", "avgpool", "global_avgpool", "linear", "transpose"), Packer._pack_linear),
    "quadratic": Packer._pack_quadratic,
    **dict.fromkeys(("mul_const", "add_const"), Packer._pack_const),
    "neg": Packer._pack_neg,
    **dict.fromkeys(("add", "sub", "mul", "sum"), Packer._pack_join),
})
