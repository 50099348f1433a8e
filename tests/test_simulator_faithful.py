"""The simulator fails where the CKKS libraries fail: the same out-of-range cases run on the
simulator and on real backends, and every one of them gets a wrong result (or the library's
own refusal), while the in-range control case is right everywhere.

- overflow past q0: a level-0 value larger than q0 / (2 * scale) wraps at decryption;
- the bootstrap's input range: beyond it, the approximate modular reduction is garbage.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryptoface.backend import HEContext
from cryptoface.ckks_model import Embedding, is_prime
from cryptoface.errors import DecryptionError
from cryptoface.params import BootstrapConfig, CKKSParams
from cryptoface.plugins import get_plugins
from cryptoface.simulator import SimulatorEngine

SLOTS = 8


def _params(**kw) -> CKKSParams:
    base = dict(ring_dim=4096, depth=2, scale_bits=40, first_mod_bits=60, slots=SLOTS, insecure_test_params=True)
    return CKKSParams(**{**base, **kw})


def _decrypt_or_refusal(ctx: HEContext, ct) -> np.ndarray | None:
    """The decrypted values, or None when the library itself refuses to decode garbage."""
    try:
        return ctx.decrypt(ct)
    except DecryptionError as exc:  # OpenFHE's decode check, as one clear line
        assert "approximation error is too high" in str(exc) and "\n" not in str(exc)
        return None


@pytest.mark.parametrize("backend", ["simulator", "openfhe", "tenseal"])
def test_a_product_past_q0_wraps_at_decryption(backend):
    """1000 x 1000 at level 0 exceeds q0 / (2 * scale) = 2^19: every backend returns the same
    wrong value, 10^6 - q0 / scale (about -48576: the centered reduction); 400 x 1000 fits and
    is right everywhere."""
    ctx = HEContext.create(get_plugins().get(backend), _params(), [1])
    assert ctx.params.max_abs_value == 2.0**19
    x = ctx.encrypt(np.full(SLOTS, 1000.0))
    for factor, fits in ((400.0, True), (1000.0, False)):
        prod = ctx.mod_switch_to(ctx.rescale(ctx.mul_plain(x, np.full(SLOTS, factor))), 0)
        got = ctx.decrypt(prod)[:SLOTS]
        want = 1000.0 * factor
        if fits:
            assert np.max(np.abs(got - want)) < 1e-3 * want
        else:  # q0 is a prime just below 2^60: q0 / scale is 2^20 to within 1
            assert np.max(np.abs(got - (want - 2.0**20))) < 1.0, got


def _boot_params(engine) -> CKKSParams:
    budget = (2, 2)
    bd = engine.bootstrap_depth(budget, _params())
    return _params(depth=bd + 3, scale_bits=50, bootstrap=BootstrapConfig(budget, bd))


@pytest.mark.parametrize("backend", ["simulator", "openfhe"])
def test_a_bootstrap_beyond_its_range_returns_garbage(backend):
    """300 fits q0 at level 0 (2^9 = 512 with a 50-bit scale) but is far outside the bootstrap's
    range: OpenFHE returns about 156 (its sine folds), the simulator a garbled value; 0.5 is
    refreshed correctly by both."""
    engine = get_plugins().get(backend)
    ctx = HEContext.create(engine, _boot_params(engine), [1])
    assert ctx.params.bootstrap.input_range == 1.0
    for value, inside in ((0.5, True), (300.0, False)):
        ct = ctx.mod_switch_to(ctx.encrypt(np.full(SLOTS, value)), 0)
        got = _decrypt_or_refusal(ctx, ctx.bootstrap(ct))
        if inside:
            assert got is not None and np.max(np.abs(got[:SLOTS] - value)) < 1e-2
        else:
            assert got is None or np.max(np.abs(got[:SLOTS] - value)) > 10, got


def test_simulator_rescale_divides_by_a_real_prime():
    ctx = HEContext.create(SimulatorEngine, _params(), [1])
    x = np.random.default_rng(0).uniform(-1, 1, SLOTS)
    ct = ctx.encrypt(x)
    sq = ctx.rescale(ctx.mul(ct, ct))
    q = ctx.params.scale**2 / sq.scale
    assert round(q) != 2**40 and is_prime(round(q)) and round(q) % (2 * ctx.params.ring_dim) == 1
    assert np.max(np.abs(ctx.decrypt(sq) - x * x)) < 1e-6


def test_simulator_encodes_fixed_point_coefficients():
    """Encoding rounds the packed polynomial's coefficients (not the slots) at the scale."""
    engine = SimulatorEngine.keygen(_params(), [1])
    scale = 2.0**12
    x = np.random.default_rng(1).uniform(-1, 1, SLOTS)
    pt = engine.encode(x, 2, scale)
    coeffs = Embedding(SLOTS).to_coeffs(pt.values) * scale
    assert np.max(np.abs(coeffs - np.round(coeffs))) < 1e-6
    assert 0 < np.max(np.abs(pt.values - x)) < SLOTS / scale
