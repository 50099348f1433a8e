"""Parameter and rotation-key selection (the params pass), with key-memory prediction.

Reads what the earlier passes annotated (levels needed, slots used, rotation steps) and asks
the backend what it accepts (`Engine.max_depth`, `refuses`, `bootstrap_options`,
`key_switch_key_bytes`): library knowledge stays in the plugins. Among the parameter sets that
are 128-bit secure, accepted by the library, within the key-memory budget and **precise
enough** (the predicted output error meets `ParameterRequest.max_relative_error`, see
`precision.py`), it takes the cheapest by an estimated cost; without one, a clear refusal that
says what is needed, what is available and what to change.

Leveled first: the chain is exactly the depth needed, on any ring that holds it, at the largest
scale that fits (the scale may drop to `min_scale_bits` when that saves a ring: every op gets
2-3x cheaper, precision drops by 2^-(bits saved), and the precision target decides). Only when
no leveled set fits (or bootstrapping is forced, for studies) the backend's bootstrap options
are tried: the chain is the bootstrap's depth plus the levels kept after it.

Key memory decides what fits. When the distinct rotation steps would not fit the budget, the
pass falls back to keys for the powers of two only and the lowering composes other steps from
them (more key switches, far less memory). The budget is an explicit option with a fixed
default, so a model compiles to the same plan on every machine.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..backend import Engine
from ..errors import CompileError
from ..params import BootstrapOption, CKKSParams
from .precision import PredictedError

MAX_FIRST_MOD_BITS = 60
DEFAULT_SCALE_BITS = 40
DEFAULT_KEY_BUDGET = 12 * 2**30  # half of a 24 GB machine; stated in every plan
MAX_CHAIN = 60
# A bootstrap interval needs the prescale level before it and one level of work after it.
MIN_LEVELS_AFTER_BOOTSTRAP = 2


def key_budget_bytes(explicit: int | None = None) -> int:
    """The key-memory budget: the option, else CRYPTOFACE_KEY_MEMORY_GB, else the fixed default."""
    if explicit is not None:
        return explicit
    env = os.environ.get("CRYPTOFACE_KEY_MEMORY_GB")
    if env:
        try:
            return int(float(env) * 2**30)
        except ValueError as exc:
            raise CompileError(f"CRYPTOFACE_KEY_MEMORY_GB must be a number of GiB, got {env!r}") from exc
    return DEFAULT_KEY_BUDGET


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
    predicted: PredictedError | None = None
    bootstrap: BootstrapOption | None = None
    output_levels: int = 0  # levels kept at the output (q0 headroom for large outputs)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ParameterRequest:
    """What the program needs from its parameters (read off the earlier passes)."""

    depth_needed: int
    slots: int
    rotation_steps: Sequence[int]
    op_counts: tuple[int, int] = (0, 0)  # (rotations, plaintext products)
    patches: int = 1
    output_levels: int = 0
    scale_bits: int = DEFAULT_SCALE_BITS
    min_scale_bits: int = 30
    headroom_bits: int = 20  # bits of q0 above the scale that the largest value needs
    max_relative_error: float = 5e-4
    key_budget: int = DEFAULT_KEY_BUDGET
    insecure_test_params: bool = False
    ring_dim: int | None = None  # forced (tests, studies)
    force_bootstrap: bool = False
    levels_after_bootstrap: int | None = None  # cap (studies)


# predicted error of a candidate: (params, bootstrap option or None) -> PredictedError
Predictor = Callable[[CKKSParams, BootstrapOption | None], PredictedError]


def _rings(engine: type[Engine], req: ParameterRequest) -> list[int]:
    caps = engine.capabilities()
    dims = sorted(caps.max_log_qp_128)
    if req.ring_dim is not None:
        if req.ring_dim not in dims and not req.insecure_test_params:
            raise CompileError(f"ring_dim={req.ring_dim} has no 128-bit parameters on {engine.name}; "
                               "set insecure_test_params for tests")
        dims = [req.ring_dim]
    dims = [n for n in dims if n // 2 >= req.slots]
    if not dims:
        raise CompileError(f"{engine.name}: no ring dimension with {req.slots} slots at 128-bit security")
    return dims


def _max_depth(engine: type[Engine], req: ParameterRequest, n: int, scale_bits: int, first: int) -> int:
    if req.ring_dim is not None and req.insecure_test_params:
        return MAX_CHAIN  # a forced test ring: the library's own check (refuses) is the only limit
    return engine.max_depth(n, scale_bits, first)


def _params(engine: type[Engine], req: ParameterRequest, n: int, depth: int, scale_bits: int, first: int,
            boot: BootstrapOption | None = None) -> CKKSParams:
    p = CKKSParams(ring_dim=n, depth=depth, scale_bits=scale_bits, first_mod_bits=first,
                   special_mod_bits=first, slots=_slots(req.slots), insecure_test_params=req.insecure_test_params,
                   bootstrap=None if boot is None else boot.config)
    return engine.with_special_modulus(p)


def _describe(p: CKKSParams) -> str:
    return f"N=2^{p.ring_dim.bit_length() - 1}/{p.scale_bits}-bit scale/depth {p.depth}"


def choose_parameters(engine: type[Engine], req: ParameterRequest, predict: Predictor) -> ParameterChoice:
    """Pick N, the chain and the key set; refuse clearly when nothing fits."""
    dims = _rings(engine, req)
    rejected: list[str] = []
    candidates: list[tuple[float, ParameterChoice]] = []
    if not req.force_bootstrap:
        for n in dims:
            choice = _leveled(engine, req, n, predict, rejected)
            if choice is not None:
                candidates.append((estimated_cost(engine, choice.params, choice.keys, req.op_counts), choice))
    if not candidates and engine.capabilities().bootstrapping:
        for n in dims:  # the smallest ring that bootstraps: a larger one only costs more per op
            for opt in engine.bootstrap_options(n, _slots(req.slots)):
                choice = _bootstrapped(engine, req, n, opt, predict, rejected)
                if choice is not None:
                    candidates.append((_bootstrapped_cost(engine, req, choice), choice))
            if candidates:
                break
    if not candidates:
        raise _refusal(engine, req, dims, rejected)
    cost, best = min(candidates, key=lambda t: t[0])
    best.notes.append("chosen by estimated cost among " + ", ".join(
        f"{_describe(c.params)}{' +bootstrap ' + str(c.bootstrap.config.level_budget) + 'x' + str(c.bootstrap.config.iterations) if c.bootstrap else ''}: {k:.3g}"
        for k, c in candidates))
    best.notes.extend(f"rejected: {r}" for r in rejected)
    return best


def _leveled(engine: type[Engine], req: ParameterRequest, n: int, predict: Predictor,
             rejected: list[str]) -> ParameterChoice | None:
    """The best leveled set on ring n: the largest scale that fits, if precise enough."""
    for sb in range(req.scale_bits, req.min_scale_bits - 1, -1):
        first = min(MAX_FIRST_MOD_BITS, sb + req.headroom_bits)
        if first - sb < req.headroom_bits:
            continue  # the largest value would overflow q0
        if req.depth_needed > _max_depth(engine, req, n, sb, first):
            continue
        params = _params(engine, req, n, req.depth_needed, sb, first)
        why = engine.refuses(params)
        if why is not None:
            rejected.append(f"{_describe(params)}: {why}")
            continue
        predicted = predict(params, None)
        if predicted.relative > req.max_relative_error:
            rejected.append(f"{_describe(params)}: predicted error {predicted.relative:.1e} > target "
                            f"{req.max_relative_error:.1e}")
            return None  # a smaller scale on this ring is only less precise
        try:
            keys = plan_keys(params, engine, req.rotation_steps, req.key_budget)
        except CompileError as exc:
            rejected.append(f"{_describe(params)}: {exc}")
            return None
        return ParameterChoice(params, req.depth_needed, None, keys, predicted, output_levels=req.output_levels)
    return None


def _bootstrapped(engine: type[Engine], req: ParameterRequest, n: int, opt: BootstrapOption, predict: Predictor,
                  rejected: list[str]) -> ParameterChoice | None:
    """The set for one bootstrap option on ring n: as many levels after each bootstrap as the
    program can use and the library, the key budget and the cap allow."""
    sb, first = opt.scale_bits, opt.first_mod_bits
    label = f"N=2^{n.bit_length() - 1} bootstrap {opt.config.level_budget}x{opt.config.iterations}"
    # q0 holds a prescaled bootstrap input; a large output stays above level 0 instead.
    out_levels = max(req.output_levels, math.ceil(max(0, req.headroom_bits - (first - sb)) / sb))
    most = _max_depth(engine, req, n, sb, first) - opt.config.depth
    want = req.depth_needed + out_levels
    if req.levels_after_bootstrap is not None:
        want = min(want, req.levels_after_bootstrap)
    after = min(most, want)
    last_reason = f"the 128-bit chain leaves {most} levels after the bootstrap's {opt.config.depth}"
    if most < MIN_LEVELS_AFTER_BOOTSTRAP + out_levels:
        return None  # this ring is too small to bootstrap at all (reported once, by the caller)
    while after >= MIN_LEVELS_AFTER_BOOTSTRAP + out_levels:
        params = _params(engine, req, n, opt.config.depth + after, sb, first, opt)
        try:  # the key-memory formula first: asking the library builds a context (seconds)
            keys = plan_keys(params, engine, req.rotation_steps, req.key_budget, opt.rotation_keys)
            why = engine.refuses(params)
        except CompileError as exc:
            why = str(exc)
        if why is None:
            predicted = predict(params, opt)
            if math.isinf(predicted.relative):
                rejected.append(f"{label}: {opt.precision_bits:.1f} bits of bootstrap precision, fewer than the target needs")
                return None
            if predicted.relative > req.max_relative_error:
                rejected.append(f"{label}: predicted error {predicted.relative:.1e} > target {req.max_relative_error:.1e}")
                return None
            # Fresh ciphertexts use the whole chain unless a study caps it.
            top = params.depth if req.levels_after_bootstrap is None else min(params.depth, req.levels_after_bootstrap)
            return ParameterChoice(params, top, after, keys, predicted, opt, out_levels)
        last_reason = why
        after -= 1  # fewer levels: a smaller chain, smaller keys, fewer digits
    rejected.append(f"{label}: {last_reason}")
    return None


def _refusal(engine: type[Engine], req: ParameterRequest, dims: list[int], rejected: list[str]) -> CompileError:
    caps = engine.capabilities()
    n = dims[-1]
    most = _max_depth(engine, req, n, req.scale_bits, min(MAX_FIRST_MOD_BITS, req.scale_bits + req.headroom_bits))
    lines = "; ".join(rejected[-4:])
    if not caps.bootstrapping:
        return CompileError(
            f"the program needs {req.depth_needed} levels within a predicted error of {req.max_relative_error:.0e}; "
            f"{engine.name} gives at most {most} at 128-bit security (N={n}, {req.scale_bits}-bit scale) and cannot "
            f"bootstrap. Use a backend that bootstraps (e.g. --backend openfhe), a shallower model, or relax the "
            f"precision target" + (f" ({lines})" if lines else ""))
    return CompileError(f"no parameters fit on {engine.name} for {req.depth_needed} levels"
                        + (f": {lines}" if lines else f" (no ring among {dims} holds a bootstrap and "
                           f"{MIN_LEVELS_AFTER_BOOTSTRAP} levels after it)"))


def estimated_cost(engine: type[Engine], params: CKKSParams, keys: "KeyPlan", op_counts: tuple[int, int]) -> float:
    """Relative cost of a program with `op_counts` = (rotations, plaintext products).

    A key switch touches every word of its key (the key's size in words times log N for the
    NTTs); encoding and multiplying a plaintext about N log N x L. Composed rotations cost their
    NAF weight in key switches. Only ratios between candidate parameter sets matter.
    """
    ks = _key_switch_cost(engine, params)
    pt = params.ring_dim * math.log2(params.ring_dim) * (params.depth + 1)
    rotations, mults = op_counts
    if keys.composed:
        rotations *= 2.5  # mean NAF weight of the steps a CNN layer uses
    return rotations * ks + mults * pt


def _key_switch_cost(engine: type[Engine], params: CKKSParams) -> float:
    """One key switch touches every word of its key, with NTTs: key words x log N."""
    return engine.key_switch_key_bytes(params) / 16 * math.log2(params.ring_dim)


def _bootstrapped_cost(engine: type[Engine], req: ParameterRequest, choice: ParameterChoice) -> float:
    """Ops plus the bootstraps the levels imply (an estimate for ranking; the placer decides)."""
    assert choice.bootstrap is not None and choice.boot_level is not None
    p = choice.params
    per_interval = max(1, choice.boot_level - 1)
    first_segment = choice.input_level
    boots = req.patches * max(0, math.ceil((req.depth_needed + choice.output_levels - first_segment) / per_interval))
    one_boot = choice.bootstrap.relative_time * 2 * choice.bootstrap.rotation_keys * _key_switch_cost(engine, p)
    return estimated_cost(engine, p, choice.keys, req.op_counts) + boots * one_boot


def _slots(used: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, used))))


def plan_keys(params: CKKSParams, engine: type[Engine], steps: Sequence[int], budget: int,
              bootstrap_keys: int = 0) -> KeyPlan:
    """Direct keys for every step if they fit the budget, else power-of-two keys."""
    one = engine.key_switch_key_bytes(params)
    boot = one * bootstrap_keys
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
        f"{engine.name}: evaluation keys need {best.total_bytes / 2**30:.1f} GiB "
        f"({len(best.steps)} rotation keys of {one / 2**20:.0f} MiB at N={params.ring_dim}, depth {params.depth}"
        f"{f', {bootstrap_keys} bootstrap keys' if bootstrap_keys else ''}) but the key budget is "
        f"{budget / 2**30:.1f} GiB; use a backend with smaller keys (openfhe), fewer levels, or raise the budget "
        "(--key-memory-gb / CRYPTOFACE_KEY_MEMORY_GB)"
    )
