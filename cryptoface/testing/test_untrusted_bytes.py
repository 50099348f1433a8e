"""Bytes from a client are hostile: they must never crash or mislead the server (every backend).

The fuzz test runs the forgeries of `forgeries.py` in a subprocess, so that a library that
crashes on some bytes fails the test with the forgery's name instead of killing pytest.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from .. import wire
from ..backend import HEContext
from ..errors import AuthenticationError, InsecureParametersError, MissingSecretKeyError, SerializationError
from ..params import CKKSParams
from .conftest import STEPS

SHORT_ROUNDS, LONG_ROUNDS = 2, 40


def run_forgeries(backend: str, rounds: int, seed: int, timeout: float) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "cryptoface.testing.forgeries", backend, "--rounds", str(rounds),
                           "--seed", str(seed)], capture_output=True, text=True, timeout=timeout)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    started = [r["start"] for r in records if "start" in r]
    assert proc.returncode == 0, (
        f"the process loading forged bytes died (exit {proc.returncode}) at forgery "
        f"{started[-1] if started else None!r}\n{proc.stderr[-2000:]}"
    )
    assert records and "done" in records[-1], proc.stderr[-2000:]
    return [r for r in records if "case" in r]


def check_outcomes(results: list[dict]) -> None:
    bad = []
    for r in results:
        out = r["outcome"]
        if r["expect"] == "mac" and out not in ("refused by the MAC", "refused: SerializationError"):
            bad.append(r)
        elif r["expect"] == "refuse" and not (out.startswith("refused") or out == "refused by the MAC"):
            bad.append(r)
        elif out.startswith("escaped") or r.get("consistent") is False or "escaped" in r.get("ops", ""):
            bad.append(r)
    assert not bad, f"{len(bad)} of {len(results)} forgeries not handled:\n" + "\n".join(map(str, bad[:10]))
    assert {r["expect"] for r in results} == {"mac", "refuse", "survive"}


def test_forged_bytes_are_refused_and_never_crash(backend_name: str) -> None:
    check_outcomes(run_forgeries(backend_name, SHORT_ROUNDS, seed=1, timeout=300))


@pytest.mark.slow
def test_forged_bytes_long_run(backend_name: str) -> None:
    check_outcomes(run_forgeries(backend_name, LONG_ROUNDS, seed=2, timeout=3600))


# ---- the properties the fuzz test samples, one by one -------------------------------------------


def test_header_is_covered_by_the_mac(ctx: HEContext, engine_cls) -> None:
    blob = ctx.public().serialize()
    header, payload = wire.unseal(blob, "context", ctx.mac_key)
    assert header["params"]["insecure_test_params"] is False
    edited = blob.replace(b'"insecure_test_params":false', b'"insecure_test_params":true ')
    assert edited != blob and len(edited) == len(blob)
    with pytest.raises(AuthenticationError):
        HEContext.deserialize_public(edited, engine_cls, mac_key=ctx.mac_key)
    with pytest.raises(AuthenticationError):
        HEContext.deserialize_public(blob, engine_cls, mac_key=wire.new_mac_key())


@pytest.mark.parametrize("raw", [b"[" * 100000 + b"]" * 100000, b'{"backend": 1}', b"{}", b"null", b'{"a": 1, "a": 1}'])
def test_malformed_headers_are_one_clear_error(ctx: HEContext, engine_cls, raw: bytes) -> None:
    from .forgeries import _raw_seal

    payload = wire.unseal(ctx.serialize_ciphertext(ctx.encrypt([0.5])), "ciphertext", ctx.mac_key)[1]
    with pytest.raises(SerializationError, match="header"):
        ctx.deserialize_ciphertext(_raw_seal("ciphertext", raw, payload, ctx.mac_key))
    with pytest.raises(SerializationError, match="header"):
        HEContext.deserialize_public(_raw_seal("context", raw, payload, ctx.mac_key), engine_cls, mac_key=ctx.mac_key)


def test_server_refuses_insecure_contexts_unless_it_opts_in(engine_cls, caplog) -> None:
    weak = CKKSParams(ring_dim=4096, depth=3, scale_bits=30, first_mod_bits=40, special_mod_bits=40, slots=8,
                      insecure_test_params=True)
    client = HEContext.create(engine_cls, weak, [1])
    blob = client.public().serialize()
    with pytest.raises(InsecureParametersError, match="insecure_test_params"):
        HEContext.deserialize_public(blob, engine_cls, mac_key=client.mac_key)
    # The client claims the same parameters are not test parameters: the security check refuses.
    header, payload = wire.unseal(blob, "context", client.mac_key)
    header["params"]["insecure_test_params"] = False
    lying = wire.seal("context", header, payload, client.mac_key)
    with pytest.raises(InsecureParametersError, match="128-bit"):
        HEContext.deserialize_public(lying, engine_cls, mac_key=client.mac_key)
    with caplog.at_level(logging.WARNING, logger="cryptoface.security"), pytest.warns(Warning, match="INSECURE"):
        server = HEContext.deserialize_public(blob, engine_cls, mac_key=client.mac_key, allow_insecure=True)
    assert "INSECURE" in caplog.text
    ct = server.deserialize_ciphertext(client.serialize_ciphertext(client.encrypt([0.5, 0.25])))
    assert np.allclose(client.decrypt(client.deserialize_ciphertext(server.serialize_ciphertext(server.add(ct, ct))))[:2],
                       [1.0, 0.5], atol=1e-3)


def _secret_payload_under_public_header(ctx: HEContext) -> bytes:
    """What a registering client can send: its full context, the header claiming no secret key."""
    header, payload = wire.unseal(ctx.serialize(), "context", ctx.mac_key)
    return wire.seal("context", dict(header, has_secret_key=False), payload, ctx.mac_key)


def test_public_only_load_refuses_any_secret_key(ctx: HEContext, engine_cls) -> None:
    x = np.random.default_rng(9).uniform(-1, 1, ctx.slots)
    ct = ctx.encrypt(x)
    # The evaluation context really cannot decrypt: try, through the checked API and the raw engine.
    server = HEContext.deserialize_public(ctx.public().serialize(), engine_cls, mac_key=ctx.mac_key)
    loaded = server.deserialize_ciphertext(ctx.serialize_ciphertext(ct))
    with pytest.raises(MissingSecretKeyError):
        server.decrypt(loaded)
    with pytest.raises(MissingSecretKeyError):
        server.engine.decrypt(loaded.raw)
    # The permissive loader, given the public bytes, finds no secret key in them either.
    permissive = HEContext.deserialize(ctx.public().serialize(), engine_cls, mac_key=ctx.mac_key)
    with pytest.raises(MissingSecretKeyError):
        permissive.engine.decrypt(permissive.deserialize_ciphertext(ctx.serialize_ciphertext(ct)).raw)
    # A client's full context is refused, honestly labelled or not...
    with pytest.raises(SerializationError, match="secret key"):
        HEContext.deserialize_public(ctx.serialize(), engine_cls, mac_key=ctx.mac_key)
    with pytest.raises(SerializationError, match="secret key"):
        HEContext.deserialize_public(_secret_payload_under_public_header(ctx), engine_cls, mac_key=ctx.mac_key)
    # ...while the permissive loader shows the forged bytes do hold a working secret key.
    with pytest.raises(SerializationError, match="contradicts its header"):
        HEContext.deserialize(_secret_payload_under_public_header(ctx), engine_cls, mac_key=ctx.mac_key)
    client = HEContext.deserialize(ctx.serialize(), engine_cls, mac_key=ctx.mac_key)
    assert np.allclose(client.decrypt(client.deserialize_ciphertext(ctx.serialize_ciphertext(ct))), x, atol=1e-5)


def test_header_claims_must_match_the_payload(ctx: HEContext, engine_cls) -> None:
    """The MAC key holder's lies about rotation keys and levels are caught by the library objects."""
    header, payload = wire.unseal(ctx.public().serialize(), "context", ctx.mac_key)
    steps = sorted({s % ctx.slots for s in STEPS})
    for claimed in (steps[1:], sorted(set(steps) | {5})):
        lying = wire.seal("context", dict(header, rotation_steps=claimed), payload, ctx.mac_key)
        with pytest.raises(SerializationError):
            HEContext.deserialize_public(lying, engine_cls, mac_key=ctx.mac_key)
    ct = ctx.rescale(ctx.mul_plain(ctx.encrypt([0.5]), [0.5]))
    header, payload = wire.unseal(ctx.serialize_ciphertext(ct), "ciphertext", ctx.mac_key)
    for edit in (dict(level=ct.level + 1), dict(scale=ct.scale * 2)):
        with pytest.raises(SerializationError, match="header says"):
            ctx.deserialize_ciphertext(wire.seal("ciphertext", dict(header, **edit), payload, ctx.mac_key))
