"""Bootstrap placement: the cheapest set of bootstraps that keeps every value above level 0.

An exact dynamic program over the DAG in topological order. The state is the level of every
*live* value (produced, with a consumer still to come); each node either keeps its output
or bootstraps it, and a state's cost is the sum of the bootstrap costs paid so far. Residual
networks keep two or three values live at a time, so the states stay few (levels^width),
and the DP finds the same answer as Orion's shortest path over (layer, level) nodes with
fork/join regions, without needing the graph to be series-parallel. Bootstrap cost depends
on the value (its slots in use: sparse bootstrapping is cheaper), which is what makes the
DP choose a cheap point such as CryptoFace's 64x8x8 tensor rather than simply "as late as
possible".
"""

from __future__ import annotations

from typing import Callable

from ..errors import CompileError
from .levels import BOOTSTRAP_LEVELS_BEFORE, LevelGraph, LevelNode, critical_depth, post_bootstrap_level


def default_boot_cost(node: LevelNode) -> float:
    """Sparse bootstrapping costs grow with the slots bootstrapped (about log-linearly)."""
    return 1.0 + node.slots / 65536


def place_bootstraps(
    graph: LevelGraph,
    input_level: int,
    boot_level: int | None,
    output_levels: int = 0,
    boot_cost: Callable[[LevelNode], float] = default_boot_cost,
) -> tuple[str, ...]:
    """Names of the values to bootstrap (empty when the chain is deep enough).

    `boot_level` is None for backends that cannot bootstrap: then the plan must fit in
    `input_level` levels, or the error says how many it needs.
    """
    consumers = graph.consumers()
    index = {n.name: k for k, n in enumerate(graph.nodes)}
    last_use = {v: max((index[c] for c in cs), default=index[v]) for v, cs in consumers.items()}
    after = post_bootstrap_level(boot_level) if boot_level is not None else None

    live: tuple[str, ...] = ()
    # state: levels of the live values -> (cost, bootstraps as a linked list)
    states: dict[tuple[int, ...], tuple[float, tuple | None]] = {(): (0.0, None)}
    for k, n in enumerate(graph.nodes):
        new_live = tuple(v for v in live + (n.name,) if last_use[v] > k or v in graph.outputs)
        new_states: dict[tuple[int, ...], tuple[float, tuple | None]] = {}
        for key, (cost, boots) in states.items():
            env = dict(zip(live, key))
            lvl = input_level if not n.inputs else min(env[i] for i in n.inputs) - n.depth
            if lvl < 0:
                continue
            options = [(lvl, cost, boots)]
            if after is not None and lvl >= BOOTSTRAP_LEVELS_BEFORE and after > lvl:
                options.append((after, cost + boot_cost(n), (n.name, boots)))
            for level, c, b in options:
                env[n.name] = level
                new_key = tuple(env[v] for v in new_live)
                if new_key not in new_states or c < new_states[new_key][0]:
                    new_states[new_key] = (c, b)
        if not new_states:
            raise _too_shallow(graph, input_level, boot_level, output_levels, n.name)
        live, states = new_live, new_states

    out_pos = [live.index(o) for o in graph.outputs]
    final = [(c, b, key) for key, (c, b) in states.items() if all(key[p] >= output_levels for p in out_pos)]
    if not final:
        raise _too_shallow(graph, input_level, boot_level, output_levels, graph.outputs[0])
    cost, boots, _ = min(final, key=lambda t: (t[0], -sum(t[2])))
    chosen: list[str] = []
    while boots is not None:
        chosen.append(boots[0])
        boots = boots[1]
    return tuple(sorted(chosen, key=index.__getitem__))


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
