"""Checks specific to the Pyfhel backend, beyond the shared conformance suite.

They look under the adapter: SEAL's own record of a ciphertext's level, the replicas the slot
layout relies on, the real rescale primes, and the bytes of the server's context.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from cryptoface.backend import HEContext
from cryptoface.errors import (
    InsecureParametersError,
    LevelExhaustedError,
    MissingSecretKeyError,
    RotationKeyError,
    SerializationError,
)
from cryptoface.params import CKKSParams
from cryptoface.plugins import get_plugins

from cryptoface_pyfhel import PyfhelEngine
from cryptoface_pyfhel.engine import SEAL_128_MAX_LOG_QP, _sec_level, seal_level

# 128-bit at N=8192: log QP = 50 + 3*35 + 50 = 205 <= 218. 16 slots: 256 replicas over N/2.
PARAMS = CKKSParams(ring_dim=8192, depth=3, scale_bits=35, first_mod_bits=50, special_mod_bits=50, slots=16)
STEPS = (1, 5, 15)
ATOL = 1e-4


@pytest.fixture(scope="module")
def ctx() -> HEContext:
    return HEContext.create(PyfhelEngine, PARAMS, STEPS)


@pytest.fixture()
def x() -> np.ndarray:
    return np.random.default_rng(1).uniform(-1, 1, PARAMS.slots)


def close(a, b, atol: float = ATOL) -> None:
    err = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    assert err < atol, f"max abs error {err:.3g}"


def seal_level_of(ctx: HEContext, ct) -> int:
    return seal_level(ctx.engine.serialize_ciphertext(ct.raw), PARAMS.depth)


def test_registered_through_the_entry_point() -> None:
    assert get_plugins().get("pyfhel") is PyfhelEngine
    caps = PyfhelEngine.capabilities()
    assert caps.library_version.startswith("3.5.0")
    assert max(caps.max_log_qp_128) == 32768 and not caps.bootstrapping and caps.rescale == "manual"


def test_rotation_is_cyclic_over_slots_in_every_replica(ctx: HEContext, x) -> None:
    ct = ctx.encrypt(x)
    for step in STEPS:
        rotated = ctx.rotate(ct, step)
        close(ctx.decrypt(rotated), np.roll(x, -step))
        # All N/(2*slots) replicas rotate alike: the invariant that makes SEAL's N/2 rotation cyclic.
        full = ctx.engine._he.decryptFrac(rotated.raw.ctxt)
        close(full, np.tile(np.roll(x, -step), PARAMS.ring_dim // (2 * PARAMS.slots)))


def test_levels_agree_with_seal(ctx: HEContext, x) -> None:
    ct = ctx.encrypt(x)
    assert ct.level == seal_level_of(ctx, ct) == PARAMS.depth
    down = ctx.rescale(ctx.mul(ct, ct))
    assert down.level == seal_level_of(ctx, down) == PARAMS.depth - 1
    low = ctx.mod_switch_to(ct, 0)
    assert low.level == seal_level_of(ctx, low) == 0
    close(ctx.decrypt(low), x)
    with pytest.raises(LevelExhaustedError):
        ctx.engine.rescale(low.raw)  # the engine refuses on its own, not only HEContext


def test_mul_plain_rescale_keeps_the_scale_exactly(ctx: HEContext, x) -> None:
    primes = ctx.engine._he.get_qi()
    ct = ctx.encrypt(x)
    for level in range(PARAMS.depth, 0, -1):
        q = ctx.engine.rescale_divisor(level)
        assert q == primes[level] != PARAMS.scale  # the real prime, not the nominal 2^35
        assert abs(math.log2(q) - PARAMS.scale_bits) < 0.01
        ct = ctx.rescale(ctx.mul_plain(ct, np.full(PARAMS.slots, 0.9)))
        assert ct.level == level - 1
        assert ct.scale == pytest.approx(PARAMS.scale, rel=1e-12)
    close(ctx.decrypt(ct), x * 0.9**PARAMS.depth)


def test_only_the_requested_rotation_keys_exist() -> None:
    one = HEContext.create(PyfhelEngine, PARAMS, [1])
    with pytest.raises(RotationKeyError):
        one.rotate(one.encrypt([1.0]), 2)
    with pytest.raises(RotationKeyError):  # the raw engine refuses too, SEAL is never asked
        one.engine.rotate(one.encrypt([1.0]).raw, 2)
    two = HEContext.create(PyfhelEngine, PARAMS, [1, 2])
    size1 = len(one.engine._he.to_bytes_rotate_key("none"))
    size2 = len(two.engine._he.to_bytes_rotate_key("none"))
    assert 1.9 < size2 / size1 < 2.1
    # No steps: no Galois keys at all (Pyfhel's rotateKeyGen([]) would make every power of two).
    assert HEContext.create(PyfhelEngine, PARAMS, []).engine._he.is_rotate_key_empty()


def test_server_context_holds_no_secret_key(ctx: HEContext, x) -> None:
    blob = ctx.public().serialize()
    server = HEContext.deserialize_public(blob, PyfhelEngine, mac_key=ctx.mac_key)
    assert not server.has_secret_key and server.engine._he.is_secret_key_empty()
    assert ctx.engine.secret_key_bytes() not in blob
    ct = server.deserialize_ciphertext(ctx.serialize_ciphertext(ctx.encrypt(x)))
    with pytest.raises(MissingSecretKeyError):
        server.engine.decrypt(ct.raw)
    out = server.rotate(server.rescale(server.mul_plain(ct, x)), 5)
    close(ctx.decrypt(ctx.deserialize_ciphertext(server.serialize_ciphertext(out))), np.roll(x * x, -5))


def test_client_context_round_trip(ctx: HEContext, x) -> None:
    data = ctx.serialize_ciphertext(ctx.encrypt(x))
    client = HEContext.deserialize(ctx.serialize(), PyfhelEngine, mac_key=ctx.mac_key)
    assert client.has_secret_key and client.rotation_steps == ctx.rotation_steps
    close(client.decrypt(client.deserialize_ciphertext(data)), x)


def test_engine_pickles_with_its_keys(ctx: HEContext, x) -> None:
    import pickle

    server = pickle.loads(pickle.dumps(ctx.public().engine))
    assert not server.has_secret_key and server.rotation_steps == frozenset(STEPS)
    rotated = server.rotate(ctx.encrypt(x).raw, 1)
    close(ctx.engine.decrypt(rotated), np.roll(x, -1))


def test_bad_bytes_raise_instead_of_crashing(ctx: HEContext) -> None:
    """The engine raises the library's or its own parse error (the contract lets HEContext
    turn it into a SerializationError); through HEContext, under a valid MAC, it is exactly
    that, caused by the engine's error."""
    from cryptoface import wire

    engine = ctx.engine
    for junk in (b"", b"CFPYFHEL1" + b"\xff" * 40, engine.serialize()[:200]):
        with pytest.raises((ValueError, RuntimeError)):
            PyfhelEngine.deserialize(junk, PARAMS, STEPS)
    sealed = ctx.serialize_ciphertext(ctx.encrypt([0.5]))
    header, ct_bytes = wire.unseal(sealed, "ciphertext", ctx.mac_key)
    for junk in (ct_bytes[:64], ct_bytes[:100] + b"\x00" * 100, b"\x5e\xa1" + b"\xff" * 200):
        with pytest.raises((ValueError, RuntimeError)):
            engine.deserialize_ciphertext(junk)
        with pytest.raises(SerializationError) as refused:
            ctx.deserialize_ciphertext(wire.seal("ciphertext", header, junk, ctx.mac_key))
        assert type(refused.value) is SerializationError and isinstance(refused.value.__cause__, (ValueError, RuntimeError))
    # A context for other parameters does not load under these ones.
    other = CKKSParams(ring_dim=8192, depth=2, scale_bits=35, first_mod_bits=50, special_mod_bits=50, slots=16)
    other_ctx = HEContext.create(PyfhelEngine, other, [1])
    header, payload = wire.unseal(other_ctx.serialize(), "context", other_ctx.mac_key)
    header["params"]["depth"] = 3  # re-sealed by the key holder: the SEAL context bytes disagree
    forged = wire.seal("context", header, payload, other_ctx.mac_key)
    with pytest.raises(SerializationError, match="does not match the parameters"):
        HEContext.deserialize(forged, PyfhelEngine, mac_key=other_ctx.mac_key)


def test_security_level_passed_to_seal() -> None:
    from Pyfhel import Pyfhel

    assert _sec_level(PARAMS) == 128
    # The core's table (OpenFHE's extension) calls this 128-bit; SEAL's table has no N=2^16.
    big = CKKSParams(ring_dim=65536, depth=10, scale_bits=40, first_mod_bits=60, special_mod_bits=60)
    assert big.security_bits() == 128 and 65536 not in SEAL_128_MAX_LOG_QP
    with pytest.raises(InsecureParametersError, match="32768"):
        _sec_level(big)
    assert _sec_level(CKKSParams(**{**big.to_dict(), "insecure_test_params": True})) == 0
    # SEAL itself refuses N=2^16 at sec=128: Pyfhel "accepts" it only with the check off.
    status = Pyfhel().contextGen(scheme="ckks", n=65536, scale=2**40, qi_sizes=big.coeff_mod_bit_sizes, sec=128)
    assert "insecure" in status
