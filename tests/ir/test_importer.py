"""The ONNX importer: rewrites, partitions, folding, errors; results against a second implementation."""

from __future__ import annotations

import glob
import os

import numpy as np
import onnx
import pytest
from ir_models import GraphMaker, reference_outputs, tiny_cryptofacenet
from onnx import helper

from cryptoface.errors import CompileError, UnsupportedOpError
from cryptoface.ir import import_onnx, run

RNG = np.random.default_rng(7)


def _check_against_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray], rtol: float = 1e-4, atol: float = 1e-5):
    graph = import_onnx(model)
    ours = run(graph, feeds)
    theirs = reference_outputs(model, feeds)
    for name, ref in zip(graph.outputs, theirs):
        np.testing.assert_allclose(ours[name], ref, rtol=rtol, atol=atol)
    return graph


# --------------------------------------------------------------------------- tiny model
def test_tiny_cryptofacenet_partitions_and_ops():
    graph = import_onnx(tiny_cryptofacenet())
    parts = graph.partitions()
    assert sorted(parts) == [0, 1, 2, 3]
    expected = ["slice", "conv", "quadratic", "conv", "quadratic", "conv", "mul_const", "add", "quadratic", "avgpool", "flatten", "linear"]
    for i, nodes in parts.items():
        assert sorted(n.op for n in nodes) == sorted(expected)
        assert all(n.name.startswith(f"patch{i}/") for n in nodes)
    (join,) = graph.shared_nodes()
    assert join.op == "sum" and join.name == "embedding/sum" and join.partition is None
    assert graph.ops() == {**{op: 4 * expected.count(op) for op in set(expected)}, "sum": 1}
    herpn = graph.node("patch2/block0/herpn1")
    assert herpn.op == "quadratic" and herpn.output == "patch2/block0/herpn1/add_c"
    np.testing.assert_array_equal(herpn.params["a"], np.ones((4, 1, 1)))


def test_tiny_cryptofacenet_matches_second_implementation():
    model = tiny_cryptofacenet()
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    _check_against_reference(model, {"image": x}, rtol=1e-4, atol=1e-3)


def test_partitions_in_topological_order_without_patch_names():
    g = GraphMaker()
    outs = []
    for i in range(3):
        s = g.node("Slice", f"s{i}", ["x", g.const(f"st{i}", np.array([i])), g.const(f"en{i}", np.array([i + 1])),
                                      g.const(f"ax{i}", np.array([1]))])
        outs.append(g.node("Neg", f"n{i}", [s]))
    g.node("Sum", "y", outs)
    g.node("Add", "z", ["y", "x"])  # reads the raw input: shared
    graph = import_onnx(g.model([("x", [1, 3])], [("z", [1, 3])]))
    assert {n.name: n.partition for n in graph.nodes} == {"s0": 0, "n0": 0, "s1": 1, "n1": 1, "s2": 2, "n2": 2, "y": None, "z": None}


# --------------------------------------------------------------------------- quadratic
def _quadratic_model(pattern: str, channels: int = 3) -> onnx.ModelProto:
    g = GraphMaker(1)
    b = g.rand("b", (channels, 1, 1))
    c = g.rand("c", (channels, 1, 1))
    if pattern == "x*(x+b)+c":
        t = g.node("Add", "act/add_b", ["x", b])
        m = g.node("Mul", "act/mul", ["x", t])
    elif pattern == "(x+b)*x+c":
        t = g.node("Add", "act/add_b", [b, "x"])
        m = g.node("Mul", "act/mul", [t, "x"])
    elif pattern == "x*x+b*x+c":
        sq = g.node("Mul", "act/sq", ["x", "x"])
        bx = g.node("Mul", "act/bx", [b, "x"])
        m = g.node("Add", "act/sum", [sq, bx])
    elif pattern == "a*x*x+b*x+c":
        sq = g.node("Mul", "act/sq", ["x", "x"])
        asq = g.node("Mul", "act/asq", [sq, g.rand("a", (channels, 1, 1))])
        bx = g.node("Mul", "act/bx", ["x", b])
        m = g.node("Add", "act/sum", [bx, asq])
    g.node("Add", "act/add_c", [m, c])
    return g.model([("x", [1, channels, 4, 4])], [("act/add_c", [1, channels, 4, 4])])


@pytest.mark.parametrize("pattern", ["x*(x+b)+c", "(x+b)*x+c", "x*x+b*x+c", "a*x*x+b*x+c"])
def test_quadratic_patterns_fuse_and_match(pattern):
    model = _quadratic_model(pattern)
    x = RNG.standard_normal((1, 3, 4, 4)).astype(np.float32)
    graph = _check_against_reference(model, {"x": x})
    (node,) = graph.nodes
    assert node.op == "quadratic" and node.name == "act" and node.inputs == ("x",)
    assert {k: v.shape for k, v in node.params.items()} == {"a": (3, 1, 1), "b": (3, 1, 1), "c": (3, 1, 1)}


def test_quadratic_not_fused_when_intermediate_is_shared():
    g = GraphMaker()
    t = g.node("Add", "t", ["x", g.rand("b", (2, 1, 1))])
    m = g.node("Mul", "m", ["x", t])
    g.node("Add", "y", [m, t])  # t read twice: fusing would change the graph's meaning
    graph = import_onnx(g.model([("x", [1, 2, 2, 2])], [("y", [1, 2, 2, 2])]))
    assert "quadratic" not in graph.ops()


def test_quadratic_not_fused_when_constant_broadens_x():
    g = GraphMaker()
    t = g.node("Add", "t", ["x", g.rand("b", (1, 3))])  # x (1, 1) grows to (1, 3)
    g.node("Mul", "y", ["x", t])
    graph = import_onnx(g.model([("x", [1, 1])], [("y", [1, 3])]))
    assert graph.ops() == {"add_const": 1, "mul": 1}


def test_unfused_import_keeps_onnx_structure():
    graph = import_onnx(_quadratic_model("x*(x+b)+c"), fuse=False)
    assert [n.op for n in graph.nodes] == ["add_const", "mul", "add_const"]


# --------------------------------------------------------------------------- linear
def test_matmul_plus_add_becomes_linear_with_bias():
    g = GraphMaker()
    mm = g.node("MatMul", "fc/MatMul", ["x", g.rand("W", (6, 4))])
    g.node("Add", "fc/Add", [g.rand("bias", (4,)), mm])
    model = g.model([("x", [2, 6])], [("fc/Add", [2, 4])])
    graph = _check_against_reference(model, {"x": RNG.standard_normal((2, 6)).astype(np.float32)})
    (node,) = graph.nodes
    assert node.op == "linear" and node.name == "fc" and node.params["weight"].shape == (4, 6) and node.params["bias"].shape == (4,)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_alpha_beta_trans_folded_into_linear(trans_b):
    g = GraphMaker()
    w = g.rand("W", (4, 6) if trans_b else (6, 4))
    g.node("Gemm", "y", ["x", w, g.rand("C", (1, 4))], alpha=0.5, beta=2.0, transB=trans_b)
    model = g.model([("x", [3, 6])], [("y", [3, 4])])
    graph = _check_against_reference(model, {"x": RNG.standard_normal((3, 6)).astype(np.float32)})
    assert [n.op for n in graph.nodes] == ["linear"]


def test_gemm_with_matrix_bias_keeps_an_add_const():
    g = GraphMaker()
    g.node("Gemm", "y", ["x", g.rand("W", (6, 4)), g.rand("C", (3, 4))])
    model = g.model([("x", [3, 6])], [("y", [3, 4])])
    graph = _check_against_reference(model, {"x": RNG.standard_normal((3, 6)).astype(np.float32)})
    assert [n.op for n in graph.nodes] == ["linear", "add_const"]


# --------------------------------------------------------------------------- folding, shapes
def test_constant_subgraph_folded_pytorch_flatten_style():
    g = GraphMaker()
    shape = g.node("Shape", "shape", ["x"])
    n = g.node("Gather", "n", [shape, g.const("zero", np.array(0, np.int64))], axis=0)
    n1 = g.node("Unsqueeze", "n1", [n, g.const("ax0", np.array([0], np.int64))])
    target = g.node("Concat", "target", [n1, g.const("minus1", np.array([-1], np.int64))], axis=0)
    g.node("Reshape", "y", ["x", target])
    model = g.model([("x", [2, 3, 2, 2])], [("y", [2, 12])])
    graph = _check_against_reference(model, {"x": RNG.standard_normal((2, 3, 2, 2)).astype(np.float32)})
    (node,) = graph.nodes
    assert node.op == "reshape" and node.attrs["shape"] == (2, 12)


def test_constant_node_and_subtraction_forms():
    g = GraphMaker()
    g.nodes.append(helper.make_node("Constant", [], ["k"], value=helper.make_tensor("v", onnx.TensorProto.FLOAT, [2], [1.5, -2.0])))
    a = g.node("Sub", "a", ["x", "k"])
    b = g.node("Sub", "b", ["k", a])
    g.node("Sum", "y", [a, b, "k"])
    model = g.model([("x", [1, 2])], [("y", [1, 2])])
    _check_against_reference(model, {"x": RNG.standard_normal((1, 2)).astype(np.float32)})


def test_symbolic_batch_needs_input_shapes():
    g = GraphMaker()
    g.node("Neg", "y", ["x"])
    model = g.model([("x", ["N", 3])], [("y", ["N", 3])])
    with pytest.raises(CompileError, match="symbolic dimension"):
        import_onnx(model)
    assert import_onnx(model, input_shapes={"x": (5, 3)}).values["y"].shape == (5, 3)


# --------------------------------------------------------------------------- errors
def test_unsupported_op_names_op_and_node():
    g = GraphMaker()
    g.node("Relu", "relu_3", ["x"])
    with pytest.raises(UnsupportedOpError, match=r"^unsupported ONNX op 'Relu' at node 'relu_3'$"):
        import_onnx(g.model([("x", [1, 4])], [("relu_3", [1, 4])]))


def test_unsupported_attribute_names_it():
    g = GraphMaker()
    node = helper.make_node("Flatten", ["x"], ["y"], name="flat", axis=1, fancy=3)
    g.nodes.append(node)
    with pytest.raises(UnsupportedOpError, match=r"unsupported attribute 'fancy' of ONNX op 'Flatten' at node 'flat'"):
        import_onnx(g.model([("x", [1, 4])], [("y", [1, 4])]))


def test_variable_conv_weight_is_refused():
    g = GraphMaker()
    g.node("Conv", "conv", ["x", "w"])
    model = g.model([("x", [1, 1, 3, 3]), ("w", [1, 1, 2, 2])], [("conv", [1, 1, 2, 2])])
    with pytest.raises(UnsupportedOpError, match="variable weight input 'w' of ONNX op 'Conv' at node 'conv'"):
        import_onnx(model)


def test_integer_input_is_refused():
    g = GraphMaker()
    g.node("Neg", "y", ["x"])
    model = g.model([("x", [2])], [("y", [2])])
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.INT32
    with pytest.raises(UnsupportedOpError, match="INT32 of graph input 'x'"):
        import_onnx(model)


# --------------------------------------------------------------------------- shipped models
HERE = os.path.dirname(__file__)
# Exported models pinned in tests/ir/data, plus whatever cryptoface/models ships.
EXPORTED = sorted(glob.glob(os.path.join(HERE, "data", "*.onnx"))) + sorted(
    glob.glob(os.path.join(HERE, "..", "..", "cryptoface", "models", "*.onnx")))


def _face_input(shape: tuple[int, ...]) -> np.ndarray:
    """An ORL face, center-cropped, resized by sampling and normalized as the client does:
    trained models amplify random noise through their quadratics until float32 overflows."""
    faces = np.load(os.path.join(HERE, "..", "..", "cryptoface", "data", "orl_faces.npz"))["images"]
    face = faces[0].astype(np.float64)
    h, w = face.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    idx = (np.arange(shape[-1]) + 0.5) * side / shape[-1]
    crop = face[top + idx.astype(int)][:, left + idx.astype(int)]
    x = (crop / 255 - 0.5) / 0.5
    return np.broadcast_to(x, shape).astype(np.float32)


@pytest.mark.parametrize("path", EXPORTED, ids=[os.path.basename(p) for p in EXPORTED])
def test_shipped_model_imports_and_matches(path):
    model = onnx.load(path)
    graph = import_onnx(model)
    n_patches = int({p.key: p.value for p in model.metadata_props}.get("num_patches", len(graph.partitions())))
    assert len(graph.partitions()) == n_patches
    assert "mul" not in graph.ops(), "every HerPN should fuse into a quadratic"
    x = _face_input(graph.values[graph.inputs[0]].shape)
    ours = run(graph, {graph.inputs[0]: x})[graph.outputs[0]]
    (ref,) = reference_outputs(model, {graph.inputs[0]: x})
    cos = float(np.dot(ours.ravel(), ref.ravel()) / (np.linalg.norm(ours) * np.linalg.norm(ref)))
    assert cos > 0.99999
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-3 * float(np.abs(ref).max()))
