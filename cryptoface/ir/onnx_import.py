"""ONNX -> IR: `import_onnx(model_or_path) -> Graph`.

The importer
1. reads initializers, Constant nodes and `bindings` (graph inputs the caller fixes, e.g.
   the int64 `shape` of a Reshape) as constants, and folds every node whose inputs are all
   constant (with ONNX's own reference evaluator, so any ONNX op may appear in a
   constant-only subgraph);
2. converts each remaining ONNX node into IR ops (`ONNX_CONVERTERS`), checking every
   attribute: an op or attribute it cannot honour raises `UnsupportedOpError` naming the
   op type, the node and the attribute, never a silently wrong graph;
3. infers every shape with the op table and cross-checks `onnx.shape_inference`;
4. rewrites (see `rewrites.py`): Gemm/MatMul(+Add) -> `linear`, the HerPN patterns ->
   `quadratic`, and tags the per-patch partitions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import CompileError, UnsupportedOpError
from .graph import Graph, Node, Value
from .ops import infer_shape
from .rewrites import assign_partitions, fold_linear_bias, fuse_quadratics, remove_dead_nodes

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}
# Operand positions that hold weights, not data: a backend running ONNX test cases (where
# weights arrive as graph inputs) binds graph inputs used only here as constants.
WEIGHT_OPERANDS: dict[str, tuple[int, ...]] = {"Conv": (1, 2), "Gemm": (1, 2), "Reshape": (1,), "Slice": (1, 2, 3, 4)}


def unsupported(node: onnx.NodeProto, what: str = "", reason: str = "") -> UnsupportedOpError:
    """The one error for what the importer cannot honour; names op, node and attribute."""
    name = node.name or (node.output[0] if node.output else "?")
    msg = f"unsupported ONNX op {node.op_type!r} at node {name!r}" if not what else (
        f"unsupported {what} of ONNX op {node.op_type!r} at node {name!r}")
    return UnsupportedOpError(msg + (f": {reason}" if reason else ""))


@dataclass
class Builder:
    """Import state: constants, value shapes and the IR nodes emitted so far."""

    opset: int
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    node_names: set[str] = field(default_factory=set)

    def is_const(self, name: str) -> bool:
        return name in self.constants

    def const(self, name: str) -> np.ndarray | None:
        return self.constants.get(name)

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.constants:
            return tuple(self.constants[name].shape)
        return self.shapes[name]

    def fresh_node_name(self, base: str) -> str:
        name, k = base, 1
        while name in self.node_names:
            name, k = f"{base}_{k}", k + 1
        self.node_names.add(name)
        return name

    def emit(self, op: str, inputs: Sequence[str], output: str, name: str, attrs: Mapping[str, Any] | None = None,
             params: Mapping[str, np.ndarray] | None = None) -> str:
        """Append one IR node and record its inferred output shape; returns the output name."""
        node = Node(self.fresh_node_name(name), op, tuple(inputs), (output,), attrs or {}, params or {})
        self.shapes[output] = infer_shape(node, [self.shape(i) for i in inputs])
        self.nodes.append(node)
        return output

    def materialize(self, name: str, node_name: str) -> str:
        """A constant used where the IR wants a variable becomes a `constant` node."""
        if not self.is_const(name) or name in self.shapes:
            return name
        return self.emit("constant", (), name, f"{node_name}/const", params={"value": self.constants[name]})


Converter = Callable[[Builder, onnx.NodeProto, dict[str, Any]], None]


def _node_name(node: onnx.NodeProto) -> str:
    return node.name or node.output[0]


def _attrs(node: onnx.NodeProto, allowed: Sequence[str]) -> dict[str, Any]:
    out = {}
    for a in node.attribute:
        if a.name not in allowed:
            raise unsupported(node, f"attribute {a.name!r}")
        value = helper.get_attribute_value(a)
        out[a.name] = value.decode() if isinstance(value, bytes) else value
    return out


def _inputs(node: onnx.NodeProto) -> list[str]:
    """Input names with trailing omitted optionals dropped ('' marks an omitted one)."""
    names = list(node.input)
    while names and not names[-1]:
        names.pop()
    return names


def _resolve_pads(node: onnx.NodeProto, attrs: dict[str, Any], spatial: Sequence[int], kernel: Sequence[int],
                  strides: Sequence[int], dilations: Sequence[int]) -> tuple[int, ...]:
    """Explicit pads (begins then ends) from `pads` or `auto_pad` (resolved at import)."""
    nd = len(spatial)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = tuple(attrs.get("pads", (0,) * (2 * nd)))
        if len(pads) != 2 * nd:
            raise unsupported(node, "attribute 'pads'", f"{len(pads)} values for {nd} spatial axes")
        return pads
    if auto == "VALID":
        return (0,) * (2 * nd)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise unsupported(node, f"attribute 'auto_pad' = {auto!r}")
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + d * (k - 1) + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto == "SAME_UPPER" else big)
        ends.append(big if auto == "SAME_UPPER" else small)
    return tuple(begins + ends)


def _variable(b: Builder, node: onnx.NodeProto, name: str, role: str) -> str:
    if b.is_const(name):
        return b.materialize(name, _node_name(node))
    return name


# --------------------------------------------------------------------------- converters
def _conv(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
    attrs = _attrs(node, ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"))
    ins = _inputs(node)
    x = _variable(b, node, ins[0], "X")
    weight = b.const(ins[1])
    if weight is None:
        raise unsupported(node, f"variable weight input {ins[1]!r}", "Conv weights must be initializers")
    nd = weight.ndim - 2
    kernel = tuple(attrs.get("kernel_shape", weight.shape[2:]))
    if kernel != tuple(weight.shape[2:]):
        raise unsupported(node, "attribute 'kernel_shape'", f"{kernel} disagrees with the weight {weight.shape}")
    strides = tuple(attrs.get("strides", (1,) * nd))
    dilations = tuple(attrs.get("dilations", (1,) * nd))
    pads = _resolve_pads(node, attrs, b.shape(x)[2:], kernel, strides, dilations)
    params = {"weight": weight}
    if len(ins) > 2:
        bias = b.const(ins[2])
        if bias is None:
            raise unsupported(node, f"variable bias input {ins[2]!r}", "Conv biases must be initializers")
        params["bias"] = bias
    b.emit("conv", (x,), node.output[0], _node_name(node),
           {"strides": strides, "pads": pads, "dilations": dilations, "group": int(attrs.get("group", 1))}, params)


def _average_pool(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
    attrs = _attrs(node, ("auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"))
    x = _variable(b, node, node.input[0], "X")
    kernel = tuple(attrs["kernel_shape"])
    nd = len(kernel)
    strides = tuple(attrs.get("strides", (1,) * nd))
    dilations = tuple(attrs.get("dilations", (1,) * nd))
    pads = _resolve_pads(node, attrs, b.shape(x)[2:], kernel, strides, dilations)
    b.emit("avgpool", (x,), node.output[0], _node_name(node),
           {"kernel": kernel, "strides": strides, "pads": pads, "dilations": dilations,
            "count_include_pad": int(attrs.get("count_include_pad", 0)), "ceil_mode": int(attrs.get("ceil_mode", 0))})


def _global_average_pool(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
    _attrs(node, ())
    b.emit("global_avgpool", (_variable(b, node, node.input[0], "X"),), node.output[0], _node_name(node))


def _gemm(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
    attrs = _attrs(node, ("alpha", "beta", "transA", "transB"))
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    ins = _inputs(node)
    name, out = _node_name(node), node.output[0]
    a = _variable(b, node, ins[0], "A")
    if attrs.get("transA", 0):
        a = b.emit("transpose", (a,), f"{out}/a_t", f"{name}/transpose_a", {"perm": (1, 0)})
    weight = b.const(ins[1])
    c = b.const(ins[2]) if len(ins) > 2 else None
    if weight is not None:
        weight = weight if attrs.get("transB", 0) else weight.T  # (out, in)
        params = {"weight": alpha * weight}
        n_out = weight.shape[0]
        bias_ok = c is not None and c.size in (1, n_out) and c.ndim <= 2 and (c.ndim < 2 or c.shape[0] == 1)
        if bias_ok:
            params["bias"] = np.broadcast_to(beta * c.reshape(-1), (n_out,))
        has_extra = len(ins) > 2 and not bias_ok
        y = b.emit("linear", (a,), f"{out}/linear" if has_extra else out, name, params=params)
    else:
        bt = _variable(b, node, ins[1], "B")
        if attrs.get("transB", 0):
            bt = b.emit("transpose", (bt,), f"{out}/b_t", f"{name}/transpose_b", {"perm": (1, 0)})
        has_extra = len(ins) > 2
        y = b.emit("matmul", (a, bt), f"{out}/matmul" if (has_extra or alpha != 1.0) else out, f"{name}/matmul")
        if alpha != 1.0:
            y = b.emit("mul_const", (y,), f"{out}/alpha" if has_extra else out, f"{name}/alpha", params={"value": np.array(alpha)})
    if has_extra:
        if c is not None:
            b.emit("add_const", (y,), out, f"{name}/bias", params={"value": beta * c})
        else:
            cv = ins[2]
            if beta != 1.0:
                cv = b.emit("mul_const", (cv,), f"{out}/beta_c", f"{name}/beta", params={"value": np.array(beta)})
            b.emit("add", (y, cv), out, f"{name}/bias")


def _matmul(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
    _attrs(node, ())
    a_name, b_name = node.input[0], node.input[1]
    weight = b.const(b_name)
    if weight is not None and weight.ndim == 2 and not b.is_const(a_name):
        b.emit("linear", (a_name,), node.output[0], _node_name(node), params={"weight": weight.T})
        return
    a = _variable(b, node, a_name, "A")
    bb = _variable(b, node, b_name, "B")
    b.emit("matmul", (a, bb), node.output[0], _node_name(node))


def _binary(kind: str) -> Converter:
    def convert(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
        _attrs(node, ())
        x, y = node.input[0], node.input[1]
        out, name = node.output[0], _node_name(node)
        cx, cy = b.const(x), b.const(y)
        if cx is None and cy is None:
            b.emit(kind, (x, y), out, name)
        elif kind == "add":
            var, c = (x, cy) if cy is not None else (y, cx)
            b.emit("add_const", (var,), out, name, params={"value": c})
        elif kind == "mul":
            var, c = (x, cy) if cy is not None else (y, cx)
            b.emit("mul_const", (var,), out, name, params={"value": c})
        elif cy is not None:  # x - c
            b.emit("add_const", (x,), out, name, params={"value": -cy})
        else:  # c - y
            neg = b.emit("neg", (y,), f"{out}/neg", f"{name}/neg")
            b.emit("add_const", (neg,), out, name, params={"value": cx})

    return convert


def _sum(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
    _attrs(node, ())
    variables = [i for i in node.input if not b.is_const(i)]
    constants = [b.const(i) for i in node.input if b.is_const(i)]
    out, name = node.output[0], _node_name(node)
    total = sum(constants[1:], constants[0]) if constants else None
    target = f"{out}/sum" if total is not None else out
    y = b.emit("sum", variables, target, name) if len(variables) > 1 else b.emit("identity", variables, target, name)
    if total is not None:
        b.emit("add_const", (y,), out, f"{name}/const", params={"value": total})


def _unary(kind: str, allowed: Sequence[str] = ()) -> Converter:
    def convert(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
        _attrs(node, allowed)
        b.emit(kind, (_variable(b, node, node.input[0], "X"),), node.output[0], _node_name(node))

    return convert


def _flatten(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
    attrs = _attrs(node, ("axis",))
    x = _variable(b, node, node.input[0], "input")
    rank = len(b.shape(x))
    axis = int(attrs.get("axis", 1))
    b.emit("flatten", (x,), node.output[0], _node_name(node), {"axis": axis + rank if axis < 0 else axis})


def _reshape(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
    attrs = _attrs(node, ("allowzero",))
    x = _variable(b, node, node.input[0], "data")
    target = b.const(node.input[1])
    if target is None:
        raise unsupported(node, f"variable shape input {node.input[1]!r}", "the target shape must be a constant")
    src = b.shape(x)
    shape = [int(d) for d in target.reshape(-1)]
    if not attrs.get("allowzero", 0):
        shape = [src[i] if d == 0 else d for i, d in enumerate(shape)]
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        shape[shape.index(-1)] = int(np.prod(src, dtype=np.int64)) // known if known else 0
    b.emit("reshape", (x,), node.output[0], _node_name(node), {"shape": tuple(shape)})


def _normalized_slice(shape: Sequence[int], starts: Sequence[int], ends: Sequence[int], axes: Sequence[int],
                      steps: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """ONNX Slice clamping rules, once, at import (the reference then uses Python slices)."""
    out: dict[str, list[int]] = {"starts": [], "ends": [], "axes": [], "steps": []}
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis + len(shape) if axis < 0 else axis
        dim = shape[axis]
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        for key, v in (("starts", start), ("ends", end), ("axes", axis), ("steps", step)):
            out[key].append(int(v))
    return {k: tuple(v) for k, v in out.items()}


def _slice(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
    x = _variable(b, node, node.input[0], "data")
    shape = b.shape(x)
    if b.opset < 10:
        attrs = _attrs(node, ("starts", "ends", "axes"))
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        _attrs(node, ())
        ins = _inputs(node)
        values = []
        for i in ins[1:]:
            v = b.const(i) if i else None
            if i and v is None:
                raise unsupported(node, f"variable input {i!r}", "Slice starts/ends/axes/steps must be constants")
            values.append(None if v is None else [int(t) for t in v.reshape(-1)])
        values += [None] * (4 - len(values))
        starts, ends, axes, steps = values
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
    if any(s == 0 for s in steps):
        raise unsupported(node, "step 0")
    b.emit("slice", (x,), node.output[0], _node_name(node), _normalized_slice(shape, starts, ends, axes, steps))


def _concat(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
    attrs = _attrs(node, ("axis",))
    ins = [_variable(b, node, i, "input") for i in node.input]
    rank = len(b.shape(ins[0]))
    axis = int(attrs["axis"])
    b.emit("concat", ins, node.output[0], _node_name(node), {"axis": axis + rank if axis < 0 else axis})


def _transpose(b: Builder, node: onnx.NodeProto, _: dict[str, Any]) -> None:
    attrs = _attrs(node, ("perm",))
    x = _variable(b, node, node.input[0], "data")
    perm = tuple(attrs.get("perm", reversed(range(len(b.shape(x))))))
    b.emit("transpose", (x,), node.output[0], _node_name(node), {"perm": perm})


ONNX_CONVERTERS: dict[str, Converter] = {
    "Conv": _conv,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global_average_pool,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "Add": _binary("add"),
    "Sub": _binary("sub"),
    "Mul": _binary("mul"),
    "Sum": _sum,
    "Neg": _unary("neg"),
    "Identity": _unary("identity"),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Slice": _slice,
    "Concat": _concat,
    "Transpose": _transpose,
}
SUPPORTED_ONNX_OPS = frozenset(ONNX_CONVERTERS) | {"Constant"}


# --------------------------------------------------------------------------- constants
def _constant_node_value(node: onnx.NodeProto) -> np.ndarray:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return np.array(attrs[key], dtype=dtype)
    raise unsupported(node, f"attribute {next(iter(attrs), '?')!r}", "sparse and string constants are not supported")


def _fold(node: onnx.NodeProto, b: Builder, opsets: Sequence[onnx.OperatorSetIdProto]) -> list[np.ndarray]:
    """Evaluate a node on constant inputs with ONNX's reference evaluator."""
    from onnx.reference import ReferenceEvaluator  # noqa: PLC0415 - only when folding

    ins = _inputs(node)
    feeds = {i: np.asarray(b.constants[i]) for i in dict.fromkeys(ins) if i}
    graph = helper.make_graph(
        [node], "fold",
        [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for i, v in feeds.items()],
        [onnx.ValueInfoProto(name=o) for o in node.output if o],
    )
    try:
        results = ReferenceEvaluator(helper.make_model(graph, opset_imports=list(opsets))).run(None, feeds)
    except Exception as exc:  # noqa: BLE001 - any failure means we cannot fold this op
        raise unsupported(node, reason=f"constant folding failed ({exc})") from exc
    return [np.asarray(r) for r in results]


# --------------------------------------------------------------------------- entry point
def _load(model_or_path: onnx.ModelProto | str | os.PathLike | bytes) -> onnx.ModelProto:
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    if isinstance(model_or_path, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model_or_path))
    return onnx.load(os.fspath(model_or_path))


def _input_shape(vi: onnx.ValueInfoProto, override: Sequence[int] | None) -> tuple[int, ...]:
    if override is not None:
        return tuple(int(d) for d in override)
    dims = vi.type.tensor_type.shape.dim
    if any(not d.HasField("dim_value") for d in dims):
        raise CompileError(
            f"graph input {vi.name!r} has a symbolic dimension; pass input_shapes={{'{vi.name}': (...)}} to import_onnx")
    return tuple(d.dim_value for d in dims)


def _onnx_static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Shapes ONNX's own inference finds (for the cross-check); empty if it fails."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - the cross-check is best effort
        return {}
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            shapes[vi.name] = tuple(d.dim_value for d in tt.shape.dim)
    return shapes


def import_onnx(
    model_or_path: onnx.ModelProto | str | os.PathLike | bytes,
    *,
    bindings: Mapping[str, np.ndarray] | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    fuse: bool = True,
) -> Graph:
    """Import an ONNX model (proto, path or bytes) into a validated IR graph.

    bindings: graph inputs to treat as constants (their values), e.g. shape tensors.
    input_shapes: concrete shapes for graph inputs with symbolic dimensions.
    fuse: apply the rewrites (linear bias folding, quadratic fusion); partitions always.
    """
    model = _load(model_or_path)
    graph = model.graph
    opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx")] or [helper.make_opsetid("", 17)]
    b = Builder(opset=opsets[0].version)
    bindings = dict(bindings or {})
    for init in graph.initializer:
        b.constants[init.name] = numpy_helper.to_array(init)
    for name, value in bindings.items():
        b.constants[name] = np.asarray(value)

    inputs: list[str] = []
    for vi in graph.input:
        if vi.name in b.constants:
            continue
        if not vi.type.HasField("tensor_type"):
            raise UnsupportedOpError(f"unsupported graph input {vi.name!r}: only tensors are supported (not sequences or optionals)")
        elem = vi.type.tensor_type.elem_type
        if elem not in FLOAT_TYPES:
            raise UnsupportedOpError(
                f"unsupported type {onnx.TensorProto.DataType.Name(elem)} of graph input {vi.name!r}: "
                "cryptoface computes on real numbers (float16/float/double)")
        b.shapes[vi.name] = _input_shape(vi, (input_shapes or {}).get(vi.name))
        inputs.append(vi.name)

    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise unsupported(node, reason=f"domain {node.domain!r}")
        ins = [i for i in _inputs(node) if i]
        if node.op_type == "Constant":
            b.constants[node.output[0]] = _constant_node_value(node)
        elif node.op_type == "Shape" and ins and not b.is_const(ins[0]):
            b.constants[node.output[0]] = _fold(node, _shape_stub(b, ins[0]), opsets)[0]
        elif ins and all(b.is_const(i) for i in ins):
            for out, value in zip(node.output, _fold(node, b, opsets)):
                b.constants[out] = value
        elif node.op_type in ONNX_CONVERTERS:
            if len(node.output) != 1 or not node.output[0]:
                raise unsupported(node, "extra outputs", f"{list(node.output)}")
            ONNX_CONVERTERS[node.op_type](b, node, {})
        else:
            raise unsupported(node)

    for o in graph.output:
        if b.is_const(o.name) and o.name not in b.shapes:
            b.materialize(o.name, o.name)

    values = {n: Value(n, s) for n, s in b.shapes.items()}
    ir = Graph(tuple(inputs), tuple(o.name for o in graph.output), tuple(b.nodes), values, name=graph.name or "graph")
    ir = remove_dead_nodes(ir)
    if fuse:
        ir = fuse_quadratics(fold_linear_bias(ir))
    ir = assign_partitions(ir).validate()
    _cross_check_shapes(ir, model, inputs, b)
    return ir


def _shape_stub(b: Builder, name: str) -> Builder:
    """A builder whose constant `name` is a zero array of the variable's shape (for Shape)."""
    stub = Builder(opset=b.opset)
    stub.constants[name] = np.zeros(b.shape(name), dtype=np.float32)
    return stub


def _cross_check_shapes(ir: Graph, model: onnx.ModelProto, inputs: Sequence[str], b: Builder) -> None:
    """Our op-table shapes must agree with ONNX shape inference wherever it is static."""
    if any(not all(d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim) for vi in model.graph.input if vi.name in inputs):
        return  # ONNX would infer from symbolic dims; nothing to compare
    # ONNX shape inference keeps a ceil-mode pooling window that would start past the input;
    # the ONNX reference evaluator, onnxruntime and PyTorch drop it (as we do): skip those.
    ceil_pools = {n.output for n in ir.nodes if n.op == "avgpool" and n.attrs["ceil_mode"]}
    for name, shape in _onnx_static_shapes(model).items():
        if name in ir.values and name not in ceil_pools and ir.values[name].shape != shape:
            raise CompileError(f"value {name!r}: the op table infers {ir.values[name].shape}, ONNX infers {shape}")

