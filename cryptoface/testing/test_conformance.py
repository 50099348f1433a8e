"""Conformance of every registered backend to the contract in `cryptoface.backend`.

Tolerances are stated per test; with a 40-bit scale, fresh CKKS errors are about 1e-8, so
1e-5 after a few operations leaves a wide margin while still catching a wrong result.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import numpy as np
import pytest

from .. import wire
from ..backend import HEContext
from ..errors import (
    AuthenticationError,
    CapabilityError,
    ContextMismatchError,
    InsecureParametersError,
    InvalidInputError,
    LevelExhaustedError,
    LevelMismatchError,
    MissingSecretKeyError,
    RotationKeyError,
    ScaleMismatchError,
    SerializationError,
)
from ..params import HE_STD_128_MAX_LOG_QP, BootstrapConfig, CKKSParams
from ..plugins import get_plugins
from .conftest import PARAMS, STEPS, selected_backends
from .programs import poly7_then_rotate_sum, poly7_then_rotate_sum_reference

ATOL = 1e-5


@pytest.fixture()
def x() -> np.ndarray:
    return np.random.default_rng(7).uniform(-1, 1, PARAMS.slots)


@pytest.fixture()
def y() -> np.ndarray:
    return np.random.default_rng(8).uniform(-1, 1, PARAMS.slots)


@contextlib.contextmanager
def raises_exactly(error: type[Exception], match: str | None = None) -> Iterator[None]:
    """pytest.raises for exactly this class (a subclass is another error) with a message."""
    with pytest.raises(error, match=match) as info:
        yield
    assert type(info.value) is error, f"{type(info.value).__name__} raised, {error.__name__} expected"
    assert str(info.value).strip(), f"{error.__name__} without a message"


def close(a: np.ndarray, b: np.ndarray, atol: float = ATOL) -> None:
    err = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    assert err < atol, f"max abs error {err:.3g} >= {atol}"


# ---- capabilities ---------------------------------------------------------------------------


def test_backend_is_available(backend_name: str) -> None:
    info = {b.name: b for b in get_plugins().backends()}[backend_name]
    assert info.available, f"{backend_name} is registered but unavailable: {info.reason}"


def test_capabilities_are_honest(engine_cls) -> None:
    caps = engine_cls.capabilities()
    assert caps.name == engine_cls.name
    assert caps.library_version
    assert caps.rescale in ("manual", "automatic")
    for n, bits in caps.max_log_qp_128.items():
        # A backend may be stricter than the HE standard, never looser.
        assert n in HE_STD_128_MAX_LOG_QP, f"claims 128-bit at N={n}, which the standard table lacks"
        assert bits <= HE_STD_128_MAX_LOG_QP[n], f"claims {bits} bits at N={n} > standard {HE_STD_128_MAX_LOG_QP[n]}"


# ---- primitives -----------------------------------------------------------------------------


def test_encrypt_decrypt(ctx: HEContext, x) -> None:
    ct = ctx.encrypt(x)
    assert ct.level == PARAMS.depth
    assert ct.scale == pytest.approx(PARAMS.scale, rel=1e-9)
    close(ctx.decrypt(ct), x)


def test_short_vector_is_zero_padded(ctx: HEContext) -> None:
    out = ctx.decrypt(ctx.encrypt([0.5, -0.25, 1.0]))
    close(out[:3], [0.5, -0.25, 1.0])
    close(out[3:], np.zeros(PARAMS.slots - 3))


def test_add_sub(ctx: HEContext, x, y) -> None:
    a, b = ctx.encrypt(x), ctx.encrypt(y)
    close(ctx.decrypt(ctx.add(a, b)), x + y)
    close(ctx.decrypt(ctx.sub(a, b)), x - y)


def test_add_plain(ctx: HEContext, x, y) -> None:
    close(ctx.decrypt(ctx.add_plain(ctx.encrypt(x), y)), x + y)


def test_mul_plain_rescale_keeps_scale(ctx: HEContext, x, y) -> None:
    ct = ctx.mul_plain(ctx.encrypt(x), y)
    assert ct.level == PARAMS.depth
    out = ctx.rescale(ct)
    assert out.level == PARAMS.depth - 1
    assert out.scale == pytest.approx(PARAMS.scale, rel=1e-6)
    close(ctx.decrypt(out), x * y)


def test_mul_relinearize_rescale(ctx: HEContext, x, y) -> None:
    out = ctx.rescale(ctx.mul(ctx.encrypt(x), ctx.encrypt(y)))
    assert out.level == PARAMS.depth - 1
    assert out.scale == pytest.approx(PARAMS.scale, rel=1e-3)
    close(ctx.decrypt(out), x * y)
    close(ctx.decrypt(ctx.rescale(ctx.square(ctx.encrypt(x)))), x * x)


def test_exact_zero_results_are_ciphertexts(ctx: HEContext, x) -> None:
    """Zero weights make exact zeros legitimate (SEAL calls them 'transparent')."""
    a = ctx.encrypt(x)
    close(ctx.decrypt(ctx.sub(a, a)), np.zeros(PARAMS.slots))
    close(ctx.decrypt(ctx.rescale(ctx.mul_plain(a, np.zeros(PARAMS.slots)))), np.zeros(PARAMS.slots))


def test_rotate_is_cyclic_over_slots(ctx: HEContext, x) -> None:
    ct = ctx.encrypt(x)
    for step in (1, 3, 32, -1):
        close(ctx.decrypt(ctx.rotate(ct, step)), np.roll(x, -step))


def test_rotate_many_matches_rotate(ctx: HEContext, x) -> None:
    ct = ctx.encrypt(x)
    got = ctx.rotate_many(ct, [0, 1, 2, 4, 8])
    for step, r in got.items():
        close(ctx.decrypt(r), np.roll(x, -step))


def test_mod_switch_and_levels(ctx: HEContext, x) -> None:
    ct = ctx.encrypt(x)
    low = ctx.mod_switch_to(ct, 2)
    assert low.level == 2
    assert low.scale == pytest.approx(ct.scale, rel=1e-12)
    close(ctx.decrypt(low), x)
    with raises_exactly(LevelMismatchError):
        ctx.mod_switch_to(low, 3)


def test_ciphertexts_at_several_levels_compute(ctx: HEContext, x, y) -> None:
    a = ctx.rescale(ctx.mul_plain(ctx.encrypt(x), y))  # level depth-1
    b = ctx.mod_switch_to(ctx.encrypt(y), a.level)
    close(ctx.decrypt(ctx.rescale(ctx.mul(a, b))), x * y * y)


# ---- errors ---------------------------------------------------------------------------------


def test_level_exhaustion_is_a_clear_error(ctx: HEContext, x) -> None:
    ct = ctx.mod_switch_to(ctx.encrypt(x), 0)
    for op in (lambda: ctx.mul(ct, ct), lambda: ctx.mul_plain(ct, x), lambda: ctx.rescale(ct), lambda: ctx.square(ct)):
        with raises_exactly(LevelExhaustedError, match="level 0"):
            op()


def test_level_mismatch_is_refused(ctx: HEContext, x) -> None:
    a = ctx.encrypt(x)
    b = ctx.mod_switch_to(ctx.encrypt(x), PARAMS.depth - 1)
    with raises_exactly(LevelMismatchError, match="mod-switch"):
        ctx.add(a, b)
    with raises_exactly(LevelMismatchError):
        ctx.mul(a, b)
    close(ctx.decrypt(ctx.add(ctx.mod_switch_to(a, b.level), b)), 2 * x)


def test_scale_mismatch_is_refused(ctx: HEContext, x) -> None:
    a = ctx.encrypt(x)
    squared = ctx.mul(a, a)  # same level, scale^2
    with raises_exactly(ScaleMismatchError):
        ctx.add(a, squared)


def test_rotation_without_key_is_refused(ctx: HEContext, x) -> None:
    with raises_exactly(RotationKeyError, match="step 5"):
        ctx.rotate(ctx.encrypt(x), 5)


@pytest.mark.parametrize(
    "values, match",
    [
        (np.zeros(PARAMS.slots + 1), "exceeds"),
        ([1.0, float("nan")], "NaN"),
        ([float("inf")], "NaN or infinity"),
        # beyond Q / (2 scale) of a fresh ciphertext (2^289 here): no library encodes it
        ([2.0 ** (PARAMS.first_mod_bits + (PARAMS.depth - 1) * PARAMS.scale_bits)], "does not fit"),
    ],
)
def test_bad_input_is_refused(ctx: HEContext, values, match) -> None:
    with raises_exactly(InvalidInputError, match=match):
        ctx.encrypt(values)


def test_mixing_key_sets_is_refused(ctx: HEContext, other_ctx: HEContext, x) -> None:
    a, b = ctx.encrypt(x), other_ctx.encrypt(x)
    with raises_exactly(ContextMismatchError, match="another key set"):
        ctx.add(a, b)
    with raises_exactly(ContextMismatchError):
        other_ctx.decrypt(a)
    with raises_exactly(AuthenticationError):  # each key set has its own MAC key
        other_ctx.deserialize_ciphertext(ctx.serialize_ciphertext(a))
    same_mac = HEContext(other_ctx.engine, other_ctx.context_id, ctx.mac_key)
    with raises_exactly(ContextMismatchError, match="another key set"):
        same_mac.deserialize_ciphertext(ctx.serialize_ciphertext(a))


# Operations on raw library objects: the contract says `HEContext` refuses a bad call before
# the library is handed any operand of it.
ENGINE_OPERATIONS = frozenset({
    "encode", "encrypt", "decrypt", "add", "sub", "add_plain", "mul_plain", "mul", "square", "rescale",
    "mod_switch_to", "rotate", "rotate_hoisted", "bootstrap", "set_scale", "serialize_ciphertext",
    "deserialize_ciphertext",
})


class EngineSpy:
    """Stands in for an engine and records which of its methods were called."""

    def __init__(self, engine) -> None:
        self._engine, self.calls = engine, []

    def __getattr__(self, name: str):
        attr = getattr(self._engine, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)

        return call


# case -> (the error, operands made on the unspied context, the refused call)
REFUSALS = {
    "level exhausted": (LevelExhaustedError, lambda c, o, x: (c.mod_switch_to(c.encrypt(x), 0),), lambda c, a: c.rescale(a)),
    "level mismatch": (LevelMismatchError, lambda c, o, x: (c.encrypt(x), c.mod_switch_to(c.encrypt(x), PARAMS.depth - 1)),
                       lambda c, a, b: c.add(a, b)),
    "scale mismatch": (ScaleMismatchError, lambda c, o, x: (c.encrypt(x), c.mul(c.encrypt(x), c.encrypt(x))),
                       lambda c, a, b: c.add(a, b)),
    "missing rotation key": (RotationKeyError, lambda c, o, x: (c.encrypt(x),), lambda c, a: c.rotate(a, 5)),
    "NaN input": (InvalidInputError, lambda c, o, x: ([float("nan")],), lambda c, v: c.encrypt(v)),
    "too many values": (InvalidInputError, lambda c, o, x: (np.zeros(PARAMS.slots + 1),), lambda c, v: c.encrypt(v)),
    "another key set": (ContextMismatchError, lambda c, o, x: (c.encrypt(x), o.encrypt(x)), lambda c, a, b: c.mul(a, b)),
    "decrypt another key set": (ContextMismatchError, lambda c, o, x: (o.encrypt(x),), lambda c, a: c.decrypt(a)),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusals_come_before_the_library_sees_the_operands(ctx: HEContext, other_ctx: HEContext, case: str, x) -> None:
    error, make_operands, refused_call = REFUSALS[case]
    operands = make_operands(ctx, other_ctx, x)
    spy = EngineSpy(ctx.engine)
    checked = HEContext(spy, ctx.context_id, ctx.mac_key)  # type: ignore[arg-type]
    with raises_exactly(error):
        refused_call(checked, *operands)
    handed = [c for c in spy.calls if c in ENGINE_OPERATIONS]
    assert handed == [], f"the engine was handed {handed} for a refused call"


def test_engine_refuses_what_only_it_can_check(ctx: HEContext, x) -> None:
    """Bytes under a valid MAC whose payload is not the library's pass every check of
    HEContext's own; the engine must refuse them, and HEContext reports its refusal as a
    SerializationError (caused by the library's)."""
    header, payload = wire.unseal(ctx.serialize_ciphertext(ctx.encrypt(x)), "ciphertext", ctx.mac_key)
    for junk in (payload[: len(payload) // 2], b"\x00" * 64, payload[:16] + b"\xff" * (len(payload) - 16)):
        spy = EngineSpy(ctx.engine)
        checked = HEContext(spy, ctx.context_id, ctx.mac_key)  # type: ignore[arg-type]
        with pytest.raises(SerializationError) as refused:
            checked.deserialize_ciphertext(wire.seal("ciphertext", header, junk, ctx.mac_key))
        assert type(refused.value) is SerializationError and refused.value.__cause__ is not None
        assert {"check_untrusted_ciphertext", "deserialize_ciphertext"} & set(spy.calls), spy.calls


def test_mixing_backends_is_refused(ctx: HEContext, backend_name: str, x) -> None:
    from ..simulator import SimulatorEngine

    class ForeignSimulator(SimulatorEngine):
        name = "foreign-simulator"

    fctx = HEContext.create(ForeignSimulator if backend_name == "simulator" else SimulatorEngine, PARAMS, STEPS,
                            mac_key=ctx.mac_key)
    with raises_exactly(ContextMismatchError, match="backend"):
        ctx.add(ctx.encrypt(x), fctx.encrypt(x))
    with raises_exactly(ContextMismatchError, match="backend"):
        ctx.deserialize_ciphertext(fctx.serialize_ciphertext(fctx.encrypt(x)))


def test_bootstrap_or_clear_refusal(engine_cls, ctx: HEContext, x) -> None:
    if not engine_cls.capabilities().bootstrapping:
        with raises_exactly(CapabilityError):
            ctx.bootstrap(ctx.encrypt(x))
        with raises_exactly(CapabilityError):
            HEContext.create(engine_cls, _bootstrap_params(engine_cls, probe=False), STEPS)
        return
    params = _bootstrap_params(engine_cls)
    bctx = HEContext.create(engine_cls, params, [1])
    v = 0.9 * np.random.default_rng(3).uniform(-1, 1, params.slots)
    ct = bctx.mod_switch_to(bctx.encrypt(v), 0)
    out = bctx.bootstrap(ct)
    assert out.level == params.levels_after_bootstrap
    # Bootstrapping at these small test parameters gives about 1e-3..1e-4 precision.
    close(bctx.decrypt(out), v, atol=1e-2)
    again = bctx.rescale(bctx.mul_plain(out, np.full(params.slots, 0.5)))
    close(bctx.decrypt(again), 0.5 * v, atol=1e-2)


def _bootstrap_params(engine_cls, probe: bool = True) -> CKKSParams:
    budget = (2, 2)
    depth = engine_cls.bootstrap_depth(budget, PARAMS) if probe else 12
    return CKKSParams(
        ring_dim=4096, depth=depth + 3, scale_bits=50, first_mod_bits=60, special_mod_bits=60,
        slots=8, bootstrap=BootstrapConfig(level_budget=budget, depth=depth), insecure_test_params=True,
    )


# ---- security -------------------------------------------------------------------------------


def test_insecure_parameters_need_the_flag(engine_cls, caplog) -> None:
    small = dict(ring_dim=4096, depth=3, scale_bits=30, first_mod_bits=40, special_mod_bits=40, slots=8)
    with raises_exactly(InsecureParametersError, match="128-bit"):
        HEContext.create(engine_cls, CKKSParams(**small), [1])
    with caplog.at_level(logging.WARNING, logger="cryptoface.security"):
        weak = HEContext.create(engine_cls, CKKSParams(**small, insecure_test_params=True), [1])
    assert "INSECURE" in caplog.text
    close(weak.decrypt(weak.encrypt([0.5, 0.25])), [0.5, 0.25] + [0] * 6, atol=1e-3)


# ---- serialization and key separation --------------------------------------------------------


def test_ciphertext_round_trip(ctx: HEContext, x) -> None:
    ct = ctx.rescale(ctx.mul_plain(ctx.encrypt(x), x))
    back = ctx.deserialize_ciphertext(ctx.serialize_ciphertext(ct))
    assert back.level == ct.level and back.scale == pytest.approx(ct.scale)
    close(ctx.decrypt(back), x * x)


def test_corrupted_bytes_are_refused(ctx: HEContext, x) -> None:
    data = bytearray(ctx.serialize_ciphertext(ctx.encrypt(x)))
    flipped = bytes(data[:-40]) + bytes([data[-40] ^ 0xFF]) + bytes(data[-39:])
    with raises_exactly(AuthenticationError, match="authentication"):
        ctx.deserialize_ciphertext(flipped)
    with raises_exactly(AuthenticationError, match="truncated"):
        ctx.deserialize_ciphertext(bytes(data[: len(data) // 2]))
    with raises_exactly(SerializationError, match="not a serialized"):
        ctx.deserialize_ciphertext(b"garbage" * 10)
    # garbage under a valid MAC: test_engine_refuses_what_only_it_can_check


def test_server_context_cannot_decrypt(ctx: HEContext, engine_cls, x) -> None:
    """Behavioural, whatever the library's byte layout: load the evaluation context's bytes
    with the permissive loader and try to decrypt with what was loaded."""
    server = HEContext.deserialize(ctx.public().serialize(), engine_cls, mac_key=ctx.mac_key)
    assert not server.has_secret_key
    ct = server.deserialize_ciphertext(ctx.serialize_ciphertext(ctx.encrypt(x)))
    with raises_exactly(MissingSecretKeyError):
        server.decrypt(ct)
    with raises_exactly(MissingSecretKeyError):
        server.engine.decrypt(ct.raw)  # the raw library object has no key either
    client = HEContext.deserialize(ctx.serialize(), engine_cls, mac_key=ctx.mac_key)
    close(client.engine.decrypt(ct.raw), x)  # the check above can fail: the client's bytes do decrypt


def test_client_server_round_trip(ctx: HEContext, engine_cls, x, y) -> None:
    """Client encrypts, server computes with only the evaluation keys, client decrypts."""
    client = HEContext.deserialize(ctx.serialize(), engine_cls, mac_key=ctx.mac_key)
    server = HEContext.deserialize_public(client.public().serialize(), engine_cls, mac_key=client.mac_key)
    a = server.deserialize_ciphertext(client.serialize_ciphertext(client.encrypt(x)))
    b = server.deserialize_ciphertext(client.serialize_ciphertext(client.encrypt(y)))
    out = server.rotate(server.rescale(server.mul(a, b)), 1)
    result = client.decrypt(client.deserialize_ciphertext(server.serialize_ciphertext(out)))
    close(result, np.roll(x * y, -1))


# ---- a shared program -------------------------------------------------------------------------


def test_shared_program_matches_numpy(ctx: HEContext, x) -> None:
    out = ctx.decrypt(poly7_then_rotate_sum(ctx, ctx.encrypt(x), PARAMS.slots))
    close(out, poly7_then_rotate_sum_reference(x, PARAMS.slots), atol=1e-4)


def test_shared_program_agrees_across_backends(x) -> None:
    results = {}
    for name in selected_backends():
        c = HEContext.create(get_plugins().get(name), PARAMS, STEPS)
        results[name] = c.decrypt(poly7_then_rotate_sum(c, c.encrypt(x), PARAMS.slots))
    ref = poly7_then_rotate_sum_reference(x, PARAMS.slots)
    for name, r in results.items():
        close(r, ref, atol=1e-4)
    names = sorted(results)
    for a in names:
        for b in names:
            close(results[a], results[b], atol=2e-4)
