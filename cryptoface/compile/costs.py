"""What running a program costs, for the bootstrap placer: seconds per primitive at a level.

A backend plugin answers `cryptoface_op_cost(backend, op, level, ring_dim)` (OpenFHE does,
from measured timings); for whatever no plugin answers, a default model in rough seconds
(single thread, about OpenFHE's measured figures): work on a ciphertext grows with its RNS
towers (level + 1) and with N log N, key switches (rotations, relinearized products) cost
the most, and a bootstrap costs about five hundred of them whatever the level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

from .levels import LevelNode

# Seconds per primitive and per RNS tower at N=2^14 (a bootstrap: in all).
DEFAULT_SECONDS_2_14: Mapping[str, float] = MappingProxyType({
    "rotate": 0.0056, "rotate_many": 0.0056, "mul": 0.0088, "square": 0.0088,
    "mul_plain": 0.0004, "add_plain": 0.0001, "add": 0.00006, "sub": 0.00006,
    "rescale": 0.0006, "mod_switch": 0.0001, "bootstrap": 22.0,
})

Hook = Callable[..., "float | None"]  # plugins.Plugins.op_cost(backend=, op=, level=, ring_dim=)


def default_seconds(op: str, level: int, ring_dim: int) -> float:
    """The default model: seconds for one `op` at `level` on a ring of dimension `ring_dim`."""
    size = ring_dim * math.log2(ring_dim) / (2**14 * 14)
    base = DEFAULT_SECONDS_2_14[op] * size
    return base if op == "bootstrap" else base * (level + 1)


@dataclass
class OpCosts:
    """Costs of one backend at one ring dimension: the plugins' answer, else the default."""

    backend: str
    ring_dim: int
    hook: Hook | None = None
    _cache: dict[tuple[str, int], float] = field(default_factory=dict, repr=False)

    def primitive(self, op: str, level: int) -> float:
        key = (op, level)
        if key not in self._cache:
            answer = None if self.hook is None else self.hook(backend=self.backend, op=op, level=level, ring_dim=self.ring_dim)
            self._cache[key] = float(answer) if answer is not None else default_seconds(op, level, self.ring_dim)
        return self._cache[key]

    def op(self, node: LevelNode, level: int) -> float:
        """Running `node`'s instructions (its `work`) with operands at `level`."""
        return sum(count * self.primitive(prim, level) for prim, count in node.work)

    def bootstrap_at(self, boot_level: int) -> Callable[[LevelNode], float]:
        """The cost of one bootstrap (into a chain of `boot_level` levels), per node."""
        return lambda node: self.primitive("bootstrap", boot_level)
