"""The baby-step giant-step schedule computes the Chebyshev series within the depth it claims."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.polynomial import chebyshev as C

from cryptoface.backend import HEContext
from cryptoface.errors import InvalidInputError, LevelExhaustedError
from cryptoface.match.approx import ChebPoly, sign_approx
from cryptoface.match.poly_eval import (NumpyArith, PlainValue, depth_bound, divide, evaluate_encrypted,
                                        evaluate_plain, plan, run)
from cryptoface.params import CKKSParams
from cryptoface.simulator import SimulatorEngine

RNG = np.random.default_rng(7)


def _poly(degree: int, interval: tuple[float, float]) -> ChebPoly:
    return ChebPoly(tuple(RNG.normal(0, 1, degree + 1) / (1 + np.arange(degree + 1))), interval)


@pytest.mark.parametrize("interval", [(-1.0, 1.0), (5.96, 299.5), (-2.0, 2.0)])
@pytest.mark.parametrize("k", [2, 4, 8, 16])
def test_schedule_equals_chebval(interval: tuple[float, float], k: int) -> None:
    x = np.linspace(*interval, 2001)
    for degree in range(1, 80):
        poly = _poly(degree, interval)
        got = run(NumpyArith(), PlainValue(x, 0), poly, k).values
        np.testing.assert_allclose(got, poly(x), rtol=0, atol=1e-11 * sum(map(abs, poly.coeffs)), err_msg=f"degree {degree}")


def test_odd_series_and_zero_leaves() -> None:
    """Series with zero coefficients (odd functions) leave constant or empty leaves."""
    c = np.zeros(32)
    c[1::2] = RNG.normal(size=16)
    for cs in (c, np.eye(32)[31], np.eye(32)[16], np.eye(17)[16] + 0.5):
        poly = ChebPoly(tuple(cs), (-1.0, 1.0))
        x = np.linspace(-1, 1, 501)
        np.testing.assert_allclose(evaluate_plain(poly, x).values, C.chebval(x, cs), atol=1e-11)


def test_division_is_exact() -> None:
    t = np.linspace(-1, 1, 301)
    for g in (2, 4, 8, 16):
        for d in range(g, 2 * g):
            c = RNG.normal(size=d + 1)
            q, r = divide(c, g)
            assert len(r) == g
            np.testing.assert_allclose(C.chebval(t, q) * C.chebval(t, np.eye(g + 1)[g]) + C.chebval(t, r),
                                       C.chebval(t, c), atol=1e-12)


@pytest.mark.parametrize("mapped", [True, False])
def test_depth_is_log2_degree_plus_one_plus_the_map(mapped: bool) -> None:
    """Exactly the bound at every degree 2^m - 1."""
    interval = (0.5, 3.0) if mapped else (-1.0, 1.0)
    for degree in range(1, 130):
        poly = _poly(degree, interval)
        p = plan(poly)
        assert depth_bound(poly) == math.ceil(math.log2(degree + 1)) + int(mapped)
        assert p.depth <= depth_bound(poly) and p.relabels == 0, (degree, p)
        if degree + 1 == 1 << (degree + 1).bit_length() - 1:  # 2^m - 1: no slack
            assert p.depth == depth_bound(poly), (degree, p)
        assert evaluate_plain(poly, np.zeros(1)).depth == p.depth


def test_products_grow_linearly_not_quadratically() -> None:
    """d/2 + log d products with k = 2 (the depth-optimal choice), not one per power."""
    for degree in (31, 63, 127):
        assert plan(_poly(degree, (1.0, 2.0))).products <= degree // 2 + 2 * math.ceil(math.log2(degree + 1))


def test_bad_requests_are_clear_errors() -> None:
    with pytest.raises(InvalidInputError, match="constant polynomial"):
        evaluate_plain(ChebPoly((1.0, 0.0), (0.0, 1.0)), np.zeros(3))
    with pytest.raises(InvalidInputError, match="power of two"):
        evaluate_plain(_poly(5, (0.0, 1.0)), np.zeros(3), k=3)
    with pytest.raises(InvalidInputError, match="symmetric"):
        sign_approx(2, (0.0, 1.0))
    shallow = CKKSParams(ring_dim=16384, depth=5, scale_bits=40, first_mod_bits=50, special_mod_bits=60, slots=64)
    ctx = HEContext.create(SimulatorEngine, shallow)
    with pytest.raises(LevelExhaustedError):  # degree 63 needs 7 levels
        evaluate_encrypted(ctx, ctx.encrypt(np.full(64, 0.5)), _poly(63, (0.0, 1.0)))
