"""The IR graph: immutable values, nodes and graphs.

Why immutable: every compiler pass (packing, levels, bootstraps, parameters) reads the same
imported graph and writes its own conclusions into *separate* annotation maps keyed by value
name (`Mapping[str, Layout]`, `Mapping[str, int]` for levels, ...). A pass that wants a
different graph (a fused op, a folded constant) builds a new one with `Graph.replace` or
`Graph.replace_nodes`; nobody can change a graph another pass still holds.

Shapes are concrete tuples (batch dimension kept, as in ONNX): the compiler needs every slot
count at compile time, so a symbolic dimension is resolved at import or refused there.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import CompileError


def _freeze(value: Any) -> Any:
    """Lists become tuples, recursively, so attributes cannot be mutated behind a graph."""
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return _read_only(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _read_only(array: np.ndarray) -> np.ndarray:
    """A private float64 copy that raises on write: weights are shared by every pass."""
    out = np.array(array, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class Value:
    """A named tensor of a fixed shape (the batch dimension included)."""

    name: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def size(self) -> int:
        """Number of scalars: what a packing needs slots for."""
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


@dataclass(frozen=True, eq=False)
class Node:
    """One IR op (a kind of `ops.OP_TABLE`) applied to named values.

    `attrs` are small hashable settings (strides, axis, ...); `params` are the constant
    tensors the op owns (weights, biases, polynomial coefficients), stored as read-only
    float64 arrays. `partition` is the patch network the node belongs to (None: shared,
    e.g. the join that sums the per-patch outputs).
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, np.ndarray] = field(default_factory=dict)
    partition: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        attrs = {k: _freeze(v) for k, v in dict(self.attrs).items()}
        params = {k: _read_only(v) for k, v in dict(self.params).items()}
        object.__setattr__(self, "attrs", MappingProxyType(attrs))
        object.__setattr__(self, "params", MappingProxyType(params))

    @property
    def output(self) -> str:
        """The single output every IR op has today."""
        return self.outputs[0]

    def replace(self, **changes: Any) -> Node:
        """A copy with some fields changed (the node itself never changes)."""
        return dataclasses.replace(self, **changes)

    def __str__(self) -> str:
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(self.attrs.items()))
        params = ", ".join(f"{k}{tuple(v.shape)}" for k, v in sorted(self.params.items()))
        extra = "; ".join(s for s in (attrs, params) if s)
        part = "" if self.partition is None else f"  [patch {self.partition}]"
        return (
            f"{', '.join(self.outputs)} = {self.op}({', '.join(self.inputs)}"
            f"{'; ' + extra if extra else ''})  # {self.name}{part}"
        )


@dataclass(frozen=True, eq=False)
class Graph:
    """A DAG of nodes over named values; nodes are kept in a deterministic topological order.

    Construction sorts the nodes (so callers may list them in any order) and refuses a
    cycle, a value produced twice or a name used before it is defined. `validate()`
    additionally re-infers every shape from the op table.
    """

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[Node, ...]
    values: Mapping[str, Value]
    name: str = "graph"

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))
        object.__setattr__(self, "nodes", _topological_sort(tuple(self.nodes), self.inputs))

    # ----------------------------------------------------------------- structure queries
    @cached_property
    def producers(self) -> Mapping[str, Node]:
        """Value name -> the node that computes it (graph inputs have none)."""
        return MappingProxyType({o: n for n in self.nodes for o in n.outputs})

    @cached_property
    def _consumers(self) -> Mapping[str, tuple[Node, ...]]:
        users: dict[str, list[Node]] = defaultdict(list)
        for n in self.nodes:
            for i in dict.fromkeys(n.inputs):
                users[i].append(n)
        return MappingProxyType({k: tuple(v) for k, v in users.items()})

    def consumers(self, value: str) -> tuple[Node, ...]:
        """Nodes that read `value`, in topological order (each node once)."""
        return self._consumers.get(value, ())

    @cached_property
    def _by_name(self) -> Mapping[str, Node]:
        return MappingProxyType({n.name: n for n in self.nodes})

    def node(self, name: str) -> Node:
        """The node called `name` (KeyError if none)."""
        return self._by_name[name]

    def producer(self, value: str) -> Node | None:
        """The node computing `value`, or None for a graph input."""
        return self.producers.get(value)

    def topological_order(self) -> tuple[Node, ...]:
        """The nodes, each after all nodes it reads from (this is also `nodes`)."""
        return self.nodes

    def shape(self, value: str) -> tuple[int, ...]:
        return self.values[value].shape

    def partitions(self) -> dict[int, tuple[Node, ...]]:
        """Patch index -> its nodes in topological order (shared nodes are left out)."""
        groups: dict[int, list[Node]] = defaultdict(list)
        for n in self.nodes:
            if n.partition is not None:
                groups[n.partition].append(n)
        return {k: tuple(groups[k]) for k in sorted(groups)}

    def shared_nodes(self) -> tuple[Node, ...]:
        """Nodes outside every patch network (joins and what follows them)."""
        return tuple(n for n in self.nodes if n.partition is None)

    def ops(self) -> dict[str, int]:
        """Op kind -> how many nodes use it (for reports and tests)."""
        counts: dict[str, int] = defaultdict(int)
        for n in self.nodes:
            counts[n.op] += 1
        return dict(counts)

    # ----------------------------------------------------------------- new graphs
    def replace(self, **changes: Any) -> Graph:
        """A new graph with some fields changed (re-sorted, values kept unless given)."""
        return dataclasses.replace(self, **changes)

    def replace_nodes(self, remove: Iterable[str], add: Iterable[Node], values: Mapping[str, Value] | None = None) -> Graph:
        """A new graph without the nodes named in `remove`, with `add`, and with values
        no longer produced nor read dropped; `values` adds or overrides value records."""
        removed = set(remove)
        nodes: list[Node] = []
        pending = list(add)  # placed where the first removed node was, to keep a readable order
        for n in self.nodes:
            if n.name in removed:
                nodes.extend(pending)
                pending = []
            else:
                nodes.append(n)
        nodes.extend(pending)
        merged = dict(self.values)
        merged.update(values or {})
        used = set(self.inputs) | set(self.outputs)
        for n in nodes:
            used.update(n.inputs)
            used.update(n.outputs)
        return self.replace(nodes=tuple(nodes), values={k: v for k, v in merged.items() if k in used})

    def with_partitions(self, partition_of: Mapping[str, int | None]) -> Graph:
        """A new graph whose nodes carry the given partition (by node name)."""
        return self.replace(nodes=tuple(n.replace(partition=partition_of.get(n.name, n.partition)) for n in self.nodes))

    # ----------------------------------------------------------------- checks
    def validate(self) -> Graph:
        """Check names, definitions and every shape against the op table; return self.

        Raises CompileError naming the first inconsistency: an importer or pass bug should
        stop compilation here rather than produce a wrong encrypted result later.
        """
        from .ops import infer_shape  # the op table imports nothing from here at import time

        defined = set(self.inputs)
        for i in self.inputs:
            if i not in self.values:
                raise CompileError(f"graph input {i!r} has no value record")
        names: set[str] = set()
        for n in self.nodes:
            if n.name in names:
                raise CompileError(f"two nodes are called {n.name!r}")
            names.add(n.name)
            for i in n.inputs:
                if i not in defined:
                    raise CompileError(f"node {n.name!r} reads {i!r}, which is not defined before it")
            for o in n.outputs:
                if o in defined:
                    raise CompileError(f"value {o!r} is defined twice (again by node {n.name!r})")
                if o not in self.values:
                    raise CompileError(f"node {n.name!r} output {o!r} has no value record")
                defined.add(o)
            expected = infer_shape(n, [self.values[i].shape for i in n.inputs])
            if expected != self.values[n.output].shape:
                raise CompileError(
                    f"node {n.name!r} ({n.op}): value {n.output!r} has shape "
                    f"{self.values[n.output].shape}, the op table infers {expected}"
                )
        for o in self.outputs:
            if o not in defined:
                raise CompileError(f"graph output {o!r} is never computed")
        return self

    # ----------------------------------------------------------------- printing
    def __str__(self) -> str:
        def sig(names: Iterable[str]) -> str:
            return ", ".join(f"{v}{list(self.values[v].shape)}" for v in names)

        lines = [f"graph {self.name}({sig(self.inputs)}) -> ({sig(self.outputs)})"]
        for n in self.nodes:
            lines.append(f"  {n}  -> {list(self.values[n.output].shape)}")
        return "\n".join(lines)


def _topological_sort(nodes: tuple[Node, ...], graph_inputs: tuple[str, ...]) -> tuple[Node, ...]:
    """Kahn's algorithm, ties broken by the given order, so the result is deterministic."""
    producer: dict[str, int] = {}
    for idx, n in enumerate(nodes):
        for o in n.outputs:
            if o in producer:
                raise CompileError(f"value {o!r} is produced by {nodes[producer[o]].name!r} and {n.name!r}")
            producer[o] = idx
    waiting = [0] * len(nodes)
    users: dict[int, list[int]] = defaultdict(list)
    for idx, n in enumerate(nodes):
        deps = {producer[i] for i in n.inputs if i in producer}
        waiting[idx] = len(deps)
        for d in deps:
            users[d].append(idx)
    ready = [idx for idx in range(len(nodes)) if waiting[idx] == 0]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        idx = heapq.heappop(ready)
        order.append(nodes[idx])
        for u in users[idx]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        stuck = [nodes[i].name for i in range(len(nodes)) if waiting[i] > 0]
        raise CompileError(f"the graph has a cycle through nodes {stuck[:5]}")
    return tuple(order)
