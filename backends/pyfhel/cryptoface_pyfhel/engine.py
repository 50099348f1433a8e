"""`PyfhelEngine`: the cryptoface backend contract on Pyfhel 3.5.0 (Microsoft SEAL 4.1).

Pyfhel is all-manual CKKS over SEAL, which suits the contract (the compiler emits every
rescale and mod-switch), but three of its habits need care, and this adapter is mostly that:

- Levels. `PyCtxt.mod_level` is a Python-side counter that rescale does not move and
  serialization drops, so each raw ciphertext carries its own level here (`PyfhelCiphertext`),
  and a deserialized one takes its level from SEAL's own header (primes left in the data).
- Slots. SEAL rotates over N/2 slots; the contract rotates cyclically over `params.slots`.
  Vectors are replicated N/(2*slots) times, so a rotation over N/2 is the cyclic rotation over
  `slots` in every replica; decryption returns the first replica.
- Crashes. Pyfhel silently generates missing relinearization/rotation keys (which needs the
  secret key) and mutates operands in place by default; a failed add once corrupted the heap.
  Every operation here works on copies (`in_new_ctxt=True`) and checks levels, keys and
  scales before SEAL sees the operands, even though `HEContext` already did.
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Any, Sequence

import numpy as np
from cryptoface.backend import Capabilities, Engine
from cryptoface.errors import (
    InsecureParametersError,
    LevelExhaustedError,
    LevelMismatchError,
    MissingSecretKeyError,
    ParameterError,
    RotationKeyError,
)
from cryptoface.params import CKKSParams

# SEAL's own 128-bit table (seal/util/hestdparms.h, the HE standard's Table 1): it stops at
# N = 2^15. `contextGen(sec=128)` enforces exactly this; N = 2^16 runs only with sec=0, which
# switches SEAL's security check off, so this backend never claims 128-bit there.
SEAL_128_MAX_LOG_QP: dict[int, int] = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
RING_DIMS = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
NO_COMPRESSION = "none"  # this build has zlib/zstd off; Pyfhel's default "zstd" silently means none

_FORMAT = b"CFPYFHEL1"
_SECTIONS = ("context", "public_key", "relin_key", "rotate_key", "secret_key")
_SEAL_MAGIC = 0xA15E
# SEAL 4.1 ciphertext layout: 16-byte header, parms_id (32), is_ntt_form (1), size (8),
# poly_modulus_degree (8), then coeff_modulus_size (8): the primes left, i.e. level + 1.
_SEAL_CMS_OFFSET = 16 + 32 + 1 + 8 + 8


@dataclass(frozen=True)
class PyfhelCiphertext:
    """A SEAL ciphertext with the level it is really at (Pyfhel does not track it)."""

    ctxt: Any  # Pyfhel.PyCtxt
    level: int


@dataclass(frozen=True)
class PyfhelPlaintext:
    ptxt: Any  # Pyfhel.PyPtxt
    level: int


def _sec_level(params: CKKSParams) -> int:
    """The `sec` Pyfhel passes to SEAL: 128 (SEAL checks the table) or 0 (no check at all)."""
    bound = SEAL_128_MAX_LOG_QP.get(params.ring_dim)
    if bound is not None and params.log_qp <= bound:
        return 128
    if params.insecure_test_params:
        return 0
    why = (
        f"log QP = {params.log_qp} bits exceeds SEAL's 128-bit bound of {bound} bits at N={params.ring_dim}"
        if bound is not None
        else f"SEAL's 128-bit table stops at N=32768; N={params.ring_dim} runs only with SEAL's security check off"
    )
    raise InsecureParametersError(
        f"Pyfhel cannot give 128-bit security: {why}. Use fewer levels, N <= 32768 or another "
        "backend (openfhe); for tests only, set insecure_test_params=True"
    )


def _new_context(params: CKKSParams) -> Any:
    """A keyless Pyfhel context for `params`. Deterministic: SEAL picks the same primes every
    time, which is what lets `deserialize` rebuild the context instead of parsing bytes."""
    from Pyfhel import Pyfhel

    he = Pyfhel()
    with warnings.catch_warnings():  # depth 0 chains make Pyfhel warn about rescaling
        warnings.simplefilter("ignore", RuntimeWarning)
        status = he.contextGen(
            scheme="ckks", n=params.ring_dim, scale=params.scale,
            qi_sizes=params.coeff_mod_bit_sizes, sec=_sec_level(params),
        )
    status = status.decode() if isinstance(status, bytes) else str(status)
    if not status.startswith("success"):
        raise ParameterError(f"SEAL refused the parameters {params.coeff_mod_bit_sizes} at N={params.ring_dim}: {status}")
    return he


def _pack_sections(sections: dict[str, bytes]) -> bytes:
    out = [_FORMAT]
    for name, blob in sections.items():
        key = name.encode()
        out += [struct.pack("<B", len(key)), key, struct.pack("<Q", len(blob)), blob]
    return b"".join(out)


def _unpack_sections(data: bytes) -> dict[str, bytes]:
    if not data.startswith(_FORMAT):
        raise ValueError("not a Pyfhel engine blob")
    pos, out = len(_FORMAT), {}
    while pos < len(data):
        (n,) = struct.unpack_from("<B", data, pos)
        name = data[pos + 1 : pos + 1 + n].decode()
        (size,) = struct.unpack_from("<Q", data, pos + 1 + n)
        start = pos + 9 + n
        if start + size > len(data):
            raise ValueError(f"section {name!r} is truncated")
        if name not in _SECTIONS or name in out:
            raise ValueError(f"unknown or repeated section {name!r}")
        out[name] = data[start : start + size]
        pos = start + size
    return out


def seal_level(ct_bytes: bytes, depth: int) -> int:
    """The level SEAL itself records in a serialized ciphertext (primes left - 1)."""
    if len(ct_bytes) < _SEAL_CMS_OFFSET + 8:
        raise ValueError("serialized ciphertext is too short")
    magic, _, _, _, compr = struct.unpack_from("<HBBBB", ct_bytes, 0)
    if magic != _SEAL_MAGIC or compr != 0:
        raise ValueError("not an uncompressed SEAL ciphertext")
    (primes,) = struct.unpack_from("<Q", ct_bytes, _SEAL_CMS_OFFSET)
    if not 1 <= primes <= depth + 1:
        raise ValueError(f"ciphertext has {primes} primes; this chain has levels 0..{depth}")
    return int(primes) - 1


def galois_key_indices(key_bytes: bytes) -> set[int]:
    """Which Galois keys an uncompressed SEAL `GaloisKeys` serialization holds, by SEAL's key
    index (galois_elt - 1) / 2, read from its layout: SEAL header, parms_id, then a vector of
    vectors of keys, each key a SEAL object with its own header and byte size. Pyfhel cannot
    list its rotation keys, and a context must hold exactly the steps its header claims."""
    head = struct.Struct("<HBBBBHQ")
    magic, _, _, _, compr, _, size = head.unpack_from(key_bytes, 0)
    if magic != _SEAL_MAGIC or compr != 0 or size != len(key_bytes):
        raise ValueError("rotation keys are not an uncompressed SEAL object")
    pos = head.size + 32  # the parms_id
    (count,) = struct.unpack_from("<Q", key_bytes, pos)
    if count > 1 << 17:
        raise ValueError(f"rotation keys claim {count} slots")
    pos, present = pos + 8, set()
    for index in range(count):
        (n,) = struct.unpack_from("<Q", key_bytes, pos)
        pos += 8
        if n:
            present.add(index)
        for _ in range(n):
            magic, _, _, _, _, _, size = head.unpack_from(key_bytes, pos)
            if magic != _SEAL_MAGIC or size < head.size or pos + size > len(key_bytes):
                raise ValueError("malformed rotation key")
            pos += size
    if pos != len(key_bytes):
        raise ValueError("trailing bytes after the rotation keys")
    return present


class PyfhelEngine(Engine):
    """One Pyfhel context: the client's (with the secret key) or the server's (without)."""

    name = "pyfhel"

    def __init__(self, he: Any, params: CKKSParams, rotation_steps: Sequence[int]) -> None:
        self._he = he
        self.params = params
        self.rotation_steps = frozenset(int(s) for s in rotation_steps)
        self._primes = [int(q) for q in he.get_qi()]  # q0, rescale primes q1..q_depth, special
        self._replicas = params.ring_dim // (2 * params.slots)

    # ---- backend-level ----------------------------------------------------------------
    @classmethod
    def scale_errors(cls, params: CKKSParams) -> list[float]:
        """SEAL tracks the true scales, and `HEContext.mul_plain` lands every linear layer
        exactly on the base scale; a ct x ct product rescaled at level l has scale scale^2/q_l,
        which is relabelled as the base scale where it meets a base-scale value: that leaves
        2^scale_bits / q_l - 1 (up to 5e-4 for 31-bit primes at N=2^14)."""
        from Pyfhel import Pyfhel

        he = Pyfhel()
        he.contextGen(scheme="ckks", n=params.ring_dim, scale=params.scale, qi_sizes=params.coeff_mod_bit_sizes,
                      sec=_sec_level(params))
        primes = [int(q) for q in he.get_qi()]
        return [params.scale / primes[lvl] - 1.0 for lvl in range(1, params.depth + 1)]

    @classmethod
    def capabilities(cls) -> Capabilities:
        import Pyfhel

        seal = sorted(p.name[len("libseal-") : -2] for p in Path(Pyfhel.__file__).parent.glob("libseal-*.a"))
        return Capabilities(
            name=cls.name,
            library="Pyfhel (Microsoft SEAL)",
            library_version=f"{Pyfhel.__version__} (SEAL {seal[0] if seal else 'unknown'})",
            ring_dims=RING_DIMS,
            max_log_qp_128=dict(SEAL_128_MAX_LOG_QP),
            bootstrapping=False,
            rescale="manual",
            hoisted_rotations=False,
            thread_control=False,
            max_threads=1,
            max_mod_bits=60,
            exact_scales=True,
            key_switching="single special prime",
            notes=(
                "no bootstrapping: the whole model must fit the modulus chain (about 20 levels of 40 bits at N=2^15)",
                "128-bit only up to N=2^15 (SEAL's table); N=2^16 runs only with insecure_test_params (SEAL check off)",
                "no hoisted rotations: rotate_many is one key switch per step",
                "one thread per operation (SEAL); parallelism comes from processes",
                "single special prime key switching: one rotation key is about 2*(L+1)^2*N*8 bytes",
                "vectors are replicated N/(2*slots) times so rotations are cyclic over slots",
                "no compression of serialized objects (SEAL built without zlib/zstd)",
            ),
        )

    @classmethod
    def keygen(cls, params: CKKSParams, rotation_steps: Sequence[int]) -> "PyfhelEngine":
        he = _new_context(params)
        he.keyGen()
        he.relinKeyGen()
        steps = sorted({int(s) for s in rotation_steps})
        if steps:  # an empty list would make Pyfhel generate every power-of-two key
            he.rotateKeyGen(steps)
        return cls(he, params, steps)

    def public(self) -> "PyfhelEngine":
        # Through bytes, so the server object provably never held the secret key.
        return self.deserialize(self._serialize(with_secret=False), self.params, sorted(self.rotation_steps))

    def __reduce__(self):
        """Pickle through `serialize` (for process pools): Pyfhel's own pickling keeps the
        parameters but drops every key, and would later generate keys under a new secret."""
        return (type(self).deserialize, (self.serialize(), self.params, sorted(self.rotation_steps)))

    @property
    def has_secret_key(self) -> bool:
        return not self._he.is_secret_key_empty()

    def serialize(self) -> bytes:
        return self._serialize(with_secret=self.has_secret_key)

    def _serialize(self, with_secret: bool) -> bytes:
        he = self._he
        sections = {
            "context": he.to_bytes_context(NO_COMPRESSION),
            "public_key": he.to_bytes_public_key(NO_COMPRESSION),
            "relin_key": he.to_bytes_relin_key(NO_COMPRESSION),
        }
        if not he.is_rotate_key_empty():
            sections["rotate_key"] = he.to_bytes_rotate_key(NO_COMPRESSION)
        if with_secret:
            sections["secret_key"] = self.secret_key_bytes()
        return _pack_sections(sections)

    def secret_key_bytes(self) -> bytes:
        if not self.has_secret_key:
            raise MissingSecretKeyError("evaluation context has no secret key")
        return self._he.to_bytes_secret_key(NO_COMPRESSION)

    @classmethod
    def deserialize(cls, data: bytes, params: CKKSParams, rotation_steps: Sequence[int], *,
                    public_only: bool = False) -> "PyfhelEngine":
        sections = _unpack_sections(bytes(data))
        if public_only and "secret_key" in sections:
            raise ValueError("context holds a secret key")
        he = _new_context(params)
        # Pyfhel's from_bytes_context trusts a length field in the bytes (a garbage length
        # allocates without bound), so rebuild the context from params and compare instead.
        if sections.get("context") != he.to_bytes_context(NO_COMPRESSION):
            raise ValueError("serialized SEAL context does not match the parameters")
        for key in ("public_key", "relin_key"):
            if key not in sections:
                raise ValueError(f"serialized context lacks the {key.replace('_', ' ')}")
        he.from_bytes_public_key(sections["public_key"])
        he.from_bytes_relin_key(sections["relin_key"])
        steps = sorted({int(s) for s in rotation_steps})
        if steps and "rotate_key" not in sections:
            raise ValueError(f"serialized context lacks the rotation keys for steps {steps}")
        if "rotate_key" in sections:
            want = {(pow(3, s, 2 * params.ring_dim) - 1) >> 1 for s in steps}
            if galois_key_indices(sections["rotate_key"]) != want:
                raise ValueError(f"serialized rotation keys are not those of steps {steps}")
            he.from_bytes_rotate_key(sections["rotate_key"])
        if "secret_key" in sections:
            he.from_bytes_secret_key(sections["secret_key"])
        return cls(he, params, steps)

    # ---- helpers ---------------------------------------------------------------------
    def _replicated(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.size != self.params.slots:
            raise ValueError(f"expected {self.params.slots} values, got {v.size}")
        return np.ascontiguousarray(np.tile(v, self._replicas))

    @staticmethod
    def _same_level(op: str, a: PyfhelCiphertext | PyfhelPlaintext, b: PyfhelCiphertext | PyfhelPlaintext) -> None:
        if a.level != b.level:
            raise LevelMismatchError(f"pyfhel {op}: operands at levels {a.level} and {b.level}")

    def _relabelled(self, obj: Any, scale: float) -> Any:
        """A copy of a PyCtxt/PyPtxt labelled with `scale`. SEAL demands bit-equal scales for
        add; operands the core lets through differ only by prime drift."""
        if obj.scale == scale:
            return obj
        copy = type(obj)(obj)
        copy.set_scale(scale)
        return copy

    def _ct(self, ctxt: Any, level: int) -> PyfhelCiphertext:
        return PyfhelCiphertext(ctxt, level)

    # ---- primitives ------------------------------------------------------------------
    def encode(self, values: np.ndarray, level: int, scale: float) -> PyfhelPlaintext:
        if not 0 <= level <= self.params.depth:
            raise LevelMismatchError(f"cannot encode at level {level}: the chain has levels 0..{self.params.depth}")
        he = self._he
        pt = he.encodeFrac(self._replicated(values), scale=float(scale))
        for _ in range(self.params.depth - level):
            he.mod_switch_to_next_ptxt(pt, in_new_ptxt=False)
        return PyfhelPlaintext(pt, level)

    def encrypt(self, values: np.ndarray) -> PyfhelCiphertext:
        return self._ct(self._he.encryptFrac(self._replicated(values), scale=self.params.scale), self.params.depth)

    def decrypt(self, ct: PyfhelCiphertext) -> np.ndarray:
        if not self.has_secret_key:  # Pyfhel's decryptFrac segfaults without one (checked)
            raise MissingSecretKeyError("Pyfhel evaluation context has no secret key: it cannot decrypt")
        return np.asarray(self._he.decryptFrac(ct.ctxt), dtype=np.float64)[: self.params.slots].copy()

    def _zero_if_transparent(self, op: Callable[[], Any], level: int, scale: float) -> PyfhelCiphertext:
        """Run `op()`; if SEAL refuses an exactly-zero ("transparent") result, return a fresh
        encryption of zero instead: x - x and x * 0 are legitimate in a compiled program."""
        try:
            return self._ct(op(), level)
        except RuntimeError as exc:
            if "transparent" not in str(exc):
                raise
        zero = self._he.encryptFrac(self._replicated(np.zeros(self.params.slots)), scale=self.params.scale)
        for _ in range(self.params.depth - level):
            self._he.mod_switch_to_next(zero)
        zero.set_scale(scale)
        return self._ct(zero, level)

    def add(self, a: PyfhelCiphertext, b: PyfhelCiphertext) -> PyfhelCiphertext:
        self._same_level("add", a, b)
        b_ctxt = self._relabelled(b.ctxt, a.ctxt.scale)
        return self._zero_if_transparent(lambda: self._he.add(a.ctxt, b_ctxt, in_new_ctxt=True), a.level, a.ctxt.scale)

    def sub(self, a: PyfhelCiphertext, b: PyfhelCiphertext) -> PyfhelCiphertext:
        self._same_level("sub", a, b)
        b_ctxt = self._relabelled(b.ctxt, a.ctxt.scale)
        return self._zero_if_transparent(lambda: self._he.sub(a.ctxt, b_ctxt, in_new_ctxt=True), a.level, a.ctxt.scale)

    def add_plain(self, ct: PyfhelCiphertext, pt: PyfhelPlaintext) -> PyfhelCiphertext:
        self._same_level("add_plain", ct, pt)
        ptxt = self._relabelled(pt.ptxt, ct.ctxt.scale)
        return self._zero_if_transparent(lambda: self._he.add_plain(ct.ctxt, ptxt, in_new_ctxt=True), ct.level, ct.ctxt.scale)

    def mul_plain(self, ct: PyfhelCiphertext, pt: PyfhelPlaintext) -> PyfhelCiphertext:
        self._same_level("mul_plain", ct, pt)
        scale = ct.ctxt.scale * pt.ptxt.scale
        return self._zero_if_transparent(lambda: self._he.multiply_plain(ct.ctxt, pt.ptxt, in_new_ctxt=True), ct.level, scale)

    def mul(self, a: PyfhelCiphertext, b: PyfhelCiphertext) -> PyfhelCiphertext:
        self._same_level("mul", a, b)
        return self._relinearized(self._he.multiply(a.ctxt, b.ctxt, in_new_ctxt=True), a.level)

    def square(self, a: PyfhelCiphertext) -> PyfhelCiphertext:
        return self._relinearized(self._he.square(a.ctxt, in_new_ctxt=True), a.level)

    def _relinearized(self, ctxt: Any, level: int) -> PyfhelCiphertext:
        if self._he.is_relin_key_empty():  # Pyfhel would try to generate one (needs the secret key)
            raise RuntimeError("Pyfhel context has no relinearization key")
        self._he.relinearize(ctxt)
        return self._ct(ctxt, level)

    def rescale(self, ct: PyfhelCiphertext) -> PyfhelCiphertext:
        if ct.level < 1:
            raise LevelExhaustedError("pyfhel rescale: ciphertext is at level 0")
        out = type(ct.ctxt)(ct.ctxt)
        self._he.rescale_to_next(out)
        return self._ct(out, ct.level - 1)

    def mod_switch_to(self, ct: PyfhelCiphertext, level: int) -> PyfhelCiphertext:
        if not 0 <= level <= ct.level:
            raise LevelMismatchError(f"pyfhel mod_switch_to: cannot go from level {ct.level} to {level}")
        out = type(ct.ctxt)(ct.ctxt)
        for _ in range(ct.level - level):
            self._he.mod_switch_to_next_ctxt(out, in_new_ctxt=False)
        return self._ct(out, level)

    def rotate(self, ct: PyfhelCiphertext, step: int) -> PyfhelCiphertext:
        # Checked here too: with no rotation key at all, Pyfhel would try to generate keys.
        if step not in self.rotation_steps:
            raise RotationKeyError(f"pyfhel: no rotation key for step {step}")
        # SEAL's positive step moves slot i+k to i, the contract's convention.
        return self._ct(self._he.rotate(ct.ctxt, int(step), in_new_ctxt=True), ct.level)

    def set_scale(self, ct: PyfhelCiphertext, scale: float) -> PyfhelCiphertext:
        return self._ct(self._relabelled(ct.ctxt, float(scale)), ct.level)

    def level(self, ct: PyfhelCiphertext) -> int:
        return ct.level

    def scale(self, ct: PyfhelCiphertext) -> float:
        return float(ct.ctxt.scale)

    def rescale_divisor(self, level: int) -> float:
        """The prime q_level that a rescale at `level` divides by (SEAL drops the last prime
        of the ciphertext's chain), so mul_plain at that scale + rescale keeps scales exact."""
        if not 1 <= level <= self.params.depth:
            raise LevelMismatchError(f"no rescale at level {level}: rescales happen at levels 1..{self.params.depth}")
        return float(self._primes[level])

    def serialize_ciphertext(self, ct: PyfhelCiphertext) -> bytes:
        return ct.ctxt.to_bytes(NO_COMPRESSION)

    def deserialize_ciphertext(self, data: bytes) -> PyfhelCiphertext:
        from Pyfhel import PyCtxt

        data = bytes(data)
        level = seal_level(data, self.params.depth)  # header first: only SEAL-shaped bytes reach SEAL
        ctxt = PyCtxt(pyfhel=self._he, bytestring=data, scheme="ckks")  # SEAL validates against the context
        if ctxt.size() != 2:
            raise ValueError(f"ciphertext has {ctxt.size()} components; only relinearized ones (2) are accepted")
        return self._ct(ctxt, level)
