"""The IR op table: one entry per IR op kind, read-only.

Each `OpSpec` holds what the IR itself needs to know about an op:
- `reference`: the float64 numpy implementation (the interpreter runs exactly this);
- `infer_shape`: the output shape from the input shapes (the importer and `Graph.validate`).

How an op runs on ciphertexts is the compiler's business and has one home there: the packing
rule per IR kind (`compile/pack.py`, `PACKING_RULES`) and, per packed kind, the levels it
consumes and the instructions it emits (`compile/lowering.py`, `LOWERINGS`). A kind without a
packing rule is run by the interpreter only (the compiler refuses it with a CompileError).

Attribute and parameter names per op (the contract the compiler builds on) are in each
spec's `attrs` / `params` tuples and in docs/ir.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import CompileError

Shape = tuple[int, ...]
Reference = Callable[[Sequence[np.ndarray], Mapping[str, Any], Mapping[str, np.ndarray]], np.ndarray]
ShapeRule = Callable[[Sequence[Shape], Mapping[str, Any], Mapping[str, np.ndarray]], Shape]


@dataclass(frozen=True)
class OpSpec:
    """Everything about one IR op kind."""

    kind: str
    reference: Reference
    infer_shape: ShapeRule
    attrs: tuple[str, ...] = ()
    params: tuple[str, ...] = ()  # optional ones end with "?"
    variadic: bool = False  # any number of variable inputs (sum, concat)
    arity: int = 1  # number of variable inputs when not variadic
    doc: str = ""


# --------------------------------------------------------------------------- helpers
def broadcast_shape(*shapes: Shape) -> Shape:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError as exc:
        raise CompileError(f"shapes {list(shapes)} do not broadcast") from exc


def _spatial_out(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int, ceil_mode: bool = False) -> int:
    """Output length along one spatial axis (ONNX Conv/AveragePool formula)."""
    effective = dilation * (kernel - 1) + 1
    span = size + pad_begin + pad_end - effective
    if span < 0:
        raise CompileError(f"kernel {kernel} (dilation {dilation}) larger than padded input {size + pad_begin + pad_end}")
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1  # a last window that would start in the end padding is dropped
    return out


def _windows(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int], out: Sequence[int]) -> np.ndarray:
    """(N, C, *out, *kernel) view of the (already padded) input's sliding windows."""
    nd = len(kernel)
    effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    need = [(o - 1) * s + e for o, s, e in zip(out, strides, effective)]
    extra = [max(0, n - x.shape[2 + i]) for i, n in enumerate(need)]
    if any(extra):  # ceil mode: windows hanging over the end
        x = np.pad(x, [(0, 0), (0, 0)] + [(0, e) for e in extra])
    view = sliding_window_view(x, effective, axis=tuple(range(2, 2 + nd)))
    index = (slice(None), slice(None))
    index += tuple(slice(0, o * s, s) for o, s in zip(out, strides))
    index += tuple(slice(None, None, d) for d in dilations)
    return view[index]


def _pad_spatial(x: np.ndarray, pads: Sequence[int]) -> np.ndarray:
    nd = x.ndim - 2
    return np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)])


# --------------------------------------------------------------------------- conv
def _conv_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    (x,) = shapes
    w = params["weight"].shape
    nd = len(x) - 2
    group = attrs["group"]
    if x[1] != w[1] * group or w[0] % group:
        raise CompileError(f"conv: input channels {x[1]} != weight {w} x group {group}")
    pads = attrs["pads"]
    spatial = tuple(
        _spatial_out(x[2 + i], w[2 + i], attrs["strides"][i], pads[i], pads[i + nd], attrs["dilations"][i]) for i in range(nd)
    )
    return (x[0], w[0]) + spatial


def _conv(inputs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> np.ndarray:
    (x,) = inputs
    w = params["weight"]
    nd = x.ndim - 2
    out = _conv_shape([x.shape], attrs, params)[2:]
    windows = _windows(_pad_spatial(x, attrs["pads"]), w.shape[2:], attrs["strides"], attrs["dilations"], out)
    group = attrs["group"]
    cig, cog = w.shape[1], w.shape[0] // group
    parts = []
    for g in range(group):
        win = windows[:, g * cig : (g + 1) * cig]  # (N, cig, *out, *k)
        wg = w[g * cog : (g + 1) * cog]  # (cog, cig, *k)
        axes_win = [1] + list(range(2 + nd, 2 + 2 * nd))
        axes_w = list(range(1, 2 + nd))
        y = np.tensordot(win, wg, axes=(axes_win, axes_w))  # (N, *out, cog)
        parts.append(np.moveaxis(y, -1, 1))
    y = np.concatenate(parts, axis=1)
    if "bias" in params:
        y = y + params["bias"].reshape((1, -1) + (1,) * nd)
    return y


# --------------------------------------------------------------------------- pooling
def _avgpool_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    (x,) = shapes
    nd = len(x) - 2
    k, s, p, d = attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"]
    spatial = tuple(_spatial_out(x[2 + i], k[i], s[i], p[i], p[i + nd], d[i], bool(attrs["ceil_mode"])) for i in range(nd))
    return tuple(x[:2]) + spatial


def _avgpool(inputs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> np.ndarray:
    (x,) = inputs
    nd = x.ndim - 2
    out = _avgpool_shape([x.shape], attrs, params)[2:]
    k, s, p, d = attrs["kernel"], attrs["strides"], attrs["pads"], attrs["dilations"]
    axes = tuple(range(-nd, 0))
    total = _windows(_pad_spatial(x, p), k, s, d, out).sum(axis=axes)
    # Divisor: window positions inside the input (or inside the padded input with
    # count_include_pad); positions hanging past the padding (ceil mode) never count.
    ones = np.ones((1, 1) + tuple(x.shape[2:]))
    if attrs["count_include_pad"]:
        mask = np.pad(ones, [(0, 0), (0, 0)] + [(p[i], p[i + nd]) for i in range(nd)], constant_values=1.0)
    else:
        mask = _pad_spatial(ones, p)
    count = _windows(mask, k, s, d, out).sum(axis=axes)
    return total / count


def _global_avgpool_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    (x,) = shapes
    return tuple(x[:2]) + (1,) * (len(x) - 2)


def _global_avgpool(inputs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> np.ndarray:
    (x,) = inputs
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


# --------------------------------------------------------------------------- linear algebra
def _linear_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    (x,) = shapes
    out_f, in_f = params["weight"].shape
    if not x or x[-1] != in_f:
        raise CompileError(f"linear: input {x} does not end in {in_f} features")
    y = tuple(x[:-1]) + (out_f,)
    if "bias" in params:
        y = broadcast_shape(y, params["bias"].shape)
    return y


def _linear(inputs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> np.ndarray:
    y = inputs[0] @ params["weight"].T
    return y + params["bias"] if "bias" in params else y


def _matmul_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    a, b = shapes
    try:
        return tuple(np.matmul(np.empty(a, dtype=np.int8), np.empty(b, dtype=np.int8)).shape)
    except ValueError as exc:
        raise CompileError(f"matmul: shapes {a} and {b} do not match") from exc


# --------------------------------------------------------------------------- elementwise
def _elementwise_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    return broadcast_shape(*shapes, *(p.shape for p in params.values()))


def _quadratic(inputs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> np.ndarray:
    x = inputs[0]
    return params["a"] * x * x + params["b"] * x + params["c"]


# --------------------------------------------------------------------------- data movement
def _flatten_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    (x,) = shapes
    axis = attrs["axis"]
    return (int(np.prod(x[:axis], dtype=np.int64)), int(np.prod(x[axis:], dtype=np.int64)))


def _reshape_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    (x,) = shapes
    shape = tuple(attrs["shape"])
    if np.prod(shape, dtype=np.int64) != np.prod(x, dtype=np.int64):
        raise CompileError(f"reshape: {x} has not as many elements as {shape}")
    return shape


def _slices(shape: Shape, attrs: Mapping[str, Any]) -> tuple[slice, ...]:
    """Normalized (clamped) starts/ends/steps to Python slices; end -1 with a negative step
    means 'through index 0'."""
    index = [slice(None)] * len(shape)
    for start, end, axis, step in zip(attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]):
        index[axis] = slice(start, None if end < 0 else end, step)
    return tuple(index)


def _slice_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    (x,) = shapes
    return tuple(len(range(*s.indices(d))) for s, d in zip(_slices(x, attrs), x))


def _concat_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    axis = attrs["axis"]
    first = shapes[0]
    for s in shapes[1:]:
        if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != axis):
            raise CompileError(f"concat: shapes {list(shapes)} differ off axis {axis}")
    return tuple(first[:axis]) + (sum(s[axis] for s in shapes),) + tuple(first[axis + 1 :])


def _transpose_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    (x,) = shapes
    return tuple(x[p] for p in attrs["perm"])


def _same_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    return tuple(shapes[0])


def _sum_shape(shapes: Sequence[Shape], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> Shape:
    return broadcast_shape(*shapes)


def _sum(inputs: Sequence[np.ndarray], attrs: Mapping[str, Any], params: Mapping[str, np.ndarray]) -> np.ndarray:
    total = np.zeros(_sum_shape([x.shape for x in inputs], attrs, params))
    for x in inputs:
        total = total + x
    return total


# --------------------------------------------------------------------------- the table
def _spec(kind: str, reference: Reference, shape: ShapeRule, **kw: Any) -> OpSpec:
    return OpSpec(kind=kind, reference=reference, infer_shape=shape, **kw)


OP_TABLE: Mapping[str, OpSpec] = MappingProxyType({
    s.kind: s
    for s in (
        _spec("conv", _conv, _conv_shape, attrs=("strides", "pads", "dilations", "group"), params=("weight", "bias?"),
              doc="N-d convolution, weight (Co, Ci/group, *k), pads = begins then ends"),
        _spec("linear", _linear, _linear_shape, params=("weight", "bias?"),
              doc="y = x @ weight.T + bias over the last axis; weight (out, in)"),
        _spec("matmul", lambda i, a, p: np.matmul(i[0], i[1]), _matmul_shape, arity=2,
              doc="numpy matmul of two variables"),
        _spec("avgpool", _avgpool, _avgpool_shape,
              attrs=("kernel", "strides", "pads", "dilations", "count_include_pad", "ceil_mode"), doc="N-d average pooling"),
        _spec("global_avgpool", _global_avgpool, _global_avgpool_shape, doc="mean over all spatial axes, kept as 1s"),
        _spec("add", lambda i, a, p: i[0] + i[1], _elementwise_shape, arity=2),
        _spec("sub", lambda i, a, p: i[0] - i[1], _elementwise_shape, arity=2),
        _spec("mul", lambda i, a, p: i[0] * i[1], _elementwise_shape, arity=2),
        _spec("add_const", lambda i, a, p: i[0] + p["value"], _elementwise_shape, params=("value",),
              doc="x + value (numpy broadcasting)"),
        _spec("mul_const", lambda i, a, p: i[0] * p["value"], _elementwise_shape, params=("value",),
              doc="x * value (numpy broadcasting)"),
        _spec("neg", lambda i, a, p: -i[0], _same_shape),
        _spec("quadratic", _quadratic, _elementwise_shape, params=("a", "b", "c"),
              doc="a*x^2 + b*x + c, a/b/c of one shape broadcastable to x (e.g. (C,1,1)); "
                  "one ct-ct level when a == 1 (monic), else the lowering may need one more"),
        _spec("flatten", lambda i, a, p: i[0].reshape(_flatten_shape([i[0].shape], a, p)), _flatten_shape, attrs=("axis",)),
        _spec("reshape", lambda i, a, p: i[0].reshape(a["shape"]), _reshape_shape, attrs=("shape",),
              doc="to a concrete shape (0 and -1 resolved at import)"),
        _spec("slice", lambda i, a, p: i[0][_slices(i[0].shape, a)], _slice_shape, attrs=("starts", "ends", "axes", "steps"),
              doc="starts/ends clamped at import; end -1 with a negative step = through index 0"),
        _spec("concat", lambda i, a, p: np.concatenate(i, axis=a["axis"]), _concat_shape, attrs=("axis",), variadic=True),
        _spec("sum", _sum, _sum_shape, variadic=True, doc="n-ary addition (numpy broadcasting)"),
        _spec("identity", lambda i, a, p: i[0], _same_shape),
        _spec("transpose", lambda i, a, p: np.transpose(i[0], a["perm"]), _transpose_shape, attrs=("perm",)),
        _spec("constant", lambda i, a, p: p["value"], lambda s, a, p: tuple(p["value"].shape), params=("value",), arity=0,
              doc="a plaintext tensor; only where a constant is a graph output or a matmul/concat operand"),
    )
})


def spec(kind: str) -> OpSpec:
    """The table entry for `kind` (CompileError naming the kind if there is none)."""
    try:
        return OP_TABLE[kind]
    except KeyError:
        raise CompileError(f"unknown IR op kind {kind!r}; known: {sorted(OP_TABLE)}") from None


def infer_shape(node: Any, input_shapes: Sequence[Shape]) -> Shape:
    """Output shape of `node` (a graph.Node) given its input shapes."""
    s = spec(node.op)
    if not s.variadic and len(input_shapes) != s.arity:
        raise CompileError(f"node {node.name!r} ({node.op}) has {len(input_shapes)} inputs, expected {s.arity}")
    return tuple(int(d) for d in s.infer_shape([tuple(x) for x in input_shapes], node.attrs, node.params))


def evaluate(node: Any, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Run the reference implementation of `node` on float64 arrays."""
    return np.asarray(spec(node.op).reference(inputs, node.attrs, node.params), dtype=np.float64)

