"""The fits meet the errors they report, on denser grids than they were measured on."""

from __future__ import annotations

import numpy as np
import pytest

from cryptoface.match.approx import inv_sqrt_fit, markdown_table, norm_sq_range, sign_approx
from cryptoface.models import load_bundle

META = load_bundle("small").meta
DENSE = 1_000_003


def test_fit_range_is_the_sidecar_range_widened() -> None:
    s = META["embedding_norm_sq"]
    lo, hi = norm_sq_range(META)
    assert lo < s["heldout_min"] < s["min"] and hi > s["max"] >= s["heldout_max"]
    assert (lo, hi) == pytest.approx(tuple(s["suggested_fit_range"]))


@pytest.mark.parametrize("degree", [15, 31, 63])
def test_inv_sqrt_meets_its_reported_relative_error(degree: int) -> None:
    interval = norm_sq_range(META)
    fit = inv_sqrt_fit(degree, interval)
    assert fit.degree == degree and fit.interval == interval and fit.error_kind == "relative"
    y = np.concatenate([np.linspace(*interval, DENSE), np.random.default_rng(degree).uniform(*interval, 100_000)])
    err = np.max(np.abs(fit.poly(y) * np.sqrt(y) - 1))
    assert err <= fit.max_error * 1.001
    assert err >= fit.max_error * 0.999  # the reported number is the error, not a loose bound


def test_inv_sqrt_error_falls_with_degree() -> None:
    interval = norm_sq_range(META)
    errs = [inv_sqrt_fit(d, interval).max_error for d in (15, 31, 63)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-7


@pytest.mark.parametrize("stages", [1, 2, 3])
def test_sign_band_is_where_the_error_exceeds_the_tolerance(stages: int) -> None:
    s = sign_approx(stages)
    x = np.linspace(*s.interval, DENSE)
    g = s(x)
    assert np.all(np.diff(g) >= -1e-14) and np.allclose(g, -s(-x))  # odd, non-decreasing (flat at the ends)
    assert np.all(np.sign(g) == np.sign(x))  # the sign is never wrong
    err = np.abs(g - np.sign(x))
    half = s.band / 2
    assert np.all(err[np.abs(x) > half + 1e-5] <= s.tolerance)
    assert np.any(err[np.abs(x) > half - 1e-3] > s.tolerance)  # the band is tight


def test_sign_band_shrinks_with_stages() -> None:
    bands = [sign_approx(k).band for k in (1, 2, 3, 4)]
    assert all(a > b for a, b in zip(bands, bands[1:]))


def test_table_lists_every_degree_and_stage_count() -> None:
    table = markdown_table(META, degrees=(15, 31), stage_counts=(1, 2))
    assert "| 15 | 5 |" in table and "| 31 | 6 |" in table and "| 2 | 7 |" in table
