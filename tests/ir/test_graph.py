"""The IR graph: immutability, ordering, validation, printing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ir_models import tiny_cryptofacenet

from cryptoface.errors import CompileError
from cryptoface.ir import Graph, Node, Value, import_onnx, run


def _chain() -> Graph:
    nodes = (
        Node("b", "neg", ("t",), ("y",)),  # listed out of order on purpose
        Node("a", "add_const", ("x",), ("t",), params={"value": np.ones((2,))}),
    )
    values = {"x": Value("x", (1, 2)), "t": Value("t", (1, 2)), "y": Value("y", (1, 2))}
    return Graph(("x",), ("y",), nodes, values)


def test_nodes_are_sorted_and_queries_work():
    g = _chain().validate()
    assert [n.name for n in g.topological_order()] == ["a", "b"]
    assert g.producer("t").name == "a" and g.producer("x") is None
    assert [n.name for n in g.consumers("t")] == ["b"]
    assert g.partitions() == {} and [n.name for n in g.shared_nodes()] == ["a", "b"]
    np.testing.assert_array_equal(run(g, {"x": np.array([[1.0, -3.0]])})["y"], [[-2.0, 2.0]])


def test_everything_is_immutable():
    g = _chain()
    node = g.node("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        node.op = "mul_const"
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.nodes = ()
    with pytest.raises(TypeError):
        node.params["value"] = np.zeros(2)
    with pytest.raises(TypeError):
        g.values["z"] = Value("z", (1,))
    with pytest.raises(ValueError):
        node.params["value"][0] = 5.0  # weights are read-only arrays
    weights = np.ones(2)
    kept = Node("c", "mul_const", ("x",), ("z",), params={"value": weights})
    weights[0] = 7.0  # the caller's array is copied, not shared
    assert kept.params["value"][0] == 1.0
    assert Node("d", "transpose", ("x",), ("w",), attrs={"perm": [1, 0]}).attrs["perm"] == (1, 0)  # lists frozen to tuples


def test_replace_returns_new_graph_and_keeps_old():
    g = _chain()
    new_node = g.node("a").replace(params={"value": np.full((2,), 3.0)})
    g2 = g.replace_nodes(["a"], [new_node])
    assert g2 is not g and g.node("a").params["value"][0] == 1.0 and g2.node("a").params["value"][0] == 3.0
    assert [n.name for n in g2.nodes] == ["a", "b"]
    g3 = g.with_partitions({"a": 0})
    assert g3.node("a").partition == 0 and g.node("a").partition is None


def test_cycle_and_undefined_inputs_refused():
    values = {v: Value(v, (1,)) for v in "xyz"}
    with pytest.raises(CompileError, match="cycle"):
        Graph(("x",), ("z",), (Node("p", "add", ("x", "z"), ("y",)), Node("q", "neg", ("y",), ("z",))), values)
    with pytest.raises(CompileError, match="not defined"):
        Graph(("x",), ("y",), (Node("p", "add", ("x", "w"), ("y",)),), values).validate()
    with pytest.raises(CompileError, match="produced by"):
        Graph(("x",), ("y",), (Node("p", "neg", ("x",), ("y",)), Node("q", "neg", ("x",), ("y",))), values)


def test_validate_catches_a_wrong_shape():
    g = _chain()
    bad = g.replace(values={**g.values, "y": Value("y", (2, 2))})
    with pytest.raises(CompileError, match="op table infers"):
        bad.validate()


def test_pretty_printer_shows_ops_params_and_patches():
    text = str(import_onnx(tiny_cryptofacenet()))
    assert text.startswith("graph tiny_cryptofacenet(image[1, 3, 8, 8]) -> (embedding[1, 5])")
    assert "quadratic(patch0/stem/conv; a(4, 1, 1), b(4, 1, 1), c(4, 1, 1))  # patch0/block0/herpn1  [patch 0]" in text
    assert "embedding = sum(patch0/gemm, patch1/gemm, patch2/gemm, patch3/gemm)  # embedding/sum  -> [1, 5]" in text
