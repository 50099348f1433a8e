"""OpenFHE backend for cryptoface: CKKS (RNS) with bootstrapping, as a thin `Engine` adapter.

Why it looks the way it does:
- FIXEDMANUAL scaling: OpenFHE rescales only when asked, so the compiler's explicit rescales
  really control the library. OpenFHE treats every rescale prime as exactly 2^scale_bits, so
  scales are the nominal 2^(scale_bits*k), never drift, and `set_scale` has nothing to do.
- Batch size = `params.slots`: OpenFHE's rotations are then cyclic over the slots the plan uses.
- Bootstrapping keeps one hidden prime below level 0: OpenFHE's `EvalBootstrap` (FIXEDMANUAL)
  first multiplies by a correction factor and rescales, so it needs two towers. With that prime,
  a ciphertext at the contract's level 0 bootstraps and the level after a bootstrap is exactly
  `params.depth - GetBootstrapDepth(budget)`.
- OpenFHE keeps evaluation keys in process-wide maps keyed by the secret key's tag. Tags are
  unique per key generation, so contexts coexist; a deserialized context re-inserts its keys.
  The binding cannot drop one tag's keys, so the maps are emptied when no engine is alive.
- OpenFHE's binary deserializer can segfault on crafted bytes; every blob this module writes
  carries its own checksum, checked before OpenFHE sees the bytes (protects against corruption,
  not against a forger: authenticate the channel).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import os
import struct
import weakref
from typing import Any, Sequence

import numpy as np

from cryptoface.backend import SCALE_RTOL, Capabilities, Engine
from cryptoface.errors import (
    CapabilityError,
    InsecureParametersError,
    MissingSecretKeyError,
    ParameterError,
    ScaleMismatchError,
)
from cryptoface.params import CKKSParams
from cryptoface.plugins import hookimpl

__all__ = ["OpenFHEEngine", "OPENFHE_MAX_LOG_QP_128"]

# Largest log2(QP) OpenFHE 1.6.1 accepts at HEStd_128_classic with a uniform ternary secret,
# measured by bisection on GenCryptoContext (tests/test_openfhe.py, marked slow): one bit
# below each entry of the HE standard table, i.e. OpenFHE refuses log QP == the table value.
OPENFHE_MAX_LOG_QP_128: dict[int, int] = {
    1024: 26,
    2048: 53,
    4096: 108,
    8192: 217,
    16384: 437,
    32768: 880,
    65536: 1746,
    131072: 3522,
}

_BLOB_MAGIC = b"CFOF1"
log = logging.getLogger("cryptoface.openfhe")


def _ofhe() -> Any:
    """Import OpenFHE on first use, so that a missing library only makes the backend unavailable."""
    import openfhe

    return openfhe


# ---- integrity envelope ------------------------------------------------------------------------


def _seal(parts: dict[str, bytes]) -> bytes:
    """Length-prefixed named parts plus a SHA-256 of the whole, checked before OpenFHE parses."""
    body = b"".join(
        struct.pack("<H", len(k)) + k.encode() + struct.pack("<Q", len(v)) + v for k, v in parts.items()
    )
    return _BLOB_MAGIC + hashlib.sha256(body).digest() + body


def _unseal(data: bytes) -> dict[str, bytes]:
    data = bytes(data)
    n = len(_BLOB_MAGIC)
    if data[:n] != _BLOB_MAGIC or len(data) < n + 32:
        raise ValueError("not an OpenFHE blob written by cryptoface-openfhe")
    digest, body = data[n : n + 32], data[n + 32 :]
    if hashlib.sha256(body).digest() != digest:
        raise ValueError("OpenFHE blob checksum mismatch (corrupted bytes)")
    parts, i = {}, 0
    while i < len(body):
        (kl,) = struct.unpack_from("<H", body, i)
        key = body[i + 2 : i + 2 + kl].decode()
        (vl,) = struct.unpack_from("<Q", body, i + 2 + kl)
        start = i + 10 + kl
        parts[key] = body[start : start + vl]
        i = start + vl
    return parts


# ---- the process-wide key maps -------------------------------------------------------------------


class _KeyMaps:
    """Counts live engines; empties OpenFHE's static key maps when the last one goes.

    A hold is taken *before* keys are generated or deserialized, so a collection of an old
    engine in between cannot wipe the keys of the one being built.
    """

    live = 0

    @classmethod
    def hold(cls) -> None:
        cls.live += 1

    @classmethod
    def release(cls) -> None:
        cls.live -= 1
        if cls.live == 0:
            o = _ofhe()
            o.ClearEvalMultKeys()
            o.CryptoContext.ClearEvalAutomorphismKeys()


# ---- parameters -----------------------------------------------------------------------------------


def _chain_depth(params: CKKSParams) -> int:
    """OpenFHE's multiplicative depth: the contract's depth, plus the hidden bootstrap prime."""
    return params.depth + (1 if params.bootstrap is not None else 0)


def _make_context(params: CKKSParams) -> tuple[Any, int]:
    """A CryptoContext for `params` and the numLargeDigits (dnum) of its HYBRID key switching.

    OpenFHE enforces 128-bit security itself, on log Q plus its HYBRID special modulus P, which
    is larger than the single 60-bit special prime `CKKSParams.log_qp` assumes (two 60-bit primes
    as soon as q0 has 57+ bits). dnum is the smallest (from 3, OpenFHE's default) that OpenFHE
    accepts: fewer digits mean smaller keys and faster key switching. If no dnum fits at
    `params.ring_dim`, the parameters are refused: the ring is the plan's, never another. `params.extra["openfhe_num_large_digits"]` forces a dnum.
    """
    o = _ofhe()
    towers = _chain_depth(params) + 1
    forced = params.extra.get("openfhe_num_large_digits")
    if forced is not None:
        candidates = [int(forced)]
    else:  # not every dnum splits the towers evenly enough for OpenFHE
        candidates = [d for d in [*range(3, towers + 1), 2, 1] if d <= towers]
    refusal = ""
    ring_dim = params.ring_dim
    for dnum in candidates:
        try:
            cc = o.GenCryptoContext(_cc_params(params, ring_dim, dnum))
        except RuntimeError as exc:
            msg = str(exc).rsplit(":", 1)[-1].strip()
            if "does not comply" in msg:
                refusal = msg
                continue
            if "distribute" in msg and forced is None:  # towers do not split into dnum digits
                continue
            raise ParameterError(f"OpenFHE refuses the parameters: {msg}") from exc
        _enable(cc, params)
        return cc, dnum
    raise InsecureParametersError(
        f"OpenFHE refuses 128-bit security for depth {_chain_depth(params)} at N={ring_dim} with any "
        f"numLargeDigits ({candidates[0]}..{candidates[-1]}): its log QP counts the HYBRID special "
        f"modulus P, larger than one special prime. Use a larger ring dimension, fewer levels, or a "
        f"smaller first modulus ({refusal})"
    )


def _cc_params(params: CKKSParams, ring_dim: int, dnum: int) -> Any:
    o = _ofhe()
    p = o.CCParamsCKKSRNS()
    p.SetMultiplicativeDepth(_chain_depth(params))
    p.SetScalingModSize(params.scale_bits)
    p.SetFirstModSize(params.first_mod_bits)
    p.SetRingDim(ring_dim)
    p.SetBatchSize(params.slots)
    p.SetScalingTechnique(o.FIXEDMANUAL)
    p.SetKeySwitchTechnique(o.HYBRID)
    p.SetNumLargeDigits(dnum)
    p.SetSecretKeyDist(o.UNIFORM_TERNARY)
    # The flag only lets parameters outside the 128-bit table run; it never switches off the
    # library's check for parameters inside it (that would silently shrink the key switching).
    below_128 = params.insecure_test_params and params.security_bits() < 128
    p.SetSecurityLevel(o.HEStd_NotSet if below_128 else o.HEStd_128_classic)
    return p


def _enable(cc: Any, params: CKKSParams) -> None:
    o = _ofhe()
    for feature in (o.PKE, o.KEYSWITCH, o.LEVELEDSHE):
        cc.Enable(feature)
    if params.bootstrap is not None:
        cc.Enable(o.ADVANCEDSHE)
        cc.Enable(o.FHE)


def _has_mult_keys(cc: Any, key_tag: str) -> bool:
    try:
        cc.GetEvalMultKeyVector(key_tag)
        return True
    except RuntimeError:
        return False


def _library_version() -> str:
    try:
        return importlib.metadata.version("openfhe")
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(_ofhe(), "__version__", "unknown"))


# ---- the engine -------------------------------------------------------------------------------------


class OpenFHEEngine(Engine):
    """One keyed OpenFHE CKKS context (client with secret key, or server without)."""

    name = "openfhe"

    def __init__(
        self,
        params: CKKSParams,
        rotation_steps: Sequence[int],
        cc: Any,
        public_key: Any,
        secret_key: Any | None,
        num_large_digits: int,
    ) -> None:
        """Takes over one `_KeyMaps.hold()` that the caller already made."""
        self.params = params
        self.rotation_steps = frozenset(int(s) for s in rotation_steps)
        self.cc = cc
        self.public_key = public_key
        self._secret_key = secret_key
        self.key_tag: str = public_key.GetKeyTag()
        self.num_large_digits = num_large_digits
        weakref.finalize(self, _KeyMaps.release)

    # ---- backend-level ----------------------------------------------------------------------
    @classmethod
    def capabilities(cls) -> Capabilities:
        _ofhe()
        return Capabilities(
            name=cls.name,
            library="OpenFHE",
            library_version=_library_version(),
            ring_dims=tuple(sorted(OPENFHE_MAX_LOG_QP_128)),
            max_log_qp_128=dict(OPENFHE_MAX_LOG_QP_128),
            bootstrapping=True,
            rescale="manual",
            hoisted_rotations=True,
            thread_control=True,
            max_threads=os.cpu_count() or 1,
            max_mod_bits=60,
            key_switching="hybrid (numLargeDigits: smallest from 3 that keeps log QP within the 128-bit bound)",
            notes=(
                "scaling technique FIXEDMANUAL: rescale only when asked; scales are nominal 2^(scale_bits*k)",
                "scale_bits must be < 60 (OpenFHE), special_mod_bits is ignored: HYBRID picks its own P",
                "log QP as OpenFHE counts it includes the HYBRID special modulus P (about log Q / dnum)",
                "bootstrapping: inputs must be within [-1, 1] (the compiler prescales); sparse: only "
                "params.slots are bootstrapped; costs one hidden extra prime below level 0",
                "threads: OpenMP, set OMP_NUM_THREADS before the process starts (OMP_WAIT_POLICY=passive "
                "on loaded machines)",
                "evaluation keys live in OpenFHE's process-wide maps until no engine is alive",
            ),
        )

    @classmethod
    def bootstrap_depth(cls, level_budget: tuple[int, int], params: CKKSParams) -> int:
        o = _ofhe()
        return int(o.CryptoContext.GetBootstrapDepth(list(level_budget), o.UNIFORM_TERNARY))

    @classmethod
    def refuses(cls, params: CKKSParams) -> str | None:
        """OpenFHE enforces its own 128-bit table on log Q plus its hybrid P: ask it. And its
        bootstrap at N >= 2^16 needs a scale close to q0 (measured: 50 bits fails with "degree
        10 > correction factor 8", 59 bits with a 60-bit q0 works)."""
        if params.bootstrap is not None and params.ring_dim >= 65536 and params.first_mod_bits - params.scale_bits > 1:
            return (f"OpenFHE cannot bootstrap at N={params.ring_dim} with a {params.scale_bits}-bit scale and "
                    f"{params.first_mod_bits}-bit q0 (its correction factor); use scale_bits = first_mod_bits - 1")
        try:
            _make_context(params)
        except (InsecureParametersError, ParameterError) as exc:
            return str(exc)
        return None

    @classmethod
    def keygen(cls, params: CKKSParams, rotation_steps: Sequence[int]) -> "OpenFHEEngine":
        cls._check_bootstrap(params)
        cc, dnum = _make_context(params)
        _KeyMaps.hold()
        try:
            kp = cc.KeyGen()
            cc.EvalMultKeyGen(kp.secretKey)
            steps = sorted({int(s) for s in rotation_steps})
            if steps:
                cc.EvalRotateKeyGen(kp.secretKey, steps)
            if params.bootstrap is not None:
                cc.EvalBootstrapSetup(list(params.bootstrap.level_budget), [0, 0], params.slots)
                cc.EvalBootstrapKeyGen(kp.secretKey, params.slots)
        except BaseException:
            _KeyMaps.release()
            raise
        return cls(params, steps, cc, kp.publicKey, kp.secretKey, dnum)

    @classmethod
    def _check_bootstrap(cls, params: CKKSParams) -> None:
        if params.bootstrap is None:
            return
        true = cls.bootstrap_depth(params.bootstrap.level_budget, params)
        if params.bootstrap.depth != true:
            raise ParameterError(
                f"params.bootstrap.depth is {params.bootstrap.depth}, but OpenFHE's bootstrap with level "
                f"budget {tuple(params.bootstrap.level_budget)} consumes {true} levels"
            )

    def public(self) -> "OpenFHEEngine":
        _KeyMaps.hold()
        return OpenFHEEngine(self.params, self.rotation_steps, self.cc, self.public_key, None, self.num_large_digits)

    @property
    def has_secret_key(self) -> bool:
        return self._secret_key is not None

    def serialize(self) -> bytes:
        o = _ofhe()
        meta = {"key_tag": self.key_tag, "num_large_digits": self.num_large_digits}
        parts = {
            "meta": json.dumps(meta).encode(),
            "cc": o.Serialize(self.cc, o.BINARY),
            "pk": o.Serialize(self.public_key, o.BINARY),
            "mult": o.SerializeEvalMultKeyString(o.BINARY, self.key_tag),
        }
        if self.rotation_steps or self.params.bootstrap is not None:
            parts["auto"] = o.SerializeEvalAutomorphismKeyString(o.BINARY, self.key_tag)
        if self._secret_key is not None:
            parts["sk"] = self.secret_key_bytes()
        return _seal(parts)

    def secret_key_bytes(self) -> bytes:
        if self._secret_key is None:
            raise MissingSecretKeyError("evaluation context has no secret key")
        o = _ofhe()
        return o.Serialize(self._secret_key, o.BINARY)

    @classmethod
    def deserialize(cls, data: bytes, params: CKKSParams, rotation_steps: Sequence[int]) -> "OpenFHEEngine":
        o = _ofhe()
        parts = _unseal(data)
        meta = json.loads(parts["meta"])
        cc = o.DeserializeCryptoContextString(parts["cc"], o.BINARY)
        if cc.GetRingDimension() < params.ring_dim or cc.GetBatchSize() != params.slots:
            raise ValueError("OpenFHE context does not match the parameters in the header")
        _enable(cc, params)
        pk = o.DeserializePublicKeyString(parts["pk"], o.BINARY)
        sk = o.DeserializePrivateKeyString(parts["sk"], o.BINARY) if "sk" in parts else None
        if pk.GetKeyTag() != meta["key_tag"] or (sk is not None and sk.GetKeyTag() != meta["key_tag"]):
            raise ValueError("OpenFHE keys do not belong together (key tags differ)")
        _KeyMaps.hold()
        try:
            if _has_mult_keys(cc, meta["key_tag"]):  # loaded here already: OpenFHE will not replace
                if o.SerializeEvalMultKeyString(o.BINARY, meta["key_tag"]) != parts["mult"]:
                    raise ValueError("different keys with the same OpenFHE key tag are loaded in this process")
            else:
                o.DeserializeEvalMultKeyString(parts["mult"], o.BINARY)
            if "auto" in parts:
                o.DeserializeEvalAutomorphismKeyString(parts["auto"], o.BINARY)
            if params.bootstrap is not None:
                # Precomputations (encoding matrices) are not serialized; keys are.
                cc.EvalBootstrapSetup(list(params.bootstrap.level_budget), [0, 0], params.slots)
        except BaseException:
            _KeyMaps.release()
            raise
        return cls(params, rotation_steps, cc, pk, sk, int(meta["num_large_digits"]))

    # ---- primitives ----------------------------------------------------------------------------
    def _degree(self, scale: float) -> int:
        """The k with scale == 2^(scale_bits*k): the only scales FIXEDMANUAL can encode at."""
        k = max(1, round(math.log2(scale) / self.params.scale_bits))
        if not math.isclose(scale, self.params.scale**k, rel_tol=1e-9):
            raise CapabilityError(
                f"OpenFHE (FIXEDMANUAL) encodes at scales 2^({self.params.scale_bits}*k) only, "
                f"not 2^{math.log2(scale):.3f}"
            )
        return k

    def encode(self, values: np.ndarray, level: int, scale: float) -> Any:
        vals = np.ascontiguousarray(values, dtype=np.float64)
        return self.cc.MakeCKKSPackedPlaintext(vals, self._degree(scale), self.params.depth - level, None, self.params.slots)

    def encrypt(self, values: np.ndarray) -> Any:
        return self.cc.Encrypt(self.public_key, self.encode(values, self.params.depth, self.params.scale))

    def decrypt(self, ct: Any) -> np.ndarray:
        if self._secret_key is None:
            raise MissingSecretKeyError("OpenFHE evaluation context without secret key cannot decrypt")
        pt = self.cc.Decrypt(self._secret_key, ct)
        pt.SetLength(self.params.slots)
        return np.array(pt.GetRealPackedValue(), dtype=np.float64)

    def add(self, a: Any, b: Any) -> Any:
        return self.cc.EvalAdd(a, b)

    def sub(self, a: Any, b: Any) -> Any:
        return self.cc.EvalSub(a, b)

    def add_plain(self, ct: Any, pt: Any) -> Any:
        return self.cc.EvalAdd(ct, pt)

    def mul_plain(self, ct: Any, pt: Any) -> Any:
        return self.cc.EvalMult(ct, pt)

    def mul(self, a: Any, b: Any) -> Any:
        # EvalMult relinearizes; under FIXEDMANUAL it never rescales.
        return self.cc.EvalMult(a, b)

    def square(self, a: Any) -> Any:
        return self.cc.EvalSquare(a)

    def rescale(self, ct: Any) -> Any:
        return self.cc.Rescale(ct)

    def mod_switch_to(self, ct: Any, level: int) -> Any:
        return self.cc.LevelReduce(ct, None, self.level(ct) - level)

    def rotate(self, ct: Any, step: int) -> Any:
        return self.cc.EvalRotate(ct, step)

    def rotate_hoisted(self, ct: Any, steps: Sequence[int]) -> list[Any]:
        if len(steps) < 2:
            return [self.rotate(ct, s) for s in steps]
        digits = self.cc.EvalFastRotationPrecompute(ct)
        m = self.cc.GetCyclotomicOrder()
        return [self.cc.EvalFastRotation(ct, s, m, digits) for s in steps]

    def bootstrap(self, ct: Any) -> Any:
        p = self.params
        assert p.bootstrap is not None  # HEContext checks first
        target = p.depth - p.bootstrap.depth
        if ct.GetNoiseScaleDeg() != 1:
            raise ScaleMismatchError("bootstrap: rescale the ciphertext first (its scale is 2^(scale_bits*k), k > 1)")
        if self.level(ct) >= target:
            # Nothing to refresh: OpenFHE would return it unchanged; give the contract's level.
            return self.mod_switch_to(ct, target) if self.level(ct) > target else ct
        out = self.cc.EvalBootstrap(ct)
        if out.GetNoiseScaleDeg() == 2:  # FIXEDMANUAL leaves the last rescale to the caller
            out = self.cc.Rescale(out)
        if self.level(out) != target:
            raise RuntimeError(f"OpenFHE bootstrap returned level {self.level(out)}, expected {target}")
        return out

    def set_scale(self, ct: Any, scale: float) -> Any:
        # FIXEDMANUAL scales are exact nominal powers, so there is no drift to absorb.
        if not math.isclose(scale, self.scale(ct), rel_tol=SCALE_RTOL):
            raise ScaleMismatchError(f"OpenFHE cannot relabel scale 2^{math.log2(self.scale(ct)):.3f} as 2^{math.log2(scale):.3f}")
        return ct

    def level(self, ct: Any) -> int:
        return self.params.depth - ct.GetLevel()

    def scale(self, ct: Any) -> float:
        return float(ct.GetScalingFactor())

    def serialize_ciphertext(self, ct: Any) -> bytes:
        o = _ofhe()
        return _seal({"ct": o.Serialize(ct, o.BINARY)})

    def deserialize_ciphertext(self, data: bytes) -> Any:
        o = _ofhe()
        ct = o.DeserializeCiphertextString(_unseal(data)["ct"], o.BINARY)
        if ct.GetKeyTag() != self.key_tag:
            raise ValueError("ciphertext was encrypted under another OpenFHE key")
        if not 0 <= ct.GetLevel() <= _chain_depth(self.params) or ct.NumberCiphertextElements() != 2:
            raise ValueError("ciphertext does not fit this context (level or size)")
        return ct


# Rough single-thread seconds per op at N=2^14 and 8 towers (measured, see README), scaled by
# N log N and by the number of towers: enough for the bootstrap placer to rank choices.
_COST_2_14 = {"rotate": 0.045, "mul": 0.07, "square": 0.07, "mul_plain": 0.0033, "add": 0.0005,
              "rescale": 0.005, "bootstrap": 22.0}


@hookimpl
def cryptoface_op_cost(backend: str, op: str, level: int, ring_dim: int) -> float | None:
    if backend != OpenFHEEngine.name or op not in _COST_2_14:
        return None
    size = ring_dim * math.log2(ring_dim) / (2**14 * 14)
    return _COST_2_14[op] * size * ((level + 1) / 8 if op != "bootstrap" else 1.0)


@hookimpl
def cryptoface_register_backends(register) -> None:
    register.add(OpenFHEEngine)
