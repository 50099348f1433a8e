"""The whole compiler on CryptoFaceNet-shaped models, run on the simulator against numpy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cryptoface.compile.pipeline import CompileOptions, compile_model
from cryptoface.runtime.executors import run_program
from cryptoface.simulator import SimulatorEngine

_spec = importlib.util.spec_from_file_location("ir_models", Path(__file__).parents[1] / "ir" / "ir_models.py")
ir_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ir_models)


def _run(cm, image):
    ctx = cm.create_context(SimulatorEngine)
    server = ctx.public()
    res = run_program(server, cm.program, cm.encrypt(server, image))
    out = cm.decode(ctx.decrypt(next(iter(res.outputs.values()))))
    return out, res


def test_tiny_model_matches_reference():
    model = ir_models.tiny_cryptofacenet(patches_per_side=2, patch=8, channels=4, dim=6)
    cm = compile_model(model, SimulatorEngine)
    image = np.random.default_rng(1).uniform(-1, 1, (1, 3, 16, 16))
    out, res = _run(cm, image)
    ref = cm.reference(image)
    assert out.shape == ref.shape
    assert np.max(np.abs(out - ref)) < 1e-4 * max(1.0, np.max(np.abs(ref)))
    rep = cm.program.report
    assert rep["bootstraps"] == 0 and rep["security_bits"] == 128
    assert rep["depth"] == rep["depth_needed"]
    assert res.profile.primitive_seconds > 0


def test_forced_bootstraps_match_reference():
    model = ir_models.tiny_cryptofacenet(patches_per_side=2, patch=8, channels=4, dim=6)
    cm = compile_model(model, SimulatorEngine, CompileOptions(max_depth=4))
    rep = cm.program.report
    assert rep["bootstraps_per_patch"] >= 1
    image = np.random.default_rng(2).uniform(-1, 1, (1, 3, 16, 16))
    out, _ = _run(cm, image)
    ref = cm.reference(image)
    assert np.max(np.abs(out - ref)) < 1e-3 * max(1.0, np.max(np.abs(ref)))
