"""Bootstrap placement: the cheapest program that keeps every value above level 0.

The objective is the program's cost: every bootstrap's cost plus every op's cost at the
level it runs at (`op_cost(node, level)`; the pipeline passes the backend's measured costs,
see `costs.py`). Running an op lower is cheaper (fewer RNS towers), so among placements with
as many bootstraps, the one that runs the expensive ops (rotations, products) lower wins,
and a backend whose bootstrap is cheap next to its ops may get more bootstraps.

An exact dynamic program over the DAG in *reverse* topological order. Going backwards, the
level an op runs at is known when it is reached: the lowest level that serves its consumers
(the waterline `levels.assign_levels` keeps), plus its depth, or just above level 0 when its
output is bootstrapped. The state is the level each pending value (consumed by a visited
node, not produced yet) must have; a value either serves its consumers itself (its inputs
must then be `depth` levels higher) or is bootstrapped (it lands at the post-bootstrap
level, which must cover its consumers). A graph input must fit the input level. Residual
networks keep two or three values pending at a time, so the states stay few (levels^width),
and the DP finds the same answer as a shortest path over (layer, level) nodes with fork/join
regions, without needing the graph to be series-parallel.
"""

from __future__ import annotations

from typing import Callable

from ..errors import CompileError
from .levels import BOOTSTRAP_LEVELS_BEFORE, LevelGraph, LevelNode, critical_depth, post_bootstrap_level


def default_boot_cost(node: LevelNode) -> float:
    """A stand-in for tests and studies: a bootstrap costs more the more slots are in use."""
    return 1.0 + node.slots / 65536


def no_op_cost(node: LevelNode, level: int) -> float:
    return 0.0


def place_bootstraps(
    graph: LevelGraph,
    input_level: int,
    boot_level: int | None,
    output_levels: int = 0,
    boot_cost: Callable[[LevelNode], float] = default_boot_cost,
    op_cost: Callable[[LevelNode, int], float] = no_op_cost,
) -> tuple[str, ...]:
    """Names of the values to bootstrap (empty when the chain is deep enough), minimising
    sum of `boot_cost` over bootstraps + sum of `op_cost(node, level it runs at)` over ops.

    `boot_level` is None for backends that cannot bootstrap: then the plan must fit in
    `input_level` levels, or the error says how many it needs.
    """
    after = post_bootstrap_level(boot_level) if boot_level is not None else None
    top = _highest_levels(graph, input_level, after)
    order = {n.name: k for k, n in enumerate(graph.nodes)}
    pending: tuple[str, ...] = ()
    # state: levels the pending values must have -> (cost, bootstraps as a linked list)
    states: dict[tuple[int, ...], tuple[float, int, tuple | None]] = {(): (0.0, 0, None)}
    for n in reversed(graph.nodes):
        ins = tuple(i for i in dict.fromkeys(n.inputs))
        new_pending = tuple(sorted(set(pending) - {n.name} | set(ins), key=order.__getitem__))
        new_states: dict[tuple[int, ...], tuple[float, int, tuple | None]] = {}
        for key, (cost, count, boots) in states.items():
            env = dict(zip(pending, key))
            need = max(env.pop(n.name, 0), output_levels if n.name in graph.outputs else 0)
            if not ins:  # a graph input: fresh at the input level (bootstrapping it is legal, never useful)
                if need <= input_level:
                    _keep(new_states, tuple(env[v] for v in new_pending), (cost, count, boots))
                if after is not None and need <= after and input_level >= BOOTSTRAP_LEVELS_BEFORE:
                    _keep(new_states, tuple(env[v] for v in new_pending), (cost + boot_cost(n), count + 1, (n.name, boots)))
                continue
            options = [(need + n.depth, cost, count, boots)]
            if after is not None and need <= after:  # bootstrapped: runs just above level 0
                run = n.depth + BOOTSTRAP_LEVELS_BEFORE
                options.append((run, cost + boot_cost(n), count + 1, (n.name, boots)))
            for run, c, k, b in options:
                if any(run > top[i] for i in ins):
                    continue
                new_env = env | {i: max(env.get(i, 0), run) for i in ins}
                _keep(new_states, tuple(new_env[v] for v in new_pending), (c + op_cost(n, run), k, b))
        if not new_states:
            raise _too_shallow(graph, input_level, boot_level, output_levels, n.name)
        pending, states = new_pending, new_states

    (_, _, boots), = states.values()  # every value produced: no pending ones, one state
    chosen: list[str] = []
    while boots is not None:
        chosen.append(boots[0])
        boots = boots[1]
    return tuple(sorted(chosen, key=order.__getitem__))


def _keep(states: dict, key: tuple[int, ...], value: tuple[float, int, tuple | None]) -> None:
    """Keep the cheaper way to each state (fewer bootstraps on a tie)."""
    if key not in states or value[:2] < states[key][:2]:
        states[key] = value


def _highest_levels(graph: LevelGraph, input_level: int, after: int | None) -> dict[str, int]:
    """The highest level each value can have under any placement: what no requirement may exceed."""
    top: dict[str, int] = {}
    for n in graph.nodes:
        lvl = input_level if not n.inputs else min(top[i] for i in n.inputs) - n.depth
        if after is not None and lvl >= BOOTSTRAP_LEVELS_BEFORE:
            lvl = max(lvl, after)
        top[n.name] = lvl
    return top


def _too_shallow(graph: LevelGraph, input_level: int, boot_level: int | None, output_levels: int, where: str) -> CompileError:
    need = critical_depth(graph, output_levels)
    if boot_level is None:
        return CompileError(
            f"the program needs {need} levels but the parameters give {input_level} and the backend "
            f"cannot bootstrap (first value out of levels: {where!r}); use a backend that bootstraps, "
            "a larger ring dimension, or a shallower model"
        )
    return CompileError(
        f"no bootstrap placement works: {post_bootstrap_level(boot_level)} levels after a bootstrap "
        f"cannot cover a single op chain between bootstraps (stuck at {where!r}; the whole program "
        f"needs {need}); increase the levels after bootstrapping"
    )
