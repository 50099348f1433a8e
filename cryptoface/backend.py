"""The backend contract: what a plugin implements, and the checked API the core uses.

A plugin implements `Engine`: a thin adapter of one FHE library over raw library objects,
a few hundred lines. The core never calls an engine directly; it goes through `HEContext`,
which owns every check (operand levels and scales, context identity, rotation keys, input
validity, serialization integrity). Putting the checks here, once, means every backend
fails the same clear way, and no library is handed operands it would crash on (Pyfhel
aborts the process on some mismatched additions).

Conventions every engine follows:
- level = rescales still possible; a fresh ciphertext is at `params.depth`; 0 is the last.
- vectors have `params.slots` entries; rotation by k is cyclic over them and moves entry
  i+k to i (numpy: `np.roll(x, -k)`), whatever the library's own convention.
- `mul` relinearizes but does not rescale: rescale is always explicit (the compiler's).
"""

from __future__ import annotations

import math
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from .errors import (
    CapabilityError,
    ContextMismatchError,
    CryptofaceError,
    InsecureParametersError,
    InvalidInputError,
    LevelExhaustedError,
    LevelMismatchError,
    MissingSecretKeyError,
    RotationKeyError,
    ScaleMismatchError,
    SerializationError,
)
from . import wire
from .headers import CiphertextHeader, ContextHeader
from .params import BootstrapOption, CKKSParams

# Scales of operands that followed different rescale paths differ by the drift of the primes
# from 2^scale_bits (about 1e-6 relative per rescale); such operands are aligned. Anything
# further apart is a scheduling bug and is refused.
SCALE_RTOL = 1e-3


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the compiler plans around what it cannot."""

    name: str
    library: str
    library_version: str
    ring_dims: tuple[int, ...]
    max_log_qp_128: dict[int, int]
    bootstrapping: bool
    rescale: str  # "manual": rescale ops run when asked; "automatic": library-managed, mapped
    hoisted_rotations: bool
    thread_control: bool
    max_threads: int = 1
    max_mod_bits: int = 60
    key_switching: str = "single special prime"
    # The library tracks every ciphertext's true scale (SEAL): only ct x ct products, relabelled
    # where they meet base-scale values, drift. False: every rescale drifts (nominal scales).
    exact_scales: bool = False
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["max_log_qp_128"] = {str(k): v for k, v in self.max_log_qp_128.items()}
        return d


class Engine(ABC):
    """One keyed CKKS context of one library. Subclass this in a backend plugin.

    Raw objects (`ct`, `pt`) are whatever the library uses; the core never looks inside.
    Class methods must import the library lazily, so that a missing library makes the
    backend "unavailable" instead of breaking plugin discovery.
    """

    name: ClassVar[str]

    params: CKKSParams
    rotation_steps: frozenset[int]

    # ---- backend-level ----------------------------------------------------------------
    @classmethod
    @abstractmethod
    def capabilities(cls) -> Capabilities:
        """Import the library and describe it; raise if it is missing or broken."""

    @classmethod
    def bootstrap_depth(cls, level_budget: tuple[int, int], params: CKKSParams) -> int:
        """Levels the bootstrap circuit consumes (backends that bootstrap override this)."""
        raise CapabilityError(f"backend {cls.name!r} does not bootstrap")

    @classmethod
    def refuses(cls, params: CKKSParams) -> str | None:
        """Why the library would refuse `params` (None: it accepts them).

        The compiler asks before it commits to a parameter set, because a library may count
        the modulus differently (OpenFHE's hybrid key-switching modulus) and enforce its own
        security table.
        """
        return None

    # ---- planning hooks: what the compiler asks the library instead of assuming it ----------
    @classmethod
    def bootstrap_options(cls, ring_dim: int, slots: int) -> Sequence[BootstrapOption]:
        """The bootstrapping settings this library runs at `ring_dim` for `slots` slots, each
        with its depth, scale constraint, precision and key count (empty: cannot bootstrap)."""
        return ()

    @classmethod
    def max_depth(cls, ring_dim: int, scale_bits: int, first_mod_bits: int) -> int:
        """The deepest chain (rescale primes) the library accepts at 128-bit security.

        Default: SEAL's accounting, one special prime as large as q0 (key-switching noise stays
        below the data), within the capabilities' log QP bound."""
        bound = cls.capabilities().max_log_qp_128.get(ring_dim, 0)
        return max(-1, (bound - 2 * first_mod_bits) // scale_bits)

    @classmethod
    def with_special_modulus(cls, params: CKKSParams) -> CKKSParams:
        """`params` with `special_mod_bits` as the library will really size its key-switching
        modulus P (the security check counts it). Default: one prime as large as q0."""
        return replace(params, special_mod_bits=params.first_mod_bits)

    @classmethod
    def key_switch_key_bytes(cls, params: CKKSParams) -> int:
        """Bytes one rotation or relinearization key takes in memory.

        Default: SEAL's single special prime, one RLWE pair over all L+1 primes per data prime."""
        primes = params.depth + 1
        return primes * 2 * (primes + 1) * params.ring_dim * 8

    @classmethod
    def scale_errors(cls, params: CKKSParams) -> Sequence[float]:
        """Per level l = 1..depth (index l-1): the relative error a rescale at that level can
        leave in a value, because the library labels the result with a scale that differs from
        the true one (e.g. treating the prime q_l as exactly 2^scale_bits). Default: none."""
        return [0.0] * params.depth

    @classmethod
    @abstractmethod
    def keygen(cls, params: CKKSParams, rotation_steps: Sequence[int]) -> "Engine":
        """A new client context: secret, public, relinearization and the given rotation keys
        (steps already normalized to [1, slots)), plus bootstrapping keys if
        `params.bootstrap` is set."""

    @abstractmethod
    def public(self) -> "Engine":
        """The evaluation context for the server: the same keys without the secret key."""

    @property
    @abstractmethod
    def has_secret_key(self) -> bool: ...

    @abstractmethod
    def serialize(self) -> bytes:
        """Everything this context holds (the secret key only if it has one)."""

    @abstractmethod
    def secret_key_bytes(self) -> bytes:
        """The serialized secret key (client contexts only)."""

    @classmethod
    @abstractmethod
    def deserialize(cls, data: bytes, params: CKKSParams, rotation_steps: Sequence[int], *,
                    public_only: bool = False) -> "Engine":
        """Load `serialize()` bytes, which may be hostile (the core checked their MAC and
        header, not the payload). Raise on anything the library's objects contradict:
        parameters (ring dimension, chain, slots) or rotation keys other than `params` and
        `rotation_steps` say. With `public_only`, refuse secret key material before parsing it."""

    @classmethod
    def check_untrusted_context(cls, data: bytes, params: CKKSParams, rotation_steps: Sequence[int]) -> None:
        """Parse-check context bytes where a crash cannot take this process down, before
        `deserialize` parses them here; raise `SerializationError` if they do not survive.

        Default: nothing, for libraries whose parsers refuse garbage with an exception (the
        conformance fuzz test holds every backend to that). A library whose parser can crash
        the process on crafted bytes overrides this (OpenFHE: a parse worker process).
        """

    def check_untrusted_ciphertext(self, data: bytes) -> None:
        """Like `check_untrusted_context`, for ciphertext bytes of this context (keep it cheap)."""

    # ---- primitives on raw objects --------------------------------------------------------
    @abstractmethod
    def encode(self, values: np.ndarray, level: int, scale: float) -> Any:
        """Plaintext of `values` (length slots, float64) at the given level and scale."""

    @abstractmethod
    def encrypt(self, values: np.ndarray) -> Any:
        """Fresh ciphertext at level `params.depth`, scale `params.scale`."""

    @abstractmethod
    def decrypt(self, ct: Any) -> np.ndarray:
        """The `slots` real values of `ct`."""

    @abstractmethod
    def add(self, a: Any, b: Any) -> Any: ...

    @abstractmethod
    def sub(self, a: Any, b: Any) -> Any: ...

    @abstractmethod
    def add_plain(self, ct: Any, pt: Any) -> Any: ...

    @abstractmethod
    def mul_plain(self, ct: Any, pt: Any) -> Any:
        """Product with a plaintext, not rescaled."""

    @abstractmethod
    def mul(self, a: Any, b: Any) -> Any:
        """Product of ciphertexts, relinearized, not rescaled."""

    def square(self, a: Any) -> Any:
        return self.mul(a, a)

    @abstractmethod
    def rescale(self, ct: Any) -> Any:
        """Divide by the last prime: one level down, scale / q."""

    @abstractmethod
    def mod_switch_to(self, ct: Any, level: int) -> Any:
        """Drop primes down to `level` without changing the scale."""

    @abstractmethod
    def rotate(self, ct: Any, step: int) -> Any:
        """Cyclic rotation over `slots` by `step` in [1, slots) (a key exists for it)."""

    def rotate_hoisted(self, ct: Any, steps: Sequence[int]) -> list[Any]:
        """Several rotations of one ciphertext; libraries that hoist override this."""
        return [self.rotate(ct, s) for s in steps]

    def bootstrap(self, ct: Any) -> Any:
        raise CapabilityError(f"backend {self.name!r} does not bootstrap")

    def observe(self, ct: Any) -> np.ndarray | None:
        """The values `ct` holds, for the runtime's check of the compiler's value bounds.

        Only a backend that can see them without the secret key (the simulator) returns
        them; a real library cannot, and returns None (then the bounds are what the
        prescaling before bootstraps and the headroom of q0 were planned from)."""
        return None

    @abstractmethod
    def set_scale(self, ct: Any, scale: float) -> Any:
        """Relabel the scale (used only to absorb prime drift, see SCALE_RTOL)."""

    @abstractmethod
    def level(self, ct: Any) -> int: ...

    @abstractmethod
    def scale(self, ct: Any) -> float: ...

    def rescale_divisor(self, level: int) -> float:
        """The prime a rescale at `level` divides by (default: the nominal 2^scale_bits)."""
        return self.params.scale

    @abstractmethod
    def serialize_ciphertext(self, ct: Any) -> bytes: ...

    @abstractmethod
    def deserialize_ciphertext(self, data: bytes) -> Any: ...


# ---------------------------------------------------------------------------------------
# Checked handles and context
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Ciphertext:
    """An opaque ciphertext with the metadata the core checks before every operation."""

    raw: Any = field(repr=False)
    context_id: str
    backend: str
    level: int
    scale: float


@dataclass(frozen=True, eq=False)
class Plaintext:
    raw: Any = field(repr=False)
    context_id: str
    level: int
    scale: float


class HEContext:
    """A keyed CKKS context on one backend, with every operation checked.

    The client holds one with the secret key; `public()` gives the server's evaluation
    context, which cannot decrypt. Ciphertexts remember the context they belong to, so
    mixing key sets or backends is an error rather than garbage.

    Every context carries its key set's MAC key (`cryptoface.wire`): a new client context
    draws a fresh one, its `public()` view shares it, a loaded context keeps the one it was
    loaded with. Every blob it writes is sealed under that key; every blob it reads must verify.
    """

    def __init__(self, engine: Engine, context_id: str | None = None, mac_key: bytes | None = None) -> None:
        self.engine = engine
        self.context_id = context_id or uuid.uuid4().hex
        self.backend = engine.name
        self._mac_key = wire.new_mac_key() if mac_key is None else wire.check_mac_key(mac_key)

    @property
    def mac_key(self) -> bytes:
        """The key set's MAC key. The client hands it to the server with its evaluation
        context when it registers (over the authenticated registration channel); both then
        seal and verify every later blob under it."""
        return self._mac_key

    # ---- construction -----------------------------------------------------------------
    @classmethod
    def create(cls, engine_cls: type[Engine], params: CKKSParams, rotation_steps: Sequence[int] = (),
               mac_key: bytes | None = None) -> "HEContext":
        """A new key set, with a new MAC key unless one is given."""
        _check_params(engine_cls, params)
        steps = normalize_steps(rotation_steps, params.slots)
        return cls(engine_cls.keygen(params, sorted(steps)), mac_key=mac_key)

    def public(self) -> "HEContext":
        return HEContext(self.engine.public(), self.context_id, self._mac_key)

    @property
    def params(self) -> CKKSParams:
        return self.engine.params

    @property
    def slots(self) -> int:
        return self.engine.params.slots

    @property
    def has_secret_key(self) -> bool:
        return self.engine.has_secret_key

    @property
    def rotation_steps(self) -> frozenset[int]:
        return self.engine.rotation_steps

    def serialize(self) -> bytes:
        """This context (with the secret key if it has one), sealed under its MAC key."""
        header = ContextHeader(self.backend, self.context_id, self.params, tuple(sorted(self.rotation_steps)),
                               self.has_secret_key)
        return wire.seal("context", header.to_dict(), self.engine.serialize(), self._mac_key)

    @classmethod
    def deserialize(cls, data: bytes, engine_cls: type[Engine], *, mac_key: bytes, public_only: bool = False,
                    allow_insecure: bool = False) -> "HEContext":
        """Load a context sealed under `mac_key`, checking, in this order and before the
        library parses a byte: the MAC, the header's schema, the backend, 128-bit security
        (`allow_insecure` is the loader's opt-in to test parameters, never the header's), and
        with `public_only` the absence of a secret key. Then the engine parses (after its
        crash-safe check) and must agree with every claim of the header."""
        header_dict, payload = wire.unseal(data, "context", mac_key)
        header = ContextHeader.from_dict(header_dict)
        if header.backend != engine_cls.name:
            raise SerializationError(f"context was made by backend {header.backend!r}, not {engine_cls.name!r}")
        params = header.params
        if params.insecure_test_params and not allow_insecure:
            raise InsecureParametersError(
                "context was made with insecure_test_params; only a loader that allows insecure test "
                "parameters (allow_insecure=True) accepts it"
            )
        _check_params(engine_cls, params)
        if public_only and header.has_secret_key:
            raise SerializationError("context holds a secret key; the server side loads evaluation contexts only")
        steps = header.rotation_steps
        _library_call(f"cannot load {engine_cls.name} context",
                      lambda: engine_cls.check_untrusted_context(payload, params, steps))
        engine = _library_call(f"cannot load {engine_cls.name} context",
                               lambda: engine_cls.deserialize(payload, params, steps, public_only=public_only))
        if public_only and engine.has_secret_key:
            raise SerializationError(f"{engine_cls.name} loaded a secret key from a public-only context")
        if engine.has_secret_key != header.has_secret_key or engine.rotation_steps != frozenset(steps) \
                or engine.params != params:
            raise SerializationError("context payload contradicts its header (secret key, rotation keys or params)")
        return cls(engine, header.context_id, mac_key)

    @classmethod
    def deserialize_public(cls, data: bytes, engine_cls: type[Engine], *, mac_key: bytes,
                           allow_insecure: bool = False) -> "HEContext":
        """The server's loader: an evaluation context, refused if it holds any secret key."""
        return cls.deserialize(data, engine_cls, mac_key=mac_key, public_only=True, allow_insecure=allow_insecure)

    # ---- encode / encrypt / decrypt ------------------------------------------------------
    def _vector(self, values: Any, level: int, scale: float) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if v.size > self.slots:
            raise InvalidInputError(f"vector of length {v.size} exceeds the {self.slots} slots of this context")
        if not np.all(np.isfinite(v)):
            raise InvalidInputError("vector contains NaN or infinity; CKKS encodes finite reals only")
        bound = self.params.max_abs_at(level, scale)
        if v.size and np.max(np.abs(v)) >= bound:
            raise InvalidInputError(
                f"|value| up to {np.max(np.abs(v)):.3g} does not fit: at most {bound:.3g} is encoded "
                f"correctly at level {level} (first_mod_bits={self.params.first_mod_bits}, "
                f"scale_bits={self.params.scale_bits})"
            )
        if v.size < self.slots:
            v = np.concatenate([v, np.zeros(self.slots - v.size)])
        return v

    def _wrap(self, raw: Any) -> Ciphertext:
        e = self.engine
        return Ciphertext(raw, self.context_id, self.backend, e.level(raw), e.scale(raw))

    def encode(self, values: Any, level: int | None = None, scale: float | None = None) -> Plaintext:
        level = self.params.depth if level is None else level
        scale = self.params.scale if scale is None else scale
        if not 0 <= level <= self.params.depth:
            raise LevelMismatchError(f"cannot encode at level {level}: the chain has levels 0..{self.params.depth}")
        return Plaintext(self.engine.encode(self._vector(values, level, scale), level, scale), self.context_id, level, scale)

    def encrypt(self, values: Any) -> Ciphertext:
        p = self.params
        return self._wrap(self.engine.encrypt(self._vector(values, p.depth, p.scale)))

    def decrypt(self, ct: Ciphertext) -> np.ndarray:
        if not self.has_secret_key:
            raise MissingSecretKeyError("this is an evaluation context without the secret key: it cannot decrypt")
        self._own(ct)
        return self.engine.decrypt(ct.raw)

    # ---- checks -------------------------------------------------------------------------
    def _own(self, *items: Ciphertext | Plaintext) -> None:
        for x in items:
            if not isinstance(x, (Ciphertext, Plaintext)):
                raise TypeError(f"expected a Ciphertext or Plaintext, got {type(x).__name__}")
            if isinstance(x, Ciphertext) and x.backend != self.backend:
                raise ContextMismatchError(f"ciphertext of backend {x.backend!r} used in a {self.backend!r} context")
            if x.context_id != self.context_id:
                raise ContextMismatchError(
                    "operand belongs to another key set (context "
                    f"{x.context_id[:8]}, this is {self.context_id[:8]})"
                )

    def _same_level(self, op: str, a: Ciphertext | Plaintext, b: Ciphertext | Plaintext) -> None:
        if a.level != b.level:
            raise LevelMismatchError(
                f"{op}: operands at levels {a.level} and {b.level}; mod-switch the higher one first"
            )

    def _scales_close(self, op: str, a: float, b: float) -> bool:
        if a == b:  # SEAL needs bit-equal scales; anything else is relabelled
            return True
        if math.isclose(a, b, rel_tol=SCALE_RTOL):
            return False
        raise ScaleMismatchError(f"{op}: operand scales 2^{math.log2(a):.3f} and 2^{math.log2(b):.3f} differ")

    def _align(self, op: str, a: Ciphertext, b: Ciphertext) -> tuple[Any, Any]:
        self._own(a, b)
        self._same_level(op, a, b)
        if self._scales_close(op, a.scale, b.scale):
            return a.raw, b.raw
        return a.raw, self.engine.set_scale(b.raw, a.scale)

    def _need_level(self, op: str, ct: Ciphertext) -> None:
        if ct.level < 1:
            raise LevelExhaustedError(
                f"{op}: ciphertext is at level 0, no multiplicative level left "
                "(bootstrap, or compile with a deeper chain)"
            )

    def _plain_for(self, ct: Ciphertext, values: Any, scale: float) -> Plaintext:
        if isinstance(values, Plaintext):
            self._own(values)
            self._same_level("plaintext", ct, values)
            return values
        return self.encode(values, ct.level, scale)

    # ---- arithmetic -----------------------------------------------------------------------
    def add(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self._wrap(self.engine.add(*self._align("add", a, b)))

    def sub(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        return self._wrap(self.engine.sub(*self._align("sub", a, b)))

    def add_plain(self, ct: Ciphertext, values: Any) -> Ciphertext:
        """Add plaintext values (encoded at the ciphertext's level and scale)."""
        self._own(ct)
        pt = self._plain_for(ct, values, ct.scale)
        raw = ct.raw if self._scales_close("add_plain", ct.scale, pt.scale) else self.engine.set_scale(ct.raw, pt.scale)
        return self._wrap(self.engine.add_plain(raw, pt.raw))

    def mul_plain(self, ct: Ciphertext, values: Any, scale: float | None = None) -> Ciphertext:
        """Multiply by plaintext values, encoded by default at q_l * scale / ct.scale (q_l the
        prime the next rescale divides by), so that mul_plain + rescale lands exactly on the
        base scale: every linear layer removes the drift earlier ct x ct products left. A
        ciphertext far from the base scale (an unrescaled product) gets plain q_l."""
        self._own(ct)
        self._need_level("mul_plain", ct)
        if scale is None:
            scale = self.engine.rescale_divisor(ct.level)
            if 0.5 < ct.scale / self.params.scale < 2:  # drift only: correct it; else keep q_l
                scale *= self.params.scale / ct.scale
        pt = self._plain_for(ct, values, scale)
        return self._wrap(self.engine.mul_plain(ct.raw, pt.raw))

    def mul(self, a: Ciphertext, b: Ciphertext) -> Ciphertext:
        """A product keeps both scales (its scale is their product), so operands whose scales
        differ by prime drift are multiplied as they are: relabelling one would move its value
        by the drift (about 1e-6 relative per rescale) for nothing."""
        self._need_level("mul", a)
        self._own(a, b)
        self._same_level("mul", a, b)
        self._scales_close("mul", a.scale, b.scale)  # far apart: a scheduling bug, refused
        return self._wrap(self.engine.mul(a.raw, b.raw))

    def square(self, a: Ciphertext) -> Ciphertext:
        self._own(a)
        self._need_level("square", a)
        return self._wrap(self.engine.square(a.raw))

    def rescale(self, ct: Ciphertext) -> Ciphertext:
        self._own(ct)
        self._need_level("rescale", ct)
        return self._wrap(self.engine.rescale(ct.raw))

    def mod_switch_to(self, ct: Ciphertext, level: int) -> Ciphertext:
        self._own(ct)
        if level > ct.level or level < 0:
            raise LevelMismatchError(f"mod_switch_to: cannot go from level {ct.level} to {level}")
        if level == ct.level:
            return ct
        return self._wrap(self.engine.mod_switch_to(ct.raw, level))

    def rotate(self, ct: Ciphertext, step: int) -> Ciphertext:
        self._own(ct)
        k = step % self.slots
        if k == 0:
            return ct
        self._need_key(step, k)
        return self._wrap(self.engine.rotate(ct.raw, k))

    def rotate_many(self, ct: Ciphertext, steps: Sequence[int]) -> dict[int, Ciphertext]:
        """Rotations of one ciphertext by several steps (hoisted where the library can)."""
        self._own(ct)
        wanted = sorted({s % self.slots for s in steps} - {0})
        for k in wanted:
            self._need_key(k, k)
        out = {0: ct}
        for k, raw in zip(wanted, self.engine.rotate_hoisted(ct.raw, wanted)):
            out[k] = self._wrap(raw)
        return {s: out[s % self.slots] for s in steps}

    def _need_key(self, step: int, k: int) -> None:
        if k not in self.rotation_steps:
            raise RotationKeyError(
                f"no rotation key for step {step} (= {k} mod {self.slots}); keys exist for "
                f"{sorted(self.rotation_steps)[:20]}{' ...' if len(self.rotation_steps) > 20 else ''}"
            )

    def bootstrap(self, ct: Ciphertext) -> Ciphertext:
        self._own(ct)
        if self.params.bootstrap is None:
            raise CapabilityError(
                f"context has no bootstrapping keys (backend {self.backend!r}, params.bootstrap unset)"
            )
        return self._wrap(self.engine.bootstrap(ct.raw))

    # ---- ciphertext serialization ---------------------------------------------------------
    def serialize_ciphertext(self, ct: Ciphertext) -> bytes:
        self._own(ct)
        header = CiphertextHeader(self.backend, self.context_id, ct.level, float(ct.scale))
        return wire.seal("ciphertext", header.to_dict(), self.engine.serialize_ciphertext(ct.raw), self._mac_key)

    def deserialize_ciphertext(self, data: bytes) -> Ciphertext:
        """A ciphertext of this context: MAC, header schema and identity checked before the
        library parses it; its level and scale must be what the header says."""
        header_dict, payload = wire.unseal(data, "ciphertext", self._mac_key)
        header = CiphertextHeader.from_dict(header_dict, self.params)
        if header.backend != self.backend:
            raise ContextMismatchError(f"ciphertext was made by backend {header.backend!r}, this is {self.backend!r}")
        if header.context_id != self.context_id:
            raise ContextMismatchError("ciphertext belongs to another key set")
        _library_call("corrupted ciphertext", lambda: self.engine.check_untrusted_ciphertext(payload))
        ct = self._wrap(_library_call(f"corrupted ciphertext: {self.backend} cannot load it",
                                      lambda: self.engine.deserialize_ciphertext(payload)))
        if ct.level != header.level or not math.isclose(ct.scale, header.scale, rel_tol=1e-12):
            raise SerializationError(
                f"corrupted ciphertext: header says level {header.level}, scale 2^{math.log2(header.scale):.3f}; "
                f"payload has level {ct.level}, scale 2^{math.log2(ct.scale) if ct.scale > 0 else float('nan'):.3f}"
            )
        return ct


def _library_call(what: str, load: Callable[[], Any]) -> Any:
    """Run a library parse; its errors on bad bytes come in many types, all become one."""
    try:
        return load()
    except CryptofaceError:
        raise
    except Exception as exc:
        raise SerializationError(f"{what}: {exc}") from exc


def _check_params(engine_cls: type[Engine], params: CKKSParams) -> None:
    """128-bit security (or the warned test flag), and parameters the backend can honour."""
    params.check_security()
    caps = engine_cls.capabilities()
    if params.bootstrap is not None and not caps.bootstrapping:
        raise CapabilityError(f"backend {engine_cls.name!r} does not bootstrap; plan without bootstraps")
    bound = caps.max_log_qp_128.get(params.ring_dim)
    if not params.insecure_test_params and (bound is None or params.log_qp > bound):
        raise CapabilityError(
            f"backend {engine_cls.name!r} has no 128-bit parameters for N={params.ring_dim} with "
            f"log QP={params.log_qp} (its limits: {caps.max_log_qp_128})"
        )


def normalize_steps(steps: Sequence[int], slots: int) -> set[int]:
    """Rotation steps as the keys that serve them: k mod slots, without the identity."""
    return {int(s) % slots for s in steps} - {0}
