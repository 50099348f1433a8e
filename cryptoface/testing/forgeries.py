"""Forged contexts and ciphertexts, fed to a backend's loaders as a server would meet them.

Run `python -m cryptoface.testing.forgeries BACKEND --seed S --rounds R`: it prints one JSON
line as each forgery starts and one with its outcome, so the conformance test that runs it
in a subprocess sees a crash of the library (the process dies) and which forgery caused it.

Two attackers:
- "mac": anyone without the key set's MAC key (bit flips, truncations, header edits, a
  recomputed unkeyed checksum, another key's MAC, wrong kinds, huge lengths). Must be refused
  by the MAC or the framing: `AuthenticationError` / `SerializationError`.
- "refuse": the registering client, who knows the MAC key and re-seals what it forges
  (insecure parameters claimed secure, a secret key in a "public" context, headers that lie
  about levels, scales, steps, types; malformed or deeply nested JSON). Must be refused
  with a `CryptofaceError`.
- "survive": the same client's payload bit flips and substitutions under a valid MAC. A
  client may send garbage encrypted under its own key, so these may load; but the server must
  survive them, any error must be a `CryptofaceError`, and a loaded ciphertext must be what
  its header says and survive the operations a program runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .. import wire
from ..backend import Ciphertext, HEContext
from ..errors import AuthenticationError, CryptofaceError, SerializationError
from ..params import CKKSParams
from ..plugins import get_plugins

# 128-bit and small, so that every backend keys and loads it in well under a second.
FUZZ_PARAMS = CKKSParams(ring_dim=8192, depth=2, scale_bits=40, first_mod_bits=50, special_mod_bits=60, slots=64)
FUZZ_STEPS = (1, 2)


@dataclass(frozen=True)
class Forgery:
    name: str
    kind: str  # "context" or "ciphertext"
    data: bytes
    expect: str  # "mac", "refuse" or "survive"


def _flip(data: bytes, pos: int, bit: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


def _reseal(kind: str, header: dict, payload: bytes, key: bytes) -> bytes:
    return wire.seal(kind, header, payload, key)


def _raw_seal(kind: str, head: bytes, payload: bytes, key: bytes) -> bytes:
    """Sealed with the right key, but with header bytes that `wire.seal` would never write."""
    import hmac as h

    body = struct.pack("<4sBI", wire.KINDS[kind], wire.VERSION, len(head)) + head + payload
    return body + h.new(key, body, hashlib.sha256).digest()


def forgeries(client: HEContext, rounds: int, rng: np.random.Generator) -> Iterator[Forgery]:
    key = client.mac_key
    genuine = {
        "context": client.public().serialize(),
        "ciphertext": client.serialize_ciphertext(client.encrypt(rng.uniform(-1, 1, client.slots))),
    }
    secret_context = client.serialize()
    for kind, blob in genuine.items():
        header, payload = wire.unseal(blob, kind, key)
        other = "ciphertext" if kind == "context" else "context"
        # ---- without the MAC key ----
        for r in range(rounds):
            head_end = 9 + len(json.dumps(header, sort_keys=True, separators=(",", ":")))
            for region, pos in (("header", int(rng.integers(0, head_end))),
                                ("payload", int(rng.integers(head_end, min(len(blob) - 32, head_end + 512)))),
                                ("anywhere", int(rng.integers(0, len(blob))))):
                yield Forgery(f"{kind}: bit flip in {region} at {pos}", kind, _flip(blob, pos, int(rng.integers(8))), "mac")
            cut = int(rng.integers(0, len(blob)))
            yield Forgery(f"{kind}: truncated to {cut} bytes", kind, blob[:cut], "mac")
        yield Forgery(f"{kind}: appended byte", kind, blob + b"\0", "mac")
        yield Forgery(f"{kind}: empty", kind, b"", "mac")
        yield Forgery(f"{kind}: random bytes", kind, wire.KINDS[kind] + rng.bytes(200), "mac")
        edited = dict(header, params=dict(header["params"], insecure_test_params=True)) if kind == "context" \
            else dict(header, level=header["level"] - 1)
        head = json.dumps(edited, sort_keys=True, separators=(",", ":")).encode()
        yield Forgery(f"{kind}: header edited, MAC kept", kind,
                      struct.pack("<4sBI", wire.KINDS[kind], wire.VERSION, len(head)) + head + payload + blob[-32:], "mac")
        unkeyed = dict(edited, sha256=hashlib.sha256(payload).hexdigest())
        head = json.dumps(unkeyed, sort_keys=True).encode()
        yield Forgery(f"{kind}: unkeyed format with recomputed checksum", kind,
                      wire.KINDS[kind] + struct.pack("<I", len(head)) + head + payload, "mac")
        yield Forgery(f"{kind}: sealed under another MAC key", kind, _reseal(kind, header, payload, wire.new_mac_key()), "mac")
        huge = bytearray(blob)
        huge[5:9] = struct.pack("<I", 0xFFFFFFFF)
        yield Forgery(f"{kind}: huge header length", kind, bytes(huge), "mac")
        yield Forgery(f"{kind}: a {other} where a {kind} belongs", kind, genuine[other], "mac")
        # ---- the registering client: re-sealed with the right key ----
        yield Forgery(f"{kind}: header of a {other} (re-sealed)", kind, _raw_seal(kind, json.dumps(wire.unseal(genuine[other], other, key)[0]).encode(), payload, key), "refuse")
        for name, edit in _header_edits(kind, header):
            # SEAL's keys do not record the slot count (a packing convention, not a key property):
            # a client that lies about it garbles only its own results, so there it may load.
            expect = "survive" if name == "more slots claimed" else "refuse"
            yield Forgery(f"{kind}: {name} (re-sealed)", kind, _reseal(kind, edit, payload, key), expect)
        for name, raw in (("deeply nested JSON", b"[" * 5000 + b"]" * 5000), ("not JSON", b"{nope"),
                          ("JSON list", b"[1, 2]"), ("duplicate keys", b'{"level": 1, "level": 2}'),
                          ("not UTF-8", b'{"\xff": 1}'), ("NaN", b'{"scale": NaN}'), ("huge integer", b'{"level": 1' + b"0" * 5000 + b"}")):
            yield Forgery(f"{kind}: header {name} (re-sealed)", kind, _raw_seal(kind, raw, payload, key), "refuse")
        yield Forgery(f"{kind}: payload of a {other} (re-sealed)", kind,
                      _reseal(kind, header, wire.unseal(genuine[other], other, key)[1], key), "refuse")
        yield Forgery(f"{kind}: empty payload (re-sealed)", kind, _reseal(kind, header, b"", key), "refuse")
        for r in range(rounds):
            cut = int(rng.integers(0, len(payload)))
            yield Forgery(f"{kind}: payload truncated to {cut} (re-sealed)", kind, _reseal(kind, header, payload[:cut], key), "refuse")
            pos = int(rng.integers(0, min(len(payload), 2048))) if r % 2 == 0 else int(rng.integers(0, len(payload)))
            yield Forgery(f"{kind}: payload bit flip at {pos} (re-sealed)", kind,
                          _reseal(kind, header, _flip(payload, pos, int(rng.integers(8))), key), "survive")
            pos = int(rng.integers(0, max(1, min(len(payload), 1024) - 8)))
            big = payload[:pos] + b"\xff" * 8 + payload[pos + 8 :]
            yield Forgery(f"{kind}: huge length at {pos} in the payload (re-sealed)", kind, _reseal(kind, header, big, key), "survive")
    header, payload = wire.unseal(secret_context, "context", key)
    yield Forgery("context: secret key in a context whose header says public (re-sealed)", "context",
                  _reseal("context", dict(header, has_secret_key=False), payload, key), "refuse")
    yield Forgery("context: client context with its secret key, honestly labelled", "context", secret_context, "refuse")


def _header_edits(kind: str, header: dict) -> Iterator[tuple[str, dict]]:
    p = header["params"] if kind == "context" else None
    if kind == "context":
        yield "insecure_test_params false -> true", dict(header, params=dict(p, insecure_test_params=True))
        yield "N = 2048 claimed", dict(header, params=dict(p, ring_dim=2048, slots=64))
        yield "a deeper chain claimed", dict(header, params=dict(p, depth=p["depth"] + 1))
        yield "more slots claimed", dict(header, params=dict(p, slots=p["slots"] * 2))
        yield "another scale claimed", dict(header, params=dict(p, scale_bits=p["scale_bits"] - 5))
        yield "an extra rotation step claimed", dict(header, rotation_steps=sorted(set(header["rotation_steps"]) | {5}))
        yield "a rotation step dropped", dict(header, rotation_steps=header["rotation_steps"][1:])
        yield "secret key claimed", dict(header, has_secret_key=True)
        yield "unknown params field", dict(header, params=dict(p, extra_field=1))
        yield "ring_dim as a string", dict(header, params=dict(p, ring_dim=str(p["ring_dim"])))
        yield "steps out of range", dict(header, rotation_steps=[0, -1, 10**9])
        yield "bootstrap claimed", dict(header, params=dict(p, bootstrap={"level_budget": [1, 1], "depth": 1}))
    else:
        yield "level raised", dict(header, level=header["level"] - 1 if header["level"] else 1)
        yield "level out of range", dict(header, level=10**6)
        yield "level negative", dict(header, level=-1)
        yield "level as a boolean", dict(header, level=True)
        yield "scale doubled", dict(header, scale=header["scale"] * 2)
        yield "scale negative", dict(header, scale=-1.0)
        yield "scale huge", dict(header, scale=1e300)
        yield "context_id of another key set", dict(header, context_id="0" * 32)
    yield "backend renamed", dict(header, backend="other-backend")
    yield "unknown field", dict(header, note="hello")
    yield "field missing", {k: v for k, v in header.items() if k != "backend"}
    yield "context_id not hex", dict(header, context_id="../../etc/passwd")


def _load(server: HEContext, engine_cls, f: Forgery) -> Ciphertext | HEContext:
    if f.kind == "context":
        return HEContext.deserialize_public(f.data, engine_cls, mac_key=server.mac_key)
    return server.deserialize_ciphertext(f.data)


def _exercise(server: HEContext, ct: Ciphertext) -> str:
    """What a program does to an input: must not crash; errors are reported, not raised."""
    try:
        out = server.add(server.rotate(ct, 1), ct)
        if ct.level > 0:
            out = server.rescale(server.mul(out, out))
        server.serialize_ciphertext(out)
        return "ops ok"
    except CryptofaceError as exc:
        return f"ops refused: {type(exc).__name__}"
    except Exception as exc:  # reported: the test decides what is acceptable
        return f"ops escaped: {type(exc).__name__}: {str(exc)[:120]}"


def run(backend: str, rounds: int, seed: int, emit: Callable[[dict], None]) -> None:
    engine_cls = get_plugins().get(backend)
    client = HEContext.create(engine_cls, FUZZ_PARAMS, FUZZ_STEPS)
    server = HEContext.deserialize_public(client.public().serialize(), engine_cls, mac_key=client.mac_key)
    count = 0
    for f in forgeries(client, rounds, np.random.default_rng(seed)):
        emit({"start": f.name})
        result = {"case": f.name, "expect": f.expect}
        try:
            loaded = _load(server, engine_cls, f)
        except AuthenticationError:
            result["outcome"] = "refused by the MAC"
        except SerializationError as exc:
            result["outcome"], result["error"] = "refused: SerializationError", str(exc)[:200]
        except CryptofaceError as exc:
            result["outcome"], result["error"] = f"refused: {type(exc).__name__}", str(exc)[:200]
        except Exception as exc:
            result["outcome"], result["error"] = f"escaped: {type(exc).__name__}", str(exc)[:200]
        else:
            result["outcome"] = "accepted"
            if isinstance(loaded, Ciphertext):
                raw = server.engine
                result["consistent"] = loaded.level == raw.level(loaded.raw) and loaded.scale == raw.scale(loaded.raw)
                result["ops"] = _exercise(server, loaded)
        emit(result)
        count += 1
    emit({"done": count})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("backend")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    def emit(record: dict) -> None:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    run(args.backend, args.rounds, args.seed, emit)


if __name__ == "__main__":
    main()
