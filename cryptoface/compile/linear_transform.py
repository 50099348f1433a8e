"""Linear layers as sparse slot matrices, evaluated by baby-step/giant-step diagonals.

Every linear layer (conv, avgpool, global avgpool, Gemm) becomes one sparse matrix M from
the input layout's slots to the output layout's slots (`LinearMap`, COO arrays built with
numpy broadcasting, never by probing basis vectors). Zero padding is simply missing
entries; stride 2 writes straight into the gap-doubled output layout; Flatten is just the
column map. This is Orion's Toeplitz construction (/work/shared/PACKING.md §2.3).

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

`python -m cryptoface.compile.linear_transform --table [--slots N]` prints the per-layer
counts of the CryptoFaceNet patch network against MPCNN's (docs/packing.md).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from ..params import next_pow2
from ..program.layout import Layout, LayoutError
from .mpcnn import (
    CRYPTOFACENET_PCNN_CONVS,
    MPCNN_AVGPOOL_8_TO_2_COUNTS,
    MPCNN_LINEAR_256_COUNTS,
    mpcnn_conv_counts,
)

# Non-power-of-two baby-step counts tried up to this bound (powers of two: all up to bh).
MAX_NON_POW2_BABY_STEPS = 512


# ---------------------------------------------------------------------------------------
# Sparse slot matrices
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LinearMap:
    """y = M·x + bias between two layouts of one ciphertext; M in COO form.

    `rows`/`cols` are slots of the output/input layout (no duplicate pairs), `bias` is a
    slot vector in the output layout (one copy, zeros elsewhere) or None.
    """

    in_layout: Layout
    out_layout: Layout
    rows: np.ndarray = field(repr=False)
    cols: np.ndarray = field(repr=False)
    values: np.ndarray = field(repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    name: str = ""

    def __post_init__(self) -> None:
        if self.in_layout.slots != self.out_layout.slots:
            raise LayoutError(f"input and output layouts have {self.in_layout.slots} and {self.out_layout.slots} slots")

    @property
    def slots(self) -> int:
        return self.in_layout.slots

    @property
    def nnz(self) -> int:
        return int(self.values.size)

    def apply(self, vec: np.ndarray) -> np.ndarray:
        """M·vec + bias in the clear: the reference the encrypted evaluation must match."""
        y = np.bincount(self.rows, weights=self.values * np.asarray(vec)[self.cols], minlength=self.slots)
        return y + self.bias if self.bias is not None else y

    def apply_tensor(self, tensor: np.ndarray) -> np.ndarray:
        return self.out_layout.unpack(self.apply(self.in_layout.pack(tensor)))


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = (int(x) for x in v)
    return a, b


def _pads(pads: int | Sequence[int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), from an int, (ph, pw), or ONNX's 4-tuple in that order."""
    if isinstance(pads, (int, np.integer)):
        return (int(pads),) * 4
    p = tuple(int(x) for x in pads)
    if len(p) == 2:
        return p[0], p[1], p[0], p[1]
    if len(p) == 4:
        return p  # type: ignore[return-value]
    raise LayoutError(f"pads must be an int, (ph, pw) or (top, left, bottom, right); got {pads}")


def _bias_vector(out_layout: Layout, bias: np.ndarray | None) -> np.ndarray | None:
    if bias is None:
        return None
    return out_layout.channel_vector(bias)


def default_output_layout(in_layout: Layout, channels: int, height: int, width: int, stride: int) -> Layout:
    """The gap-multiplied layout (dense slots after a stride); a smaller gap if it won't fit."""
    gap = in_layout.gap * stride
    while True:
        try:
            return Layout.multiplexed(channels, height, width, in_layout.slots, gap)
        except LayoutError:
            if gap == 1:
                raise
            gap //= 2


def conv2d_map(
    in_layout: Layout,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | Sequence[int] = 1,
    pads: int | Sequence[int] = 0,
    groups: int = 1,
    out_layout: Layout | None = None,
    name: str = "conv",
) -> LinearMap:
    """The slot matrix of a 2-D convolution, weight (Co, Ci/groups, kh, kw), zero padding.

    The output layout defaults to the input gap times the stride, so a stride-2 conv writes
    straight into the gap-doubled layout. Zero weights give no entries.
    """
    w = np.asarray(weight, dtype=np.float64)
    if in_layout.is_flat or w.ndim != 4:
        raise LayoutError("conv2d_map needs a (C, H, W) input layout and a 4-D weight")
    c_in, h, wd = in_layout.shape
    c_out, cig, kh, kw = w.shape
    if c_in != cig * groups or c_out % groups:
        raise LayoutError(f"weight {w.shape} with groups={groups} does not fit {c_in} input channels")
    sh, sw = _pair(stride)
    pt, pl, pb, pr = _pads(pads)
    ho, wo = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise LayoutError(f"kernel {kh}x{kw} larger than the padded {h}x{wd} input")
    if out_layout is None:
        out_layout = default_output_layout(in_layout, c_out, ho, wo, sh if sh == sw else 1)
    if out_layout.shape != (c_out, ho, wo):
        raise LayoutError(f"output layout shape {out_layout.shape} != conv output {(c_out, ho, wo)}")
    in_idx, out_idx = in_layout.slot_indices(), out_layout.slot_indices()
    cog = c_out // groups
    # Input channel of (co, j): the j-th channel of co's group.
    ci_of = (np.arange(c_out)[:, None] // cog) * cig + np.arange(cig)[None, :]
    rows, cols, vals = [], [], []
    for dy in range(kh):
        yi = np.arange(ho) * sh + dy - pt
        yok = (yi >= 0) & (yi < h)
        for dx in range(kw):
            xi = np.arange(wo) * sw + dx - pl
            xok = (xi >= 0) & (xi < wd)
            yo_v, xo_v = np.nonzero(yok[:, None] & xok[None, :])
            if yo_v.size == 0:
                continue
            out_sl = out_idx[:, yo_v, xo_v]  # (Co, P)
            in_sl = in_idx[:, yi[yo_v], xi[xo_v]]  # (Ci, P)
            tap = w[:, :, dy, dx]  # (Co, cig)
            keep = tap != 0
            co, j = np.nonzero(keep)
            rows.append(np.broadcast_to(out_sl[co], (co.size, yo_v.size)).reshape(-1))
            cols.append(in_sl[ci_of[co, j]].reshape(-1))
            vals.append(np.repeat(tap[co, j], yo_v.size))
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt)) if rows else (lambda xs, dt: np.zeros(0, dt))
    return LinearMap(
        in_layout, out_layout, cat(rows, np.int64), cat(cols, np.int64), cat(vals, np.float64),
        _bias_vector(out_layout, bias), name,
    )


def avgpool_map(
    in_layout: Layout,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    pads: int | Sequence[int] = 0,
    count_include_pad: bool = False,
    out_layout: Layout | None = None,
    name: str = "avgpool",
) -> LinearMap:
    """AveragePool as a depthwise conv of ones, divided per output by its tap count
    (ONNX's default count_include_pad=0 divides by the taps inside the image)."""
    kh, kw = _pair(kernel)
    c = in_layout.shape[0]
    stride = (kh, kw) if stride is None else stride
    ones = np.ones((c, 1, kh, kw))
    m = conv2d_map(in_layout, ones, None, stride, pads, groups=c, out_layout=out_layout, name=name)
    if count_include_pad:
        vals = m.values / (kh * kw)
    else:
        vals = m.values / np.bincount(m.rows, minlength=m.slots)[m.rows]
    return LinearMap(m.in_layout, m.out_layout, m.rows, m.cols, vals, None, name)


def global_avgpool_map(in_layout: Layout, out_layout: Layout | None = None, name: str = "global_avgpool") -> LinearMap:
    """GlobalAveragePool: channel means, by default into a flat (C,) layout."""
    c, h, w = in_layout.shape
    out_layout = Layout.flat(c, in_layout.slots) if out_layout is None else out_layout
    if out_layout.numel != c:
        raise LayoutError(f"output layout {out_layout.shape} does not hold {c} channel means")
    in_idx = in_layout.slot_indices()
    rows = np.repeat(out_layout.slot_indices().reshape(-1), h * w)
    return LinearMap(in_layout, out_layout, rows, in_idx.reshape(-1).copy(), np.full(rows.size, 1.0 / (h * w)), None, name)


def gemm_map(
    in_layout: Layout,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    out_layout: Layout | None = None,
    name: str = "gemm",
) -> LinearMap:
    """y = W·flatten(x) + b for x in any layout (Flatten is free: it is the column map);
    weight (F_out, F_in) with F_in = numel of the input, output flat by default."""
    w = np.asarray(weight, dtype=np.float64)
    f_out, f_in = w.shape
    if f_in != in_layout.numel:
        raise LayoutError(f"Gemm weight takes {f_in} features, the input has {in_layout.numel}")
    out_layout = Layout.flat(f_out, in_layout.slots) if out_layout is None else out_layout
    if out_layout.numel != f_out:
        raise LayoutError(f"output layout {out_layout.shape} does not hold {f_out} features")
    r, c = np.nonzero(w)
    rows = out_layout.slot_indices().reshape(-1)[r]
    cols = in_layout.slot_indices().reshape(-1)[c]
    b = None if bias is None else np.asarray(bias, dtype=np.float64).reshape(out_layout.shape)
    return LinearMap(in_layout, out_layout, rows, cols, w[r, c], None if b is None else out_layout.pack(b), name)


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


# ---------------------------------------------------------------------------------------
# Per-layer report: ours vs MPCNN
# ---------------------------------------------------------------------------------------


def _random_weight(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Dense non-zero weights: the diagonal set, hence the counts, depends only on the shape.
    return rng.uniform(0.5, 1.0, shape)


def pcnn_count_table(slots: int = 32768, seed: int = 0) -> list[dict[str, Any]]:
    """Counts per layer of one CryptoFaceNet patch network: our plan vs MPCNN's.

    Rows: the 13 convolutions (`repeat` says how many share a shape), the 8²→2² average
    pool and the 256→256 linear layer. Counts depend on shapes only, so weights are random.
    """
    rng = np.random.default_rng(seed)
    table: list[dict[str, Any]] = []

    def row(name: str, plan: LinearTransformPlan, repeat: int, mpcnn: tuple[int, int] | None, mpcnn_levels: int) -> None:
        c = plan.counts
        mpcnn = mpcnn or (None, None)
        table.append(
            {
                "layer": name, "repeat": repeat, "diagonals": c.plaintext_mults,
                "block_rows": plan.block_rows, "baby_step_count": plan.baby_step_count,
                "baby": c.baby_rotations, "giant": c.giant_rotations, "replication": c.replication_rotations,
                "rotations": c.rotations, "mults": c.plaintext_mults, "levels": c.levels,
                "mpcnn_rotations": mpcnn[0], "mpcnn_mults": mpcnn[1], "mpcnn_levels": mpcnn_levels,
            }
        )

    for spec in CRYPTOFACENET_PCNN_CONVS:
        layout = Layout.multiplexed(spec.c_in, spec.size, spec.size, slots, spec.gap_in)
        w = _random_weight(rng, (spec.c_out, spec.c_in, spec.kernel, spec.kernel))
        plan = plan_linear_transform(conv2d_map(layout, w, stride=spec.stride, pads=spec.pad, name=spec.name))
        m = mpcnn_conv_counts(spec.c_in, spec.c_out, spec.size, spec.size, spec.kernel, spec.stride, slots, spec.gap_in)
        row(spec.name, plan, spec.repeat, (m.rotations, m.plaintext_mults), m.levels)
    pool_in = Layout.multiplexed(64, 8, 8, slots, 4)
    pool = avgpool_map(pool_in, 4, 4, name="avgpool 8x8->2x2")
    # MPCNN's pool and linear counts are replays at n = 32768 only (PACKING.md §2.4).
    replayed = slots == 32768
    row(pool.name, plan_linear_transform(pool), 1, MPCNN_AVGPOOL_8_TO_2_COUNTS if replayed else None, 1)
    gemm = gemm_map(pool.out_layout, _random_weight(rng, (256, 256)), name="linear 256->256")
    row(gemm.name, plan_linear_transform(gemm), 1, MPCNN_LINEAR_256_COUNTS if replayed else None, 1)
    return table


def _cell(v: int | None) -> str:
    return "–" if v is None else str(v)


def format_count_table(table: list[dict[str, Any]], slots: int) -> str:
    """Markdown table with conv totals (weighted by repeat)."""
    lines = [
        f"n = {slots} slots",
        "",
        "| layer | x | diagonals | bh | N1 | rotations (baby+giant+repl) | ct×pt mults | levels "
        "| MPCNN rotations | MPCNN mults | MPCNN levels |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tot = dict.fromkeys(("rotations", "mults", "mpcnn_rotations", "mpcnn_mults"), 0)
    for r in table:
        lines.append(
            f"| {r['layer']} | {r['repeat']} | {r['diagonals']} | {r['block_rows']} | {r['baby_step_count']} "
            f"| {r['rotations']} ({r['baby']}+{r['giant']}+{r['replication']}) | {r['mults']} | {r['levels']} "
            f"| {_cell(r['mpcnn_rotations'])} | {_cell(r['mpcnn_mults'])} | {r['mpcnn_levels']} |"
        )
        if "pool" not in r["layer"] and "linear" not in r["layer"]:
            for key in tot:
                tot[key] += r[key] * r["repeat"]
    lines.append(
        f"| **all 13 convs** | | | | | **{tot['rotations']}** | **{tot['mults']}** | 13 "
        f"| **{tot['mpcnn_rotations']}** | **{tot['mpcnn_mults']}** | 26 |"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m cryptoface.compile.linear_transform", description=__doc__.split("\n")[0])
    ap.add_argument("--table", action="store_true", help="print the CryptoFaceNet patch-network count table")
    ap.add_argument("--slots", type=int, action="append", help="slot count(s) (default: 16384 and 32768)")
    args = ap.parse_args(argv)
    if not args.table:
        ap.print_help()
        return
    for slots in args.slots or [16384, 32768]:
        print(format_count_table(pcnn_count_table(slots), slots))
        print()


if __name__ == "__main__":
    main()
