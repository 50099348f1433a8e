"""Parameter selection against the real engines' planning hooks: rings, precision, keys,
bootstrapping at 128-bit (the library itself is asked to accept every chosen set)."""

import math

import pytest

from cryptoface.compile.parameters import (
    ParameterRequest, choose_parameters, naf, plan_keys, power_of_two_steps,
)
from cryptoface.compile.precision import PredictedError
from cryptoface.errors import CompileError
from cryptoface.params import CKKSParams
from cryptoface.plugins import get_plugins

SIM = get_plugins().get("simulator")
TENSEAL = get_plugins().get("tenseal")
OPENFHE = get_plugins().get("openfhe")


def exact(params, opt):
    return PredictedError(0.0, 0.0)


def by_scale(params, opt):
    """An error of 2^-(scale_bits - 20): a 31-bit scale gives 4.9e-4, 30 bits 9.8e-4."""
    e = 2.0 ** -(params.scale_bits - 20)
    return PredictedError(e, e, {"noise": e})


def test_smallest_secure_ring_for_the_depth():
    c = choose_parameters(TENSEAL, ParameterRequest(depth_needed=7, slots=2048, rotation_steps=[1, 2, 3]), exact)
    assert (c.params.ring_dim, c.params.depth, c.params.security_bits()) == (16384, 7, 128)
    assert c.params.scale_bits == 40 and c.boot_level is None
    c = choose_parameters(TENSEAL, ParameterRequest(depth_needed=12, slots=2048, rotation_steps=[1]), exact)
    assert c.params.ring_dim == 32768 and c.params.security_bits() == 128


def test_precision_target_decides_between_a_small_scale_and_a_larger_ring():
    """Depth 11 fits N=2^14 only at a 31-bit scale: precise enough for a 5e-4 target, not
    for 4e-4, where the compiler must move to N=2^15 (40-bit scale) and say why."""
    loose = ParameterRequest(depth_needed=11, slots=2048, rotation_steps=[1], headroom_bits=12, max_relative_error=5e-4)
    c = choose_parameters(TENSEAL, loose, by_scale)
    assert c.params.ring_dim == 16384 and c.params.scale_bits == 31 and c.predicted.relative <= 5e-4
    tight = ParameterRequest(depth_needed=11, slots=2048, rotation_steps=[1], headroom_bits=12, max_relative_error=4e-4)
    c = choose_parameters(TENSEAL, tight, by_scale)
    assert c.params.ring_dim == 32768 and c.params.scale_bits == 40
    assert any("N=2^14" in n and "predicted error" in n for n in c.notes)


def test_an_unreachable_precision_target_is_a_clear_error():
    req = ParameterRequest(depth_needed=11, slots=2048, rotation_steps=[1], max_relative_error=1e-30)
    with pytest.raises(CompileError, match="predicted error"):
        choose_parameters(TENSEAL, req, by_scale)


def test_too_deep_without_bootstrapping_is_a_clear_error():
    with pytest.raises(CompileError, match="needs 30 levels.*cannot bootstrap"):
        choose_parameters(TENSEAL, ParameterRequest(depth_needed=30, slots=2048, rotation_steps=[1]), exact)


def test_openfhe_bootstrapping_parameters_are_128_bit_and_accepted_by_openfhe():
    """The chain is too deep for any leveled set; the compiler takes one of OpenFHE's own
    bootstrap options, and OpenFHE (asked again here) accepts the result at 128-bit."""
    # 100 levels at a 40-bit scale exceed even N=2^17's 128-bit bound.
    req = ParameterRequest(depth_needed=100, slots=2048, rotation_steps=[1, 2, 4], headroom_bits=12, min_scale_bits=40)
    c = choose_parameters(OPENFHE, req, exact)
    p = c.params
    assert p.bootstrap is not None and c.bootstrap is not None
    assert p.security_bits() == 128 and p.ring_dim in (65536, 131072)
    assert OPENFHE.refuses(p) is None
    assert (p.scale_bits, p.first_mod_bits) == (c.bootstrap.scale_bits, c.bootstrap.first_mod_bits)
    assert c.boot_level == p.depth - p.bootstrap.depth >= 2
    assert c.keys.bootstrap_key_bytes > 0 and c.keys.fits


def test_forced_bootstrap_with_a_level_cap():
    req = ParameterRequest(depth_needed=11, slots=2048, rotation_steps=[1], headroom_bits=12,
                           force_bootstrap=True, levels_after_bootstrap=6)
    c = choose_parameters(OPENFHE, req, exact)
    assert c.params.bootstrap is not None and OPENFHE.refuses(c.params) is None
    assert c.input_level <= 6 and c.boot_level <= 6


def test_imprecise_bootstraps_are_refused_for_more_precise_ones():
    """A predictor that refuses one-pass bootstraps leaves the two-iteration options."""
    def no_single_pass(params, opt):
        return PredictedError(math.inf, math.inf) if opt is not None and opt.config.iterations == 1 else PredictedError(0, 0)
    req = ParameterRequest(depth_needed=100, slots=2048, rotation_steps=[1], headroom_bits=12, min_scale_bits=40)
    c = choose_parameters(OPENFHE, req, no_single_pass)
    assert c.params.bootstrap.iterations == 2 and OPENFHE.refuses(c.params) is None


def test_openfhe_max_depth_matches_what_openfhe_accepts():
    for n, sb in ((32768, 40), (65536, 50)):
        d = OPENFHE.max_depth(n, sb, 60)
        ok = OPENFHE.with_special_modulus(CKKSParams(ring_dim=n, depth=d, scale_bits=sb, first_mod_bits=60))
        assert OPENFHE.refuses(ok) is None and ok.security_bits() == 128
        over = OPENFHE.with_special_modulus(CKKSParams(ring_dim=n, depth=d + 1, scale_bits=sb, first_mod_bits=60))
        assert OPENFHE.refuses(over) is not None


def test_seal_key_size_formula():
    p = CKKSParams(ring_dim=65536, depth=40, insecure_test_params=True)
    # PACKING.md: about 1.8 GB per rotation key at N=2^16 with 41 primes.
    assert TENSEAL.key_switch_key_bytes(p) == 41 * 2 * 42 * 65536 * 8
    assert 1.7e9 < TENSEAL.key_switch_key_bytes(p) < 1.9e9
    assert OPENFHE.key_switch_key_bytes(p) < TENSEAL.key_switch_key_bytes(p) / 3
    assert SIM.key_switch_key_bytes(p) == 0


def test_keys_fall_back_to_powers_of_two_then_refuse():
    p = CKKSParams(ring_dim=32768, depth=16)
    one = TENSEAL.key_switch_key_bytes(p)
    steps = list(range(1, 200))
    direct = plan_keys(p, TENSEAL, steps, budget=one * 300)
    assert not direct.composed and len(direct.steps) == 199
    composed = plan_keys(p, TENSEAL, steps, budget=one * 40)
    assert composed.composed and composed.steps == power_of_two_steps(p.slots)
    with pytest.raises(CompileError, match="GiB.*budget"):
        plan_keys(p, TENSEAL, steps, budget=one * 5)


def test_key_budget_default_does_not_depend_on_the_machine(monkeypatch):
    from cryptoface.compile.parameters import DEFAULT_KEY_BUDGET, key_budget_bytes
    monkeypatch.delenv("CRYPTOFACE_KEY_MEMORY_GB", raising=False)
    assert key_budget_bytes() == DEFAULT_KEY_BUDGET
    monkeypatch.setenv("CRYPTOFACE_KEY_MEMORY_GB", "2")
    assert key_budget_bytes() == 2 * 2**30
    monkeypatch.setenv("CRYPTOFACE_KEY_MEMORY_GB", "lots")
    with pytest.raises(CompileError, match="CRYPTOFACE_KEY_MEMORY_GB"):
        key_budget_bytes()


@pytest.mark.parametrize("step", [1, 3, 7, 100, 255, 1000, 16383, 8192])
def test_naf_composes_any_step(step):
    slots = 16384
    parts = naf(step, slots)
    assert sum(parts) % slots == step % slots
    assert set(parts) <= set(power_of_two_steps(slots))
    assert len(parts) <= 8
