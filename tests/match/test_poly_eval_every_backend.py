"""The shared Chebyshev evaluator on every registered backend, against the numpy run of the
same schedule and against the function, consuming exactly the levels the plan predicts.

Tolerance, derived: at N=2^14 and a 2^40 scale, encoding + encryption and every rescale add
an absolute error of at most EPS = 2^-24 to a value of magnitude <= 1 (measured <= 1e-8 =
2^-26.6 on every backend). An error e in T_1 moves T_i by at most i^2 e (Markov's inequality
for Chebyshev polynomials), and each of the D levels injects its own, so
    |HE - schedule| <= EPS (D + 1) sum_i |c_i| max(1, i^2).
A backend that labels scales nominally (OpenFHE FIXEDMANUAL treats every prime as exactly
2^40) also scales the value by 1 + e_l at each rescale (`Engine.scale_errors`): add
sum_l |e_l| over the D levels consumed, amplified the same way. Backends that track the true
scale (SEAL, the simulator) get no drift term: the evaluator never relabels a scale.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cryptoface.backend import HEContext
from cryptoface.match.approx import ChebPoly, inv_sqrt_fit, norm_sq_range, sign_approx
from cryptoface.match.poly_eval import (depth_bound, evaluate_encrypted, evaluate_plain, evaluate_stages_encrypted,
                                        evaluate_stages_plain, plan)
from cryptoface.models import load_bundle
from cryptoface.params import CKKSParams
from cryptoface.plugins import get_plugins
from cryptoface.testing.conftest import selected_backends

# 128-bit: log QP = 50 + 8*40 + 60 = 430 <= 438 at N=2^14.
PARAMS = CKKSParams(ring_dim=16384, depth=8, scale_bits=40, first_mod_bits=50, special_mod_bits=60, slots=64)
EPS = 2.0 ** -24
INTERVAL = norm_sq_range(load_bundle("small").meta)


@pytest.fixture(scope="module", params=selected_backends())
def ctx(request: pytest.FixtureRequest) -> HEContext:
    return HEContext.create(get_plugins().get(request.param), PARAMS)  # unavailable: an error, not a skip


def _amplification(poly: ChebPoly) -> float:
    return float(sum(abs(c) * max(1, i * i) for i, c in enumerate(poly.coeffs)))


def _drift(ctx: HEContext, levels: int) -> float:
    """Relative value drift of `levels` rescales on a backend with nominal scale labels."""
    ct = ctx.encrypt(np.ones(ctx.slots))
    nominal = ctx.rescale(ctx.square(ct)).scale == ctx.params.scale
    errs = ctx.engine.scale_errors(ctx.params)
    return sum(abs(e) for e in errs[ctx.params.depth - levels:]) if nominal else 0.0


def tolerance(ctx: HEContext, poly: ChebPoly, depth: int) -> float:
    return (EPS * (depth + 1) + _drift(ctx, depth)) * _amplification(poly)


def test_inv_sqrt_degree_31(ctx: HEContext) -> None:
    fit = inv_sqrt_fit(31, INTERVAL)
    y = np.concatenate([INTERVAL, np.random.default_rng(0).uniform(*INTERVAL, ctx.slots - 2)])
    ct = ctx.encrypt(y)
    out = evaluate_encrypted(ctx, ct, fit.poly)
    ref = evaluate_plain(fit.poly, y)
    assert ct.level - out.level == ref.depth == plan(fit.poly).depth == depth_bound(fit.poly) == 6
    got = ctx.decrypt(out)[: y.size]
    tol = tolerance(ctx, fit.poly, ref.depth)
    assert np.max(np.abs(got - ref.values)) <= tol
    assert np.max(np.abs(got * np.sqrt(y) - 1)) <= fit.max_error + tol * math.sqrt(INTERVAL[1])


def test_sign_two_stages(ctx: HEContext) -> None:
    s = sign_approx(2)
    threshold = 0.473
    scores = np.concatenate([[-1.0, 1.0, threshold - 0.6, threshold + 0.6],
                             np.random.default_rng(1).uniform(-1, 1, ctx.slots - 4)])
    x = scores - threshold
    ct = ctx.encrypt(x)
    out = evaluate_stages_encrypted(ctx, ct, s.stages)
    ref = evaluate_stages_plain(s.stages, x)
    assert ct.level - out.level == ref.depth == sum(plan(p).depth for p in s.stages) == 4 + 3
    first = tolerance(ctx, s.stages[0], 4)
    tol = tolerance(ctx, s.stages[1], 3) + first * _amplification(s.stages[1])
    got = ctx.decrypt(out)[: x.size]
    assert np.max(np.abs(got - ref.values)) <= tol
    far = np.abs(x) > s.band / 2
    assert np.all(np.abs(got[far] - np.sign(x[far])) <= s.tolerance + tol)
