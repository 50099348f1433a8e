"""A numpy CKKS simulator backend: it fails where a real CKKS library fails, in seconds.

It exists for fast compiler tests (a whole model in seconds), never as evidence that a real
backend works: the tests that check real backends run on the real libraries. It enforces the
rules a library does (no multiply at level 0, rotation only with a key, no decryption without
the secret key) and models the arithmetic that makes a legal-looking plan give wrong numbers
(`cryptoface.ckks_model`):

Modelled
- fixed-point encoding: encode and encrypt round the coefficients of the packed polynomial
  (canonical embedding, 5^j slot order) to integers at the scale;
- the modulus chain: real NTT-friendly primes (SEAL's choice: the largest q = 1 mod 2N below
  2^bits; nominal 2^scale_bits when the ring has too few), a rescale divides the scale by the
  prime of its level and rounds (about sqrt(N/12) / new scale per slot), so scales drift as
  in SEAL and `set_scale` changes the decoded value as a relabelling does;
- overflow: any value whose |coefficient * scale| reaches Q_l / 2 at its level l wraps
  modulo Q_l (centered), as the library's integers do; at level 0 Q_0 = q_0, so a result
  larger than about q_0 / (2 * scale) decrypts to garbage;
- bootstrapping: the input is reduced modulo q_0 (ModRaise sees nothing else) and the
  approximate modular reduction is exact within `params.bootstrap.input_range` and garbage
  beyond it (`ckks_model.eval_mod`: stricter than OpenFHE near the edge, never more lenient);
- noise: fresh encryption about SIGMA*sqrt(N) / scale per slot, relinearization and rotation
  (key switching) the same at the operand's scale, bootstrapping 2^-20 relative; Gaussian in
  the slots.

Not modelled
- the secret key and real ciphertext polynomials (values are kept in the slots, in float64:
  wraps are exact up to float rounding, which only garbles results that are garbage anyway);
- noise growth with the operands' magnitude in products, the hybrid key-switching modulus,
  imaginary parts, and a library's own refusals (OpenFHE's decode raises on some overflows
  where this returns the wrapped value);
- OpenFHE's hidden bootstrap prime (its level 0 holds q_0 * q_hidden): here level 0 is q_0.

`observe()` exposes a ciphertext's values so that the runtime can check the compiler's value
bounds; a real backend cannot, and returns None.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .backend import Capabilities, Engine
from .ckks_model import Embedding, ModulusChain, eval_mod, wrap
from .errors import MissingSecretKeyError
from .params import HE_STD_128_MAX_LOG_QP, BootstrapConfig, BootstrapOption, CKKSParams
from .hooks import hookimpl
from .wire import parse_json

SIGMA = 3.2


@dataclass(frozen=True)
class SimCiphertext:
    values: np.ndarray
    level: int
    scale: float
    key_id: str


@dataclass(frozen=True)
class SimPlaintext:
    values: np.ndarray
    level: int
    scale: float


class SimulatorEngine(Engine):
    name = "simulator"

    def __init__(self, params: CKKSParams, rotation_steps: Sequence[int], key_id: str, secret: str | None, seed: int | None = None) -> None:
        self.params = params
        self.rotation_steps = frozenset(int(s) for s in rotation_steps)
        self.key_id = key_id
        self._secret = secret
        self._rng = np.random.default_rng(seed)
        self.chain = ModulusChain.for_params(params.ring_dim, params.depth, params.scale_bits, params.first_mod_bits)
        self.embedding = Embedding(params.slots)

    @classmethod
    def capabilities(cls) -> Capabilities:
        return Capabilities(
            name=cls.name,
            library="numpy (simulated CKKS)",
            library_version=np.__version__,
            ring_dims=tuple(sorted(HE_STD_128_MAX_LOG_QP)),
            max_log_qp_128=dict(HE_STD_128_MAX_LOG_QP),
            bootstrapping=True,
            rescale="manual",
            hoisted_rotations=True,
            thread_control=False,
            exact_scales=True,
            key_switching="simulated",
            notes=("no cryptography: noise and levels only; for compiler tests",),
        )

    @classmethod
    def bootstrap_depth(cls, level_budget: tuple[int, int], params: CKKSParams) -> int:
        # Mirrors OpenFHE's count for the same budget: CoeffsToSlots + SlotsToCoeffs levels
        # plus the approximate modular reduction (Chebyshev series and double-angle steps).
        return sum(level_budget) + 9

    @classmethod
    def bootstrap_options(cls, ring_dim: int, slots: int) -> list[BootstrapOption]:
        # A generic library: any budget, a 50-bit scale under a 60-bit q0, and the 2^-20
        # relative error `bootstrap` adds (19 bits claimed, one for the maximum over slots).
        return [BootstrapOption(BootstrapConfig(level_budget=b, depth=cls.bootstrap_depth(b, None), input_range=1.0),
                                scale_bits=50, first_mod_bits=60, precision_bits=19.0, rotation_keys=0)
                for b in ((2, 2), (3, 3))]

    @classmethod
    def key_switch_key_bytes(cls, params: CKKSParams) -> int:
        return 0  # no keys are made

    @classmethod
    def scale_errors(cls, params: CKKSParams) -> list[float]:
        chain = ModulusChain.for_params(params.ring_dim, params.depth, params.scale_bits, params.first_mod_bits)
        return [params.scale / chain.prime(lvl) - 1.0 for lvl in range(1, params.depth + 1)]

    @classmethod
    def keygen(cls, params: CKKSParams, rotation_steps: Sequence[int]) -> "SimulatorEngine":
        seed = int(os.environ["CRYPTOFACE_SIMULATOR_SEED"]) if "CRYPTOFACE_SIMULATOR_SEED" in os.environ else None
        return cls(params, rotation_steps, secrets.token_hex(8), secrets.token_hex(16), seed)

    def public(self) -> "SimulatorEngine":
        return type(self)(self.params, self.rotation_steps, self.key_id, None)

    @property
    def has_secret_key(self) -> bool:
        return self._secret is not None

    def serialize(self) -> bytes:
        # The parameters and steps ride along so that a load can compare them with the header,
        # as the real backends compare their library objects.
        return json.dumps({"key_id": self.key_id, "secret": self._secret, "params": self.params.to_dict(),
                           "rotation_steps": sorted(self.rotation_steps)}).encode()

    def secret_key_bytes(self) -> bytes:
        if self._secret is None:
            raise MissingSecretKeyError("evaluation context has no secret key")
        return self._secret.encode()

    @classmethod
    def deserialize(cls, data: bytes, params: CKKSParams, rotation_steps: Sequence[int], *,
                    public_only: bool = False) -> "SimulatorEngine":
        d = parse_json(bytes(data), "simulator context")
        if set(d) != {"key_id", "secret", "params", "rotation_steps"}:
            raise ValueError(f"simulator context has fields {sorted(d)}")
        if public_only and d["secret"] is not None:
            raise ValueError("simulator context holds a secret key")
        if not _is_hex(d["key_id"], 16) or not (d["secret"] is None or _is_hex(d["secret"], 32)):
            raise ValueError("simulator key id or secret malformed")
        if d["params"] != json.loads(json.dumps(params.to_dict())) or d["rotation_steps"] != sorted(rotation_steps):
            raise ValueError("simulator context holds other parameters or rotation steps than its header")
        return cls(params, rotation_steps, d["key_id"], d["secret"])

    # ---- noise ---------------------------------------------------------------------------
    def _noise(self, std: float) -> np.ndarray:
        return self._rng.normal(0.0, std, self.params.slots)

    def _fresh_std(self, scale: float) -> float:
        return SIGMA * np.sqrt(self.params.ring_dim) / scale

    def _ct(self, values: np.ndarray, level: int, scale: float) -> SimCiphertext:
        return SimCiphertext(self._reduce(values, level, scale), level, scale, self.key_id)

    def _reduce(self, values: np.ndarray, level: int, scale: float) -> np.ndarray:
        """Wrap modulo Q_level, as the library's integers do, if |coefficients * scale| reach
        Q_level / 2 (slots bound coefficients, so most values skip the FFT)."""
        peak = float(np.max(np.abs(values))) if values.size else 0.0
        log_half_modulus = self.chain.log2_q(level) - 1 - np.log2(scale)
        if peak == 0.0 or np.log2(peak) < log_half_modulus:
            return values
        if not np.isfinite(peak) or log_half_modulus > 1000:  # beyond float64: nothing left to decode
            return np.full_like(values, np.nan)
        coeffs = wrap(self.embedding.to_coeffs(values), 2.0 ** (log_half_modulus + 1))
        return self.embedding.to_slots(coeffs)

    def _round_at(self, values: np.ndarray, scale: float) -> np.ndarray:
        """Fixed point: the packed polynomial's coefficients rounded to integers at `scale`."""
        coeffs = np.round(self.embedding.to_coeffs(values) * scale) / scale
        return self.embedding.to_slots(coeffs)

    # ---- primitives ----------------------------------------------------------------------
    def encode(self, values: np.ndarray, level: int, scale: float) -> SimPlaintext:
        return SimPlaintext(self._reduce(self._round_at(values, scale), level, scale), level, scale)

    def encrypt(self, values: np.ndarray) -> SimCiphertext:
        p = self.params
        return self._ct(self._round_at(values, p.scale) + self._noise(self._fresh_std(p.scale)), p.depth, p.scale)

    def decrypt(self, ct: SimCiphertext) -> np.ndarray:
        if self._secret is None:
            raise MissingSecretKeyError("simulator context without secret key cannot decrypt")
        return ct.values.copy()  # already reduced modulo Q_level by `_ct`

    def observe(self, ct: SimCiphertext) -> np.ndarray:
        return ct.values

    def add(self, a: SimCiphertext, b: SimCiphertext) -> SimCiphertext:
        return self._ct(a.values + b.values, a.level, a.scale)

    def sub(self, a: SimCiphertext, b: SimCiphertext) -> SimCiphertext:
        return self._ct(a.values - b.values, a.level, a.scale)

    def add_plain(self, ct: SimCiphertext, pt: SimPlaintext) -> SimCiphertext:
        return self._ct(ct.values + pt.values, ct.level, ct.scale)

    def mul_plain(self, ct: SimCiphertext, pt: SimPlaintext) -> SimCiphertext:
        return self._ct(ct.values * pt.values, ct.level, ct.scale * pt.scale)

    def mul(self, a: SimCiphertext, b: SimCiphertext) -> SimCiphertext:
        relin = self._noise(self._fresh_std(a.scale * b.scale))
        return self._ct(a.values * b.values + relin, a.level, a.scale * b.scale)

    def rescale_divisor(self, level: int) -> float:
        return self.chain.prime(level)

    def rescale(self, ct: SimCiphertext) -> SimCiphertext:
        scale = ct.scale / self.rescale_divisor(ct.level)
        rounding = self._noise(np.sqrt(self.params.ring_dim / 12) / scale)
        return self._ct(ct.values + rounding, ct.level - 1, scale)

    def mod_switch_to(self, ct: SimCiphertext, level: int) -> SimCiphertext:
        return self._ct(ct.values, level, ct.scale)

    def rotate(self, ct: SimCiphertext, step: int) -> SimCiphertext:
        assert step in self.rotation_steps, step  # HEContext checks first; a bug otherwise
        ks = self._noise(self._fresh_std(ct.scale))
        return self._ct(np.roll(ct.values, -step) + ks, ct.level, ct.scale)

    def bootstrap(self, ct: SimCiphertext) -> SimCiphertext:
        p = self.params
        assert p.bootstrap is not None
        # ModRaise sees the value modulo q_0 only; the approximate modular reduction is exact
        # within the backend's input range and garbage beyond it.
        coeffs = self.embedding.to_coeffs(self._reduce(ct.values, 0, ct.scale))
        values = self.embedding.to_slots(eval_mod(coeffs, p.bootstrap.input_range))
        # Bootstrapped values carry about 2^-20 relative error at typical parameters.
        err = self._noise(2.0**-20 * max(1.0, float(np.max(np.abs(values)))))
        return self._ct(values + err, p.depth - p.bootstrap.depth, p.scale)

    def set_scale(self, ct: SimCiphertext, scale: float) -> SimCiphertext:
        # A relabelling: the integers stay, so the decoded value moves by old / new scale.
        return self._ct(ct.values * (ct.scale / scale), ct.level, scale)

    def level(self, ct: SimCiphertext) -> int:
        return ct.level

    def scale(self, ct: SimCiphertext) -> float:
        return ct.scale

    # Fixed layout, then exactly `slots` little-endian doubles: nothing in the bytes sizes an allocation.
    _CT_HEAD = np.dtype([("level", "<i8"), ("scale", "<f8"), ("key_id", "S16")])

    def serialize_ciphertext(self, ct: SimCiphertext) -> bytes:
        head = np.array([(ct.level, ct.scale, ct.key_id.encode())], dtype=self._CT_HEAD)
        return head.tobytes() + np.asarray(ct.values, dtype="<f8").tobytes()

    def deserialize_ciphertext(self, data: bytes) -> SimCiphertext:
        data = bytes(data)
        if len(data) != self._CT_HEAD.itemsize + 8 * self.params.slots:
            raise ValueError(f"simulated ciphertext of {len(data)} bytes, expected {self.params.slots} values")
        head = np.frombuffer(data, self._CT_HEAD, count=1)[0]
        values = np.frombuffer(data, "<f8", offset=self._CT_HEAD.itemsize).copy()
        level, scale = int(head["level"]), float(head["scale"])
        if head["key_id"].decode("ascii", "replace") != self.key_id:
            raise ValueError("simulated ciphertext was encrypted under another key")
        if not 0 <= level <= self.params.depth or not np.isfinite(scale) or scale <= 1 or not np.all(np.isfinite(values)):
            raise ValueError("simulated ciphertext has an impossible level, scale or value")
        return SimCiphertext(values, level, scale, self.key_id)


def _is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and all(c in "0123456789abcdef" for c in value)


@hookimpl
def cryptoface_register_backends(register) -> None:
    register.add(SimulatorEngine)
