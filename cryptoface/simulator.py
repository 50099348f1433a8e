"""A numpy CKKS simulator backend: slots, levels and scales tracked, CKKS-sized noise added.

It exists for fast compiler tests (a whole model in seconds), never as evidence that a real
backend works: the tests that check real backends run on the real libraries. It enforces
the same rules a real CKKS library does (no multiply at level 0, rotation only with a key,
no decryption without the secret key), so a plan that runs here is a plan that is legal.
Noise follows the usual CKKS estimates: fresh encryption about sqrt(N)*3.2 / scale,
a rescale adds rounding of about sqrt(N/12) / new scale, a key switch a little more.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .backend import Capabilities, Engine
from .errors import MissingSecretKeyError
from .params import HE_STD_128_MAX_LOG_QP, CKKSParams
from .plugins import hookimpl

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
            key_switching="simulated",
            notes=("no cryptography: noise and levels only; for compiler tests",),
        )

    @classmethod
    def bootstrap_depth(cls, level_budget: tuple[int, int], params: CKKSParams) -> int:
        # Mirrors OpenFHE's count for the same budget: CoeffsToSlots + SlotsToCoeffs levels
        # plus the approximate modular reduction (Chebyshev series and double-angle steps).
        return sum(level_budget) + 9

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
        return json.dumps({"key_id": self.key_id, "secret": self._secret}).encode()

    def secret_key_bytes(self) -> bytes:
        if self._secret is None:
            raise MissingSecretKeyError("evaluation context has no secret key")
        return self._secret.encode()

    @classmethod
    def deserialize(cls, data: bytes, params: CKKSParams, rotation_steps: Sequence[int]) -> "SimulatorEngine":
        d = json.loads(data)
        return cls(params, rotation_steps, d["key_id"], d["secret"])

    # ---- noise ---------------------------------------------------------------------------
    def _noise(self, std: float) -> np.ndarray:
        return self._rng.normal(0.0, std, self.params.slots)

    def _fresh_std(self, scale: float) -> float:
        return SIGMA * np.sqrt(self.params.ring_dim) / scale

    def _ct(self, values: np.ndarray, level: int, scale: float) -> SimCiphertext:
        return SimCiphertext(values, level, scale, self.key_id)

    # ---- primitives ----------------------------------------------------------------------
    def encode(self, values: np.ndarray, level: int, scale: float) -> SimPlaintext:
        # Encoding rounds to 1/scale.
        return SimPlaintext(np.round(values * scale) / scale, level, scale)

    def encrypt(self, values: np.ndarray) -> SimCiphertext:
        p = self.params
        return self._ct(values + self._noise(self._fresh_std(p.scale)), p.depth, p.scale)

    def decrypt(self, ct: SimCiphertext) -> np.ndarray:
        if self._secret is None:
            raise MissingSecretKeyError("simulator context without secret key cannot decrypt")
        return ct.values.copy()

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
        # Bootstrapped values carry about 2^-20 relative error at typical parameters.
        err = self._noise(2.0**-20 * max(1.0, float(np.max(np.abs(ct.values)))))
        return self._ct(ct.values + err, p.depth - p.bootstrap.depth, p.scale)

    def set_scale(self, ct: SimCiphertext, scale: float) -> SimCiphertext:
        return self._ct(ct.values, ct.level, scale)

    def level(self, ct: SimCiphertext) -> int:
        return ct.level

    def scale(self, ct: SimCiphertext) -> float:
        return ct.scale

    def serialize_ciphertext(self, ct: SimCiphertext) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, values=ct.values, level=ct.level, scale=ct.scale, key_id=ct.key_id)
        return buf.getvalue()

    def deserialize_ciphertext(self, data: bytes) -> SimCiphertext:
        with np.load(io.BytesIO(data)) as z:
            values = z["values"]
            if values.shape != (self.params.slots,):
                raise ValueError(f"simulated ciphertext has {values.shape} values, expected {self.params.slots}")
            return SimCiphertext(values, int(z["level"]), float(z["scale"]), str(z["key_id"]))


@hookimpl
def cryptoface_register_backends(register) -> None:
    register.add(SimulatorEngine)
