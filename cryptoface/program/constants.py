"""Plaintext constants of a program: lazy while compiling, sparse arrays when stored.

A CryptoFaceNet layer has hundreds of diagonals of 32k slots, so constants are never kept
as dense vectors. Straight out of the compiler, each constant is a maker closure over the
compiler's plans (the recipe says what it is). In a program file, every constant is one
period of its vector (diagonals span all slots; biases and per-channel coefficients repeat
with the output's replication period) stored as its non-zero positions and an index into a
table of distinct values (a layer's weights repeat across every output pixel), so a file
holds a few bytes per non-zero weight use before compression, and no code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from ..errors import SerializationError


@dataclass
class ConstantTable:
    """Plaintext vectors by key: key -> recipe (JSON-able) and key -> maker (built on use)."""

    recipes: dict[str, dict] = field(default_factory=dict)
    makers: dict[str, Callable[[], np.ndarray]] = field(default_factory=dict, repr=False)

    def add(self, key: str, recipe: dict, maker: Callable[[], np.ndarray]) -> str:
        self.recipes[key] = recipe
        self.makers[key] = maker
        return key

    def get(self, key: str) -> np.ndarray:
        return self.makers[key]()

    def __contains__(self, key: str) -> bool:
        return key in self.makers


def _period(vec: np.ndarray) -> int:
    """The smallest power-of-two period of `vec` (its length when it does not repeat)."""
    p = vec.size
    while p > 1 and np.array_equal(vec[: p // 2], vec[p // 2: p]):
        p //= 2
    return p


def encode_constants(table: ConstantTable, slots: int) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """Every constant as {"recipe", "period", "start", "end"} into three shared arrays:
    `positions` (int32, stored as differences, which compress well), `value_index` and
    `values` (the distinct values, float64, so the vectors come back bit for bit)."""
    entries: dict[str, dict] = {}
    positions: list[np.ndarray] = []
    values: list[np.ndarray] = []
    start = 0
    for key, recipe in table.recipes.items():
        vec = np.asarray(table.get(key), dtype=np.float64)
        if vec.shape != (slots,):
            raise SerializationError(f"constant {key!r} has shape {vec.shape}, expected ({slots},)")
        period = _period(vec)
        nz = np.flatnonzero(vec[:period])
        positions.append(nz.astype(np.int32))
        values.append(vec[nz])
        entries[key] = {"recipe": recipe, "period": period, "start": start, "end": start + nz.size}
        start += nz.size
    pos = np.concatenate(positions) if positions else np.zeros(0, np.int32)
    distinct, index = np.unique(np.concatenate(values) if values else np.zeros(0), return_inverse=True)
    index_dtype = np.uint16 if distinct.size <= 1 << 16 else np.uint32
    deltas = np.diff(pos, prepend=np.int32(0)).astype(np.int32)
    return entries, {"positions": deltas, "value_index": index.astype(index_dtype), "values": distinct}


@dataclass
class StoredConstants:
    """Constants read from a program file; `make(key)` builds one dense vector."""

    entries: dict[str, dict]
    positions: np.ndarray  # absolute positions (int32), all constants one after the other
    value_index: np.ndarray
    values: np.ndarray
    slots: int

    @classmethod
    def from_arrays(cls, entries: dict, arrays: dict[str, np.ndarray], slots: int) -> "StoredConstants":
        """Check every entry against the arrays, so a bad file fails here, not mid-inference."""
        deltas, index, values = arrays["positions"], arrays["value_index"], arrays["values"]
        if deltas.dtype != np.int32 or index.dtype not in (np.uint16, np.uint32) or values.dtype != np.float64:
            raise SerializationError("program file: constant arrays have the wrong types")
        if deltas.ndim != 1 or index.shape != deltas.shape or values.ndim != 1:
            raise SerializationError("program file: constant arrays have inconsistent shapes")
        if index.size and int(index.max()) >= values.size:
            raise SerializationError("program file: a constant refers to a value that is not stored")
        if not np.all(np.isfinite(values)):
            raise SerializationError("program file: a constant holds NaN or infinity")
        positions = np.cumsum(deltas, dtype=np.int32)  # every prefix sum is a position < slots
        periods = np.zeros(deltas.size, dtype=np.int32)
        for key, e in entries.items():
            if not isinstance(e, dict) or not all(isinstance(e.get(k), int) for k in ("period", "start", "end")):
                raise SerializationError(f"program file: constant {key!r} is malformed")
            p, lo, hi = e["period"], e["start"], e["end"]
            if p < 1 or p & (p - 1) or slots % p or not 0 <= lo <= hi <= deltas.size:
                raise SerializationError(f"program file: constant {key!r} has an invalid period or range")
            periods[lo:hi] = p
        if positions.size and (positions.min() < 0 or np.any(positions >= periods)):
            raise SerializationError("program file: a constant has a position outside its period")
        return cls(entries, positions, index, values, slots)

    def make(self, key: str) -> np.ndarray:
        e = self.entries[key]
        base = np.zeros(e["period"])
        lo, hi = e["start"], e["end"]
        base[self.positions[lo:hi]] = self.values[self.value_index[lo:hi]]
        return np.tile(base, self.slots // e["period"]) if e["period"] < self.slots else base

    def table(self) -> ConstantTable:
        t = ConstantTable()
        for key, e in self.entries.items():
            t.add(key, e.get("recipe", {}), partial(self.make, key))
        return t
