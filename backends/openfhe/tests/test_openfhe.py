"""OpenFHE-specific tests; the shared contract is checked by `pytest --pyargs cryptoface.testing`.

Bootstraps run at N=2^12, 8 slots, budget (2, 2), scale 2^50: insecure test parameters, a few
seconds each. Bootstrapped values agree with numpy to about 2e-3 here (measured 1e-3..5e-3), so
the tolerance is 1e-2; everything without a bootstrap is checked to 1e-5.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from cryptoface.backend import HEContext
from cryptoface.errors import (
    CapabilityError,
    DecryptionError,
    InsecureParametersError,
    MissingSecretKeyError,
    ParameterError,
    SerializationError,
)
from cryptoface.params import BootstrapConfig, CKKSParams
from cryptoface.plugins import get_plugins
from cryptoface_openfhe import OpenFHEEngine, _make_context
from cryptoface_openfhe.blob import pack_parts, unpack_parts

ATOL = 1e-5
BOOT_ATOL = 1e-2
SLOTS = 8
BUDGET = (2, 2)
LEFT = 3  # levels left after a bootstrap


def close(a, b, atol: float = ATOL) -> None:
    err = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    assert err < atol, f"max abs error {err:.3g} >= {atol}"


def small_params(**kw) -> CKKSParams:
    base = dict(ring_dim=4096, depth=4, scale_bits=40, first_mod_bits=60, slots=SLOTS, insecure_test_params=True)
    return CKKSParams(**{**base, **kw})


def boot_params() -> CKKSParams:
    bd = OpenFHEEngine.bootstrap_depth(BUDGET, small_params())
    return small_params(depth=bd + LEFT, scale_bits=50, bootstrap=BootstrapConfig(BUDGET, bd))


@pytest.fixture(scope="module")
def ctx() -> HEContext:
    return HEContext.create(OpenFHEEngine, small_params(), [1, 2, 3, 5])


@pytest.fixture(scope="module")
def bctx() -> HEContext:
    return HEContext.create(OpenFHEEngine, boot_params(), [1])


@pytest.fixture()
def x() -> np.ndarray:
    return np.random.default_rng(11).uniform(-1, 1, SLOTS)


def load_public(client: HEContext) -> HEContext:
    """The server's load (these test parameters are insecure: the loader opts in)."""
    return HEContext.deserialize_public(client.public().serialize(), OpenFHEEngine, mac_key=client.mac_key,
                                        allow_insecure=True)


def load_client(blob: bytes, client: HEContext) -> HEContext:
    return HEContext.deserialize(blob, OpenFHEEngine, mac_key=client.mac_key, allow_insecure=True)


# ---- registration and capabilities ------------------------------------------------------------


def test_registered_and_available() -> None:
    info = {b.name: b for b in get_plugins().backends()}["openfhe"]
    assert info.available, info.reason
    caps = info.capabilities
    assert caps.library == "OpenFHE" and caps.bootstrapping and caps.hoisted_rotations
    assert caps.rescale == "manual" and caps.thread_control
    assert caps.ring_dims == tuple(2**k for k in range(10, 18))
    assert set(caps.max_log_qp_128) == set(caps.ring_dims)  # values: checked against OpenFHE below


def test_bootstrap_depth_matches_openfhe() -> None:
    import openfhe

    for budget in [(1, 1), (2, 2), (3, 3), (4, 4)]:
        want = openfhe.CryptoContext.GetBootstrapDepth(list(budget), openfhe.UNIFORM_TERNARY)
        assert OpenFHEEngine.bootstrap_depth(budget, small_params()) == want


# ---- levels, scales, rescale --------------------------------------------------------------------


def test_levels_and_scales_follow_the_contract(ctx: HEContext, x) -> None:
    ct = ctx.encrypt(x)
    assert ct.level == 4 and ct.scale == 2.0**40
    sq = ctx.mul(ct, ct)
    assert sq.level == 4 and sq.scale == 2.0**80  # FIXEDMANUAL: relinearized, not rescaled
    assert sq.raw.NumberCiphertextElements() == 2
    r = ctx.rescale(sq)
    assert r.level == 3 and r.scale == 2.0**40
    close(ctx.decrypt(r), x * x)
    # a plaintext at scale^2 added to an unrescaled product
    close(ctx.decrypt(ctx.rescale(ctx.add_plain(sq, ctx.encode(x, 4, 2.0**80)))), x * x + x)


def test_plaintexts_at_every_level(ctx: HEContext, x) -> None:
    for level in range(1, 5):
        ct = ctx.mod_switch_to(ctx.encrypt(x), level)
        out = ctx.rescale(ctx.mul_plain(ct, 0.5 * x))
        assert out.level == level - 1
        close(ctx.decrypt(ctx.add_plain(out, x)), 0.5 * x * x + x)


def test_unsupported_scale_is_a_clear_error(ctx: HEContext, x) -> None:
    with pytest.raises(CapabilityError, match="FIXEDMANUAL"):
        ctx.encode(x, 4, 2.0**33)


# ---- rotations ------------------------------------------------------------------------------------


def test_hoisted_rotations_equal_plain_rotations(ctx: HEContext, x) -> None:
    for level in (4, 1):
        ct = ctx.mod_switch_to(ctx.encrypt(x), level)
        hoisted = ctx.engine.rotate_hoisted(ct.raw, [1, 2, 3, 5])
        for step, h in zip([1, 2, 3, 5], hoisted):
            plain = ctx.decrypt(ctx.rotate(ct, step))
            close(plain, np.roll(x, -step))
            close(ctx.engine.decrypt(h), plain)


# ---- bootstrapping ------------------------------------------------------------------------------


@pytest.mark.parametrize("start", [0, 1])
def test_bootstrap_matches_numpy(bctx: HEContext, start: int) -> None:
    v = 0.95 * np.random.default_rng(start).uniform(-1, 1, SLOTS)
    out = bctx.bootstrap(bctx.mod_switch_to(bctx.encrypt(v), start))
    assert out.level == bctx.params.depth - bctx.params.bootstrap.depth == LEFT
    assert out.scale == bctx.params.scale
    close(bctx.decrypt(out), v, BOOT_ATOL)
    # every level left is usable: LEFT multiplications down to level 0
    acc = out
    for _ in range(LEFT):
        acc = bctx.rescale(bctx.mul(acc, bctx.mod_switch_to(out, acc.level)))
    assert acc.level == 0
    close(bctx.decrypt(acc), v ** (LEFT + 1), BOOT_ATOL)


def test_bootstrap_above_target_level_only_drops_levels(bctx: HEContext, x) -> None:
    out = bctx.bootstrap(bctx.encrypt(x))
    assert out.level == LEFT
    close(bctx.decrypt(out), x)


def test_wrong_bootstrap_depth_is_refused() -> None:
    p = boot_params()
    d = p.to_dict()
    d.pop("bootstrap")
    bad = CKKSParams(**d, bootstrap=BootstrapConfig(BUDGET, p.bootstrap.depth - 1))
    with pytest.raises(ParameterError, match="consumes"):
        OpenFHEEngine.keygen(bad, [1])


# ---- several contexts, key maps, serialization -----------------------------------------------------


def test_several_contexts_coexist(x) -> None:
    ctxs = [HEContext.create(OpenFHEEngine, small_params(), [1]) for _ in range(3)]
    cts = [c.encrypt((i + 1) * 0.1 * x) for i, c in enumerate(ctxs)]
    for i, (c, ct) in enumerate(zip(ctxs, cts)):
        out = c.rotate(c.rescale(c.mul(ct, ct)), 1)
        close(c.decrypt(out), np.roll(((i + 1) * 0.1 * x) ** 2, -1))
    # a server deserialized next to its client, then the client dropped: keys stay
    client = ctxs[0]
    server = load_public(client)
    ct_bytes = client.serialize_ciphertext(cts[0])
    secret, mac_key = client.serialize(), client.mac_key
    del ctxs, client, cts
    gc.collect()
    ct = server.deserialize_ciphertext(ct_bytes)
    out = server.serialize_ciphertext(server.rotate(server.rescale(server.mul(ct, ct)), 1))
    client = HEContext.deserialize(secret, OpenFHEEngine, mac_key=mac_key, allow_insecure=True)
    close(client.decrypt(client.deserialize_ciphertext(out)), np.roll((0.1 * x) ** 2, -1))


def test_server_context_has_no_secret_key(ctx: HEContext, x) -> None:
    server = load_public(ctx)
    assert not server.has_secret_key
    with pytest.raises(MissingSecretKeyError):
        server.engine.decrypt(ctx.encrypt(x).raw)
    assert "sk" not in unpack_parts(ctx.public().engine.serialize(), ("meta", "cc", "pk", "mult", "auto", "sk"))


def test_fresh_process_server_has_its_keys(ctx: HEContext, tmp_path, x) -> None:
    """OpenFHE's key maps are per process: a server elsewhere must get the keys from the bytes."""
    (tmp_path / "server.ctx").write_bytes(ctx.public().serialize())
    (tmp_path / "in.ct").write_bytes(ctx.serialize_ciphertext(ctx.encrypt(x)))
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from cryptoface.backend import HEContext
        from cryptoface_openfhe import OpenFHEEngine
        d = Path({str(tmp_path)!r})
        s = HEContext.deserialize_public((d / "server.ctx").read_bytes(), OpenFHEEngine,
                                         mac_key=bytes.fromhex({ctx.mac_key.hex()!r}), allow_insecure=True)
        ct = s.deserialize_ciphertext((d / "in.ct").read_bytes())
        out = s.rotate_many(s.rescale(s.mul(ct, ct)), [1, 3])
        (d / "out1.ct").write_bytes(s.serialize_ciphertext(out[1]))
        (d / "out3.ct").write_bytes(s.serialize_ciphertext(out[3]))
        """
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=120)
    for k in (1, 3):
        got = ctx.decrypt(ctx.deserialize_ciphertext((tmp_path / f"out{k}.ct").read_bytes()))
        close(got, np.roll(x * x, -k))


def test_client_context_round_trip(ctx: HEContext, x) -> None:
    back = load_client(ctx.serialize(), ctx)
    assert back.has_secret_key and back.rotation_steps == ctx.rotation_steps
    close(back.decrypt(ctx.encrypt(x)), x)
    sq = ctx.mul(ctx.encrypt(x), ctx.encrypt(x))  # scale^2 survives serialization
    again = back.deserialize_ciphertext(ctx.serialize_ciphertext(sq))
    assert again.scale == 2.0**80 and again.level == 4
    close(back.decrypt(back.rescale(again)), x * x)


def test_bootstrap_context_round_trip(bctx: HEContext) -> None:
    server = load_public(bctx)
    v = np.linspace(-0.9, 0.9, SLOTS)
    ct = server.deserialize_ciphertext(bctx.serialize_ciphertext(bctx.mod_switch_to(bctx.encrypt(v), 0)))
    out = server.bootstrap(ct)
    assert out.level == LEFT
    close(bctx.decrypt(bctx.deserialize_ciphertext(server.serialize_ciphertext(out))), v, BOOT_ATOL)


def test_forged_payloads_raise_instead_of_crashing(ctx: HEContext, x) -> None:
    """Malformed framing is refused before OpenFHE sees a byte."""
    raw = ctx.engine.serialize_ciphertext(ctx.encrypt(x).raw)
    for bad in (raw[:16] + b"\0" * 16, raw[:-1], b"CFOF2" + b"\0" * 40, b""):
        with pytest.raises(ValueError):
            ctx.engine.deserialize_ciphertext(bad)
    inner = unpack_parts(raw, ("ct",))["ct"]
    with pytest.raises(RuntimeError):  # valid framing, truncated OpenFHE bytes: OpenFHE raises
        ctx.engine.deserialize_ciphertext(pack_parts({"ct": inner[: len(inner) // 2]}))
    with pytest.raises(SerializationError):
        load_client(ctx.serialize()[:-5] + b"xxxxx", ctx)


# Bytes that kill a process that parses them: 8 bytes of 0xff at this offset of a ciphertext's
# payload at FUZZ_PARAMS make OpenFHE abort (found by the conformance fuzz test).
_CRASH_SCRIPT = """
import sys
from cryptoface import wire
from cryptoface.backend import HEContext
from cryptoface.testing.forgeries import FUZZ_PARAMS, FUZZ_STEPS
from cryptoface_openfhe import OpenFHEEngine
from cryptoface_openfhe.blob import unpack_parts
client = HEContext.create(OpenFHEEngine, FUZZ_PARAMS, FUZZ_STEPS)
header, payload = wire.unseal(client.serialize_ciphertext(client.encrypt([0.5])), "ciphertext", client.mac_key)
bad = payload[:425] + b"\\xff" * 8 + payload[433:]
if sys.argv[1] == "bare":
    import openfhe as o
    o.DeserializeCiphertextString(unpack_parts(bad, ("ct",))["ct"], o.BINARY)
else:
    try:
        client.deserialize_ciphertext(wire.seal("ciphertext", header, bad, client.mac_key))
    except Exception as exc:
        print(type(exc).__name__, exc)
"""


def test_bytes_that_crash_openfhe_are_refused_and_the_process_lives() -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    bare = subprocess.run([sys.executable, "-c", _CRASH_SCRIPT, "bare"], capture_output=True, text=True, env=env, timeout=300)
    assert bare.returncode < 0, f"premise: these bytes should kill a bare OpenFHE parser ({bare.returncode}, {bare.stderr[-300:]})"
    guarded = subprocess.run([sys.executable, "-c", _CRASH_SCRIPT, "guarded"], capture_output=True, text=True, env=env, timeout=300)
    assert guarded.returncode == 0, f"the loading process died ({guarded.returncode}): {guarded.stderr[-500:]}"
    assert guarded.stdout.startswith("SerializationError") and "crashed with SIG" in guarded.stdout, guarded.stdout


# ---- OpenFHE's process-wide key maps: released per key set --------------------------------------------


def _tags_in_maps() -> tuple[set[str], set[str]]:
    import openfhe

    cc = openfhe.CryptoContext
    return set(cc.GetAllEvalMultKeys()), set(cc.GetAllEvalAutomorphismKeys())


def test_dropped_key_sets_leave_the_key_maps(x) -> None:
    keep = HEContext.create(OpenFHEEngine, small_params(), [1])
    server = load_public(keep)
    dropped = []
    for _ in range(4):
        c = HEContext.create(OpenFHEEngine, small_params(), [1, 2])
        s = load_public(c)
        tag = c.engine.key_tag
        assert all(tag in m for m in _tags_in_maps())
        del c, s
        gc.collect()
        dropped.append(tag)
        mult, auto = _tags_in_maps()
        assert tag not in mult and tag not in auto, "a dropped key set's keys are still in OpenFHE's maps"
        assert keep.engine.key_tag in mult and keep.engine.key_tag in auto
    ct = server.deserialize_ciphertext(keep.serialize_ciphertext(keep.encrypt(x)))
    out = server.serialize_ciphertext(server.rotate(server.rescale(server.mul(ct, ct)), 1))
    close(keep.decrypt(keep.deserialize_ciphertext(out)), np.roll(x * x, -1))
    # The server's engine shares the client's tag: the keys stay until both are gone.
    tag = keep.engine.key_tag
    del keep
    gc.collect()
    assert all(tag in m for m in _tags_in_maps())
    del server, ct
    gc.collect()
    assert not any(tag in m for m in _tags_in_maps())


def test_releases_do_not_disturb_contexts_computing_in_other_threads(x) -> None:
    keep = HEContext.create(OpenFHEEngine, small_params(), [1])
    ct = keep.encrypt(x)
    want = np.roll(x * x, -1)
    errors: list[str] = []
    stop = threading.Event()

    def compute() -> None:
        while not stop.is_set():
            try:
                got = keep.decrypt(keep.rotate(keep.rescale(keep.mul(ct, ct)), 1))
                if np.max(np.abs(got - want)) > ATOL:
                    errors.append("wrong result")
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(f"{type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=compute) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for _ in range(6):
            c = HEContext.create(OpenFHEEngine, small_params(), [1, 2])
            del c
            gc.collect()
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert not errors, errors[:3]


def test_ciphertext_from_another_key_is_refused(ctx: HEContext, x) -> None:
    other = HEContext.create(OpenFHEEngine, small_params(), [1])
    with pytest.raises(ValueError, match="another OpenFHE key"):
        ctx.engine.deserialize_ciphertext(other.engine.serialize_ciphertext(other.encrypt(x).raw))


def test_undecodable_values_are_one_clear_error(ctx: HEContext, x) -> None:
    """OpenFHE's decode refuses garbage with a RuntimeError ("approximation error is too
    high"); the engine reports it as a DecryptionError of one line. Another key's ciphertext,
    decrypted behind HEContext's key-set check, is such garbage."""
    other = HEContext.create(OpenFHEEngine, small_params(), [1])
    with pytest.raises(DecryptionError, match="approximation error is too high") as refused:
        ctx.engine.decrypt(other.encrypt(x).raw)
    assert type(refused.value) is DecryptionError and "\n" not in str(refused.value)


# ---- security ---------------------------------------------------------------------------------------


def test_openfhe_enforces_128_bit_and_refuses_rather_than_growing_the_ring() -> None:
    # log QP = 400 by the core's count (one 60-bit special prime), but OpenFHE's HYBRID P has
    # two 60-bit primes when q0 has 60 bits: 460 > 437 at N=2^14. The plan's ring is kept:
    # the engine refuses (and says why), and the compiler asks `refuses` before committing.
    p = CKKSParams(ring_dim=16384, depth=7, scale_bits=40, first_mod_bits=60, slots=64)
    with pytest.raises(InsecureParametersError, match="HYBRID"):
        _make_context(p)
    assert "HYBRID" in (OpenFHEEngine.refuses(p) or "")
    q = CKKSParams(ring_dim=16384, depth=7, scale_bits=40, first_mod_bits=50, slots=64)
    cc, dnum = _make_context(q)
    assert cc.GetRingDimension() == 16384 and dnum == 8
    assert OpenFHEEngine.refuses(q) is None


def openfhe_accepts_at_128_bit(n: int, log_q: int) -> bool:
    """Does OpenFHE's own HEStd_128_classic check accept ring n with a log_q-bit modulus? BV key
    switching (no P), so OpenFHE's log QP is exactly first_mod_bits + depth*scale_bits."""
    import openfhe as o

    if log_q <= 60:
        d, sb, fm = 0, 14, log_q
    else:
        d, sb, fm = next((d, sb, log_q - d * sb) for d in range(1, 200) for sb in range(59, 13, -1) if sb < log_q - d * sb <= 60)
    p = o.CCParamsCKKSRNS()
    p.SetMultiplicativeDepth(d)
    p.SetScalingModSize(sb)
    p.SetFirstModSize(fm)
    p.SetRingDim(n)
    p.SetBatchSize(8)
    p.SetScalingTechnique(o.FIXEDMANUAL)
    p.SetSecurityLevel(o.HEStd_128_classic)
    p.SetKeySwitchTechnique(o.BV)
    try:
        o.GenCryptoContext(p)
        return True
    except RuntimeError as exc:
        assert "does not comply" in str(exc)
        return False


def _check_security_table(ring_dims) -> None:
    caps = OpenFHEEngine.capabilities()
    for n in ring_dims:
        bound = caps.max_log_qp_128[n]
        assert openfhe_accepts_at_128_bit(n, bound) and not openfhe_accepts_at_128_bit(n, bound + 1), n


def test_security_table_is_what_openfhe_enforces_small_rings() -> None:
    """The capabilities' 128-bit bounds are OpenFHE's: it accepts each and refuses one more bit."""
    _check_security_table([n for n in OpenFHEEngine.capabilities().ring_dims if n <= 16384])


@pytest.mark.slow
def test_security_table_is_what_openfhe_enforces_large_rings() -> None:
    """The same at N = 2^15..2^17 (about 20 s)."""
    _check_security_table([n for n in OpenFHEEngine.capabilities().ring_dims if n > 16384])


def test_a_release_waits_for_running_evaluations() -> None:
    """Keys are never taken out of the maps under a running evaluation: the release is deferred."""
    from cryptoface_openfhe import _KEY_MAPS

    c = HEContext.create(OpenFHEEngine, small_params(), [1])
    tag = c.engine.key_tag
    with _KEY_MAPS.evaluating():  # as a rotation in another thread would
        del c
        gc.collect()
        assert all(tag in m for m in _tags_in_maps()), "keys removed while an evaluation held the maps"
    HEContext.create(OpenFHEEngine, small_params(), [1])  # the next change of the maps runs the release
    assert not any(tag in m for m in _tags_in_maps())
