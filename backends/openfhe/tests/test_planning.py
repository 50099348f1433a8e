"""The OpenFHE plugin's planning hooks agree with OpenFHE itself: the digit count and 128-bit
limit it predicts, and the scale drift its FIXEDMANUAL rescales really leave."""

from __future__ import annotations

import numpy as np
import pytest

from cryptoface.backend import HEContext
from cryptoface.params import CKKSParams
from cryptoface_openfhe import OPENFHE_MAX_LOG_QP_128, OpenFHEEngine, planning


def _openfhe_digits(ring_dim: int, chain: int, scale_bits: int, first_mod_bits: int) -> int | None:
    """The digit count OpenFHE accepts first, in the engine's order, asked of the library."""
    import openfhe as o

    for dnum in planning._dnum_candidates(chain + 1):
        p = o.CCParamsCKKSRNS()
        p.SetMultiplicativeDepth(chain)
        p.SetScalingModSize(scale_bits)
        p.SetFirstModSize(first_mod_bits)
        p.SetRingDim(ring_dim)
        p.SetScalingTechnique(o.FIXEDMANUAL)
        p.SetKeySwitchTechnique(o.HYBRID)
        p.SetNumLargeDigits(dnum)
        p.SetSecretKeyDist(o.UNIFORM_TERNARY)
        p.SetSecurityLevel(o.HEStd_128_classic)
        try:
            o.GenCryptoContext(p)
            return dnum
        except RuntimeError:
            continue
    return None


@pytest.mark.parametrize("ring_dim, scale_bits, first, chains", [
    (65536, 59, 60, (17, 20, 22, 23, 24, 26)),  # bootstrapping chains
    (65536, 40, 60, (24, 30, 33, 36, 38)),
    (32768, 40, 52, (9, 12, 15, 17, 18)),
])
def test_predicted_digits_and_limits_match_openfhe(ring_dim, scale_bits, first, chains):
    bound = OPENFHE_MAX_LOG_QP_128[ring_dim]
    for chain in chains:
        assert planning.digits_for(chain, scale_bits, first, bound) == _openfhe_digits(ring_dim, chain, scale_bits, first), chain


def test_scale_errors_are_the_drift_openfhe_leaves():
    """Encrypt 1, multiply by a plaintext 1 at the nominal scale, rescale: OpenFHE returns
    2^scale_bits / q_l at each level, which is what the hook predicts (before any key exists)."""
    params = CKKSParams(ring_dim=4096, depth=5, scale_bits=30, first_mod_bits=50, slots=8, insecure_test_params=True)
    predicted = OpenFHEEngine.scale_errors(params)
    ctx = HEContext.create(OpenFHEEngine, params)
    ct = ctx.encrypt(np.ones(8))
    for level in range(params.depth, 0, -1):
        got = ctx.decrypt(ctx.rescale(ctx.mul_plain(ct, np.ones(8), scale=params.scale)))[0] - 1.0
        assert got == pytest.approx(predicted[level - 1], rel=0.05, abs=3e-6), level
        ct = ctx.mod_switch_to(ct, level - 1)
    assert max(abs(e) for e in predicted) > 1e-5  # 30-bit primes drift measurably: the test can fail
