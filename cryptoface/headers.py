"""Strict schemas of the wire headers (`cryptoface.wire`): types, ranges, only known keys.

The MAC proves who sealed a header, not that it is sane: the client that registered a key
set knows its MAC key. So every field is checked here before anything trusts it, and every
failure is one `SerializationError` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import CryptofaceError, SerializationError
from .params import BootstrapConfig, CKKSParams

MAX_RING_DIM = 1 << 17
MAX_DEPTH = 256
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_CONTEXT_ID = re.compile(r"[0-9a-f]{32}")


def _fail(what: str, why: str) -> SerializationError:
    return SerializationError(f"invalid {what} header: {why}")


def _keys(d: Any, what: str, required: set[str], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise _fail(what, f"expected an object, got {type(d).__name__}")
    missing, unknown = required - d.keys(), d.keys() - required - optional
    if missing or unknown:
        raise _fail(what, f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    return d


def _int(d: dict, key: str, what: str, lo: int, hi: int) -> int:
    v = d[key]
    if type(v) is not int or not lo <= v <= hi:  # bool is an int subclass: refused too
        raise _fail(what, f"{key} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _bool(d: dict, key: str, what: str) -> bool:
    if type(d[key]) is not bool:
        raise _fail(what, f"{key} must be true or false, got {d[key]!r}")
    return d[key]


def _str(d: dict, key: str, what: str, pattern: re.Pattern) -> str:
    v = d[key]
    if not isinstance(v, str) or not pattern.fullmatch(v):
        raise _fail(what, f"{key} {v!r} is not of the form {pattern.pattern}")
    return v


def parse_params(d: Any, what: str = "context") -> CKKSParams:
    """`CKKSParams` from header JSON: exactly the fields `to_dict` writes, each type-checked,
    and canonical (it must survive `from_dict(...).to_dict()` unchanged)."""
    fields = {f.name for f in dataclasses.fields(CKKSParams)} - {"extra"}
    p = _keys(d, what + " params", fields)
    for key in ("ring_dim", "depth", "scale_bits", "first_mod_bits", "special_mod_bits", "slots"):
        _int(p, key, what + " params", 0, MAX_RING_DIM if key in ("ring_dim", "slots") else MAX_DEPTH)
    _bool(p, "insecure_test_params", what + " params")
    for key in fields - {"ring_dim", "depth", "scale_bits", "first_mod_bits", "special_mod_bits", "slots",
                          "insecure_test_params", "bootstrap"}:
        if not isinstance(p[key], (int, float, str, type(None))):  # fields added later: scalars only
            raise _fail(what, f"params.{key} must be a scalar")
    boot = p["bootstrap"]
    if boot is not None:
        _keys(boot, what + " params.bootstrap", {f.name for f in dataclasses.fields(BootstrapConfig)})
        if not all(isinstance(v, (int, float)) for k, v in boot.items() if k != "level_budget"):
            raise _fail(what, "params.bootstrap fields other than level_budget must be numbers")
        budget = boot["level_budget"]
        if not (isinstance(budget, list) and len(budget) == 2
                and all(type(b) is int and 1 <= b <= 16 for b in budget)):
            raise _fail(what, f"params.bootstrap.level_budget must be two integers in [1, 16], got {budget!r}")
        _int(boot, "depth", what + " params.bootstrap", 0, MAX_DEPTH)
    try:
        params = CKKSParams.from_dict(p)
    except (CryptofaceError, TypeError, ValueError) as exc:
        raise _fail(what, f"params: {exc}") from exc
    if json.loads(json.dumps(params.to_dict())) != p:
        raise _fail(what, "params are not in canonical form")
    return params


@dataclass(frozen=True)
class ContextHeader:
    backend: str
    context_id: str
    params: CKKSParams
    rotation_steps: tuple[int, ...]
    has_secret_key: bool

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "context_id": self.context_id, "params": self.params.to_dict(),
                "rotation_steps": list(self.rotation_steps), "has_secret_key": self.has_secret_key}

    @classmethod
    def from_dict(cls, d: Any) -> "ContextHeader":
        what = "context"
        _keys(d, what, {"backend", "context_id", "params", "rotation_steps", "has_secret_key"})
        params = parse_params(d["params"], what)
        steps = d["rotation_steps"]
        if not isinstance(steps, list) or len(steps) >= params.slots:
            raise _fail(what, f"rotation_steps must be a list of fewer than {params.slots} steps")
        if not all(type(s) is int and 1 <= s < params.slots for s in steps) or steps != sorted(set(steps)):
            raise _fail(what, f"rotation_steps must be distinct sorted integers in [1, {params.slots})")
        return cls(_str(d, "backend", what, _NAME), _str(d, "context_id", what, _CONTEXT_ID), params,
                   tuple(steps), _bool(d, "has_secret_key", what))


@dataclass(frozen=True)
class CiphertextHeader:
    backend: str
    context_id: str
    level: int
    scale: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any, params: CKKSParams) -> "CiphertextHeader":
        """Checked against the parameters of the context that loads it."""
        what = "ciphertext"
        _keys(d, what, {"backend", "context_id", "level", "scale"})
        scale = d["scale"]
        # A scale cannot exceed the whole modulus: 60 bits per prime at most.
        if not isinstance(scale, float) or not math.isfinite(scale) or not 1.0 < scale \
                or math.log2(scale) > 60 * (params.depth + 2):
            raise _fail(what, f"scale must be a finite float in (1, Q), got {scale!r}")
        return cls(_str(d, "backend", what, _NAME), _str(d, "context_id", what, _CONTEXT_ID),
                   _int(d, "level", what, 0, params.depth), scale)
