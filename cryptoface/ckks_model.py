"""The arithmetic a real CKKS ciphertext obeys, as the numpy simulator models it.

A CKKS ciphertext at level l decrypts to a polynomial whose integer coefficients are
`message coefficient * scale + noise`, reduced modulo Q_l = q_0 * q_1 * ... * q_l (centered).
The slots are the polynomial's values at roots of unity (the canonical embedding). This
module holds the pieces of that picture the simulator needs to fail where a library fails:

- `ModulusChain`: the primes (NTT-friendly, q = 1 mod 2N, the largest below 2^bits, as SEAL
  picks them) and log2 Q_l, so that a rescale divides by a real prime;
- `Embedding`: slots <-> coefficients of the packed polynomial (sparse packing: degree
  2 * slots), so that rounding at the scale and reduction mod Q_l act on coefficients, as
  they do in a library;
- `wrap`: centered reduction of the coefficients modulo Q_l / scale (message units);
- `eval_mod`: the bootstrap's approximate modular reduction, accurate on a bounded range only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Deterministic Miller-Rabin bases: exact for every n < 3.3e24 (all primes here are < 2^61).
_MR_BASES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    for p in _MR_BASES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in _MR_BASES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def ntt_primes(bits: int, ring_dim: int, count: int, exclude: frozenset[int] = frozenset()) -> list[int] | None:
    """The `count` largest primes q < 2^bits with q = 1 mod 2N and q > 2^(bits-1), or None
    when there are not that many (small scales at large rings)."""
    step = 2 * ring_dim
    q = ((1 << bits) - 1) // step * step + 1
    out: list[int] = []
    while len(out) < count and q > 1 << (bits - 1):
        if q not in exclude and is_prime(q):
            out.append(q)
        q -= step
    return out if len(out) == count else None


@dataclass(frozen=True)
class ModulusChain:
    """q_0 (first_mod_bits) and the rescale primes q_1..q_depth (scale_bits), as floats.

    When the ring has too few NTT-friendly primes of the scale's size, the rescale primes are
    the nominal 2^scale_bits (OpenFHE's FIXEDMANUAL also divides by the nominal value)."""

    primes: tuple[float, ...]
    nominal: bool

    @classmethod
    def for_params(cls, ring_dim: int, depth: int, scale_bits: int, first_mod_bits: int) -> "ModulusChain":
        q0 = ntt_primes(first_mod_bits, ring_dim, 1)
        rest = ntt_primes(scale_bits, ring_dim, depth, frozenset(q0 or ())) if q0 else None
        if q0 is None or rest is None:
            return cls((float(2**first_mod_bits),) + (float(2**scale_bits),) * depth, True)
        # SEAL orders equal-size primes largest first: level l's rescale divides by q_l.
        return cls(tuple(float(q) for q in q0 + rest), False)

    def prime(self, level: int) -> float:
        return self.primes[level]

    def log2_q(self, level: int) -> float:
        """log2 Q_level = log2(q_0 * ... * q_level)."""
        return float(sum(math.log2(q) for q in self.primes[: level + 1]))


class Embedding:
    """Slots <-> coefficients of the packed polynomial, for `slots` real values.

    The polynomial has n = 2*slots coefficients (sparse packing uses X^(N/n)); slot j is its
    value at zeta^(5^j) (zeta = exp(i*pi/n)), the ordering under which rotation by one slot is
    the Galois automorphism X -> X^5. Both directions are one FFT of length n.
    """

    def __init__(self, slots: int) -> None:
        n = 2 * slots
        self.n = n
        self.index = np.array([(pow(5, j, 2 * n) - 1) // 2 for j in range(slots)], dtype=np.int64)
        self.twist = np.exp(1j * np.pi * np.arange(n) / n)

    def to_coeffs(self, values: np.ndarray) -> np.ndarray:
        evals = np.zeros(self.n, dtype=np.complex128)
        evals[self.index] = values
        evals[self.n - 1 - self.index] = values  # conjugate roots: real slots, conjugate values
        return np.real(np.fft.fft(evals) / self.n / self.twist)

    def to_slots(self, coeffs: np.ndarray) -> np.ndarray:
        evals = self.n * np.fft.ifft(coeffs * self.twist)
        return np.real(evals[self.index])


def wrap(coeffs: np.ndarray, modulus: float) -> np.ndarray:
    """Centered reduction modulo `modulus` (Q_l / scale): what decryption returns."""
    return coeffs - modulus * np.round(coeffs / modulus)


def eval_mod(coeffs: np.ndarray, input_range: float) -> np.ndarray:
    """The bootstrap's approximate modular reduction on coefficients (message units).

    A library approximates reduction mod q_0 by a sine (Chebyshev series plus double-angle
    steps) that is accurate only on a bounded range of the input. Inside `input_range` the
    coefficient comes back unchanged; beyond it this model folds it back (continuously, as a
    cosine of period 4 * input_range from the edge): a wrong value and no error, as a library
    returns. The model is stricter than OpenFHE beyond the edge (measured at N=2^12 with a
    50-bit scale: accurate to 1e-3 up to |x| = 16, folding as a sine of period 2^10 beyond),
    never more lenient.
    """
    r = input_range
    excess = np.maximum(np.abs(coeffs) - r, 0.0)
    return np.where(excess > 0, np.sign(coeffs) * r * np.cos(np.pi * excess / (2 * r)), coeffs)
