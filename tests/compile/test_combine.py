"""The passes after the patch networks: combining their outputs, composing rotations."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cryptoface.compile.compose_rotations import compose_rotations
from cryptoface.compile.pipeline import compile_model
from cryptoface.program import Instr, Section, rotated_name
from cryptoface.runtime.executors import run_program
from cryptoface.simulator import SimulatorEngine

_spec = importlib.util.spec_from_file_location("ir_models", Path(__file__).parents[1] / "ir" / "ir_models.py")
ir_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ir_models)


@pytest.mark.parametrize("per_side", [1, 2])
def test_one_or_more_patches_compile_and_match_reference(per_side):
    """A model with exactly one patch (its Sum of one partial output aliased away) compiles to
    a program whose output is the graph output, like a model with four patches."""
    model = ir_models.tiny_cryptofacenet(patches_per_side=per_side, patch=8, channels=4, dim=6)
    cm = compile_model(model, SimulatorEngine)
    assert len(cm.partitions) == per_side**2
    assert cm.program.sections[-1].name == "combine" and cm.program.output_name == "embedding"
    image = np.random.default_rng(5).uniform(-1, 1, (1, 3, 8 * per_side, 8 * per_side))
    ctx = cm.create_context(SimulatorEngine)
    res = run_program(ctx.public(), cm.program, cm.encrypt(ctx.public(), image))
    out = cm.decode(ctx.decrypt(res.outputs["embedding"]))
    ref = cm.reference(image)
    assert np.max(np.abs(out - ref)) < 1e-3 * max(1.0, np.max(np.abs(ref)))


def _rotate(values: np.ndarray, section: Section) -> dict[str, np.ndarray]:
    """Run the rotations of `section` on plain slots (numpy's roll is the reference)."""
    env = {section.inputs[0]: values}
    for ins in section.instrs:
        if ins.op == "rotate":
            env[ins.out] = np.roll(env[ins.args[0]], -ins.step)
        else:
            assert ins.op == "rotate_many"
            for s in ins.steps:
                env[rotated_name(ins.out, s)] = np.roll(env[ins.args[0]], -s)
    return env


def test_composed_rotations_use_powers_of_two_and_rotate_the_same():
    slots = 64
    section = Section("s", ("x",), ("r", rotated_name("m", 7), rotated_name("m", 45)),
                      [Instr("rotate", "r", ("x",), step=13), Instr("rotate_many", "m", ("x",), steps=(7, 45))])
    composed = compose_rotations(section, slots)
    steps = {min(i.step, slots - i.step) for i in composed.instrs}  # +2^k or -2^k mod slots
    assert {i.op for i in composed.instrs} == {"rotate"} and all(s & (s - 1) == 0 for s in steps)
    x = np.arange(slots, dtype=float)
    want, got = _rotate(x, section), _rotate(x, composed)
    for name in section.outputs:
        np.testing.assert_array_equal(got[name], want[name])
