"""One routine that evaluates a Chebyshev series, on ciphertexts or on numpy arrays.

Baby-step giant-step in the Chebyshev basis (Paterson-Stockmeyer style):
- map x in [lo, hi] onto t in [-1, 1] (one mul_plain; skipped when the interval is [-1, 1]);
- baby steps T_1 .. T_{k-1} and giant steps T_k, T_2k, T_4k, ... by T_2n = 2 T_n^2 - 1 and
  T_{m+n} = 2 T_m T_n - T_{m-n}, m the largest power of two below m + n (depth-optimal);
- recursive division p = q T_G + r by the largest giant G <= deg p (exact in the Chebyshev
  basis: T_{G+j} = 2 T_j T_G - T_{G-j}), leaves of degree < k as one plaintext combination.

The recursion is written once against `Arith`; `HEArith` runs it on an `HEContext` (every
ct x ct product rescaled at once, operands mod-switched to a common level before add, scales
handled by `HEContext.mul_plain`/`_align`), `NumpyArith` runs the same schedule on numpy
arrays and counts the levels each value has consumed. `plan` picks the baby-step size k with
the fewest ct x ct products whose depth stays within ceil(log2(degree + 1)) + 1 (the map)
and whose sums never meet two scales at one level (see `HEArith._matched`).

Compiler integration (polynomials as IR ops, depth reserved and bootstraps placed by the
compiler) is for a later session: this module is not yet called by cryptoface/compile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, Protocol, Sequence, TypeVar

import numpy as np

from ..backend import Ciphertext, HEContext
from ..errors import InvalidInputError
from .approx import ChebPoly, depth_bound

V = TypeVar("V")


class Arith(Protocol[V]):
    """The operations the schedule needs; each says how many levels it consumes."""

    def affine(self, x: V, a: float, b: float) -> V: ...  # a x + b, one level
    def product(self, u: V, v: V) -> V: ...  # u v, one level
    def combine(self, terms: Sequence[tuple[float, V]], const: float) -> V: ...  # one level
    def add(self, u: V, v: V) -> V: ...
    def sub(self, u: V, v: V) -> V: ...
    def add_const(self, u: V, c: float) -> V: ...


# ---- the schedule ------------------------------------------------------------------------


def _trim(c: np.ndarray) -> np.ndarray:
    nz = np.flatnonzero(c)
    return c[: nz[-1] + 1] if nz.size else c[:1]


def divide(c: np.ndarray, g: int) -> tuple[np.ndarray, np.ndarray]:
    """(q, r) with sum c_i T_i = (sum q_j T_j) T_g + sum r_i T_i, for deg c < 2g."""
    d = len(c) - 1
    assert g <= d < 2 * g, (g, d)
    q = np.concatenate([[c[g]], 2 * c[g + 1:]])
    r = c[:g].copy()
    for j in range(1, d - g + 1):
        r[g - j] -= c[g + j]
    return q, r


class _Schedule(Generic[V]):
    """The Chebyshev values of one input, computed once each, and the recursion over them."""

    def __init__(self, arith: Arith[V], x: V, interval: tuple[float, float], k: int) -> None:
        lo, hi = interval
        self.arith, self.x, self.k = arith, x, k
        self.a, self.b = 2 / (hi - lo), -(hi + lo) / (hi - lo)
        self.identity = (lo, hi) == (-1.0, 1.0)
        self.cheb: dict[int, V] = {}

    def t(self, i: int) -> V:
        """T_i(t), depth ceil(log2 i) after the map."""
        if i not in self.cheb:
            ar = self.arith
            if i == 1:
                self.cheb[1] = self.x if self.identity else ar.affine(self.x, self.a, self.b)
            else:
                m = 1 << (math.ceil(math.log2(i)) - 1)
                n = i - m
                p = ar.product(self.t(m), self.t(n))
                twice = ar.add(p, p)
                self.cheb[i] = ar.add_const(twice, -1.0) if m == n else ar.sub(twice, self.t(m - n))
        return self.cheb[i]

    def leaf(self, c: np.ndarray) -> V | float:
        terms = [(float(c[i]), self.t(i)) for i in range(1, len(c)) if c[i] != 0]
        return self.arith.combine(terms, float(c[0])) if terms else float(c[0])

    def giant(self, d: int) -> int:
        g = self.k
        while 2 * g <= d:
            g *= 2
        return g

    def series(self, c: np.ndarray) -> V | float:
        c = _trim(c)
        d = len(c) - 1
        if d < self.k:
            return self.leaf(c)
        g = self.giant(d)
        q, r = divide(c, g)
        qv, rv = self.series(q), self.series(r)
        tg = self.t(g)
        ar = self.arith
        prod = ar.combine([(qv, tg)], 0.0) if isinstance(qv, float) else ar.product(qv, tg)
        return ar.add_const(prod, rv) if isinstance(rv, float) else ar.add(prod, rv)


def run(arith: Arith[V], x: V, poly: ChebPoly, k: int) -> V:
    """poly(x) by the schedule with baby-step size k (a power of two >= 2)."""
    if k < 2 or k & (k - 1):
        raise InvalidInputError(f"baby-step size must be a power of two >= 2, not {k}")
    out = _Schedule(arith, x, poly.interval, k).series(np.asarray(poly.coeffs, dtype=np.float64))
    if isinstance(out, float):
        raise InvalidInputError("a constant polynomial needs no evaluation: evaluate polynomials of degree >= 1")
    return out


# ---- numpy: the exact schedule, with its level count -------------------------------------


Scale = tuple[tuple[int, int], ...]  # exponents of q_l / 2^scale_bits, by depth l: the drift


def _drift(*parts: tuple[Scale, int]) -> Scale:
    total: dict[int, int] = {}
    for scale, sign in parts:
        for l, e in scale:
            total[l] = total.get(l, 0) + sign * e
    return tuple(sorted((l, e) for l, e in total.items() if e))


@dataclass(frozen=True)
class PlainValue:
    """Values, the levels they consumed, and their scale's drift from the base scale: a
    plaintext combination lands exactly on the base scale; a product keeps both operands'
    drift and divides by the prime of the level it is rescaled at."""

    values: np.ndarray
    depth: int
    scale: Scale = ()


class NumpyArith:
    """The schedule on float64 arrays. Counts ct x ct products (`products`) and sums whose
    operands have different scales at the same level (`relabels`: the encrypted run can only
    relabel those, which moves the value by the drift)."""

    def __init__(self) -> None:
        self.products = 0
        self.relabels = 0

    def affine(self, x: PlainValue, a: float, b: float) -> PlainValue:
        return PlainValue(a * x.values + b, x.depth + 1)

    def product(self, u: PlainValue, v: PlainValue) -> PlainValue:
        self.products += 1
        d = max(u.depth, v.depth)
        return PlainValue(u.values * v.values, d + 1, _drift((u.scale, 1), (v.scale, 1), (((d, 1),), -1)))

    def combine(self, terms: Sequence[tuple[float, PlainValue]], const: float) -> PlainValue:
        return PlainValue(sum(c * v.values for c, v in terms) + const, max(v.depth for _, v in terms) + 1)

    def _scale_of_sum(self, u: PlainValue, v: PlainValue) -> Scale:
        if u.scale != v.scale and u.depth == v.depth:
            self.relabels += 1
        return u.scale if u.depth >= v.depth else v.scale

    def add(self, u: PlainValue, v: PlainValue) -> PlainValue:
        return PlainValue(u.values + v.values, max(u.depth, v.depth), self._scale_of_sum(u, v))

    def sub(self, u: PlainValue, v: PlainValue) -> PlainValue:
        return PlainValue(u.values - v.values, max(u.depth, v.depth), self._scale_of_sum(u, v))

    def add_const(self, u: PlainValue, c: float) -> PlainValue:
        return PlainValue(u.values + c, u.depth, u.scale)


@dataclass(frozen=True)
class Plan:
    k: int
    depth: int
    products: int
    relabels: int


def plan(poly: ChebPoly) -> Plan:
    """The baby-step size within `depth_bound` with the fewest relabels, then products."""
    best = None
    k = 2
    while k <= max(2, poly.degree + 1):
        ar = NumpyArith()
        depth = run(ar, PlainValue(np.zeros(1), 0), poly, k).depth
        cand = Plan(k, depth, ar.products, ar.relabels)
        if depth <= depth_bound(poly) and (best is None or (cand.relabels, cand.products) < (best.relabels, best.products)):
            best = cand
        k *= 2
    assert best is not None, "k = 2 always meets the bound"
    return best


def evaluate_plain(poly: ChebPoly, x: np.ndarray, k: int | None = None) -> PlainValue:
    """The schedule's result on numpy values (the reference for the encrypted evaluation)."""
    k = plan(poly).k if k is None else k
    return run(NumpyArith(), PlainValue(np.asarray(x, dtype=np.float64), 0), poly, k)


# ---- ciphertexts -------------------------------------------------------------------------


class HEArith:
    """The schedule on `HEContext` ciphertexts: every operation through the checked API."""

    def __init__(self, ctx: HEContext) -> None:
        self.ctx = ctx

    def _const(self, c: float) -> np.ndarray:
        return np.full(self.ctx.slots, c)

    def _common(self, *cts: Ciphertext) -> list[Ciphertext]:
        level = min(ct.level for ct in cts)
        return [self.ctx.mod_switch_to(ct, level) for ct in cts]

    def affine(self, x: Ciphertext, a: float, b: float) -> Ciphertext:
        return self.ctx.add_plain(self.ctx.rescale(self.ctx.mul_plain(x, self._const(a))), self._const(b))

    def product(self, u: Ciphertext, v: Ciphertext) -> Ciphertext:
        if u is v:
            return self.ctx.rescale(self.ctx.square(u))
        return self.ctx.rescale(self.ctx.mul(*self._common(u, v)))

    def combine(self, terms: Sequence[tuple[float, Ciphertext]], const: float) -> Ciphertext:
        cts = self._common(*(v for _, v in terms))
        acc = None
        for (c, _), ct in zip(terms, cts):
            p = self.ctx.mul_plain(ct, self._const(c))
            acc = p if acc is None else self.ctx.add(acc, p)
        return self.ctx.add_plain(self.ctx.rescale(acc), self._const(const))

    def _matched(self, u: Ciphertext, v: Ciphertext) -> tuple[Ciphertext, Ciphertext]:
        """u and v at one level and one scale. Scales that drifted apart along different
        rescale paths are not relabelled (that moves the value by the drift, about 1e-6 per
        rescale, which the Chebyshev recurrence amplifies): the operand with a level to spare
        is multiplied by ones encoded at q * s_other / s_own and rescaled onto the other's
        exact scale. The schedule always leaves that level (the sum's other side is a fresh
        product); without one, HEContext's relabelling is the fallback."""
        if u.scale == v.scale or u.level == v.level:
            return tuple(self._common(u, v))  # type: ignore[return-value]
        swap = u.level < v.level
        low, high = (u, v) if swap else (v, u)
        lvl = low.level + 1
        high = self.ctx.mod_switch_to(high, lvl)
        scale = self.ctx.engine.rescale_divisor(lvl) * low.scale / high.scale
        high = self.ctx.rescale(self.ctx.mul_plain(high, self._const(1.0), scale=scale))
        return (low, high) if swap else (high, low)

    def add(self, u: Ciphertext, v: Ciphertext) -> Ciphertext:
        return self.ctx.add(*self._matched(u, v))

    def sub(self, u: Ciphertext, v: Ciphertext) -> Ciphertext:
        return self.ctx.sub(*self._matched(u, v))

    def add_const(self, u: Ciphertext, c: float) -> Ciphertext:
        return self.ctx.add_plain(u, self._const(c))


def evaluate_encrypted(ctx: HEContext, ct: Ciphertext, poly: ChebPoly, k: int | None = None) -> Ciphertext:
    """poly(ct) slot-wise; consumes `plan(poly).depth` levels (the schedule's depth)."""
    k = plan(poly).k if k is None else k
    return run(HEArith(ctx), ct, poly, k)


def evaluate_stages_plain(stages: Sequence[ChebPoly], x: np.ndarray) -> PlainValue:
    """A composite (e.g. `SignApprox.stages`), stage after stage, by the same schedule."""
    v = PlainValue(np.asarray(x, dtype=np.float64), 0)
    for poly in stages:
        out = run(NumpyArith(), PlainValue(v.values, 0), poly, plan(poly).k)
        v = PlainValue(out.values, v.depth + out.depth)
    return v


def evaluate_stages_encrypted(ctx: HEContext, ct: Ciphertext, stages: Sequence[ChebPoly]) -> Ciphertext:
    for poly in stages:
        ct = evaluate_encrypted(ctx, ct, poly)
    return ct
