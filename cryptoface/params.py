"""CKKS parameters and their security check.

The compiler chooses a `CKKSParams`; every backend builds its context from the same record,
so a plan means the same thing on every library. Security is checked here, against the
Homomorphic Encryption Standard's table, rather than trusted to each library: Pyfhel, for
one, accepts ring dimensions that SEAL's own 128-bit table does not cover.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass, field

from .errors import InsecureParametersError, InsecureParametersWarning, ParameterError

log = logging.getLogger("cryptoface.security")


def warn_insecure(detail: str) -> None:
    """The flag weakens (or may weaken) encryption: log and warn every time it is used."""
    msg = f"INSECURE TEST PARAMETERS (insecure_test_params is on): {detail}"
    log.warning(msg)
    warnings.warn(msg, InsecureParametersWarning, stacklevel=3)

# Maximum log2(Q*P) for 128-bit classical security with a uniform ternary secret.
# N <= 2^15: Homomorphic Encryption Standard (Albrecht et al., 2018), Table 1.
# N = 2^16, 2^17: OpenFHE's extension of that table (lattice estimator, same method).
HE_STD_128_MAX_LOG_QP: dict[int, int] = {
    1024: 27,
    2048: 54,
    4096: 109,
    8192: 218,
    16384: 438,
    32768: 881,
    65536: 1747,
    131072: 3523,
}


@dataclass(frozen=True)
class BootstrapConfig:
    """Bootstrapping settings: OpenFHE-style level budget and the levels it consumes.

    `depth` is what the bootstrap circuit itself uses from the modulus chain; the backend
    knows it (`Engine.bootstrap_depth`), the compiler copies it here so that a plan records
    the levels left after each bootstrap: `CKKSParams.depth - depth`.
    """

    level_budget: tuple[int, int] = (3, 3)
    depth: int = 0
    # |value| the bootstrap is specified for: its approximate modular reduction is accurate
    # within it and garbage beyond (OpenFHE: [-1, 1]). The compiler prescales into it.
    input_range: float = 1.0
    # OpenFHE-style iterated bootstrapping (Bossuat et al.): a second pass on the residual
    # doubles the precision bits for one more level and about twice the time.
    iterations: int = 1


@dataclass(frozen=True)
class BootstrapOption:
    """One way a library can bootstrap at one ring dimension: what the compiler chooses among.

    The library states it (`Engine.bootstrap_options`) because the constraints are its own:
    OpenFHE's FIXEDMANUAL bootstrap needs the scale within its correction factor of q0, and its
    precision and key count depend on the level budget. `precision_bits` is measured (the
    command is in the plugin), -log2 of the largest error relative to `config.input_range`.
    """

    config: BootstrapConfig
    scale_bits: int
    first_mod_bits: int
    precision_bits: float
    rotation_keys: int  # key-switching keys the bootstrap itself generates
    relative_time: float = 1.0  # one bootstrap's time relative to this ring's cheapest option


@dataclass(frozen=True)
class CKKSParams:
    """One CKKS parameter set.

    `depth` is the number of rescale primes: a fresh ciphertext is at level `depth` and each
    rescale takes one level. `slots` is the length of the packed vector: rotations are cyclic
    over it on every backend (SEAL backends replicate the vector across N/2 slots, OpenFHE sets
    its batch size), so the plan does not depend on a library's convention.
    """

    ring_dim: int
    depth: int
    scale_bits: int = 40
    first_mod_bits: int = 60
    special_mod_bits: int = 60
    slots: int = 0
    bootstrap: BootstrapConfig | None = None
    insecure_test_params: bool = False
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        n = self.ring_dim
        if n < 1024 or n & (n - 1):
            raise ParameterError(f"ring_dim must be a power of two >= 1024, got {n}")
        if self.slots == 0:
            object.__setattr__(self, "slots", n // 2)
        s = self.slots
        if s < 1 or s & (s - 1) or s > n // 2:
            raise ParameterError(f"slots must be a power of two <= ring_dim/2 = {n // 2}, got {s}")
        if self.depth < 0:
            raise ParameterError(f"depth must be >= 0, got {self.depth}")
        if not 20 <= self.scale_bits <= 60:
            raise ParameterError(f"scale_bits must be in [20, 60], got {self.scale_bits}")
        if not self.scale_bits < self.first_mod_bits <= 60:
            raise ParameterError(
                f"first_mod_bits ({self.first_mod_bits}) must exceed scale_bits "
                f"({self.scale_bits}) and be <= 60, or decryption overflows"
            )
        if self.bootstrap is not None and self.bootstrap.depth >= self.depth:
            raise ParameterError(
                f"bootstrapping consumes {self.bootstrap.depth} levels but the chain has only "
                f"{self.depth}: no level would be left after a bootstrap"
            )

    @property
    def coeff_mod_bit_sizes(self) -> list[int]:
        """Bit sizes of the modulus chain: q0, the rescale primes, the special prime."""
        return [self.first_mod_bits] + [self.scale_bits] * self.depth + [self.special_mod_bits]

    @property
    def log_q(self) -> int:
        return self.first_mod_bits + self.scale_bits * self.depth

    @property
    def log_qp(self) -> int:
        return self.log_q + self.special_mod_bits

    @property
    def scale(self) -> float:
        return float(2**self.scale_bits)

    @property
    def levels_after_bootstrap(self) -> int | None:
        return None if self.bootstrap is None else self.depth - self.bootstrap.depth

    @property
    def max_abs_value(self) -> float:
        """Largest |x| that decrypts correctly at the last level (q0 / scale, halved for sign)."""
        return self.max_abs_at(0)

    def max_abs_at(self, level: int, scale: float | None = None) -> float:
        """Largest |x| a value at `level` holds: Q_level / (2 scale), Q_level = q0 q1 .. q_level.
        (The compiler keeps every value within this at the level it sits at: `bounds.py`.)"""
        bits = self.first_mod_bits + level * self.scale_bits - 1 - math.log2(self.scale if scale is None else scale)
        return math.inf if bits > 1000 else float(2.0**bits)

    def security_bits(self) -> int:
        """128 when log QP is within the standard's bound for N, else an honest 0 (unknown)."""
        bound = HE_STD_128_MAX_LOG_QP.get(self.ring_dim)
        return 128 if bound is not None and self.log_qp <= bound else 0

    def check_security(self) -> None:
        """Refuse sub-128-bit parameters unless the caller opted in; warn whenever the flag is on."""
        if self.security_bits() >= 128:
            if self.insecure_test_params:
                warn_insecure(f"parameters are 128-bit (N = {self.ring_dim}, log QP = {self.log_qp}); "
                               "the libraries keep their 128-bit checks")
            return
        bound = HE_STD_128_MAX_LOG_QP.get(self.ring_dim)
        why = (
            f"log QP = {self.log_qp} bits exceeds the 128-bit bound of {bound} bits for "
            f"N = {self.ring_dim}"
            if bound is not None
            else f"N = {self.ring_dim} is not in the HE standard table"
        )
        if not self.insecure_test_params:
            raise InsecureParametersError(
                f"parameters below 128-bit security: {why}. Use a larger ring dimension or "
                "fewer levels; for tests only, set insecure_test_params=True"
            )
        warn_insecure(f"below 128-bit security: {why}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        d["bootstrap"] = None if self.bootstrap is None else asdict(self.bootstrap)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CKKSParams":
        d = dict(d)
        boot = d.pop("bootstrap", None)
        if boot is not None:
            boot = BootstrapConfig(level_budget=tuple(boot["level_budget"]), depth=boot["depth"],
                                   input_range=float(boot.get("input_range", 1.0)),
                                   iterations=int(boot.get("iterations", 1)))
        return cls(bootstrap=boot, **d)


def smallest_secure_ring_dim(log_qp: int, min_slots: int = 1) -> int | None:
    """The smallest N whose 128-bit bound covers log QP and which has enough slots."""
    for n in sorted(HE_STD_128_MAX_LOG_QP):
        if HE_STD_128_MAX_LOG_QP[n] >= log_qp and n // 2 >= min_slots:
            return n
    return None


def next_pow2(x: int) -> int:
    return 1 if x <= 1 else 1 << math.ceil(math.log2(x))
