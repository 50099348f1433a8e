"""The exported graph follows the importer's contract (docs/onnx_opset.md) and equals torch."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from cryptoface_exporters.depth import block_depths
from cryptoface_exporters.export import ALLOWED_OPS, OPSET, check_contract, to_onnx
from cryptoface_exporters.fuse import fuse
from cryptoface_exporters.inference import embed_onnx, embed_torch, onnx_session


@pytest.fixture(scope="module")
def small_graph(small_model):
    return to_onnx(fuse(small_model, "monic"))


def _inits(graph):
    return {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}


def test_io_and_opset(small_graph):
    g = small_graph.graph
    assert [i.name for i in g.input] == ["image"] and [o.name for o in g.output] == ["embedding"]
    dims = lambda v: [d.dim_value for d in v.type.tensor_type.shape.dim]
    assert dims(g.input[0]) == [1, 3, 32, 32] and dims(g.output[0]) == [1, 64]
    assert small_graph.opset_import[0].version == OPSET == 17


def test_only_allowed_ops_and_no_batchnorm(small_graph, cfn4_model):
    for graph in (small_graph, to_onnx(fuse(cfn4_model, "monic"))):
        ops = {n.op_type for n in graph.graph.node}
        assert ops <= ALLOWED_OPS
        assert "BatchNormalization" not in ops
        assert all(n.attribute for n in graph.graph.node if n.op_type == "Conv")
        for n in graph.graph.node:
            if n.op_type == "Conv":
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
                assert attrs["group"] == 1 and len(n.input) == 3  # always with a bias


def test_one_named_subgraph_per_patch(small_graph):
    nodes = small_graph.graph.node
    assert all(n.name.startswith(f"patch{i}/") for i in range(4) for n in nodes if n.name.startswith(f"patch{i}/"))
    assert {n.name.split("/")[0] for n in nodes} == {"patch0", "patch1", "patch2", "patch3", "embedding"}
    slices = [n for n in nodes if n.op_type == "Slice"]
    assert [n.name for n in slices] == [f"patch{i}/slice" for i in range(4)]
    inits = _inits(small_graph)
    starts = [tuple(inits[n.input[1]]) for n in slices]
    assert starts == [(0, 0), (0, 16), (16, 0), (16, 16)]  # row-major
    assert all(tuple(inits[n.input[3]]) == (2, 3) for n in slices)
    total = [n for n in nodes if n.name == "embedding/sum"]
    assert total[0].op_type == "Sum" and list(total[0].input) == [f"patch{i}/gemm" for i in range(4)]
    # a patch's nodes only read the image through its own Slice
    for n in nodes:
        if n.name.startswith("patch") and n.op_type != "Slice":
            assert "image" not in n.input


def test_monic_herpn_pattern(small_graph):
    nodes = {n.name: n for n in small_graph.graph.node}
    inits = _inits(small_graph)
    add_b, mul, add_c = (nodes[f"patch1/block0/herpn1/{s}"] for s in ("add_b", "mul", "add_c"))
    x = add_b.input[0]
    assert (add_b.op_type, mul.op_type, add_c.op_type) == ("Add", "Mul", "Add")
    assert list(mul.input) == [x, add_b.output[0]] and add_c.input[0] == mul.output[0]
    assert inits[add_b.input[1]].shape == (8, 1, 1) and inits[add_c.input[1]].shape == (8, 1, 1)
    assert nodes["patch1/block0/shortcut/scale"].op_type == "Mul"
    assert inits["patch1/block0/shortcut/a2"].shape == (8, 1, 1)
    assert "patch1/block1/shortcut/conv" in nodes  # downsampling block: a2 folded in the 1x1 conv
    pool = nodes["patch1/pool"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in pool.attribute}
    assert pool.op_type == "AveragePool" and attrs["kernel_shape"] == attrs["strides"] == [4, 4]
    gemm = nodes["patch1/gemm"]
    assert gemm.op_type == "Gemm" and inits[gemm.input[1]].shape == (64, 64)


def test_contract_check_rejects_foreign_ops(small_graph):
    bad = onnx.ModelProto()
    bad.CopyFrom(small_graph)
    add = next(n for n in bad.graph.node if n.op_type == "Add")
    add.op_type = "Max"  # valid ONNX with the same inputs, but not in the importer's op set
    with pytest.raises(ValueError, match="outside the importer's op set: \\['Max'\\]"):
        check_contract(bad)


@pytest.mark.parametrize("form", ["monic", "aespa"])
def test_onnxruntime_matches_torch(small_model, cfn4_model, tmp_path, form):
    for model in (small_model, cfn4_model):
        path = tmp_path / f"{model.config.name}-{form}.onnx"
        onnx.save(to_onnx(fuse(model, form)), path)
        size = model.config.input_size
        x = np.random.default_rng(0).standard_normal((3, 3, size, size)).astype(np.float32)
        ref = embed_torch(model, x)
        assert np.abs(ref).max() > 0.1
        assert np.abs(embed_onnx(onnx_session(path), x) - ref).max() <= 1e-4


def test_depth_per_block(cfn4_model, small_graph):
    depth = lambda form, levels: {b.name: b.depth for b in block_depths(to_onnx(fuse(cfn4_model, form)), 0, levels)}
    aespa, monic = depth("aespa", 2), depth("monic", 2)
    for j in range(5):
        assert aespa[f"block{j}"] == 8 and monic[f"block{j}"] == 6  # the paper: 2 levels saved per block
    assert depth("monic", 1)["block0"] == 4
    small = {b.name: b.depth for b in block_depths(small_graph, 3, conv_levels=1)}
    assert small["total"] <= 15  # leaves room for the ~5 levels of the encrypted similarity within 20
