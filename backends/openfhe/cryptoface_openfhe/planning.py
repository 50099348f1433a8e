"""What the compiler must know about OpenFHE to plan for it: its modulus accounting, its
primes, its key sizes and the bootstraps it can run. The `OpenFHEEngine` planning hooks
answer from here, so none of this lives in the core.

Sources, all checked on this machine (OpenFHE 1.6.1, 64-bit native integers):
- HYBRID key switching adds a special modulus P larger than the largest digit of Q, and OpenFHE
  counts it in its 128-bit check; the engine picks the smallest digit count from 3 that fits.
- FIXEDMANUAL chooses its rescale primes around 2^scale_bits, alternately below and above,
  each = 1 mod 2N, and treats every one as exactly 2^scale_bits: a rescale at level l leaves a
  value multiplied by 2^scale_bits / q_l. `rescale_primes` rebuilds that chain; the drift it
  predicts matched a measurement (encrypt 1, multiply by 1, rescale, decrypt) to 2% at N=2^12.
- Bootstrapping (UNIFORM_TERNARY secret, FIXEDMANUAL) needs first_mod_bits - scale_bits at most
  its correction factor, and is precise only with the scale next to q0: at a 59-bit scale and a
  60-bit q0 one pass keeps 9.6-12.8 bits and two iterations 20.8-23.9 bits (N=2^13..2^15, 2048
  slots); a 53-bit scale keeps 5-7 bits. Command: `backends/openfhe/scripts/bootstrap_precision.py`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache

from cryptoface.ckks_model import is_prime
from cryptoface.params import BootstrapConfig, BootstrapOption, CKKSParams

OPENFHE_DEFAULT_DNUM = 3
P_PRIME_BITS = 60

# Bootstrap precision (bits, relative to the input range) by (level budget, iterations) and
# log2 N, measured with scripts/bootstrap_precision.py (2048 slots, uniform inputs). It drops
# with the ring: 1 to 1.5 bits per doubling; beyond the last measured ring the planner assumes
# 1.5 bits per doubling, and it always claims 0.5 bit less than measured. (4,4) is taken as (3,3).
BOOT_PRECISION_MEASURED = {
    ((2, 2), 1): {13: 12.6, 14: 11.1, 15: 9.6}, ((2, 2), 2): {13: 23.5, 14: 22.0, 15: 20.8},
    ((3, 3), 1): {13: 12.8, 14: 11.7, 15: 10.8}, ((3, 3), 2): {13: 23.9, 14: 22.6, 15: 22.0},
}
BOOT_PRECISION_MARGIN_BITS = 0.5
# What OpenFHE's second iteration is told the first one keeps (its `precision` argument).
BOOT_FIRST_PASS_BITS = 12
# Two iterations take about 2.5x the time of one (measured 2.5 s vs 1.0 s at N=2^13).
BOOT_ITERATION_TIME = {1: 1.0, 2: 2.5}
BOOT_SCALE_BITS, BOOT_FIRST_MOD_BITS = 59, 60
# Rotation keys EvalBootstrapKeyGen makes, by log2(slots) and level budget (2,2)/(3,3)/(4,4),
# counted with GetExistingEvalAutomorphismKeyIndices at N=2^13..2^14; 14 and 15 extrapolated.
BOOT_KEYS = {
    4: (20, 20, 18), 6: (25, 20, 25), 8: (38, 31, 20), 10: (37, 56, 36), 11: (66, 54, 36),
    12: (65, 46, 29), 13: (81, 60, 68), 14: (100, 80, 85), 15: (120, 100, 105),
}
BOOT_BUDGETS = ((2, 2), (3, 3), (4, 4))


# ---- primes ----------------------------------------------------------------------------------------


def _step_prime(q: int, m: int, direction: int) -> int:
    q += direction * m
    while not is_prime(q):
        q += direction * m
    return q


@lru_cache(maxsize=64)
def rescale_primes(ring_dim: int, scale_bits: int, towers: int) -> tuple[int, ...]:
    """OpenFHE's FIXEDMANUAL rescale primes, top tower first (the first one a rescale drops)."""
    m = 2 * ring_dim
    first = (2**scale_bits // m) * m + 1
    while not is_prime(first):
        first += m
    out = [first]
    below = above = first
    for k in range(towers - 2):  # q0 is separate; the top prime is `first`
        if k % 2 == 0:
            below = _step_prime(below, m, -1)
            out.append(below)
        else:
            above = _step_prime(above, m, +1)
            out.append(above)
    return tuple(out)


def scale_errors(params: CKKSParams) -> list[float]:
    """Per contract level l = 1..depth: 2^scale_bits / q_l - 1, the factor OpenFHE's nominal
    scale leaves on a value rescaled at l (the hidden bootstrap prime sits below level 1)."""
    towers = chain_depth(params) + 1
    primes = rescale_primes(params.ring_dim, params.scale_bits, towers)  # top first
    top_first = [2.0**params.scale_bits / q - 1.0 for q in primes]
    by_level = list(reversed(top_first))  # index 0 = the lowest rescale prime
    hidden = 1 if params.bootstrap is not None else 0
    return by_level[hidden : hidden + params.depth]


# ---- modulus accounting ------------------------------------------------------------------------------


def chain_depth(params: CKKSParams) -> int:
    """OpenFHE's multiplicative depth: the contract's depth, plus the hidden bootstrap prime."""
    return params.depth + (1 if params.bootstrap is not None else 0)


def _dnum_candidates(towers: int) -> list[int]:
    """The order the engine tries digit counts in: OpenFHE's default 3, then more, then fewer."""
    return [d for d in [*range(OPENFHE_DEFAULT_DNUM, towers + 1), 2, 1] if d <= towers]


# P exceeds the largest digit by this many bits: fitted to where OpenFHE 1.6.1 stops accepting
# (N=2^16, scales 40/50/59, 2..8 digits; e.g. 5 digits of 24 towers at 59 bits need 6 P primes).
P_MARGIN_BITS = 5


def p_bits(towers: int, dnum: int, scale_bits: int, first_mod_bits: int) -> int:
    """P must exceed the largest digit (q0 and the scale primes grouped with it)."""
    digit_bits = first_mod_bits + (math.ceil(towers / dnum) - 1) * scale_bits
    return math.ceil((digit_bits + P_MARGIN_BITS) / P_PRIME_BITS) * P_PRIME_BITS


def distributes(towers: int, dnum: int) -> bool:
    """OpenFHE's rule: ceil(towers/dnum) towers per digit must leave the last digit non-empty."""
    per = math.ceil(towers / dnum)
    return dnum * per - towers < per


def digits_for(chain: int, scale_bits: int, first_mod_bits: int, bound: int) -> int | None:
    """The digit count the engine will use for a chain of `chain` rescale primes, or None."""
    towers = chain + 1
    for d in _dnum_candidates(towers):
        if distributes(towers, d) and first_mod_bits + chain * scale_bits + p_bits(towers, d, scale_bits, first_mod_bits) <= bound:
            return d
    return None


def max_chain(bound: int, scale_bits: int, first_mod_bits: int) -> int:
    """The longest chain of rescale primes whose log QP (with P) stays within `bound`."""
    chain = 0
    while digits_for(chain + 1, scale_bits, first_mod_bits, bound) is not None:
        chain += 1
    return chain


def digits(params: CKKSParams, bound: int) -> int:
    """The digit count the engine will pick for `params` (forced by extra, else by `digits_for`)."""
    forced = params.extra.get("openfhe_num_large_digits")
    if forced:
        return int(forced)
    return digits_for(chain_depth(params), params.scale_bits, params.first_mod_bits, bound) or OPENFHE_DEFAULT_DNUM


def with_special_modulus(params: CKKSParams, bound: int) -> CKKSParams:
    towers = chain_depth(params) + 1
    bits = p_bits(towers, digits(params, bound), params.scale_bits, params.first_mod_bits)
    return replace(params, special_mod_bits=bits)


def key_switch_key_bytes(params: CKKSParams, bound: int) -> int:
    towers = chain_depth(params) + 1
    dnum = digits(params, bound)
    p_primes = p_bits(towers, dnum, params.scale_bits, params.first_mod_bits) // P_PRIME_BITS
    return dnum * 2 * (towers + p_primes) * params.ring_dim * 8


# ---- bootstrapping -------------------------------------------------------------------------------------


def bootstrap_precision_bits(ring_dim: int, budget: tuple[int, int], iterations: int) -> float:
    table = BOOT_PRECISION_MEASURED[((3, 3) if budget == (4, 4) else budget, iterations)]
    log_n = ring_dim.bit_length() - 1
    if log_n in table:
        bits = table[log_n]
    elif log_n < min(table):
        bits = table[min(table)]
    else:
        bits = table[max(table)] - 1.5 * (log_n - max(table))
    return bits - BOOT_PRECISION_MARGIN_BITS


def bootstrap_keys(slots: int, budget: tuple[int, int]) -> int:
    log_slots = max(4, math.ceil(math.log2(max(1, slots))))
    known = sorted(BOOT_KEYS)
    row = BOOT_KEYS[next((k for k in known if k >= log_slots), known[-1])]
    return row[BOOT_BUDGETS.index(budget)]


def bootstrap_options(ring_dim: int, slots: int, bootstrap_depth) -> list[BootstrapOption]:
    """Every (level budget, iterations) at the 59-bit scale and 60-bit q0 bootstrapping needs."""
    out = []
    for budget in BOOT_BUDGETS:
        base = int(bootstrap_depth(budget))
        for it in (1, 2):
            out.append(BootstrapOption(
                config=BootstrapConfig(level_budget=budget, depth=base + it - 1, input_range=1.0, iterations=it),
                scale_bits=BOOT_SCALE_BITS, first_mod_bits=BOOT_FIRST_MOD_BITS,
                precision_bits=bootstrap_precision_bits(ring_dim, budget, it), rotation_keys=bootstrap_keys(slots, budget),
                relative_time=BOOT_ITERATION_TIME[it],
            ))
    return out
