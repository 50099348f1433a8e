"""The op table: every entry complete; conv and average pooling against ONNX's evaluator."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ir_models import GraphMaker, reference_outputs

from cryptoface.errors import CompileError
from cryptoface.ir import OP_TABLE, Node, import_onnx, run, spec
from cryptoface.ir.ops import evaluate, infer_shape


def test_every_op_has_reference_and_shape_rule():
    for kind, s in OP_TABLE.items():
        assert s.kind == kind and callable(s.reference) and callable(s.infer_shape)
    assert spec("neg").reference([np.arange(3.0)], {}, {}).tolist() == [-0.0, -1.0, -2.0]


def test_op_table_is_read_only():
    """Nothing registers into the table at import or run time: it cannot be written."""
    with pytest.raises(TypeError):
        OP_TABLE["neg"] = OP_TABLE["add"]  # type: ignore[index]
    with pytest.raises(TypeError):
        del OP_TABLE["neg"]  # type: ignore[attr-defined]


def test_unknown_kind_is_a_compile_error():
    with pytest.raises(CompileError, match="unknown IR op kind 'gelu'"):
        spec("gelu")


@pytest.mark.parametrize("node,shapes", [
    (Node("q", "quadratic", ("x",), ("y",), params={"a": np.ones((3, 1, 1)), "b": np.ones((3, 1, 1)), "c": np.zeros((3, 1, 1))}), [(1, 3, 2, 2)]),
    (Node("s", "slice", ("x",), ("y",), attrs={"starts": (3,), "ends": (-1,), "axes": (1,), "steps": (-2,)}), [(2, 5)]),
    (Node("l", "linear", ("x",), ("y",), params={"weight": np.ones((4, 5)), "bias": np.ones(4)}), [(2, 5)]),
    (Node("c", "concat", ("x", "z"), ("y",), attrs={"axis": 1}), [(2, 5), (2, 1)]),
])
def test_infer_shape_agrees_with_reference(node, shapes):
    inputs = [np.random.default_rng(0).standard_normal(s) for s in shapes]
    assert evaluate(node, inputs).shape == infer_shape(node, shapes)


@settings(max_examples=25, deadline=None)
@given(
    cin=st.integers(1, 4), cout_per_group=st.integers(1, 3), group=st.sampled_from([1, 2]), k=st.integers(1, 3),
    stride=st.integers(1, 2), dil=st.integers(1, 2), pad=st.integers(0, 2), size=st.integers(5, 8), seed=st.integers(0, 99),
)
def test_conv_matches_onnx_evaluator(cin, cout_per_group, group, k, stride, dil, pad, size, seed):
    g = GraphMaker(seed)
    cin_total = cin * group
    w = g.rand("W", (cout_per_group * group, cin, k, k))
    g.node("Conv", "y", ["x", w, g.rand("B", (cout_per_group * group,))], strides=[stride, stride],
           dilations=[dil, dil], pads=[pad, 0, pad, 1], group=group)
    x = g.rng.standard_normal((1, cin_total, size, size)).astype(np.float32)
    model = g.model([("x", [1, cin_total, size, size])], [("y", None)])
    ours = run(import_onnx(model), {"x": x})["y"]
    np.testing.assert_allclose(ours, reference_outputs(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


def _naive_avgpool_2d(x, k, s, pads, include, ceil):
    """Loops, PyTorch's rule: the divisor counts window positions inside the input (inside the
    padded input with count_include_pad), never those past the padding in ceil mode; a
    ceil-mode window that would start past the input and its begin padding is dropped."""
    pb, pe = pads
    n = x.shape[-1]
    span = n + pb + pe - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + pb:
        out -= 1
    y = np.zeros(x.shape[:2] + (out, out))
    for oi in range(out):
        for oj in range(out):
            total, count = 0.0, 0
            for i in range(oi * s - pb, oi * s - pb + k):
                for j in range(oj * s - pb, oj * s - pb + k):
                    lo, hi = (-pb, n + pe) if include else (0, n)
                    if lo <= i < hi and lo <= j < hi:
                        count += 1
                    if 0 <= i < n and 0 <= j < n:
                        total = total + x[:, :, i, j]
            y[:, :, oi, oj] = total / count
    return y


@settings(max_examples=25, deadline=None)
@given(k=st.integers(1, 3), stride=st.integers(1, 3), pad=st.integers(0, 1), ceil=st.integers(0, 1),
       include=st.integers(0, 1), size=st.integers(4, 7), seed=st.integers(0, 99))
def test_avgpool_matches_naive_loops(k, stride, pad, ceil, include, size, seed):
    # Against loops written here: in ceil mode onnxruntime (counts positions past the padding)
    # and ONNX's reference evaluator (mis-averages windows hanging over the end) disagree with
    # each other and with PyTorch, whose rule the loops follow.
    pad = min(pad, k - 1)  # ONNX requires pads smaller than the kernel
    g = GraphMaker(seed)
    g.node("AveragePool", "y", ["x"], kernel_shape=[k, k], strides=[stride, stride], pads=[pad, pad, pad, pad],
           ceil_mode=ceil, count_include_pad=include)
    x = g.rng.standard_normal((1, 2, size, size)).astype(np.float32)
    model = g.model([("x", [1, 2, size, size])], [("y", None)])
    ours = run(import_onnx(model), {"x": x})["y"]
    np.testing.assert_allclose(ours, _naive_avgpool_2d(x.astype(np.float64), k, stride, (pad, pad), include, ceil), rtol=1e-12, atol=1e-12)
