"""Level and bootstrap passes: hand cases and property-based random DAGs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoface.compile.bootstrap import place_bootstraps
from cryptoface.compile.levels import LevelGraph, LevelNode, assign_levels, check, critical_depth
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


def test_depth_of_residual_chain():
    g = residual_chain(3)
    assert critical_depth(g) == 12
    la = assign_levels(g, input_level=12)
    check(g, la)
    assert la.assigned["add2"] == 0 and la.assigned["x"] == 12
    # The identity shortcut of block 0 meets the main branch at the join's level.
    assert la.op_level["add0"] == 8


def test_no_bootstrap_when_deep_enough():
    g = residual_chain(3)
    assert place_bootstraps(g, input_level=12, boot_level=None) == ()


def test_too_shallow_without_bootstrapping_says_what_to_do():
    with pytest.raises(CompileError, match="needs 12 levels but the parameters give 10.*cannot bootstrap"):
        place_bootstraps(residual_chain(3), input_level=10, boot_level=None)


def test_one_bootstrap_at_the_cheapest_point():
    g = residual_chain(4)  # 16 levels, only 10 at input
    boots = place_bootstraps(g, input_level=10, boot_level=11)
    assert len(boots) == 1
    la = assign_levels(g, 10, boots, boot_level=11)
    check(g, la)


def test_post_bootstrap_levels_too_few():
    with pytest.raises(CompileError, match="no bootstrap placement"):
        # one level after a bootstrap is all the prescale of the next one takes: nothing left
        place_bootstraps(residual_chain(2), input_level=3, boot_level=1)


@st.composite
def random_dags(draw):
    n = draw(st.integers(2, 25))
    nodes = [LevelNode("v0")]
    for k in range(1, n):
        arity = draw(st.integers(1, min(2, k)))
        # Operands come from the last few values, as in a CNN (keeps the live width small).
        ins = tuple(sorted(set(draw(st.lists(st.integers(max(0, k - 4), k - 1), min_size=arity, max_size=arity)))))
        depth = draw(st.integers(0, 2))
        nodes.append(LevelNode(f"v{k}", tuple(f"v{i}" for i in ins), depth, join=len(ins) > 1, slots=draw(st.sampled_from([256, 4096]))))
    return LevelGraph(nodes, (f"v{n - 1}",))


@settings(max_examples=150, deadline=None)
@given(random_dags(), st.integers(0, 12), st.integers(0, 3))
def test_levels_never_mismatch_or_go_negative(g, input_level, out_levels):
    need = critical_depth(g, out_levels)
    if need > input_level:
        with pytest.raises(CompileError):
            assign_levels(g, input_level, output_levels=out_levels)
        return
    la = assign_levels(g, input_level, output_levels=out_levels)
    check(g, la)
    for n in g.nodes:
        if n.join:
            assert len({la.op_level[n.name] for _ in n.inputs}) == 1
            assert all(la.assigned[i] >= la.op_level[n.name] for i in n.inputs)
        assert la.assigned[n.name] >= 0


@settings(max_examples=100, deadline=None)
@given(random_dags(), st.integers(2, 6), st.integers(3, 8))
def test_bootstrap_placement_is_legal_and_minimal_when_none_needed(g, input_level, boot_level):
    try:
        boots = place_bootstraps(g, input_level, boot_level)
    except CompileError:
        return  # some random DAGs have an op deeper than the post-bootstrap budget
    la = assign_levels(g, input_level, boots, boot_level)
    check(g, la)
    if critical_depth(g) <= input_level:
        assert boots == ()
