"""Level management over a DAG of HE operations (the level pass).

The pass works on a `LevelGraph`: every node produces one value, consumes `depth` levels
(0 for additions, 1 for a linear layer or a monic quadratic, ...) and, if it is a `join`
(add, sub, mul), needs its operands at one level. Scales need no separate pass: every
multiplication is rescaled at once (EVA's eager policy) and plaintext multipliers are
encoded at the prime being dropped, so every value sits at the base scale, up to prime drift
that `HEContext` absorbs.

Given where bootstraps go (see `bootstrap.py`), the pass computes two levels per value:
- `available`: the highest level it can be at (forward: min of the inputs minus the depth);
- `assigned`: the lowest level that still serves every consumer (backward: the waterline).
Running each op at the lowest level that works is what makes it cheapest (fewer RNS limbs),
so the value is mod-switched down to `assigned` right after it is produced; at a join, the
operands then already meet at one level. `check()` proves the result: no value below 0, no
join of unequal levels, no op with fewer levels than it consumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ..errors import CompileError

# A bootstrap is preceded by a multiplication by 1/B (values into the bootstrap's range, one
# level). B is a power of two, so scaling back is log2(B) doublings (additions): no level.
BOOTSTRAP_LEVELS_BEFORE = 1
BOOTSTRAP_LEVELS_AFTER = 0


@dataclass(frozen=True)
class LevelNode:
    name: str
    inputs: tuple[str, ...] = ()
    depth: int = 0
    join: bool = False
    slots: int = 1  # values in use, for the bootstrap cost
    work: tuple[tuple[str, int], ...] = ()  # primitive instructions the op emits, with counts (its cost)


@dataclass
class LevelGraph:
    """Nodes in topological order; inputs are nodes without inputs; outputs are named."""

    nodes: list[LevelNode]
    outputs: tuple[str, ...]
    by_name: dict[str, LevelNode] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {}
        for n in self.nodes:
            if n.name in self.by_name:
                raise CompileError(f"value {n.name!r} defined twice")
            for i in n.inputs:
                if i not in self.by_name:
                    raise CompileError(f"node {n.name!r} uses {i!r} before it is defined")
            self.by_name[n.name] = n
        for o in self.outputs:
            if o not in self.by_name:
                raise CompileError(f"output {o!r} is not defined")

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                out[i].append(n.name)
        return out


@dataclass
class LevelAssignment:
    """Where every value lives; the lowering reads it to emit rescale and mod-switch ops.

    An op with inputs runs at `op_level`: each operand is mod-switched down to it (a join's
    operands therefore meet at one level) and the result is `op_level - depth`, which is the
    value's `assigned` level, except for a bootstrapped value, which lands at the
    post-bootstrap level (`available`) and is then mod-switched down to `assigned`.
    """

    available: dict[str, int]  # highest level the value can have (forward pass)
    assigned: dict[str, int]  # the level it is kept at (backward pass: lowest that serves)
    op_level: dict[str, int]  # level at which an op's operands meet
    bootstraps: tuple[str, ...]
    input_level: int
    boot_level: int | None


def post_bootstrap_level(boot_level: int) -> int:
    return boot_level - BOOTSTRAP_LEVELS_AFTER


def assign_levels(
    graph: LevelGraph,
    input_level: int,
    bootstraps: Iterable[str] = (),
    boot_level: int | None = None,
    output_levels: int = 0,
) -> LevelAssignment:
    """Forward available levels, backward required levels, for the given bootstraps."""
    boots = tuple(bootstraps)
    if boots and boot_level is None:
        raise CompileError("bootstraps placed but no post-bootstrap level given")
    available: dict[str, int] = {}
    for n in graph.nodes:
        if not n.inputs:
            lvl = input_level
        else:
            lvl = min(available[i] for i in n.inputs) - n.depth
        if n.name in boots:
            if lvl < BOOTSTRAP_LEVELS_BEFORE:
                raise CompileError(f"bootstrap after {n.name!r} needs {BOOTSTRAP_LEVELS_BEFORE} level, value is at {lvl}")
            lvl = post_bootstrap_level(boot_level)  # type: ignore[arg-type]
        available[n.name] = lvl
    required = required_levels(graph, boots, output_levels)
    bad = [(v, available[v], required[v]) for v in available if available[v] < required[v]]
    if bad:
        v, have, need = min(bad, key=lambda t: t[1] - t[2])
        raise CompileError(
            f"value {v!r} is at level {have} but its consumers need {need}: "
            f"{len(bad)} value(s) short of levels; bootstrap or use a deeper chain"
        )
    op_level = {
        n.name: (n.depth + BOOTSTRAP_LEVELS_BEFORE if n.name in boots else required[n.name] + n.depth)
        for n in graph.nodes
        if n.inputs
    }
    return LevelAssignment(available, required, op_level, boots, input_level, boot_level)


def required_levels(graph: LevelGraph, bootstraps: Sequence[str], output_levels: int) -> dict[str, int]:
    """The lowest level each value may sit at (the waterline), computed backwards."""
    consumers = graph.consumers()
    need: dict[str, int] = {}
    for n in reversed(graph.nodes):
        req = output_levels if n.name in graph.outputs else 0
        for c in consumers[n.name]:
            req = max(req, need_in(graph.by_name[c], need[c], c in bootstraps))
        need[n.name] = req
    # A bootstrapped value is produced at the post-bootstrap level whatever its consumers
    # need, and its pre-bootstrap form needs only the prescale level.
    return need


def need_in(consumer: LevelNode, consumer_need: int, bootstrapped: bool) -> int:
    """Level an input must have so that `consumer` can deliver `consumer_need`."""
    if bootstrapped:
        return consumer.depth + BOOTSTRAP_LEVELS_BEFORE
    return consumer_need + consumer.depth


def check(graph: LevelGraph, la: LevelAssignment) -> None:
    """Prove the assignment legal; raises CompileError naming the first violation."""
    for n in graph.nodes:
        have, keep = la.available[n.name], la.assigned[n.name]
        if keep < 0:
            raise CompileError(f"value {n.name!r} below level 0")
        if keep > have:
            raise CompileError(f"value {n.name!r} kept at {keep}, above the {have} it can have")
        if not n.inputs:
            fresh = post_bootstrap_level(la.boot_level) if n.name in la.bootstraps else la.input_level
            if have != fresh:
                raise CompileError(f"input {n.name!r} at level {have}, expected {fresh}")
            continue
        at = la.op_level[n.name]
        for i in n.inputs:
            if la.assigned[i] < at:
                raise CompileError(f"op {n.name!r} runs at level {at} but operand {i!r} is at {la.assigned[i]}")
        if at < n.depth:
            raise CompileError(f"op {n.name!r} needs {n.depth} levels, runs at {at}")
        produced = at - n.depth
        if n.name in la.bootstraps:
            if produced < BOOTSTRAP_LEVELS_BEFORE:
                raise CompileError(f"bootstrap of {n.name!r} from level {produced}")
        elif produced != keep:
            raise CompileError(f"value {n.name!r} produced at {produced}, kept at {keep}")


def critical_depth(graph: LevelGraph, output_levels: int = 0) -> int:
    """Levels needed without bootstrapping: the deepest path plus what the outputs need."""
    return max(required_levels(graph, (), output_levels)[n.name] for n in graph.nodes if not n.inputs)
