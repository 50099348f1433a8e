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
  unique per key generation, so contexts coexist; a deserialized context re-inserts its keys,
  and a key set's keys leave the maps when its last engine is dropped (`keymaps.py`).
- OpenFHE's binary deserializer can crash the process on crafted bytes. The core authenticates
  every blob (MAC) and this engine never parses a crypto context at all (it rebuilds it from the
  parameters and compares bytes); keys and ciphertexts from a peer are parsed first in a worker
  process (`parse_worker.py`, the `check_untrusted_*` hooks), then here.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import json
import logging
import math
import os
import threading
import weakref
from typing import Any, Sequence

import numpy as np

from cryptoface.backend import SCALE_RTOL, Capabilities, Engine
from cryptoface.errors import (
    CapabilityError,
    DecryptionError,
    InsecureParametersError,
    MissingSecretKeyError,
    ParameterError,
    ScaleMismatchError,
    SerializationError,
)
from cryptoface.params import CKKSParams
from cryptoface.plugins import hookimpl
from cryptoface.wire import parse_json

from . import planning
from .blob import pack_parts, unpack_parts
from .keymaps import KeyMaps
from .parse_worker import CONTEXT_PARTS, ParseWorker

__all__ = ["OpenFHEEngine", "OPENFHE_MAX_LOG_QP_128"]

# Largest log2(QP) OpenFHE 1.6.1 accepts at HEStd_128_classic with a uniform ternary secret,
# measured on GenCryptoContext (tests/test_openfhe.py checks each bound and one bit more): one bit
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

log = logging.getLogger("cryptoface.openfhe")


def _ofhe() -> Any:
    """Import OpenFHE on first use, so that a missing library only makes the backend unavailable."""
    import openfhe

    return openfhe


# ---- process-wide state: OpenFHE's key maps and the ciphertext parse worker --------------------

# One per process, because OpenFHE's key maps are one per process.
_KEY_MAPS = KeyMaps(_ofhe)
_CT_WORKER_LOCK = threading.Lock()
_CT_WORKER: list[ParseWorker] = []


def _ciphertext_worker() -> ParseWorker:
    """The persistent worker that parses peers' ciphertexts (started on first use)."""
    with _CT_WORKER_LOCK:
        if not _CT_WORKER:
            _CT_WORKER.append(ParseWorker())
            atexit.register(_CT_WORKER[0].close)
        return _CT_WORKER[0]


# ---- parameters -----------------------------------------------------------------------------------


_chain_depth = planning.chain_depth


def _make_context(params: CKKSParams, num_large_digits: int | None = None) -> tuple[Any, int]:
    """A CryptoContext for `params` and the numLargeDigits (dnum) of its HYBRID key switching.

    OpenFHE enforces 128-bit security itself, on log Q plus its HYBRID special modulus P, which
    is larger than the single 60-bit special prime `CKKSParams.log_qp` assumes (two 60-bit primes
    as soon as q0 has 57+ bits). dnum is the smallest (from 3, OpenFHE's default) that OpenFHE
    accepts: fewer digits mean smaller keys and faster key switching. If no dnum fits at
    `params.ring_dim`, the parameters are refused: the ring is the plan's, never another. `params.extra["openfhe_num_large_digits"]` forces a dnum.
    """
    o = _ofhe()
    towers = _chain_depth(params) + 1
    forced = num_large_digits if num_large_digits is not None else params.extra.get("openfhe_num_large_digits")
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
        """Takes over one `_KEY_MAPS.hold(tag)` that the caller already made."""
        self.params = params
        self.rotation_steps = frozenset(int(s) for s in rotation_steps)
        self.cc = cc
        self.public_key = public_key
        self._secret_key = secret_key
        self.key_tag: str = public_key.GetKeyTag()
        self.num_large_digits = num_large_digits
        self._cc_bytes: bytes | None = None
        weakref.finalize(self, _KEY_MAPS.release, self.key_tag)

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
                "evaluation keys live in OpenFHE's process-wide maps until the last engine of their key set is dropped",
                "bytes from a peer are parsed first in a parse worker process (OpenFHE's parser can crash on crafted bytes)",
            ),
        )

    @classmethod
    def bootstrap_depth(cls, level_budget: tuple[int, int], params: CKKSParams | None = None) -> int:
        """Levels one bootstrap pass consumes (a second iteration costs one more)."""
        o = _ofhe()
        return int(o.CryptoContext.GetBootstrapDepth(list(level_budget), o.UNIFORM_TERNARY))

    @classmethod
    def bootstrap_options(cls, ring_dim: int, slots: int) -> list:
        return planning.bootstrap_options(ring_dim, slots, cls.bootstrap_depth)

    @classmethod
    def max_depth(cls, ring_dim: int, scale_bits: int, first_mod_bits: int) -> int:
        bound = OPENFHE_MAX_LOG_QP_128.get(ring_dim, 0)
        return planning.max_chain(bound, scale_bits, first_mod_bits)

    @classmethod
    def with_special_modulus(cls, params: CKKSParams) -> CKKSParams:
        bound = OPENFHE_MAX_LOG_QP_128.get(params.ring_dim, 10**6)
        return planning.with_special_modulus(params, bound)

    @classmethod
    def key_switch_key_bytes(cls, params: CKKSParams) -> int:
        bound = OPENFHE_MAX_LOG_QP_128.get(params.ring_dim, 10**6)
        return planning.key_switch_key_bytes(params, bound)

    @classmethod
    def scale_errors(cls, params: CKKSParams) -> list[float]:
        return planning.scale_errors(params)

    @classmethod
    def refuses(cls, params: CKKSParams) -> str | None:
        """OpenFHE enforces its own 128-bit table on log Q plus its hybrid P: ask it. Its
        FIXEDMANUAL bootstrap needs q0 / scale within its correction factor (7 to 13 by ring and
        slots: "degree 10 > correction factor 9" at N=2^12; 7 is always accepted)."""
        if params.bootstrap is not None and params.first_mod_bits - params.scale_bits > 7:
            return (f"OpenFHE cannot bootstrap with a {params.scale_bits}-bit scale and a {params.first_mod_bits}-bit "
                    "q0: the gap exceeds its correction factor; see OpenFHEEngine.bootstrap_options")
        try:
            _make_context(params)
        except (InsecureParametersError, ParameterError) as exc:
            return str(exc)
        return None

    @classmethod
    def keygen(cls, params: CKKSParams, rotation_steps: Sequence[int]) -> "OpenFHEEngine":
        cls._check_bootstrap(params)
        cc, dnum = _make_context(params)
        steps = sorted({int(s) for s in rotation_steps})
        if params.bootstrap is not None:
            cc.EvalBootstrapSetup(list(params.bootstrap.level_budget), [0, 0], params.slots)
        kp = cc.KeyGen()
        tag = kp.secretKey.GetKeyTag()
        with _KEY_MAPS.changing():
            _KEY_MAPS.hold(tag)
            try:
                cc.EvalMultKeyGen(kp.secretKey)
                if steps:
                    cc.EvalRotateKeyGen(kp.secretKey, steps)
                if params.bootstrap is not None:
                    cc.EvalBootstrapKeyGen(kp.secretKey, params.slots)
            except BaseException:
                _KEY_MAPS.release(tag)
                raise
        return cls(params, steps, cc, kp.publicKey, kp.secretKey, dnum)

    @classmethod
    def _check_bootstrap(cls, params: CKKSParams) -> None:
        if params.bootstrap is None:
            return
        b = params.bootstrap
        if b.iterations not in (1, 2):
            raise ParameterError(f"OpenFHE bootstraps in 1 or 2 iterations, not {b.iterations}")
        true = cls.bootstrap_depth(b.level_budget, params) + b.iterations - 1
        if b.depth != true:
            raise ParameterError(
                f"params.bootstrap.depth is {b.depth}, but OpenFHE's bootstrap with level "
                f"budget {tuple(b.level_budget)} and {b.iterations} iteration(s) consumes {true} levels"
            )

    def public(self) -> "OpenFHEEngine":
        _KEY_MAPS.hold(self.key_tag)
        return OpenFHEEngine(self.params, self.rotation_steps, self.cc, self.public_key, None, self.num_large_digits)

    @property
    def has_secret_key(self) -> bool:
        return self._secret_key is not None

    def serialize(self) -> bytes:
        o = _ofhe()
        meta = {"key_tag": self.key_tag, "num_large_digits": self.num_large_digits}
        parts = {"meta": json.dumps(meta).encode(), "cc": o.Serialize(self.cc, o.BINARY),
                 "pk": o.Serialize(self.public_key, o.BINARY)}
        with _KEY_MAPS.evaluating():
            parts["mult"] = o.SerializeEvalMultKeyString(o.BINARY, self.key_tag)
            if self.rotation_steps or self.params.bootstrap is not None:
                parts["auto"] = o.SerializeEvalAutomorphismKeyString(o.BINARY, self.key_tag)
        if self._secret_key is not None:
            parts["sk"] = self.secret_key_bytes()
        return pack_parts(parts)

    def secret_key_bytes(self) -> bytes:
        if self._secret_key is None:
            raise MissingSecretKeyError("evaluation context has no secret key")
        o = _ofhe()
        return o.Serialize(self._secret_key, o.BINARY)

    @classmethod
    def _context_parts(cls, data: bytes, params: CKKSParams, steps: Sequence[int],
                       public_only: bool) -> tuple[dict[str, bytes], str, int, Any]:
        """The parts of a context blob, its key tag and dnum, and the crypto context its
        parameters make: the peer's crypto context bytes are compared with it, never parsed."""
        parts = unpack_parts(data, CONTEXT_PARTS)
        if public_only and "sk" in parts:
            raise ValueError("context holds a secret key")
        needed = {"meta", "cc", "pk", "mult"} | ({"auto"} if steps or params.bootstrap is not None else set())
        if needed - parts.keys() or parts.keys() - needed - {"sk"}:
            raise ValueError(f"context has parts {sorted(parts)}, expected {sorted(needed)}")
        meta = parse_json(parts["meta"], "OpenFHE context meta")
        tag, dnum = meta.get("key_tag"), meta.get("num_large_digits")
        if (set(meta) != {"key_tag", "num_large_digits"} or not isinstance(tag, str) or not 1 <= len(tag) <= 128
                or type(dnum) is not int or not 1 <= dnum <= _chain_depth(params) + 1):
            raise ValueError("malformed OpenFHE context meta")
        cc, dnum = _make_context(params, dnum)
        if _ofhe().Serialize(cc, _ofhe().BINARY) != parts["cc"]:
            raise ValueError("the crypto context is not the one its parameters make (ring, chain, security level)")
        return parts, tag, dnum, cc

    @classmethod
    def check_untrusted_context(cls, data: bytes, params: CKKSParams, rotation_steps: Sequence[int]) -> None:
        """Keys parsed and exercised by a fresh worker process sized for them."""
        steps = sorted(int(s) for s in rotation_steps)
        try:
            _, tag, _, _ = cls._context_parts(bytes(data), params, steps, public_only=False)
        except ValueError as exc:
            raise SerializationError(f"cannot load openfhe context: {exc}") from exc
        worker = ParseWorker(memory_bytes=(4 << 30) + 8 * len(data))
        try:
            expect = {"key_tag": tag, "steps": steps, "slots": params.slots, "bootstrap": params.bootstrap is not None}
            worker.check("context", expect, {"data": bytes(data)})
        finally:
            worker.close()

    @classmethod
    def deserialize(cls, data: bytes, params: CKKSParams, rotation_steps: Sequence[int], *,
                    public_only: bool = False) -> "OpenFHEEngine":
        o = _ofhe()
        steps = sorted(int(s) for s in rotation_steps)
        parts, tag, dnum, cc = cls._context_parts(bytes(data), params, steps, public_only)
        pk = o.DeserializePublicKeyString(parts["pk"], o.BINARY)
        sk = o.DeserializePrivateKeyString(parts["sk"], o.BINARY) if "sk" in parts else None
        if pk.GetKeyTag() != tag or (sk is not None and sk.GetKeyTag() != tag):
            raise ValueError("OpenFHE keys do not belong together (key tags differ)")
        if params.bootstrap is not None:  # precomputations (encoding matrices) are not serialized
            cc.EvalBootstrapSetup(list(params.bootstrap.level_budget), [0, 0], params.slots)
        with _KEY_MAPS.changing():
            if _KEY_MAPS.held(tag):  # loaded here already: the same keys, or a forgery of this tag
                same = o.SerializeEvalMultKeyString(o.BINARY, tag) == parts["mult"] and (
                    "auto" not in parts or o.SerializeEvalAutomorphismKeyString(o.BINARY, tag) == parts["auto"])
                if not same:
                    raise ValueError("different keys with the same OpenFHE key tag are loaded in this process")
                _KEY_MAPS.hold(tag)
            else:
                _KEY_MAPS.hold(tag)
                try:
                    o.DeserializeEvalMultKeyString(parts["mult"], o.BINARY)
                    if "auto" in parts:
                        o.DeserializeEvalAutomorphismKeyString(parts["auto"], o.BINARY)
                    _check_loaded_keys(cc, tag, steps, params)
                except BaseException:
                    _KEY_MAPS.release(tag)
                    raise
        return cls(params, steps, cc, pk, sk, dnum)

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
        try:
            pt = self.cc.Decrypt(self._secret_key, ct)
            pt.SetLength(self.params.slots)
            return np.array(pt.GetRealPackedValue(), dtype=np.float64)
        except RuntimeError as exc:
            if "approximation error is too high" in str(exc):  # OpenFHE's decode check
                raise DecryptionError(
                    "decryption gave no usable values (OpenFHE: approximation error is too high): they outgrew "
                    "what the modulus holds, or the ciphertext is another key's"
                ) from None
            raise DecryptionError(f"OpenFHE could not decrypt: {str(exc).strip().splitlines()[-1]}") from None

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
        with _KEY_MAPS.evaluating():
            return self.cc.EvalMult(a, b)

    def square(self, a: Any) -> Any:
        with _KEY_MAPS.evaluating():
            return self.cc.EvalSquare(a)

    def rescale(self, ct: Any) -> Any:
        return self.cc.Rescale(ct)

    def mod_switch_to(self, ct: Any, level: int) -> Any:
        return self.cc.LevelReduce(ct, None, self.level(ct) - level)

    def rotate(self, ct: Any, step: int) -> Any:
        with _KEY_MAPS.evaluating():
            return self.cc.EvalRotate(ct, step)

    def rotate_hoisted(self, ct: Any, steps: Sequence[int]) -> list[Any]:
        if len(steps) < 2:
            return [self.rotate(ct, s) for s in steps]
        digits = self.cc.EvalFastRotationPrecompute(ct)
        m = self.cc.GetCyclotomicOrder()
        with _KEY_MAPS.evaluating():
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
        with _KEY_MAPS.evaluating():
            if p.bootstrap.iterations > 1:  # the second pass corrects the first's error
                out = self.cc.EvalBootstrap(ct, p.bootstrap.iterations, planning.BOOT_FIRST_PASS_BITS)
            else:
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
        return pack_parts({"ct": o.Serialize(ct, o.BINARY)})

    def _crypto_context_bytes(self) -> bytes:
        if self._cc_bytes is None:
            o = _ofhe()
            self._cc_bytes = o.Serialize(self.cc, o.BINARY)
        return self._cc_bytes

    def check_untrusted_ciphertext(self, data: bytes) -> None:
        """Parsed and exercised first by this process's persistent ciphertext worker."""
        try:
            inner = unpack_parts(data, ("ct",))["ct"]
        except (ValueError, KeyError) as exc:
            raise SerializationError(f"corrupted OpenFHE ciphertext: {exc}") from exc
        expect = {"key_tag": self.key_tag, "slots": self.params.slots, "max_level": _chain_depth(self.params)}
        _ciphertext_worker().check("ciphertext", expect, {"data": inner, "cc": self._crypto_context_bytes()})

    def deserialize_ciphertext(self, data: bytes) -> Any:
        o = _ofhe()
        ct = o.DeserializeCiphertextString(unpack_parts(data, ("ct",))["ct"], o.BINARY)
        if ct.GetKeyTag() != self.key_tag:
            raise ValueError("ciphertext was encrypted under another OpenFHE key")
        if (not 0 <= ct.GetLevel() <= _chain_depth(self.params) or ct.NumberCiphertextElements() != 2
                or ct.GetSlots() != self.params.slots or ct.GetNoiseScaleDeg() not in (1, 2)):
            raise ValueError("ciphertext does not fit this context (level, size, slots or scale degree)")
        if o.Serialize(ct.GetCryptoContext(), o.BINARY) != self._crypto_context_bytes():
            raise ValueError("ciphertext carries another crypto context")
        return ct


def _check_loaded_keys(cc: Any, tag: str, steps: Sequence[int], params: CKKSParams) -> None:
    """The maps now hold a relinearization key and exactly the header's rotation keys for
    `tag` (bootstrapping adds its own rotations)."""
    if not _has_mult_keys(cc, tag):
        raise ValueError("no relinearization key for the context's key tag")
    have = set(cc.GetExistingEvalAutomorphismKeyIndices(tag))
    want = set(cc.FindAutomorphismIndices(list(steps))) if steps else set()
    if not (want <= have if params.bootstrap is not None else want == have):
        raise ValueError(f"rotation keys for {len(have)} automorphisms, the header's steps need {len(want)}")


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
