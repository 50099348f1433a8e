"""The whole compiler on CryptoFaceNet-shaped models, run on the simulator against numpy."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cryptoface.compile.pipeline import CompileOptions, compile_model
from cryptoface.plugins import get_plugins
from cryptoface.runtime.executors import run_program
from cryptoface.simulator import SimulatorEngine
from cryptoface.testing.conftest import selected_backends

_spec = importlib.util.spec_from_file_location("ir_models", Path(__file__).parents[1] / "ir" / "ir_models.py")
ir_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ir_models)


def _run(cm, image, engine=SimulatorEngine):
    ctx = cm.create_context(engine)
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


@pytest.mark.parametrize("backend", selected_backends())
def test_tiny_model_on_every_backend(backend):
    """Every installed backend runs the same compiled program and agrees with numpy."""
    engine = get_plugins().get(backend)
    model = ir_models.tiny_cryptofacenet(patches_per_side=2, patch=4, channels=2, dim=4)
    cm = compile_model(model, engine)
    image = np.random.default_rng(3).uniform(-1, 1, (1, 3, 8, 8))
    out, res = _run(cm, image, engine)
    ref = cm.reference(image)
    err = np.max(np.abs(out - ref))
    cos = float(out @ ref / (np.linalg.norm(out) * np.linalg.norm(ref)))
    print(f"{backend}: N={cm.params.ring_dim} depth={cm.params.depth} max abs err {err:.2e} cosine {cos:.8f} "
          f"wall {res.wall_seconds:.2f}s overhead x{res.overhead_ratio:.2f}")
    assert err < 1e-3 * max(1.0, np.max(np.abs(ref)))
    assert cos > 0.9999


@pytest.mark.parametrize("executor", ["threads", "processes"])
def test_parallel_executors_give_the_serial_result(executor):
    from cryptoface.runtime.executors import get_executor

    model = ir_models.tiny_cryptofacenet(patches_per_side=2, patch=8, channels=4, dim=6)
    cm = compile_model(model, SimulatorEngine)
    ctx = cm.create_context(SimulatorEngine)
    image = np.random.default_rng(4).uniform(-1, 1, (1, 3, 16, 16))
    res = run_program(ctx.public(), cm.program, cm.encrypt(ctx, image), get_executor(executor, 2))
    out = cm.decode(ctx.decrypt(res.outputs[cm.graph.outputs[0]]))
    assert np.max(np.abs(out - cm.reference(image))) < 1e-4 * max(1.0, np.max(np.abs(out)))
    assert set(res.section_seconds) == {"patch0", "patch1", "patch2", "patch3", "combine"}


@pytest.mark.parametrize("backend", [b for b in selected_backends() if get_plugins().get(b).capabilities().bootstrapping])
def test_bootstrapped_program_on_bootstrapping_backends(backend):
    """The placer's bootstraps run on the real library (small insecure ring, test only)."""
    from onnx import numpy_helper

    engine = get_plugins().get(backend)
    model = ir_models.tiny_cryptofacenet(patches_per_side=2, patch=4, channels=2, dim=4)
    # Halved conv weights keep activations O(1), as a trained model's BatchNorms do (the raw
    # random model grows to thousands, beyond what a small-ring bootstrap can carry).
    for init in model.graph.initializer:
        if init.name.endswith("/W"):
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 0.5, init.name))
    cm = compile_model(model, engine, CompileOptions(max_depth=4, ring_dim=4096, insecure_test_params=True))
    rep = cm.program.report
    assert rep["bootstraps_per_patch"] >= 1 and rep["security_bits"] == 0
    image = np.random.default_rng(5).uniform(-1, 1, (1, 3, 8, 8))
    out, res = _run(cm, image, engine)
    ref = cm.reference(image)
    err = np.max(np.abs(out - ref))
    print(f"{backend}: {rep['bootstraps']} bootstraps at N=4096, max abs err {err:.2e} (ref max {np.max(np.abs(ref)):.2f})")
    assert res.profile.calls["bootstrap"] == rep["bootstraps"]
    # The compiler asked the library for bootstraps precise enough for its target (OpenFHE:
    # two iterations at a 59-bit scale, measured 6e-8 here), so the usual bound holds.
    assert err < 1e-3 * max(1.0, np.max(np.abs(ref)))
    assert err <= rep["predicted_max_error"]
    assert float(out @ ref / (np.linalg.norm(out) * np.linalg.norm(ref))) > 0.999


def test_program_serializes_and_runs_from_json():
    """The lowered program is plain data: its instructions survive JSON and still run."""
    import json

    from cryptoface.program import HEProgram

    model = ir_models.tiny_cryptofacenet(patches_per_side=2, patch=8, channels=4, dim=6)
    cm = compile_model(model, SimulatorEngine)
    text = cm.program.to_json()
    d = json.loads(text)
    assert d["params"]["ring_dim"] == cm.params.ring_dim and set(d["constants"]) == set(cm.program.constants.recipes)
    sections = HEProgram.sections_from_json(text)
    assert [len(s.instrs) for s in sections] == [len(s.instrs) for s in cm.program.sections]
    cm.program.sections = sections
    image = np.random.default_rng(6).uniform(-1, 1, (1, 3, 16, 16))
    out, _ = _run(cm, image)
    assert np.max(np.abs(out - cm.reference(image))) < 1e-4 * max(1.0, np.max(np.abs(out)))
