"""Parameter and rotation-key selection (the params pass), with key-memory prediction.

Reads what the earlier passes annotated (levels needed, slots used, rotation steps) and the
backend's capabilities, and picks the ring dimension, modulus chain and scale: the smallest
ring that gives the depth at 128-bit security, or bootstrapping on backends that have it,
or a clear refusal that says what is needed, what is available and what to change.

Key memory decides what fits. SEAL switches keys with one special prime, so one rotation
key holds L x 2 x (L+1) x N x 8 bytes (L data primes); OpenFHE's hybrid key switching with
dnum digits holds dnum x 2 x (L + P) x N x 8. When the distinct rotation steps would not fit
the memory budget, the pass falls back to keys for the powers of two only and the lowering
composes other steps from them (more key switches, far less memory).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Callable

from ..backend import Capabilities
from ..errors import CompileError
from ..params import BootstrapConfig, CKKSParams

FIRST_MOD_BITS = 60
SPECIAL_MOD_BITS = 60
DEFAULT_SCALE_BITS = 40
BOOT_SCALE_BITS = 50  # bootstrapping loses precision; a larger scale keeps more of it
OPENFHE_DNUM = 3


def machine_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 * 2**30


def default_key_budget() -> int:
    """Keys may take at most half the machine, leaving room for ciphertexts and plaintexts."""
    env = os.environ.get("CRYPTOFACE_KEY_MEMORY_GB")
    return int(float(env) * 2**30) if env else machine_memory_bytes() // 2


def data_primes(params: CKKSParams) -> int:
    return params.depth + 1


def key_switch_key_bytes(params: CKKSParams, caps: Capabilities) -> int:
    """Bytes of one key-switching key (a rotation or relinearization key)."""
    n, L = params.ring_dim, data_primes(params)
    if caps.key_switching.startswith("hybrid"):
        bound = caps.max_log_qp_128.get(n, 10**9)
        dnum = hybrid_dnum(params.depth, params.scale_bits, params.first_mod_bits, bound) or min(OPENFHE_DNUM, L)
        p_primes = _hybrid_p_bits(L, dnum, params.scale_bits, params.first_mod_bits) // 60
        return dnum * 2 * (L + p_primes) * n * 8
    if caps.key_switching == "simulated":
        return 0
    return L * 2 * (L + 1) * n * 8


def bootstrap_key_count(slots: int, level_budget: tuple[int, int]) -> int:
    """Rough count of the rotation keys a sparse bootstrap needs (CoeffsToSlots and back).

    Each of the budget's levels handles log2(slots)/budget bits of the FFT with a
    baby-step giant-step split; an estimate for the plan, not the library's exact list.
    """
    logs = max(1, int(math.log2(slots)))
    keys = 1  # conjugation
    for b in level_budget:
        per_level = math.ceil(logs / b)
        radix = 2**per_level
        keys += b * 2 * math.ceil(math.sqrt(2 * radix))
    return keys


def power_of_two_steps(slots: int) -> list[int]:
    """Keys for +-2^i: every rotation is a sum of at most log2(slots)/2 + 1 of them (NAF)."""
    steps = []
    k = 1
    while k < slots:
        steps += [k, slots - k]
        k *= 2
    return sorted(set(steps) - {0})


def naf(step: int, slots: int) -> list[int]:
    """Non-adjacent form of a rotation: signed powers of two summing to step (mod slots)."""
    k = step % slots
    if k > slots // 2:
        k -= slots
    out, bit = [], 1
    while k:
        if k & 1:
            d = 2 - (k & 3)  # +1 or -1
            out.append(d * bit)
            k -= d
        k >>= 1
        bit <<= 1
    return [s % slots for s in out]


@dataclass
class KeyPlan:
    steps: list[int]  # rotation keys to generate
    composed: bool  # True: rotations are composed from power-of-two keys
    rotation_key_bytes: int
    relin_key_bytes: int
    bootstrap_key_bytes: int
    budget_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.rotation_key_bytes + self.relin_key_bytes + self.bootstrap_key_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.budget_bytes


@dataclass
class ParameterChoice:
    params: CKKSParams
    input_level: int
    boot_level: int | None
    keys: KeyPlan
    notes: list[str] = field(default_factory=list)


def _dnum_candidates(primes: int) -> list[int]:
    """OpenFHE's order: its default 3 first, then more digits (smaller P), then fewer."""
    return [d for d in [*range(3, primes + 1), 2, 1] if d <= primes]


def _hybrid_p_bits(primes: int, dnum: int, scale_bits: int, first_bits: int) -> int:
    """P must exceed the largest digit (q0 and the scale primes grouped with it)."""
    digit_bits = first_bits + (math.ceil(primes / dnum) - 1) * scale_bits
    return math.ceil((digit_bits + 1) / 60) * 60


def hybrid_dnum(depth: int, scale_bits: int, first_bits: int, bound: int) -> int | None:
    """The digit count OpenFHE will use: the first candidate whose log QP fits `bound`."""
    primes = depth + 1
    for d in _dnum_candidates(primes):
        if first_bits + depth * scale_bits + _hybrid_p_bits(primes, d, scale_bits, first_bits) <= bound:
            return d
    return None


def special_bits(depth: int, caps: Capabilities, scale_bits: int, first_bits: int = FIRST_MOD_BITS, bound: int | None = None) -> int:
    """Bits of the key-switching modulus P: one prime as large as q0 for SEAL (key-switching
    noise stays below the data); for hybrid key switching, the digit OpenFHE will choose."""
    if caps.key_switching.startswith("hybrid"):
        d = hybrid_dnum(depth, scale_bits, first_bits, bound) if bound is not None else None
        return _hybrid_p_bits(depth + 1, d or min(OPENFHE_DNUM, depth + 1), scale_bits, first_bits)
    return first_bits


def log_qp(depth: int, caps: Capabilities, scale_bits: int, first_bits: int = FIRST_MOD_BITS, bound: int | None = None) -> int:
    return first_bits + depth * scale_bits + special_bits(depth, caps, scale_bits, first_bits, bound)


def _levels_at(n: int, caps: Capabilities, scale_bits: int, first_bits: int = FIRST_MOD_BITS) -> int:
    """The deepest chain whose log QP stays within the 128-bit bound at ring dimension n."""
    bound = caps.max_log_qp_128.get(n, 0)
    depth = 0
    while log_qp(depth + 1, caps, scale_bits, first_bits, bound) <= bound:
        depth += 1
    return depth


def first_mod_bits_for(scale_bits: int, headroom_bits: int) -> int:
    """q0 must hold the largest value at the last level: scale + log2(max |x|) + sign + margin."""
    return min(60, scale_bits + headroom_bits)


def choose_parameters(
    caps: Capabilities,
    depth_needed: int,
    slots: int,
    rotation_steps: list[int],
    bootstrap_depth: Callable[[tuple[int, int], CKKSParams], int] | None = None,
    levels_after_bootstrap: int | None = None,
    key_budget: int | None = None,
    scale_bits: int = DEFAULT_SCALE_BITS,
    insecure_test_params: bool = False,
    force_bootstrap: bool = False,
    min_scale_bits: int | None = None,
    headroom_bits: int = 20,
    refuses: Callable[[CKKSParams], str | None] = lambda p: None,
    ring_dim: int | None = None,
    op_counts: tuple[int, int] | None = None,
) -> ParameterChoice:
    """Pick N, the chain and the key set; refuse clearly when nothing fits.

    Without bootstrapping the chain is exactly `depth_needed` deep (a deeper chain only makes
    every op and key larger), on the smallest ring that holds it; the scale may drop from
    `scale_bits` to `min_scale_bits` when that saves a ring dimension (each halving of N makes
    every op about 2-3x cheaper and the keys 4x smaller; precision drops by 2^-(bits saved)).
    With bootstrapping (backend capable, and the depth does not fit otherwise) the chain is
    the post-bootstrap levels plus what the bootstrap consumes.
    """
    budget = default_key_budget() if key_budget is None else key_budget
    limits = dict(caps.max_log_qp_128)
    if ring_dim is not None:  # forced (tests, studies); beyond the 128-bit table only if insecure
        if ring_dim not in limits and not insecure_test_params:
            raise CompileError(f"ring_dim={ring_dim} has no 128-bit parameters on {caps.name}; set insecure_test_params for tests")
        limits = {ring_dim: limits.get(ring_dim, 0) if not insecure_test_params else 60 * 64}
        caps = replace(caps, max_log_qp_128=limits)
    dims = sorted(n for n in limits if n // 2 >= slots)
    if not dims:
        raise CompileError(f"{caps.name}: no ring dimension with {slots} slots at 128-bit security")
    scales = range(scale_bits, (min_scale_bits or scale_bits) - 1, -1)
    candidates: list[tuple[float, ParameterChoice]] = []
    refusals: list[str] = []
    for n in [] if force_bootstrap else dims:
        for sb in scales:  # the largest scale that fits this ring: best precision at its cost
            first = first_mod_bits_for(sb, headroom_bits)
            bound = caps.max_log_qp_128[n]
            if log_qp(depth_needed, caps, sb, first, bound) > bound:
                continue
            params = CKKSParams(
                ring_dim=n, depth=depth_needed, scale_bits=sb, first_mod_bits=first,
                special_mod_bits=special_bits(depth_needed, caps, sb, first, bound),
                slots=_slots(slots), insecure_test_params=insecure_test_params,
            )
            why = refuses(params)
            if why is not None:
                refusals.append(why)
                continue
            try:
                keys = plan_keys(params, caps, rotation_steps, budget)
            except CompileError as exc:
                refusals.append(str(exc))
                break
            choice = ParameterChoice(params, depth_needed, None, keys)
            if op_counts is None:
                return choice
            candidates.append((estimated_cost(params, caps, keys, op_counts), choice))
            break
    if candidates:
        cost, best = min(candidates, key=lambda t: t[0])
        best.notes.append("chosen by estimated cost among " + ", ".join(
            f"N={c.params.ring_dim}/2^{c.params.scale_bits}: {k:.3g}" for k, c in candidates))
        return best
    if refusals and (not caps.bootstrapping or bootstrap_depth is None):
        raise CompileError("no parameters fit: " + " | ".join(refusals[-3:]))
    most = _levels_at(dims[-1], caps, scale_bits)
    if not caps.bootstrapping or bootstrap_depth is None:
        raise CompileError(
            f"the program needs {depth_needed} levels; {caps.name} gives at most {most} at 128-bit "
            f"security (N={dims[-1]}, {scale_bits}-bit scale) and cannot bootstrap. Use a backend "
            "that bootstraps (e.g. --backend openfhe), a shallower model, or a smaller scale"
        )
    n = dims[-1]
    # OpenFHE's level budget: more levels make the linear parts of the bootstrap cheaper; few
    # slots need few (log2(slots) bits split over the budget).
    budget_levels = (3, 3) if slots >= 4096 else (2, 2)
    probe = CKKSParams(ring_dim=n, depth=1, scale_bits=BOOT_SCALE_BITS, slots=_slots(slots), insecure_test_params=True)
    boot_depth = bootstrap_depth(budget_levels, probe)
    # With bootstrapping keys are many: keep OpenFHE's default 3 digits (small keys) rather
    # than buying levels with more digits. OpenFHE keeps one more prime below level 0.
    bound = caps.max_log_qp_128[n]
    total = 0
    while log_qp(total + 2, caps, BOOT_SCALE_BITS) <= bound and total < 60:
        total += 1
    if levels_after_bootstrap is not None:
        total = min(total, levels_after_bootstrap + boot_depth)
    if total - boot_depth < 2:
        raise CompileError(
            f"bootstrapping at N={n} consumes {boot_depth} of the {total} levels 128-bit security allows: "
            "nothing left to compute with"
        )
    params = CKKSParams(
        ring_dim=n, depth=total, scale_bits=BOOT_SCALE_BITS, first_mod_bits=FIRST_MOD_BITS,
        special_mod_bits=SPECIAL_MOD_BITS, slots=_slots(slots),
        bootstrap=BootstrapConfig(level_budget=budget_levels, depth=boot_depth),
        insecure_test_params=insecure_test_params,
    )
    why = refuses(params)
    if why is not None:
        raise CompileError(f"the program needs bootstrapping, and {caps.name} refuses the bootstrapping parameters: {why}")
    keys = plan_keys(params, caps, rotation_steps, budget)
    return ParameterChoice(params, total, total - boot_depth, keys)


def estimated_cost(params: CKKSParams, caps: Capabilities, keys: "KeyPlan", op_counts: tuple[int, int]) -> float:
    """Relative cost of a program with `op_counts` = (rotations, plaintext products).

    A key switch costs about N log N x (digits x (L + P)) word operations; encoding and
    multiplying a plaintext about N log N x L. Composed rotations cost their NAF weight in key
    switches. Only ratios between candidate parameter sets matter.
    """
    n, L = params.ring_dim, data_primes(params)
    nlogn = n * math.log2(n)
    if caps.key_switching.startswith("hybrid"):
        bound = caps.max_log_qp_128.get(n, 10**9)
        dnum = hybrid_dnum(params.depth, params.scale_bits, params.first_mod_bits, bound) or min(OPENFHE_DNUM, L)
        p_primes = _hybrid_p_bits(L, dnum, params.scale_bits, params.first_mod_bits) // 60
        ks = nlogn * dnum * (L + p_primes)
    else:
        ks = nlogn * L * (L + 1)
    rotations, mults = op_counts
    if keys.composed:
        rotations *= 2.5  # mean NAF weight of the steps a CNN layer uses
    return rotations * ks + mults * nlogn * L


def _slots(used: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, used))))


def plan_keys(params: CKKSParams, caps: Capabilities, steps: list[int], budget: int) -> KeyPlan:
    """Direct keys for every step if they fit the budget, else power-of-two keys."""
    one = key_switch_key_bytes(params, caps)
    boot = 0
    if params.bootstrap is not None:
        boot = one * bootstrap_key_count(params.slots, params.bootstrap.level_budget)
    distinct = sorted({s % params.slots for s in steps} - {0})
    direct = KeyPlan(distinct, False, one * len(distinct), one, boot, budget)
    if direct.fits:
        return direct
    pow2 = power_of_two_steps(params.slots)
    composed = KeyPlan(pow2, True, one * len(pow2), one, boot, budget)
    if len(pow2) < len(distinct) and composed.fits:
        return composed
    best = composed if composed.total_bytes < direct.total_bytes else direct
    raise CompileError(
        f"{caps.name}: evaluation keys need {best.total_bytes / 2**30:.1f} GiB "
        f"({len(best.steps)} rotation keys of {one / 2**20:.0f} MiB at N={params.ring_dim}, "
        f"{data_primes(params)} primes) but the budget is {budget / 2**30:.1f} GiB; use a backend "
        "with hybrid key switching (openfhe), fewer levels, or raise CRYPTOFACE_KEY_MEMORY_GB"
    )
