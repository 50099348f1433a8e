"""Baby-step/giant-step evaluation of a sparse slot matrix (`linear_maps.LinearMap`).

M is evaluated with generalised diagonals and Halevi–Shoup baby-step/giant-step
(`plan_linear_transform` → `LinearTransformPlan.evaluate`):

    y' = Σ_j rot( Σ_i rot(u_{j+i}, −j) ⊙ rot(x, i), j ),   d = j + i,  i = d mod N1

- "hybrid" diagonals with block height bh (a power of two >= the output span):
  u_d[t] = M[t mod bh, (t+d) mod n] for d in Z_bh. Entry (r, c) lands in diagonal
  d = (c − r) mod bh at position t = (c − d) mod n, so #diagonals = #distinct (c − r) mod bh.
  The partial sums y'[t + k·bh] are then folded by log2(n/bh) rotate-and-adds, which also
  leaves the output replicated with period bh. bh = n is the plain "square" method.
- The baby rotations rot(x, i) are of one ciphertext: hoisted (`HEContext.rotate_many`).
- Plaintexts are pre-rotated by −j, so every multiplication happens before any rotation:
  one mul_plain per diagonal, ONE rescale after summing, i.e. 1 level per linear layer
  (MPCNN needs 2, because its selection masks act after its rotate-and-sums).
- bh and N1 (powers of two, and small non-powers of two) are searched for the fewest
  rotations over the actual non-zero diagonal set, then the fewest multiplications.

Memory: a diagonal is a dense float64 vector of n slots (256 KiB at n = 32768); a layer has
up to ~1000 of them (250 MiB), and encoded at a high level on a real backend each is far
larger (N·(L+1)·8 bytes: ~15 MiB at N = 2^16, L = 30). So diagonals are never stored: the
plan keeps the sorted COO entries (about 2.3 M for the largest CryptoFaceNet conv, 36 MB)
and builds the diagonals of one giant step at a time, encoding them just before use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from ..params import next_pow2
from ..program.layout import Layout, LayoutError
from .linear_maps import LinearMap

# Non-power-of-two baby-step counts tried up to this bound (powers of two: all up to bh).
MAX_NON_POW2_BABY_STEPS = 512


# ---------------------------------------------------------------------------------------
# Diagonals and the BSGS split
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BSGSChoice:
    """One candidate split: block height bh, baby-step count N1, diagonal representatives."""

    block_rows: int
    baby_step_count: int
    signed: bool
    diagonals: np.ndarray = field(repr=False)  # representatives d, sorted
    baby_steps: tuple[int, ...]
    giant_steps: tuple[int, ...]
    replication_steps: tuple[int, ...]

    @property
    def rotations(self) -> int:
        return len(self.baby_steps) + len(self.giant_steps) + len(self.replication_steps)


def _representatives(deltas: np.ndarray, bh: int, signed: bool) -> np.ndarray:
    d = np.unique(deltas % bh)
    if signed:
        d = np.where(d >= bh // 2, d - bh, d)
    return np.sort(d)


def _distinct_nonzero_counts(values: np.ndarray) -> np.ndarray:
    """Per row of a 2-D int array: how many distinct non-zero entries it has."""
    s = np.sort(values, axis=1)
    distinct = 1 + np.count_nonzero(np.diff(s, axis=1), axis=1)
    return distinct - np.any(s == 0, axis=1)


def _split(d: np.ndarray, n1: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Orion's split d = j + i with i = d mod N1 (baby), j = d − i (giant), as steps mod n."""
    i = d % n1
    return i % n, (d - i) % n


def choose_bsgs(
    deltas: np.ndarray, out_span: int, slots: int, block_rows: int | None = None, baby_step_count: int | None = None
) -> BSGSChoice:
    """The (bh, N1, representation) with the fewest rotations, then fewest diagonals.

    `deltas` are the distinct (col − row) mod n of the matrix; `out_span` the slots one
    output copy spans (bh must cover it).
    """
    n = slots
    bh_min = next_pow2(max(out_span, 1))
    bhs = [block_rows] if block_rows else [bh_min << e for e in range(int(math.log2(n // bh_min)) + 1)]
    best: tuple[tuple[int, int], BSGSChoice] | None = None
    for bh in bhs:
        if bh < out_span or n % bh:
            raise LayoutError(f"block_rows {bh} must divide {n} and cover the output span {out_span}")
        replication = tuple(bh << e for e in range(int(math.log2(n // bh))))
        for signed in (False, True):
            d = _representatives(deltas, bh, signed)
            if baby_step_count:
                n1s = np.array([baby_step_count])
            else:
                pow2 = [1 << e for e in range(int(math.log2(bh)) + 1)]
                n1s = np.unique(np.array(pow2 + list(range(2, min(bh, MAX_NON_POW2_BABY_STEPS) + 1))))
            # Vectorized over candidates, in chunks to bound memory.
            costs = np.empty(n1s.size, dtype=np.int64)
            chunk = max(1, 4_000_000 // max(d.size, 1))
            for s in range(0, n1s.size, chunk):
                c = n1s[s : s + chunk, None]
                i = d[None, :] % c
                costs[s : s + chunk] = _distinct_nonzero_counts(i % n) + _distinct_nonzero_counts((d[None, :] - i) % n)
            k = int(np.argmin(costs + 0))  # first minimum: the smallest N1 among ties
            n1 = int(n1s[k])
            babies, giants = _split(d, n1, n)
            choice = BSGSChoice(
                bh, n1, signed, d,
                tuple(sorted(set(babies.tolist()) - {0})),
                tuple(sorted(set(giants.tolist()) - {0})),
                replication,
            )
            key = (choice.rotations, d.size)
            if best is None or key < best[0]:
                best = (key, choice)
    assert best is not None
    return best[1]


# ---------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearTransformCounts:
    rotations: int  # baby + giant + replication (rotation calls; the babies are hoisted)
    baby_rotations: int
    giant_rotations: int
    replication_rotations: int
    plaintext_mults: int  # ct×pt, one per diagonal
    additions: int  # ct+ct
    plaintext_additions: int  # the bias
    levels: int = 1


@dataclass(frozen=True, eq=False)
class LinearTransformPlan:
    """How one linear layer runs: diagonals kept, BSGS steps, keys needed, counts.

    `diagonals` are the kept diagonal indices d (representatives mod `block_rows`); the
    rotation keys to generate are `rotation_steps`. The output is replicated with period
    `output_period` (= block_rows): slots t and t + block_rows hold the same value.
    """

    name: str
    in_layout: Layout
    out_layout: Layout
    slots: int
    block_rows: int
    baby_step_count: int
    diagonals: tuple[int, ...]
    baby_steps: tuple[int, ...]
    giant_steps: tuple[int, ...]
    replication_steps: tuple[int, ...]
    bias: np.ndarray | None = field(repr=False)
    # Entries sorted by (giant step, diagonal): positions t and values, and per diagonal the
    # slice [start, end) of the sorted arrays, its baby step i and giant step j (mod n).
    _positions: np.ndarray = field(repr=False)
    _values: np.ndarray = field(repr=False)
    _diag_start: np.ndarray = field(repr=False)
    _diag_baby: np.ndarray = field(repr=False)
    _diag_giant: np.ndarray = field(repr=False)

    @property
    def output_period(self) -> int:
        return self.block_rows

    @property
    def rotation_steps(self) -> tuple[int, ...]:
        """Every step a rotation key is needed for (mod slots, no identity)."""
        return tuple(sorted(set(self.baby_steps) | set(self.giant_steps) | set(self.replication_steps)))

    @property
    def counts(self) -> LinearTransformCounts:
        groups = np.unique(self._diag_giant).size
        n_diag = len(self.diagonals)
        adds = (n_diag - groups) + max(groups - 1, 0) + len(self.replication_steps)
        return LinearTransformCounts(
            rotations=len(self.baby_steps) + len(self.giant_steps) + len(self.replication_steps),
            baby_rotations=len(self.baby_steps),
            giant_rotations=len(self.giant_steps),
            replication_rotations=len(self.replication_steps),
            plaintext_mults=n_diag,
            additions=adds,
            plaintext_additions=int(self.bias is not None),
        )

    def bias_vector(self) -> np.ndarray | None:
        """The bias plaintext, replicated like the output."""
        if self.bias is None:
            return None
        p = self.block_rows
        return np.tile(self.bias[:p], self.slots // p)

    # ---- diagonals, built lazily ----------------------------------------------------------
    def giant_groups(self) -> Iterator[tuple[int, list[tuple[int, int]]]]:
        """(giant step j, [(baby step i, diagonal number)]) in evaluation order."""
        g = self._diag_giant
        if g.size == 0:
            return
        bounds = np.flatnonzero(np.diff(g)) + 1
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, g.size]):
            yield int(g[lo]), [(int(self._diag_baby[k]), int(k)) for k in range(lo, hi)]

    def diagonal(self, k: int, pre_rotation: int = 0) -> np.ndarray:
        """Dense diagonal number k, rotated by `pre_rotation` (rot(u, −j) is pre_rotation=−j)."""
        lo, hi = self._diag_start[k], self._diag_start[k + 1]
        u = np.zeros(self.slots)
        u[(self._positions[lo:hi] - pre_rotation) % self.slots] = self._values[lo:hi]
        return u

    # ---- evaluation -----------------------------------------------------------------------
    def evaluate(self, ctx: Any, ct: Any, add_bias: bool = True) -> Any:
        """M·ct (+ bias) on an `HEContext`: hoisted baby steps, 1 rescale, 1 level."""
        babies = ctx.rotate_many(ct, (0,) + self.baby_steps)
        acc = None
        for j, group in self.giant_groups():
            inner = None
            for i, k in group:
                term = ctx.mul_plain(babies[i], self.diagonal(k, -j))
                inner = term if inner is None else ctx.add(inner, term)
            inner = ctx.rotate(inner, j) if j else inner
            acc = inner if acc is None else ctx.add(acc, inner)
        if acc is None:  # the zero map: still one level, for a uniform schedule
            acc = ctx.mul_plain(ct, np.zeros(self.slots))
        acc = ctx.rescale(acc)
        for s in self.replication_steps:
            acc = ctx.add(acc, ctx.rotate(acc, s))
        if add_bias and self.bias is not None:
            acc = ctx.add_plain(acc, self.bias_vector())
        return acc

    def emit(self, section: Any, constants: Any, x: str, prefix: str, add_bias: bool = True) -> str:
        """Append this plan's instructions to a `program.Section`; returns the output name.

        The same schedule as `evaluate`, as primitive ops: one `rotate_many` (hoisted baby
        steps), mul_plain/add per diagonal, a rotate per giant step, one rescale, the
        replication rotate-and-adds, add_plain of the bias. Diagonals are lazy constants
        (`constants.add`, key f"{prefix}.diag{k}@{-j}") built only when the runtime runs them.
        `prefix` must make value and constant names unique in the program.
        """
        from ..program import Instr, rotated_name

        emit = section.instrs.append
        babies = f"{prefix}.baby"
        if self.baby_steps:
            emit(Instr("rotate_many", babies, (x,), steps=self.baby_steps))
        baby_name = {i: (rotated_name(babies, i) if i else x) for i in (0,) + self.baby_steps}
        acc: str | None = None
        for j, group in self.giant_groups():
            inner: str | None = None
            for i, k in group:
                key = constants.add(
                    f"{prefix}.diag{k}@{-j}",
                    {"kind": "diagonal", "layer": self.name, "diagonal": self.diagonals[k], "pre_rotation": -j},
                    lambda k=k, j=j: self.diagonal(k, -j),
                )
                term = f"{prefix}.m{k}"
                emit(Instr("mul_plain", term, (baby_name[i],), const=key))
                if inner is not None:
                    emit(Instr("add", f"{prefix}.s{k}", (inner, term)))
                    term = f"{prefix}.s{k}"
                inner = term
            assert inner is not None
            if j:
                emit(Instr("rotate", f"{prefix}.g{j}", (inner,), step=j))
                inner = f"{prefix}.g{j}"
            if acc is not None:
                emit(Instr("add", f"{prefix}.acc{j}", (acc, inner)))
                inner = f"{prefix}.acc{j}"
            acc = inner
        if acc is None:
            key = constants.add(f"{prefix}.zero", {"kind": "zeros"}, lambda: np.zeros(self.slots))
            emit(Instr("mul_plain", f"{prefix}.m", (x,), const=key))
            acc = f"{prefix}.m"
        emit(Instr("rescale", f"{prefix}.r", (acc,)))
        acc = f"{prefix}.r"
        for s in self.replication_steps:
            emit(Instr("rotate", f"{prefix}.rot{s}", (acc,), step=s))
            emit(Instr("add", f"{prefix}.rep{s}", (acc, f"{prefix}.rot{s}")))
            acc = f"{prefix}.rep{s}"
        if add_bias and self.bias is not None:
            key = constants.add(f"{prefix}.bias", {"kind": "bias", "layer": self.name}, self.bias_vector)
            emit(Instr("add_plain", f"{prefix}.out", (acc,), const=key))
            acc = f"{prefix}.out"
        return acc

    def evaluate_plain(self, vec: np.ndarray, add_bias: bool = True) -> np.ndarray:
        """The same BSGS schedule in numpy (np.roll for rotations): checks the algorithm."""
        x = np.asarray(vec, dtype=np.float64)
        babies = {i: np.roll(x, -i) for i in (0,) + self.baby_steps}
        acc = np.zeros(self.slots)
        for j, group in self.giant_groups():
            inner = sum(self.diagonal(k, -j) * babies[i] for i, k in group)
            acc += np.roll(inner, -j)
        for s in self.replication_steps:
            acc = acc + np.roll(acc, -s)
        if add_bias and self.bias is not None:
            acc = acc + self.bias_vector()
        return acc


def plan_linear_transform(
    lmap: LinearMap, block_rows: int | None = None, baby_step_count: int | None = None
) -> LinearTransformPlan:
    """Diagonalize `lmap` and choose the BSGS split with the fewest rotations.

    `block_rows` forces bh (`slots` gives the square method, no replication rotations);
    `baby_step_count` forces N1. By default both are searched.
    """
    n = lmap.slots
    rows, cols, vals = lmap.rows, lmap.cols, lmap.values
    deltas = np.unique((cols - rows) % n)
    choice = choose_bsgs(deltas, lmap.out_layout.used, n, block_rows, baby_step_count)
    bh = choice.block_rows
    d_of_entry = (cols - rows) % bh
    if choice.signed:
        d_of_entry = np.where(d_of_entry >= bh // 2, d_of_entry - bh, d_of_entry)
    positions = (cols - d_of_entry) % n
    babies, giants = _split(choice.diagonals, choice.baby_step_count, n)
    # Order diagonals by (giant, baby) so a giant step's diagonals are contiguous.
    order = np.lexsort((babies, giants))
    diags, babies, giants = choice.diagonals[order], babies[order], giants[order]
    rank = np.empty(diags.size, dtype=np.int64)
    rank[np.searchsorted(choice.diagonals, diags)] = np.arange(diags.size)
    entry_rank = rank[np.searchsorted(choice.diagonals, d_of_entry)]
    by_diag = np.argsort(entry_rank, kind="stable")
    start = np.searchsorted(entry_rank[by_diag], np.arange(diags.size + 1))
    return LinearTransformPlan(
        name=lmap.name,
        in_layout=lmap.in_layout,
        out_layout=lmap.out_layout,
        slots=n,
        block_rows=bh,
        baby_step_count=choice.baby_step_count,
        diagonals=tuple(int(x) for x in diags),
        baby_steps=choice.baby_steps,
        giant_steps=choice.giant_steps,
        replication_steps=choice.replication_steps,
        bias=lmap.bias,
        _positions=positions[by_diag],
        _values=vals[by_diag],
        _diag_start=start,
        _diag_baby=babies,
        _diag_giant=giants,
    )
