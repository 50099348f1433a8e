"""Parameter selection, key memory prediction, rotation composition."""

import pytest

from cryptoface.backend import Capabilities
from cryptoface.compile.parameters import (
    choose_parameters, key_switch_key_bytes, naf, plan_keys, power_of_two_steps,
)
from cryptoface.errors import CompileError
from cryptoface.params import CKKSParams

SEAL = Capabilities("seal-like", "SEAL", "4", (8192, 16384, 32768), {8192: 218, 16384: 438, 32768: 881},
                    False, "manual", False, False)
FHE = Capabilities("boot-like", "OpenFHE", "1", (32768, 65536), {32768: 881, 65536: 1747},
                   True, "manual", True, True, key_switching="hybrid (dnum=3)")


def test_smallest_ring_for_the_depth():
    c = choose_parameters(SEAL, depth_needed=7, slots=2048, rotation_steps=[1, 2, 3])
    assert c.params.ring_dim == 16384 and c.params.depth == 7 and c.params.security_bits() == 128
    c = choose_parameters(SEAL, depth_needed=12, slots=2048, rotation_steps=[1])
    assert c.params.ring_dim == 32768 and c.boot_level is None


def test_too_deep_without_bootstrapping_is_a_clear_error():
    with pytest.raises(CompileError, match="needs 30 levels.*at most 19.*cannot bootstrap"):
        choose_parameters(SEAL, depth_needed=30, slots=2048, rotation_steps=[1])


def test_bootstrapping_backend_gets_a_bootstrap_config():
    c = choose_parameters(FHE, depth_needed=45, slots=16384, rotation_steps=[1], bootstrap_depth=lambda b, p: 14,
                          key_budget=2**40)
    assert c.params.bootstrap is not None and c.params.bootstrap.depth == 14
    assert c.params.ring_dim == 65536 and c.params.security_bits() == 128
    assert c.boot_level == c.params.depth - 14 > 2


def test_seal_key_size_formula():
    p = CKKSParams(ring_dim=65536, depth=40, insecure_test_params=True)
    # PACKING.md: about 1.8 GB per rotation key at N=2^16 with 41 primes.
    assert key_switch_key_bytes(p, SEAL) == 41 * 2 * 42 * 65536 * 8
    assert 1.7e9 < key_switch_key_bytes(p, SEAL) < 1.9e9
    assert key_switch_key_bytes(p, FHE) < key_switch_key_bytes(p, SEAL) / 3


def test_keys_fall_back_to_powers_of_two_then_refuse():
    p = CKKSParams(ring_dim=32768, depth=16)
    one = key_switch_key_bytes(p, SEAL)
    steps = list(range(1, 200))
    direct = plan_keys(p, SEAL, steps, budget=one * 300)
    assert not direct.composed and len(direct.steps) == 199
    composed = plan_keys(p, SEAL, steps, budget=one * 40)
    assert composed.composed and composed.steps == power_of_two_steps(p.slots)
    with pytest.raises(CompileError, match="GiB.*budget"):
        plan_keys(p, SEAL, steps, budget=one * 5)


@pytest.mark.parametrize("step", [1, 3, 7, 100, 255, 1000, 16383, 8192])
def test_naf_composes_any_step(step):
    slots = 16384
    parts = naf(step, slots)
    assert sum(parts) % slots == step % slots
    assert set(parts) <= set(power_of_two_steps(slots))
    assert len(parts) <= 8


def test_hybrid_key_switching_leaves_room_for_p():
    from cryptoface.compile.parameters import _levels_at, log_qp
    d = _levels_at(65536, FHE, 50)
    assert log_qp(d, FHE, 50, bound=1747) <= 1747 < log_qp(d + 1, FHE, 50, bound=1747)
    # more digits make P smaller: a chain fits that OpenFHE's default 3 digits would not
    assert log_qp(d, FHE, 50, bound=1747) < log_qp(d, FHE, 50)
