"""TenSEAL-specific checks; the shared contract is covered by `pytest --pyargs cryptoface.testing`.

These look under the engine at the raw SEAL objects: that levels are SEAL's chain indices,
that rescale divides by the actual prime, that the tiled layout makes rotations wrap over
`slots`, and that the server's bytes hold no secret key.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from cryptoface.backend import HEContext
from cryptoface.errors import CapabilityError, MissingSecretKeyError, RotationKeyError, SerializationError
from cryptoface.params import HE_STD_128_MAX_LOG_QP, CKKSParams
from cryptoface.plugins import get_plugins
from cryptoface_tenseal import TenSEALEngine

# 128-bit: log QP = 60 + 2*40 + 60 = 200 <= 218. slots = 16 << N/2 = 4096: 256 replicas.
PARAMS = CKKSParams(ring_dim=8192, depth=2, slots=16)
STEPS = (1, 5, -1)


@pytest.fixture(scope="module")
def ctx() -> HEContext:
    return HEContext.create(TenSEALEngine, PARAMS, STEPS)


@pytest.fixture()
def x() -> np.ndarray:
    return np.random.default_rng(1).uniform(-1, 1, PARAMS.slots)


def close(a, b, atol: float = 1e-5) -> None:
    assert float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) < atol


def chain_index(ctx: HEContext, ct) -> int:
    return ctx.engine._keys.context.get_context_data(ct.raw.parms_id()).chain_index()


def test_registered_through_the_entry_point() -> None:
    assert get_plugins().get("tenseal") is TenSEALEngine


def test_import_does_not_load_tenseal() -> None:
    code = "import sys, cryptoface_tenseal; assert 'tenseal' not in sys.modules, 'eager import'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_capabilities() -> None:
    caps = TenSEALEngine.capabilities()
    assert caps.ring_dims[-1] == 32768 and 65536 not in caps.ring_dims
    for n, bits in caps.max_log_qp_128.items():
        assert bits == HE_STD_128_MAX_LOG_QP[n]  # SEAL's table is the HE standard's
    assert not caps.bootstrapping and caps.rescale == "manual"


def test_rotation_wraps_over_slots(ctx: HEContext, x) -> None:
    ct = ctx.encrypt(x)
    for step in STEPS:
        close(ctx.decrypt(ctx.rotate(ct, step)), np.roll(x, -step))
    # Only the requested keys exist (in SEAL, not just in the core's bookkeeping).
    assert ctx.engine._keys.galois_keys.size() == len(STEPS)
    with pytest.raises(RotationKeyError):
        ctx.rotate(ct, 2)


def test_levels_are_seal_chain_indices(ctx: HEContext, x) -> None:
    ct = ctx.encrypt(x)
    assert ct.level == chain_index(ctx, ct) == PARAMS.depth
    down = ctx.rescale(ctx.mul(ct, ct))
    assert down.level == chain_index(ctx, down) == PARAMS.depth - 1
    last = ctx.mod_switch_to(ct, 0)
    assert last.level == chain_index(ctx, last) == 0
    # The special prime is not a level: the key context sits one above a fresh ciphertext.
    assert ctx.engine._keys.context.key_context_data().chain_index() == PARAMS.depth + 1


def test_mul_plain_rescale_keeps_scale_exact(ctx: HEContext, x) -> None:
    ct = ctx.encrypt(x)
    for level in (PARAMS.depth, PARAMS.depth - 1):
        cd = ctx.engine._keys.context.get_context_data(ctx.engine._keys.parms_ids[level])
        assert ctx.engine.rescale_divisor(level) == float(cd.parms().coeff_modulus()[-1].value())
        assert ctx.engine.rescale_divisor(level) != PARAMS.scale  # a real prime, not 2^40
    out = ctx.rescale(ctx.mul_plain(ctx.rescale(ctx.mul_plain(ct, x)), x))
    assert out.scale == pytest.approx(PARAMS.scale, rel=1e-14)
    close(ctx.decrypt(out), x**3)


def test_exact_zero_results_are_ciphertexts(ctx: HEContext, x) -> None:
    # SEAL refuses "transparent" results; compiled programs can produce them legitimately.
    ct = ctx.encrypt(x)
    close(ctx.decrypt(ctx.sub(ct, ct)), np.zeros(PARAMS.slots))
    zero = ctx.rescale(ctx.mul_plain(ct, np.zeros(PARAMS.slots)))
    assert zero.scale == pytest.approx(PARAMS.scale, rel=1e-14)
    close(ctx.decrypt(ctx.add(zero, ctx.rescale(ctx.mul_plain(ct, x)))), x * x)


def test_add_plain_absorbs_prime_drift(ctx: HEContext, x) -> None:
    a = ctx.rescale(ctx.mul(ctx.encrypt(x), ctx.encrypt(x)))  # scale 2^80 / q: drifted
    pt = ctx.encode(x, a.level, PARAMS.scale)
    assert pt.scale != a.scale
    close(ctx.decrypt(ctx.add_plain(a, pt)), x * x + x)


def test_add_aligns_drifted_scales_without_touching_operands(ctx: HEContext, x) -> None:
    ct = ctx.encrypt(x)
    drifted = ctx.rescale(ctx.mul(ct, ct))  # 2^80 / q
    exact = ctx.rescale(ctx.mul_plain(ct, x))  # 2^40 exactly
    assert drifted.scale != exact.scale
    close(ctx.decrypt(ctx.add(exact, drifted)), 2 * x * x)  # set_scale on a copy
    assert exact.raw.scale == exact.scale and drifted.raw.scale == drifted.scale


def test_server_context_holds_no_secret(ctx: HEContext, x) -> None:
    blob = ctx.public().serialize()
    assert ctx.engine.secret_key_bytes() not in blob
    assert ctx.engine.secret_key_bytes() in ctx.serialize()
    server = HEContext.deserialize_public(blob, TenSEALEngine, mac_key=ctx.mac_key)
    assert server.engine._decryptor is None and server.engine._secret_key is None
    ct = server.deserialize_ciphertext(ctx.serialize_ciphertext(ctx.encrypt(x)))
    with pytest.raises(MissingSecretKeyError):
        server.engine.decrypt(ct.raw)
    # The server computes with its own loaded keys; the client decrypts the result.
    out = server.rescale(server.mul_plain(server.rotate(server.mul(ct, ct), 5), x))
    close(ctx.decrypt(ctx.deserialize_ciphertext(server.serialize_ciphertext(out))), np.roll(x * x, -5) * x)


def test_client_context_round_trip(ctx: HEContext, x) -> None:
    client = HEContext.deserialize(ctx.serialize(), TenSEALEngine, mac_key=ctx.mac_key)
    assert client.has_secret_key and client.rotation_steps == ctx.rotation_steps
    close(client.decrypt(client.deserialize_ciphertext(ctx.serialize_ciphertext(ctx.encrypt(x)))), x)
    close(ctx.decrypt(ctx.deserialize_ciphertext(client.serialize_ciphertext(client.encrypt(x)))), x)


def test_garbage_context_is_refused(ctx: HEContext) -> None:
    from cryptoface import wire

    meta, payload = wire.unseal(ctx.public().serialize(), "context", ctx.mac_key)
    for bad in (payload[: len(payload) // 2], payload[:40] + b"\x00" * 400, b"\x01\x00\x00\x00" + b"\xff" * 64):
        with pytest.raises(SerializationError, match="cannot load tenseal context"):
            HEContext.deserialize_public(wire.seal("context", meta, bad, ctx.mac_key), TenSEALEngine, mac_key=ctx.mac_key)


def test_ring_dim_beyond_seal_128_table_is_refused() -> None:
    # The HE standard extension covers N=2^16, SEAL's own 128-bit table does not.
    params = CKKSParams(ring_dim=65536, depth=20)
    with pytest.raises(CapabilityError, match="128-bit"):
        HEContext.create(TenSEALEngine, params, [1])


def test_client_sends_seeded_keys() -> None:
    # Key generation keeps SEAL's seeded serialization: about half the bytes of expanded
    # keys. The client does not expand its Galois keys unless it rotates itself.
    client = HEContext.create(TenSEALEngine, PARAMS, [1, 2, 3])
    assert client.engine._keys._galois_keys is None
    wire = client.public().serialize()
    server = HEContext.deserialize_public(wire, TenSEALEngine, mac_key=client.mac_key)
    assert len(wire) < 0.7 * len(server.serialize())
    again = HEContext.deserialize_public(server.serialize(), TenSEALEngine, mac_key=client.mac_key)  # expanded form loads too
    ct = again.rotate(again.deserialize_ciphertext(client.serialize_ciphertext(client.encrypt(np.arange(16.0)))), 3)
    close(client.decrypt(client.deserialize_ciphertext(again.serialize_ciphertext(ct))), np.roll(np.arange(16.0), -3))
