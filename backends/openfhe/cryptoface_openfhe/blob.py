"""The payload layout of this backend's blobs: named parts, length-prefixed.

Authentication is the core's (`cryptoface.wire`); this layer only refuses malformed framing
(unknown or repeated names, lengths past the end) before any part reaches OpenFHE.
"""

from __future__ import annotations

import struct

MAGIC = b"CFOF2"
_NAME = struct.Struct("<H")
_SIZE = struct.Struct("<Q")


def pack_parts(parts: dict[str, bytes]) -> bytes:
    out = [MAGIC]
    for name, value in parts.items():
        key = name.encode()
        out += [_NAME.pack(len(key)), key, _SIZE.pack(len(value)), bytes(value)]
    return b"".join(out)


def unpack_parts(data: bytes, allowed: tuple[str, ...]) -> dict[str, bytes]:
    data = bytes(data)
    if not data.startswith(MAGIC):
        raise ValueError("not an OpenFHE blob written by cryptoface-openfhe")
    parts: dict[str, bytes] = {}
    pos = len(MAGIC)
    while pos < len(data):
        if pos + _NAME.size > len(data):
            raise ValueError("truncated part name")
        (n,) = _NAME.unpack_from(data, pos)
        name = data[pos + _NAME.size : pos + _NAME.size + n].decode("ascii", "replace")
        if name not in allowed or name in parts:
            raise ValueError(f"unknown or repeated part {name[:32]!r}")
        pos += _NAME.size + n
        if pos + _SIZE.size > len(data):
            raise ValueError(f"truncated part {name!r}")
        (size,) = _SIZE.unpack_from(data, pos)
        pos += _SIZE.size
        if size > len(data) - pos:
            raise ValueError(f"part {name!r} claims {size} bytes, {len(data) - pos} remain")
        parts[name] = data[pos : pos + size]
        pos += size
    return parts
