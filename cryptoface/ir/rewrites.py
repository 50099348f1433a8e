"""Graph-to-graph rewrites the importer applies (each returns a new graph).

- `fold_linear_bias`: linear followed by add_const of a per-feature constant -> one linear
  with a bias (MatMul + Add, as PyTorch exports nn.Linear without Gemm);
- `fuse_quadratics`: the HE-friendly activation patterns -> one `quadratic` node, so the
  compiler sees one ct-ct level instead of a mul plus scattered plaintext ops:
  x*(x+b)+c and (x+b)*x+c (the exporter's monic HerPN, docs/onnx_opset.md),
  x*x + b*x + c, with optional a*(x*x), and with the trailing +c optional;
- `assign_partitions`: every Slice of a graph input starts a patch network; a node belongs
  to patch i when every variable it depends on comes through slice i.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

import numpy as np

from .graph import Graph, Node
from .ops import broadcast_shape

PATCH_PREFIX = re.compile(r"^patch(\d+)/")


def remove_dead_nodes(graph: Graph) -> Graph:
    """Drop nodes no graph output depends on."""
    live: set[str] = set(graph.outputs)
    keep: list[Node] = []
    for n in reversed(graph.nodes):
        if any(o in live for o in n.outputs):
            keep.append(n)
            live.update(n.inputs)
    if len(keep) == len(graph.nodes):
        return graph
    return graph.replace_nodes([n.name for n in graph.nodes], reversed(keep))


def merged_name(graph: Graph, names: Sequence[str], removed: Iterable[str]) -> str:
    """Name of a fused node: the longest common '/'-path of the fused nodes' names
    (patch0/block0/herpn1 for its add_b, mul, add_c), else the last name; unique."""
    parts = [n.split("/") for n in names]
    common: list[str] = []
    for segs in zip(*parts):
        if len(set(segs)) != 1:
            break
        common.append(segs[0])
    taken = {n.name for n in graph.nodes} - set(removed)
    for candidate in ("/".join(common), names[-1]):
        if candidate and candidate.strip("/") and candidate not in taken:
            return candidate
    k = 1
    while f"{names[-1]}_{k}" in taken:
        k += 1
    return f"{names[-1]}_{k}"


def _sole_consumer(graph: Graph, value: str) -> Node | None:
    """The only node reading `value`, if it has exactly one and `value` is not an output."""
    users = graph.consumers(value)
    if len(users) != 1 or value in graph.outputs:
        return None
    return users[0]


# --------------------------------------------------------------------------- linear bias
def fold_linear_bias(graph: Graph) -> Graph:
    """linear -> add_const(v) becomes linear with bias when v varies along features only."""
    changed = True
    while changed:
        changed = False
        for lin in graph.nodes:
            if lin.op != "linear":
                continue
            add = _sole_consumer(graph, lin.output)
            if add is None or add.op != "add_const":
                continue
            out_shape = graph.shape(lin.output)
            value = add.params["value"]
            n_out = lin.params["weight"].shape[0]
            if value.ndim > len(out_shape) or any(d != 1 for d in value.shape[:-1]) or (value.ndim and value.shape[-1] not in (1, n_out)):
                continue
            bias = np.broadcast_to(value.reshape(-1) if value.ndim else value, (n_out,)) + lin.params.get("bias", 0.0)
            removed = (lin.name, add.name)
            fused = Node(merged_name(graph, removed, removed), "linear", lin.inputs, add.outputs,
                         params={"weight": lin.params["weight"], "bias": bias}, partition=lin.partition)
            graph = graph.replace_nodes(removed, [fused])
            changed = True
            break
    return graph


# --------------------------------------------------------------------------- quadratic
def _keeps_shape(x_shape: tuple[int, ...], *consts: np.ndarray) -> bool:
    """The constants broadcast onto x without growing it (per-channel, scalar, full...)."""
    try:
        return all(c.ndim <= len(x_shape) and broadcast_shape(x_shape, c.shape) == x_shape for c in consts)
    except Exception:  # noqa: BLE001 - CompileError from broadcast: not a match
        return False


def _match_monic(graph: Graph, mul: Node) -> tuple[str, np.ndarray, np.ndarray, list[Node]] | None:
    """x * (x + b) or (x + b) * x: returns (x, a, b, nodes)."""
    for x, t in (mul.inputs, mul.inputs[::-1]):
        shift = graph.producer(t)
        if shift is not None and shift.op == "add_const" and shift.inputs[0] == x and _sole_consumer(graph, t) is mul:
            return x, np.ones(()), shift.params["value"], [shift, mul]
    return None


def _match_expanded(graph: Graph, node: Node) -> tuple[str, np.ndarray, np.ndarray, list[Node]] | None:
    """x*x + b*x (either order, a*(x*x) allowed): `node` is the add."""
    if node.op != "add":
        return None
    for s_name, l_name in (node.inputs, node.inputs[::-1]):
        square, lin = graph.producer(s_name), graph.producer(l_name)
        if square is None or lin is None or lin.op != "mul_const" or _sole_consumer(graph, l_name) is not node:
            continue
        if _sole_consumer(graph, s_name) is not node:
            continue
        nodes, a = [lin], np.ones(())
        if square.op == "mul_const":
            a = square.params["value"]
            nodes.append(square)
            inner = graph.producer(square.inputs[0])
            if inner is None or _sole_consumer(graph, square.inputs[0]) is not square:
                continue
            square = inner
        if square.op != "mul" or square.inputs[0] != square.inputs[1] or square.inputs[0] != lin.inputs[0]:
            continue
        return lin.inputs[0], a, lin.params["value"], [square, *nodes, node]
    return None


def fuse_quadratics(graph: Graph) -> Graph:
    """Replace every recognized activation pattern by one `quadratic` node."""
    changed = True
    while changed:
        changed = False
        for node in graph.nodes:
            match = _match_monic(graph, node) if node.op == "mul" else _match_expanded(graph, node)
            if match is None:
                continue
            x, a, b, nodes = match
            last = nodes[-1]
            c = np.zeros(())
            tail = _sole_consumer(graph, last.output)
            if tail is not None and tail.op == "add_const":
                c = tail.params["value"]
                nodes.append(tail)
            x_shape = graph.shape(x)
            if not _keeps_shape(x_shape, a, b, c):
                continue
            a_full, b_full, c_full = (np.array(v) for v in np.broadcast_arrays(a, b, c))
            removed = [n.name for n in nodes]
            fused = Node(merged_name(graph, removed, removed), "quadratic", (x,), nodes[-1].outputs,
                         params={"a": a_full, "b": b_full, "c": c_full}, partition=node.partition)
            graph = graph.replace_nodes(removed, [fused])
            changed = True
            break
    return graph


# --------------------------------------------------------------------------- partitions
def assign_partitions(graph: Graph) -> Graph:
    """Tag each node with its patch network (None for shared nodes such as the final Sum).

    Slices are numbered by their `patchI/` name prefix when every slice has a distinct one
    (the exporter's convention), else in topological order.
    """
    slices = [n for n in graph.nodes if n.op == "slice" and n.inputs[0] in graph.inputs]
    if not slices:
        return graph.with_partitions({n.name: None for n in graph.nodes})
    numbers = [PATCH_PREFIX.match(n.name) for n in slices]
    if all(numbers) and len({m.group(1) for m in numbers if m}) == len(slices):
        index = {n.name: int(m.group(1)) for n, m in zip(slices, numbers) if m}
    else:
        index = {n.name: i for i, n in enumerate(slices)}
    INPUT = -1  # depends on a graph input not through a patch slice
    sources: dict[str, frozenset[int]] = {i: frozenset({INPUT}) for i in graph.inputs}
    partition: dict[str, int | None] = {}
    for n in graph.nodes:
        if n.name in index:
            deps = frozenset({index[n.name]})
        else:
            deps = frozenset().union(*(sources.get(i, frozenset()) for i in n.inputs))
        for o in n.outputs:
            sources[o] = deps
        partition[n.name] = next(iter(deps)) if len(deps) == 1 and INPUT not in deps else None
    return graph.with_partitions(partition)
