"""The reference interpreter: float64 numpy over the op table.

It is the ground truth for every encrypted result, so it does nothing clever: each node runs
the op table's `reference` on float64 inputs, in topological order.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from ..errors import InvalidInputError
from .graph import Graph
from .ops import evaluate


def run(graph: Graph, inputs: Mapping[str, np.ndarray], return_all: bool = False,
        perturb: Callable[[str, np.ndarray], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Evaluate `graph` on `inputs` (name -> array of the input's exact shape).

    Returns the graph outputs by name, or every value when `return_all` (what a pass
    debugging an encrypted mismatch compares against, value by value). `perturb(name, value)`
    may replace each computed value: the precision pass injects CKKS-sized errors with it.
    """
    env: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        if name not in inputs:
            raise InvalidInputError(f"missing graph input {name!r}")
        array = np.asarray(inputs[name], dtype=np.float64)
        if array.shape != graph.values[name].shape:
            raise InvalidInputError(f"input {name!r} has shape {array.shape}, the graph expects {graph.values[name].shape}")
        env[name] = array
    for node in graph.nodes:
        value = evaluate(node, [env[i] for i in node.inputs])
        env[node.output] = value if perturb is None else perturb(node.output, value)
    if return_all:
        return env
    return {o: env[o] for o in graph.outputs}
