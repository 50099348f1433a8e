"""The value-bounds pass: how large every value of the HE program may get.

CKKS fails silently when a value outgrows what the plan was sized for: past q_0 / (2 * scale)
at decryption it wraps, and past the bootstrap's input range the bootstrap returns garbage.
The compiler sizes the plan from these bounds (the prescale before each bootstrap, the
headroom of q_0), the program carries them (`HEProgram.bounds`, keyed by instruction
output), and the runtime checks them where the backend can see values (the simulator).

Where bounds come from:
- calibration: the largest |value| of every IR value over the calibration inputs (uniform
  [-1, 1] draws without calibration data), times `MARGIN`, for the ciphertext that holds it;
- interval propagation through the instructions, from their arguments' bounds, for the
  values between (rotations, partial sums, unrescaled products), where the constant is cheap
  to bound (not a linear layer's diagonals: those intermediates are left unchecked);
- the bootstrap's input is held to the backend's input range (`BootstrapConfig.input_range`),
  and the value bootstrapped to prescale * input range.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np

from ..ir.graph import Graph
from ..ir.interpreter import run as run_reference

if TYPE_CHECKING:  # the program format lives outside the compiler
    from ..program import HEProgram

# A value may reach this multiple of the largest magnitude calibration saw: q_0 keeps this much
# headroom over the calibrated peaks (`headroom_bits`), so up to it the last level still decodes.
# (Measured: a fresh uniform draw takes the tiny test model's activations to 2.4x what four
# calibration draws saw, so a tight margin would refuse ordinary inputs.) Bootstrap inputs
# are held to the backend's range instead, which is tighter.
MARGIN = 16.0
RANDOM_DRAWS = 4
# Constants whose magnitude is bounded without building a slot vector per diagonal.
_CHEAP_CONSTANTS = ("fill", "channel", "zeros")


def calibration_feeds(graph: Graph, calibration: Iterable[np.ndarray | Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """Calibration inputs as feeds: an array is the first input, a dict names every input."""
    return [
        {k: np.asarray(v, dtype=np.float64).reshape(graph.shape(k))
         for k, v in (item.items() if isinstance(item, Mapping) else [(graph.inputs[0], item)])}
        for item in calibration
    ]


def random_feeds(graph: Graph, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Uniform [-1, 1] draws for every input: the range the client's preprocessing produces,
    for models compiled without calibration data."""
    rng = np.random.default_rng(seed)
    return [{i: rng.uniform(-1, 1, graph.shape(i)) for i in graph.inputs} for _ in range(count)]


def calibrate(graph: Graph, calibration: Iterable[np.ndarray | Mapping[str, np.ndarray]] | None = None) -> dict[str, float]:
    """Largest |value| per IR value over the calibration inputs (arrays for the first input,
    or dicts of every input), or over uniform [-1, 1] draws for every input without them."""
    if calibration is None:
        feeds_list = random_feeds(graph, RANDOM_DRAWS, seed=0)
    else:
        feeds_list = calibration_feeds(graph, calibration)
    peaks: dict[str, float] = {}
    for feeds in feeds_list:
        for k, v in run_reference(graph, feeds, return_all=True).items():
            peaks[k] = max(peaks.get(k, 0.0), float(np.max(np.abs(v))))
    return peaks


def prescale(peak: float, input_range: float = 1.0) -> float:
    """B for a bootstrapped value: a power of two with peak / B at most input_range / 1.5."""
    return float(2 ** max(0, math.ceil(math.log2(max(1.0, 1.5 * peak / input_range)))))


def headroom_bits(peaks: dict[str, float]) -> int:
    """Bits of q_0 above the scale: room for MARGIN x the largest calibrated value, and a sign
    bit (at least 10)."""
    return max(10, math.ceil(math.log2(max(2.0, max(peaks.values())) * MARGIN)) + 1)


def program_bounds(program: HEProgram, peaks: dict[str, float], holders: dict[str, str]) -> dict[str, float]:
    """A bound per ciphertext value of `program`.

    `holders` maps an instruction output (or section input) to the IR value it holds;
    those get MARGIN x the calibrated peak. Bootstrap inputs get the backend's input range.
    Everything else is propagated from its arguments when that is cheap.
    """
    boot = program.params.bootstrap
    rng = boot.input_range if boot is not None else None
    consts: dict[str, float] = {}

    def const_peak(key: str) -> float | None:
        if key not in consts:
            if program.constants.recipes.get(key, {}).get("kind") not in _CHEAP_CONSTANTS:
                return None
            consts[key] = float(np.max(np.abs(program.constants.get(key)), initial=0.0))
        return consts[key]

    bounds: dict[str, float] = {}
    for section in program.sections:
        for name in section.inputs:
            if holders.get(name) in peaks:
                bounds[name] = MARGIN * peaks[holders[name]]
        for ins in section.instrs:
            args = [bounds.get(a) for a in ins.args]
            b = _propagate(ins.op, args, None if ins.const is None else const_peak(ins.const))
            if ins.op == "bootstrap" and rng is not None:
                bounds[ins.args[0]] = rng  # what the backend's bootstrap accepts
                b = rng
            for out in ins.outputs():
                if holders.get(out) in peaks:
                    calibrated = MARGIN * peaks[holders[out]]
                    bounds[out] = calibrated if b is None else min(b, calibrated)
                elif b is not None:
                    bounds[out] = b
    return bounds


def _propagate(op: str, args: list[float | None], const: float | None) -> float | None:
    """Interval bound of `op`'s output from its arguments' bounds (None: unknown)."""
    if any(a is None for a in args):
        return None
    if op in ("add", "sub"):
        return args[0] + args[1]
    if op == "mul":
        return args[0] * args[1]
    if op == "square":
        return args[0] ** 2
    if op in ("rescale", "mod_switch", "rotate", "rotate_many", "bootstrap"):
        return args[0]
    if op == "mul_plain":
        return None if const is None else args[0] * const
    if op == "add_plain":
        return None if const is None else args[0] + const
    return None


def holders_of(section_at: dict[str, str]) -> dict[str, str]:
    """Instruction output -> IR value, from an emitter's value -> ciphertext map."""
    return {ct: value for value, ct in section_at.items()}

