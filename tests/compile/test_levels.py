"""Level and bootstrap passes: hand cases, and random DAGs checked against brute force.

The brute-force helpers below are written from the rules of the level model alone (an op
consumes `depth` levels from its lowest operand; a bootstrap needs `BOOTSTRAP_LEVELS_BEFORE`
levels and lands at the post-bootstrap level; mod-switching only goes down), not from the
passes under test, so a wrong pass disagrees with them.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Iterable

import pytest
from dags import level_dags  # tests/compile/dags.py (pytest puts this folder on the path)
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoface.compile.bootstrap import default_boot_cost, place_bootstraps
from cryptoface.compile.levels import (
    BOOTSTRAP_LEVELS_BEFORE,
    LevelAssignment,
    LevelGraph,
    LevelNode,
    assign_levels,
    check,
    critical_depth,
    post_bootstrap_level,
)
from cryptoface.errors import CompileError


def residual_chain(blocks: int) -> LevelGraph:
    """x -> [quad -> lin -> quad -> lin (+ shortcut)] * blocks, like a PCNN."""
    nodes = [LevelNode("x")]
    prev = "x"
    for b in range(blocks):
        nodes += [
            LevelNode(f"q{b}a", (prev,), 1),
            LevelNode(f"l{b}a", (f"q{b}a",), 1, slots=4096),
            LevelNode(f"q{b}b", (f"l{b}a",), 1),
            LevelNode(f"l{b}b", (f"q{b}b",), 1, slots=4096),
            LevelNode(f"s{b}", (f"q{b}a",), 1 if b % 2 else 0),
            LevelNode(f"add{b}", (f"l{b}b", f"s{b}"), 0, join=True, slots=4096),
        ]
        prev = f"add{b}"
    return LevelGraph(nodes, (prev,))


def feasible(g: LevelGraph, input_level: int, boots: Iterable[str], boot_level: int, output_levels: int = 0) -> bool:
    """Can the program run with these bootstraps? Keep every value as high as it can be."""
    boots = set(boots)
    level: dict[str, int] = {}
    for n in g.nodes:
        lvl = input_level if not n.inputs else min(level[i] for i in n.inputs) - n.depth
        if lvl < 0:
            return False
        if n.name in boots:
            if lvl < BOOTSTRAP_LEVELS_BEFORE:
                return False
            lvl = post_bootstrap_level(boot_level)
        level[n.name] = lvl
    return all(level[o] >= output_levels for o in g.outputs)


def cost_of(g: LevelGraph, boots: Iterable[str], boot_cost: Callable[[LevelNode], float]) -> float:
    return sum(boot_cost(g.by_name[b]) for b in boots)


def cheapest_cost(
    g: LevelGraph, input_level: int, boot_level: int, boot_cost: Callable[[LevelNode], float], output_levels: int = 0
) -> float | None:
    """The lowest total bootstrap cost of any feasible set, by enumeration (None: none works).

    Sets are tried by size; once k bootstraps cost more than the best found (every one costs
    at least the cheapest node), no larger set can win, so the search stops.
    """
    names = [n.name for n in g.nodes]
    floor = min(boot_cost(n) for n in g.nodes)
    best: float | None = None
    for k in range(len(names) + 1):
        if best is not None and k * floor > best:
            break
        for subset in itertools.combinations(names, k):
            if feasible(g, input_level, subset, boot_level, output_levels):
                c = cost_of(g, subset, boot_cost)
                best = c if best is None else min(best, c)
    return best


def assert_levels_sound(g: LevelGraph, la: LevelAssignment, input_level: int, output_levels: int = 0) -> None:
    """Every op can run where the assignment puts it, and every value sits at the lowest level
    that still serves its consumers (the waterline), recomputed here from the rules."""
    consumers: dict[str, list[str]] = {n.name: [] for n in g.nodes}
    for n in g.nodes:
        for i in n.inputs:
            consumers[i].append(n.name)
    for n in g.nodes:
        keep = la.assigned[n.name]
        assert keep >= 0, n.name
        if not n.inputs:
            fresh = post_bootstrap_level(la.boot_level) if n.name in la.bootstraps else input_level
            assert la.available[n.name] == fresh, n.name
        else:
            at = la.op_level[n.name]
            # operands are only mod-switched down to the op's level: each must be at or above it
            assert all(la.assigned[i] >= at for i in n.inputs), n.name
            produced = at - n.depth
            assert produced >= 0, n.name
            if n.name in la.bootstraps:
                assert produced >= BOOTSTRAP_LEVELS_BEFORE, n.name
            else:
                assert produced == keep, n.name
        assert keep <= la.available[n.name], n.name
        # lowest level that serves: what the most demanding consumer (or the output) needs
        serves = max([la.op_level[c] for c in consumers[n.name]] + [output_levels if n.name in g.outputs else 0])
        assert keep == serves, (n.name, keep, serves)


def test_depth_of_residual_chain():
    g = residual_chain(3)
    assert critical_depth(g) == 12
    la = assign_levels(g, input_level=12)
    check(g, la)
    assert_levels_sound(g, la, 12)
    assert la.assigned["add2"] == 0 and la.assigned["x"] == 12
    # The identity shortcut of block 0 meets the main branch at the join's level.
    assert la.op_level["add0"] == 8


def test_no_bootstrap_when_deep_enough():
    g = residual_chain(3)
    assert place_bootstraps(g, input_level=12, boot_level=None) == ()


def test_too_shallow_without_bootstrapping_says_what_to_do():
    with pytest.raises(CompileError, match="needs 12 levels but the parameters give 10.*cannot bootstrap"):
        place_bootstraps(residual_chain(3), input_level=10, boot_level=None)


def test_bootstraps_at_the_cheapest_points():
    """16 levels of work, 10 at input: the placer's bootstraps cost what the cheapest feasible
    set costs, found by enumeration (the cheap points are the 1-slot values, not the 4096-slot
    linear outputs)."""
    g = residual_chain(4)
    boots = place_bootstraps(g, input_level=10, boot_level=11)
    assert feasible(g, 10, boots, 11)
    best = cheapest_cost(g, 10, 11, default_boot_cost)
    assert best is not None and math.isclose(cost_of(g, boots, default_boot_cost), best, rel_tol=1e-12)
    assert all(g.by_name[b].slots == 1 for b in boots)
    la = assign_levels(g, 10, boots, boot_level=11)
    check(g, la)
    assert_levels_sound(g, la, 10)


def test_post_bootstrap_levels_too_few():
    # after a bootstrap at level 1, the prescale of the next bootstrap takes the only level
    assert cheapest_cost(residual_chain(2), 3, 1, default_boot_cost) is None
    with pytest.raises(CompileError, match="no bootstrap placement"):
        place_bootstraps(residual_chain(2), input_level=3, boot_level=1)


@settings(max_examples=150, deadline=None)
@given(level_dags(), st.integers(0, 12), st.integers(0, 3))
def test_levels_never_mismatch_or_go_negative(g, input_level, out_levels):
    need = critical_depth(g, out_levels)
    assert (need <= input_level) == feasible(g, input_level, (), 0, out_levels)
    if need > input_level:
        with pytest.raises(CompileError):
            assign_levels(g, input_level, output_levels=out_levels)
        return
    la = assign_levels(g, input_level, output_levels=out_levels)
    check(g, la)
    assert_levels_sound(g, la, input_level, out_levels)


@settings(max_examples=120, deadline=None)
@given(level_dags(max_nodes=10), st.integers(2, 6), st.integers(3, 8))
def test_bootstrap_placement_is_cheapest_by_brute_force(g, input_level, boot_level):
    """The placer returns a feasible set of the lowest cost over all subsets, refuses only when
    no subset works, and, with unit costs, uses the fewest bootstraps."""
    best = cheapest_cost(g, input_level, boot_level, default_boot_cost)
    if best is None:
        with pytest.raises(CompileError, match="no bootstrap placement"):
            place_bootstraps(g, input_level, boot_level)
        return
    boots = place_bootstraps(g, input_level, boot_level)
    assert feasible(g, input_level, boots, boot_level)
    assert math.isclose(cost_of(g, boots, default_boot_cost), best, rel_tol=1e-12, abs_tol=1e-12)
    la = assign_levels(g, input_level, boots, boot_level)
    check(g, la)
    assert_levels_sound(g, la, input_level)

    def unit(_: LevelNode) -> float:
        return 1.0

    fewest = place_bootstraps(g, input_level, boot_level, boot_cost=unit)
    assert feasible(g, input_level, fewest, boot_level)
    assert len(fewest) == cheapest_cost(g, input_level, boot_level, unit)
