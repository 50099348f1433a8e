"""The bootstrap placer minimises the program's cost, not just its bootstrap count.

Cost = bootstraps x their cost + every op's cost at the level it runs at. The brute force
below enumerates every bootstrap set and computes, from the level rules alone, where each op
runs (the lowest level that serves its consumers, plus its depth; just above level 0 when
its output is bootstrapped), so a placer that ignores op costs, or prices them at the wrong
level, disagrees with it.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from dags import level_dags  # tests/compile/dags.py (pytest puts this folder on the path)
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoface.compile import pipeline
from cryptoface.compile.bootstrap import place_bootstraps
from cryptoface.compile.costs import OpCosts
from cryptoface.compile.levels import BOOTSTRAP_LEVELS_BEFORE, LevelGraph, LevelNode, post_bootstrap_level
from cryptoface.compile.pipeline import CompileOptions, compile_model
from cryptoface.errors import CompileError
from cryptoface.hooks import hookimpl
from cryptoface.plugins import Plugins
from cryptoface.runtime.executors import run_program
from cryptoface.simulator import SimulatorEngine

_spec = importlib.util.spec_from_file_location("ir_models", Path(__file__).parents[1] / "ir" / "ir_models.py")
ir_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ir_models)


def run_levels(g: LevelGraph, input_level: int, boots: set[str], boot_level: int) -> dict[str, int] | None:
    """Where each op runs with these bootstraps, or None when they do not make a legal program."""
    top: dict[str, int] = {}
    for n in g.nodes:  # highest level each value can have
        lvl = input_level if not n.inputs else min(top[i] for i in n.inputs) - n.depth
        if lvl < 0 or (n.name in boots and lvl < BOOTSTRAP_LEVELS_BEFORE):
            return None
        top[n.name] = post_bootstrap_level(boot_level) if n.name in boots else lvl
    need = {n.name: 0 for n in g.nodes}
    run: dict[str, int] = {}
    for n in reversed(g.nodes):  # lowest level that serves (the waterline)
        if n.inputs:
            run[n.name] = n.depth + BOOTSTRAP_LEVELS_BEFORE if n.name in boots else need[n.name] + n.depth
            for i in n.inputs:
                need[i] = max(need[i], run[n.name])
    return run


def brute_force(g, input_level, boot_level, boot_cost, op_cost):
    """(lowest total cost, the sets that reach it) over every subset of values."""
    best, winners = math.inf, []
    for k in range(len(g.nodes) + 1):
        for subset in itertools.combinations([n.name for n in g.nodes], k):
            run = run_levels(g, input_level, set(subset), boot_level)
            if run is None:
                continue
            cost = sum(boot_cost(g.by_name[b]) for b in subset) + sum(op_cost(g.by_name[v], lvl) for v, lvl in run.items())
            if cost < best - 1e-12:
                best, winners = cost, [set(subset)]
            elif abs(cost - best) <= 1e-12:
                winners.append(set(subset))
    return best, winners


def total_cost(g, input_level, boots, boot_level, boot_cost, op_cost) -> float:
    run = run_levels(g, input_level, set(boots), boot_level)
    assert run is not None, boots
    return sum(boot_cost(g.by_name[b]) for b in boots) + sum(op_cost(g.by_name[v], lvl) for v, lvl in run.items())


def per_level(node: LevelNode, level: int) -> float:
    """Cost proportional to the towers (level + 1), like a key switch."""
    return dict(node.work).get("rotate", 0) * (level + 1)


def boot10(_: LevelNode) -> float:
    return 10.0


# x -> a -> b -> c -> d -> e, one level each; b does 50 rotations, the rest one each.
CHAIN = LevelGraph(
    [LevelNode("x")]
    + [LevelNode(v, (u,), 1, work=(("rotate", 50 if v == "b" else 1),)) for u, v in zip("xabcd", "abcde")],
    ("e",),
)


def test_cost_aware_choice_differs_from_count_only():
    """Four levels of input, five of work: one bootstrap is needed wherever it goes. Counting
    bootstraps cannot tell the places apart; the cost puts it right after b, so that b runs at
    the lowest level it can (1 above the prescale) instead of high up the chain."""
    best, winners = brute_force(CHAIN, 4, 4, boot10, per_level)
    boots = place_bootstraps(CHAIN, 4, 4, boot_cost=boot10, op_cost=per_level)
    assert math.isclose(total_cost(CHAIN, 4, boots, 4, boot10, per_level), best)
    assert winners == [{"b"}] and boots == ("b",)
    count_only = [set(s) for s in itertools.combinations("abcde", 1) if run_levels(CHAIN, 4, set(s), 4) is not None]
    assert len(count_only) > 1  # equal counts, different costs: only the cost tells them apart
    assert max(total_cost(CHAIN, 4, s, 4, boot10, per_level) for s in count_only) > best


def test_cheap_bootstraps_buy_lower_levels():
    """When a bootstrap costs less than what it saves on the ops, the placer adds one that the
    levels alone do not need."""
    needed = place_bootstraps(CHAIN, 4, 4, boot_cost=lambda n: 1000.0, op_cost=per_level)
    cheap = place_bootstraps(CHAIN, 4, 4, boot_cost=lambda n: 0.5, op_cost=per_level)
    assert len(needed) == 1 and len(cheap) > 1
    best, _ = brute_force(CHAIN, 4, 4, lambda n: 0.5, per_level)
    assert math.isclose(total_cost(CHAIN, 4, cheap, 4, lambda n: 0.5, per_level), best)


@settings(max_examples=150, deadline=None)
@given(level_dags(max_nodes=8, window=3, costed=True), st.integers(2, 6), st.integers(3, 7), st.sampled_from([0.5, 3.0, 40.0]))
def test_placement_is_cheapest_by_brute_force(g, input_level, boot_level, boot):
    best, _ = brute_force(g, input_level, boot_level, lambda n: boot, per_level)
    if best == math.inf:
        with pytest.raises(CompileError):
            place_bootstraps(g, input_level, boot_level, boot_cost=lambda n: boot, op_cost=per_level)
        return
    boots = place_bootstraps(g, input_level, boot_level, boot_cost=lambda n: boot, op_cost=per_level)
    assert math.isclose(total_cost(g, input_level, boots, boot_level, lambda n: boot, per_level), best, abs_tol=1e-9)


class FakeCosts:
    """A backend plugin that prices a bootstrap at almost nothing next to a rotation."""

    @hookimpl
    def cryptoface_op_cost(self, backend, op, level, ring_dim):
        if backend != "simulator":
            return None
        return 1e-6 if op == "bootstrap" else (level + 1) * 10.0


def test_plugin_costs_reach_the_placer(monkeypatch):
    """The engine's hook answers are what the pipeline places bootstraps with: a plugin that
    makes bootstraps nearly free gets more of them than the default cost model does, and the
    program still computes the reference."""
    model = ir_models.tiny_cryptofacenet(patches_per_side=2, patch=8, channels=4, dim=6)
    opts = CompileOptions(max_depth=4)
    default = compile_model(model, SimulatorEngine, opts)
    plugins = Plugins(load_entry_points=False)
    plugins.pm.register(FakeCosts(), name="fake-costs")
    assert OpCosts("simulator", 1 << 14, plugins.op_cost).primitive("bootstrap", 5) == 1e-6
    monkeypatch.setattr(pipeline, "get_plugins", lambda: plugins)
    cheap = compile_model(model, SimulatorEngine, opts)
    assert cheap.program.report["bootstraps"] > default.program.report["bootstraps"] >= 1
    image = np.random.default_rng(4).uniform(-1, 1, cheap.graph.shape(cheap.graph.inputs[0]))
    ctx = cheap.create_context(SimulatorEngine)
    res = run_program(ctx.public(), cheap.program, cheap.encrypt(ctx.public(), image))
    out = cheap.decode(ctx.decrypt(res.outputs[cheap.program.output_name]))
    ref = cheap.reference(image)
    assert np.max(np.abs(out - ref)) < 1e-3 * max(1.0, np.max(np.abs(ref)))
