"""cryptoface backend on Microsoft SEAL through TenSEAL's raw bindings (`tenseal.sealapi`).

Why sealapi and not TenSEAL's `CKKSVector`: the vector API rescales and mod-switches on its
own and has no public rotate, so the compiler's explicit schedule could not control it.
sealapi exposes SEAL's Evaluator, so every contract primitive maps to one SEAL call.

Slot layout: SEAL rotates over N/2 slots, the contract over `params.slots`. Every plaintext
is the vector tiled N/(2*slots) times; the tiling is invariant under SEAL's rotation, so a
rotation over N/2 is the cyclic rotation over `slots`.

`tenseal` is imported only inside methods, so a missing library leaves the backend listed as
"unavailable (reason)" instead of breaking plugin discovery.
"""

from __future__ import annotations

import os
import struct
import tempfile
from typing import Any, Callable, Sequence

import numpy as np

from cryptoface.backend import Capabilities, Engine
from cryptoface.errors import CapabilityError, MissingSecretKeyError
from cryptoface.params import CKKSParams
from cryptoface.plugins import hookimpl

__all__ = ["TenSEALEngine"]

# SEAL's own 128-bit table (CoeffModulus::MaxBitCount) stops at 2^15; larger rings only run
# with sec_level NONE, i.e. as insecure test parameters.
SEAL_MAX_128_RING_DIM = 32768
_RING_DIMS = (1024, 2048, 4096, 8192, 16384, 32768)


def _sealapi() -> Any:
    import tenseal.sealapi as sealapi  # lazy: see module docstring

    return sealapi


# ---- byte I/O: sealapi objects save/load only through file paths -------------------------

# Secret keys pass through these files: prefer RAM-backed /dev/shm so they never hit disk.
_TMPDIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _save(obj: Any) -> bytes:
    """SEAL's compressed serialization of `obj` (sealapi has `save(path)` only)."""
    fd, path = tempfile.mkstemp(prefix="cryptoface-tenseal-", dir=_TMPDIR)
    os.close(fd)
    try:
        obj.save(path)
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def _load(obj: Any, seal_context: Any, data: bytes) -> Any:
    """Load `data` into `obj`; SEAL validates it against the context and raises on garbage."""
    fd, path = tempfile.mkstemp(prefix="cryptoface-tenseal-", dir=_TMPDIR)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        obj.load(seal_context, path)
        return obj
    finally:
        os.unlink(path)


def _pack_sections(sections: dict[str, bytes]) -> bytes:
    out = [struct.pack("<I", len(sections))]
    for name, blob in sections.items():
        key = name.encode()
        out += [struct.pack("<HQ", len(key), len(blob)), key, blob]
    return b"".join(out)


def _unpack_sections(data: bytes) -> dict[str, bytes]:
    (count,), pos, out = struct.unpack_from("<I", data, 0), 4, {}
    for _ in range(count):
        klen, blen = struct.unpack_from("<HQ", data, pos)
        pos += 10
        key, blob = data[pos : pos + klen].decode(), data[pos + klen : pos + klen + blen]
        if len(blob) != blen:
            raise ValueError(f"truncated section {key!r}")
        if key not in _SECTIONS or key in out:
            raise ValueError(f"unknown or repeated section {key!r}")
        out[key], pos = blob, pos + klen + blen
    if pos != len(data):
        raise ValueError("trailing bytes after the last section")
    return out


_SECTIONS = ("public_key", "relin_keys", "galois_keys", "secret_key")


# ---- the engine ----------------------------------------------------------------------------


class _Keys:
    """The SEAL objects of one key set; shared (read-only) by a client and its public view.

    `wire` holds SEAL's seeded serializations from key generation (half the bytes of an
    expanded key: the random half is replaced by its PRNG seed). The client sends these and
    never expands its Galois keys unless it rotates itself; a loaded context has no `wire`
    and re-serializes its expanded keys.
    """

    def __init__(self, params: CKKSParams, seal_context: Any, public_key: Any, relin_keys: Any, galois_keys: Any | None, wire: dict[str, bytes] | None = None) -> None:
        s = _sealapi()
        self.context = seal_context
        self.public_key = public_key
        self.relin_keys = relin_keys
        self._galois_keys = galois_keys
        self.wire = wire or {}
        self.encoder = s.CKKSEncoder(seal_context)
        self.encryptor = s.Encryptor(seal_context, public_key)
        self.evaluator = s.Evaluator(seal_context)
        # level (= chain index) -> parms_id and the prime a rescale at that level divides by
        self.parms_ids: dict[int, Any] = {}
        self.primes: dict[int, float] = {}
        cd = seal_context.first_context_data()
        while cd is not None:
            lvl = cd.chain_index()
            self.parms_ids[lvl] = cd.parms_id()
            self.primes[lvl] = float(cd.parms().coeff_modulus()[-1].value())
            cd = cd.next_context_data()
        if sorted(self.parms_ids) != list(range(params.depth + 1)):
            raise RuntimeError(f"SEAL built chain indices {sorted(self.parms_ids)} for depth {params.depth}")

    @property
    def galois_keys(self) -> Any:
        if self._galois_keys is None:
            gk = _sealapi().GaloisKeys()
            if "galois_keys" in self.wire:
                _load(gk, self.context, self.wire["galois_keys"])
            self._galois_keys = gk
        return self._galois_keys

    def save(self, name: str) -> bytes:
        return self.wire[name] if name in self.wire else _save(getattr(self, name))


def _seal_context(params: CKKSParams) -> Any:
    """SEALContext for `params`: 128-bit checked by SEAL unless the caller opted out."""
    s = _sealapi()
    n = params.ring_dim
    if n > SEAL_MAX_128_RING_DIM and not params.insecure_test_params:
        raise CapabilityError(
            f"TenSEAL/SEAL has no 128-bit parameters at N={n} (its table stops at "
            f"N={SEAL_MAX_128_RING_DIM}); use the openfhe backend or a smaller ring"
        )
    parms = s.EncryptionParameters(s.SCHEME_TYPE.CKKS)
    parms.set_poly_modulus_degree(n)
    parms.set_coeff_modulus(s.CoeffModulus.Create(n, params.coeff_mod_bit_sizes))
    sec = s.SEC_LEVEL_TYPE.NONE if params.insecure_test_params else s.SEC_LEVEL_TYPE.TC128
    ctx = s.SEALContext(parms, True, sec)
    if not ctx.parameters_set():
        raise CapabilityError(f"SEAL refuses the parameters: {ctx.parameters_error_message()}")
    return ctx


def _galois_elements(seal_context: Any, steps: Sequence[int]) -> list[int]:
    # sealapi's create_galois_keys(list) binds SEAL's Galois-element overload, not the step one.
    return list(seal_context.key_context_data().galois_tool().get_elts_from_steps([int(k) for k in steps]))


class TenSEALEngine(Engine):
    """CKKS on SEAL 4.1 via tenseal.sealapi; raw objects are `sealapi.Ciphertext`/`Plaintext`."""

    name = "tenseal"

    def __init__(self, params: CKKSParams, rotation_steps: Sequence[int], keys: _Keys, secret_key: Any | None) -> None:
        self.params = params
        self.rotation_steps = frozenset(int(s) for s in rotation_steps)
        self._keys = keys
        self._secret_key = secret_key
        self._decryptor = None if secret_key is None else _sealapi().Decryptor(keys.context, secret_key)
        self._reps = params.ring_dim // 2 // params.slots

    # ---- backend-level -------------------------------------------------------------------
    @classmethod
    def scale_errors(cls, params: CKKSParams) -> list[float]:
        """SEAL tracks the true scales, and `HEContext.mul_plain` lands every linear layer
        exactly on the base scale; a ct x ct product rescaled at level l has scale scale^2/q_l,
        which is relabelled as the base scale where it meets a base-scale value: that leaves
        2^scale_bits / q_l - 1 (up to 5e-4 for 31-bit primes at N=2^14)."""
        primes = [m.value() for m in _sealapi().CoeffModulus.Create(params.ring_dim, params.coeff_mod_bit_sizes)]
        return [params.scale / primes[lvl] - 1.0 for lvl in range(1, params.depth + 1)]

    @classmethod
    def capabilities(cls) -> Capabilities:
        import tenseal

        s = _sealapi()
        header = s.Serialization.SEALHeader()
        max_bits = {n: int(s.CoeffModulus.MaxBitCount(n, s.SEC_LEVEL_TYPE.TC128)) for n in _RING_DIMS}
        return Capabilities(
            name=cls.name,
            library="TenSEAL (Microsoft SEAL)",
            library_version=f"tenseal {tenseal.__version__}, SEAL {header.version_major}.{header.version_minor}",
            ring_dims=tuple(n for n, b in max_bits.items() if b > 0),
            max_log_qp_128={n: b for n, b in max_bits.items() if b > 0},
            bootstrapping=False,
            rescale="manual",
            hoisted_rotations=False,
            thread_control=False,
            max_threads=1,
            max_mod_bits=60,
            exact_scales=True,
            key_switching="single special prime",
            notes=(
                "no bootstrapping: a model must fit the modulus chain (about 20 levels at "
                "N=2^15 with 40-bit primes)",
                f"128-bit only up to N={SEAL_MAX_128_RING_DIM} (SEAL's table); N=2^16 runs only "
                "as insecure_test_params",
                "no hoisted rotations: each rotation is a full key switch",
                "single-threaded: SEAL runs each op on the calling thread and sealapi keeps the "
                "GIL, so parallelism needs processes",
                "one special prime: a Galois key holds (L+1) x 2 x (L+2) x N words; request "
                "only the steps the plan needs",
                "keys pass through a temporary file (in /dev/shm when available) on "
                "serialization: sealapi saves only to file paths",
            ),
        )

    @classmethod
    def keygen(cls, params: CKKSParams, rotation_steps: Sequence[int]) -> "TenSEALEngine":
        s = _sealapi()
        if params.bootstrap is not None:
            raise CapabilityError("the tenseal backend does not bootstrap")
        ctx = _seal_context(params)
        kg = s.KeyGenerator(ctx)
        pk = s.PublicKey()  # sealapi does not bind the seeded (Serializable) public key
        kg.create_public_key(pk)
        wire = {"relin_keys": _save(kg.create_relin_keys())}
        if rotation_steps:
            wire["galois_keys"] = _save(kg.create_galois_keys(_galois_elements(ctx, rotation_steps)))
        rk = _load(s.RelinKeys(), ctx, wire["relin_keys"])
        return cls(params, rotation_steps, _Keys(params, ctx, pk, rk, None, wire), kg.secret_key())

    def public(self) -> "TenSEALEngine":
        return TenSEALEngine(self.params, sorted(self.rotation_steps), self._keys, None)

    @property
    def has_secret_key(self) -> bool:
        return self._secret_key is not None

    def serialize(self) -> bytes:
        names = ["public_key", "relin_keys"] + (["galois_keys"] if self.rotation_steps else [])
        sections = {name: self._keys.save(name) for name in names}
        if self._secret_key is not None:
            sections["secret_key"] = _save(self._secret_key)
        return _pack_sections(sections)

    def secret_key_bytes(self) -> bytes:
        if self._secret_key is None:
            raise MissingSecretKeyError("evaluation context has no secret key")
        return _save(self._secret_key)

    @classmethod
    def deserialize(cls, data: bytes, params: CKKSParams, rotation_steps: Sequence[int], *,
                    public_only: bool = False) -> "TenSEALEngine":
        """SEAL validates every key against the context built from `params` (ring, chain,
        parms_id); the Galois keys must be exactly those of `rotation_steps`."""
        s = _sealapi()
        sections = _unpack_sections(bytes(data))
        if public_only and "secret_key" in sections:
            raise ValueError("context holds a secret key")
        if {"public_key", "relin_keys"} - sections.keys() or bool(rotation_steps) != ("galois_keys" in sections):
            raise ValueError(f"context sections {sorted(sections)} do not match its rotation steps")
        ctx = _seal_context(params)
        pk = _load(s.PublicKey(), ctx, sections["public_key"])
        rk = _load(s.RelinKeys(), ctx, sections["relin_keys"])
        gk = s.GaloisKeys()
        if rotation_steps:
            _load(gk, ctx, sections["galois_keys"])
            missing = [k for k, e in zip(rotation_steps, _galois_elements(ctx, rotation_steps)) if not gk.has_key(e)]
            if missing or gk.size() != len(rotation_steps):
                raise ValueError(f"serialized Galois keys hold {gk.size()} keys, lack steps {missing}")
        sk = _load(s.SecretKey(), ctx, sections["secret_key"]) if "secret_key" in sections else None
        return cls(params, rotation_steps, _Keys(params, ctx, pk, rk, gk), sk)

    # ---- helpers ---------------------------------------------------------------------------
    def _new(self) -> Any:
        return _sealapi().Ciphertext()

    def _zero_if_transparent(self, op: Callable[[Any], None], parms_id: Any, scale: float) -> Any:
        """Run `op(out)`; if SEAL refuses an exactly-zero ("transparent") result, return a fresh
        encryption of zero instead. x - x and x * 0 are legitimate in a compiled program."""
        out = self._new()
        try:
            op(out)
        except RuntimeError as exc:
            if "transparent" not in str(exc):
                raise
            out = self._new()
            self._keys.encryptor.encrypt_zero(parms_id, out)
            out.scale = scale
        return out

    # ---- primitives ------------------------------------------------------------------------
    def encode(self, values: np.ndarray, level: int, scale: float) -> Any:
        pt = _sealapi().Plaintext()
        tiled = np.tile(np.asarray(values, dtype=np.float64), self._reps)
        self._keys.encoder.encode(tiled.tolist(), self._keys.parms_ids[level], float(scale), pt)
        return pt

    def encrypt(self, values: np.ndarray) -> Any:
        ct = self._new()
        self._keys.encryptor.encrypt(self.encode(values, self.params.depth, self.params.scale), ct)
        return ct

    def decrypt(self, ct: Any) -> np.ndarray:
        if self._decryptor is None:
            raise MissingSecretKeyError("tenseal evaluation context without secret key cannot decrypt")
        pt = _sealapi().Plaintext()
        self._decryptor.decrypt(ct, pt)
        return np.asarray(self._keys.encoder.decode_double(pt)[: self.params.slots], dtype=np.float64)

    def add(self, a: Any, b: Any) -> Any:
        return self._zero_if_transparent(lambda o: self._keys.evaluator.add(a, b, o), a.parms_id(), a.scale)

    def sub(self, a: Any, b: Any) -> Any:
        return self._zero_if_transparent(lambda o: self._keys.evaluator.sub(a, b, o), a.parms_id(), a.scale)

    def add_plain(self, ct: Any, pt: Any) -> Any:
        if pt.scale != ct.scale:  # the core tolerates prime drift; SEAL wants equal scales
            pt = _sealapi().Plaintext(pt)
            pt.scale = ct.scale
        return self._zero_if_transparent(lambda o: self._keys.evaluator.add_plain(ct, pt, o), ct.parms_id(), ct.scale)

    def mul_plain(self, ct: Any, pt: Any) -> Any:
        scale = ct.scale * pt.scale
        return self._zero_if_transparent(lambda o: self._keys.evaluator.multiply_plain(ct, pt, o), ct.parms_id(), scale)

    def mul(self, a: Any, b: Any) -> Any:
        ev, out = self._keys.evaluator, self._new()
        ev.multiply(a, b, out)
        ev.relinearize_inplace(out, self._keys.relin_keys)
        return out

    def square(self, a: Any) -> Any:
        ev, out = self._keys.evaluator, self._new()
        ev.square(a, out)
        ev.relinearize_inplace(out, self._keys.relin_keys)
        return out

    def rescale(self, ct: Any) -> Any:
        out = self._new()
        self._keys.evaluator.rescale_to_next(ct, out)
        return out

    def mod_switch_to(self, ct: Any, level: int) -> Any:
        out = self._new()
        self._keys.evaluator.mod_switch_to(ct, self._keys.parms_ids[level], out)
        return out

    def rotate(self, ct: Any, step: int) -> Any:
        out = self._new()
        self._keys.evaluator.rotate_vector(ct, int(step), self._keys.galois_keys, out)
        return out

    def set_scale(self, ct: Any, scale: float) -> Any:
        # sealapi's Ciphertext has no copy constructor; mod_switch_to its own level copies.
        out = self._new()
        self._keys.evaluator.mod_switch_to(ct, ct.parms_id(), out)
        out.scale = float(scale)
        return out

    def level(self, ct: Any) -> int:
        return int(self._keys.context.get_context_data(ct.parms_id()).chain_index())

    def scale(self, ct: Any) -> float:
        return float(ct.scale)

    def rescale_divisor(self, level: int) -> float:
        return self._keys.primes[level]

    def serialize_ciphertext(self, ct: Any) -> bytes:
        return _save(ct)

    def deserialize_ciphertext(self, data: bytes) -> Any:
        ct = _load(self._new(), self._keys.context, bytes(data))
        if ct.size() != 2:
            raise ValueError(f"ciphertext has {ct.size()} components; a relinearized one has 2")
        return ct


@hookimpl
def cryptoface_register_backends(register: Any) -> None:
    register.add(TenSEALEngine)
