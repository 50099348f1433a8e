"""Chebyshev approximations the matcher evaluates under encryption, with measured errors.

- `inv_sqrt_fit`: 1/sqrt(y) for the squared norm y of an embedding, interpolated at Chebyshev
  nodes over a range read from the model's sidecar and widened (the held-out minimum lies
  below the training minimum), with its max relative error |p(y) sqrt(y) - 1| on a dense grid.
- `sign_approx`: sign(x) for x = score - threshold, a composite of the odd polynomial f_3 of
  Cheon et al. ("Efficient homomorphic comparison methods with optimal complexity", 2020),
  f_3(t) = (35t - 35t^3 + 21t^5 - 5t^7) / 16, applied `stages` times to x / 2 (x in [-2, 2]
  since cosine scores and thresholds lie in [-1, 1]), with its error band: the width of the
  interval around 0 where |g(x) - sign(x)| > 0.1 (the sign itself is never wrong: g is odd
  and increasing).

Every fit is plain data (`ChebPoly`, `Fit`, `SignApprox`); `poly_eval` evaluates them.
`python -m cryptoface.match.approx` prints the table of docs/match.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.polynomial import chebyshev as C

from ..errors import InvalidInputError

GRID_POINTS = 200_001
SIGN_TOLERANCE = 0.1
F3_POWER = (0.0, 35 / 16, 0.0, -35 / 16, 0.0, 21 / 16, 0.0, -5 / 16)


@dataclass(frozen=True)
class ChebPoly:
    """sum_i coeffs[i] T_i(t), t the affine image of x in `interval` onto [-1, 1]."""

    coeffs: tuple[float, ...]
    interval: tuple[float, float]

    @property
    def degree(self) -> int:
        return len(self.coeffs) - 1

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.interval
        return (2 * np.asarray(x, dtype=np.float64) - (lo + hi)) / (hi - lo)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return C.chebval(self.to_unit(x), np.asarray(self.coeffs))


@dataclass(frozen=True)
class Fit:
    """A fitted polynomial and the error measured on `grid_points` equispaced points of its interval."""

    name: str
    poly: ChebPoly
    max_error: float
    error_kind: str  # "relative" or "absolute"
    grid_points: int

    @property
    def degree(self) -> int:
        return self.poly.degree

    @property
    def interval(self) -> tuple[float, float]:
        return self.poly.interval

    @property
    def coeffs(self) -> tuple[float, ...]:
        return self.poly.coeffs


@dataclass(frozen=True)
class SignApprox:
    """g = stages[-1] o ... o stages[0], approximating sign(x) on `interval`."""

    stages: tuple[ChebPoly, ...]
    interval: tuple[float, float]
    band: float  # width of {x : |g(x) - sign(x)| > tolerance}, centred on 0
    tolerance: float
    grid_points: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(x, dtype=np.float64)
        for stage in self.stages:
            y = stage(y)
        return y


def grid(interval: tuple[float, float], points: int = GRID_POINTS) -> np.ndarray:
    return np.linspace(interval[0], interval[1], points)


def chebyshev_interpolant(f: Callable[[np.ndarray], np.ndarray], interval: tuple[float, float],
                          degree: int) -> ChebPoly:
    """Interpolation of f at the degree+1 Chebyshev nodes of the first kind (near-minimax)."""
    lo, hi = interval
    coeffs = C.chebinterpolate(lambda t: f((hi - lo) / 2 * t + (hi + lo) / 2), degree)
    return ChebPoly(tuple(float(c) for c in coeffs), (float(lo), float(hi)))


def norm_sq_range(meta: dict) -> tuple[float, float]:
    """The fit range of 1/sqrt: half the smallest and 1.5 x the largest squared norm seen
    (training or held-out), which is the sidecar's `suggested_fit_range`."""
    s = meta["embedding_norm_sq"]
    return min(s["min"], s["heldout_min"]) / 2, max(s["max"], s["heldout_max"]) * 1.5


def inv_sqrt_fit(degree: int, interval: tuple[float, float]) -> Fit:
    poly = chebyshev_interpolant(lambda y: 1 / np.sqrt(y), interval, degree)
    y = grid(interval)
    err = float(np.max(np.abs(poly(y) * np.sqrt(y) - 1)))
    return Fit("1/sqrt(y)", poly, err, "relative", y.size)


def sign_approx(stages: int, interval: tuple[float, float] = (-2.0, 2.0),
                tolerance: float = SIGN_TOLERANCE) -> SignApprox:
    """`stages` compositions of f_3, the first mapping `interval` (symmetric) onto [-1, 1]."""
    if stages < 1 or interval[0] != -interval[1]:
        raise InvalidInputError("sign_approx needs at least one stage and an interval symmetric about 0")
    f3 = tuple(float(c) for c in C.poly2cheb(F3_POWER))
    polys = (ChebPoly(f3, interval),) + (ChebPoly(f3, (-1.0, 1.0)),) * (stages - 1)
    probe = SignApprox(polys, interval, 0.0, tolerance, GRID_POINTS)
    x = grid(interval)
    bad = x[np.abs(probe(x) - np.sign(x)) > tolerance]
    band = float(bad.max() - bad.min()) if bad.size else 0.0
    return SignApprox(polys, interval, band, tolerance, x.size)


def depth_bound(poly: ChebPoly) -> int:
    """Levels `poly_eval` needs for `poly`: ceil(log2(degree + 1)), plus one for the affine
    map onto [-1, 1] unless the interval already is [-1, 1]."""
    return math.ceil(math.log2(poly.degree + 1)) + int(tuple(poly.interval) != (-1.0, 1.0))


def markdown_table(meta: dict, degrees: tuple[int, ...] = (15, 31, 47, 63, 127),
                   stage_counts: tuple[int, ...] = (1, 2, 3, 4)) -> str:
    interval = norm_sq_range(meta)
    lines = [f"1/sqrt(y) on y in [{interval[0]:.4g}, {interval[1]:.4g}] "
             f"(sidecar: training [{meta['embedding_norm_sq']['min']:.4g}, {meta['embedding_norm_sq']['max']:.4g}], "
             f"held-out [{meta['embedding_norm_sq']['heldout_min']:.4g}, {meta['embedding_norm_sq']['heldout_max']:.4g}]), "
             f"relative error on {GRID_POINTS} points:", "",
             "| degree | depth | max relative error |", "|---:|---:|---:|"]
    for d in degrees:
        fit = inv_sqrt_fit(d, interval)
        lines.append(f"| {d} | {depth_bound(fit.poly)} | {fit.max_error:.3e} |")
    lines += ["", f"sign(x), x = score - threshold in [-2, 2], f_3 composed k times on x/2; band = width of "
              f"{{x : |g(x) - sign(x)| > {SIGN_TOLERANCE}}}:", "",
              "| stages | depth | band |", "|---:|---:|---:|"]
    for k in stage_counts:
        s = sign_approx(k)
        lines.append(f"| {k} | {sum(depth_bound(p) for p in s.stages)} | {s.band:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    from cryptoface.models import load_bundle

    print(markdown_table(load_bundle("small").meta))
