"""The authenticated wire format of everything a client and a server exchange.

    magic (4) | version (1) | header length (u32 LE) | header (JSON) | payload | HMAC-SHA256 (32)

The tag covers every byte before it (kind, version, header and payload) under a per-client
MAC key agreed when the client registers its key set (see `new_mac_key`). Nothing but the
magic and the version is looked at before the tag verifies, so bytes forged by anyone
without the key never reach a JSON or FHE parser. The registering client knows its key, so
after the tag the header is still parsed as hostile: bounded size and nesting, no duplicate
keys, no NaN, no huge integers; its meaning is checked by `cryptoface.headers`.
"""

from __future__ import annotations

import hmac as _hmac_compare
import json
import secrets
import struct
from typing import Any, Mapping

from cryptography.hazmat.primitives import hashes, hmac

from .errors import AuthenticationError, SerializationError

KINDS: dict[str, bytes] = {"context": b"CFCX", "ciphertext": b"CFCT"}
VERSION = 2  # 1 was the unkeyed SHA-256 format
MAC_KEY_BYTES = 32
TAG_BYTES = 32
MAX_HEADER_BYTES = 1 << 20  # a header with every rotation step of 2^16 slots fits
MAX_JSON_DEPTH = 4  # header -> params -> bootstrap -> level_budget
MAX_INT_DIGITS = 24
_PREFIX = struct.Struct("<4sBI")


def new_mac_key() -> bytes:
    """A fresh random 256-bit MAC key (one per client key set)."""
    return secrets.token_bytes(MAC_KEY_BYTES)


def check_mac_key(key: Any) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) != MAC_KEY_BYTES:
        raise SerializationError(f"a MAC key is {MAC_KEY_BYTES} bytes (use cryptoface.wire.new_mac_key())")
    return bytes(key)


def _tag(mac_key: bytes, body: bytes) -> bytes:
    h = hmac.HMAC(mac_key, hashes.SHA256())
    h.update(body)
    return h.finalize()


def seal(kind: str, header: Mapping[str, Any], payload: bytes, mac_key: bytes) -> bytes:
    """Frame `header` and `payload` as a `kind` blob and append its HMAC under `mac_key`."""
    head = json.dumps(dict(header), sort_keys=True, allow_nan=False, separators=(",", ":")).encode()
    if len(head) > MAX_HEADER_BYTES:
        raise SerializationError(f"{kind} header of {len(head)} bytes exceeds {MAX_HEADER_BYTES}")
    body = _PREFIX.pack(KINDS[kind], VERSION, len(head)) + head + bytes(payload)
    return body + _tag(check_mac_key(mac_key), body)


def unseal(data: Any, kind: str, mac_key: bytes) -> tuple[dict[str, Any], bytes]:
    """Header and payload of a `kind` blob, after its MAC verified; `SerializationError`
    (`AuthenticationError` for a wrong tag) on anything else."""
    magic = KINDS[kind]
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SerializationError(f"expected bytes for a serialized {kind}, got {type(data).__name__}")
    data = bytes(data)
    if data[:4] != magic:
        found = next((k for k, m in KINDS.items() if data[:4] == m), None)
        raise SerializationError(f"not a serialized cryptoface {kind}" + (f" (it is a {found})" if found else ""))
    if len(data) < _PREFIX.size + TAG_BYTES:
        raise SerializationError(f"truncated {kind}: {len(data)} bytes")
    _, version, head_len = _PREFIX.unpack_from(data)
    if version != VERSION:
        raise SerializationError(f"{kind} in wire format version {version}; this cryptoface reads version {VERSION}")
    body, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
    if not _hmac_compare.compare_digest(_tag(check_mac_key(mac_key), body), tag):
        raise AuthenticationError(
            f"{kind} failed authentication: altered or truncated bytes, or sealed under another MAC key"
        )
    if head_len > min(MAX_HEADER_BYTES, len(body) - _PREFIX.size):
        raise SerializationError(f"{kind} header length {head_len} exceeds the data or {MAX_HEADER_BYTES} bytes")
    head = body[_PREFIX.size : _PREFIX.size + head_len]
    return parse_json(head, f"{kind} header"), body[_PREFIX.size + head_len :]


def parse_json(raw: bytes, what: str) -> dict[str, Any]:
    """A JSON object of bounded depth, without duplicate keys, NaN or huge integers."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SerializationError(f"{what} is not UTF-8") from exc
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise SerializationError(f"{what} nests {depth} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_int=_bounded_int)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise SerializationError(f"{what} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise SerializationError(f"{what} is a JSON {type(value).__name__}, not an object")
    return value


def _json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects, counted outside strings, before json recurses."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate keys")
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _bounded_int(digits: str) -> int:
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(f"integer of {len(digits)} digits")
    return int(digits)
