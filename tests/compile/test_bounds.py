"""Value bounds: the compiler records one per value, the runtime checks them where it can see
values (the simulator), and the simulator fails where a real backend fails without them.

The case is the tiny model with inputs x4 (outside the [-1, 1] it was calibrated on),
compiled with bootstraps at a small insecure ring. On OpenFHE it does not decrypt (measured:
OpenFHE's decode refuses, "approximation error is too high"); on the simulator the bound check
refuses it, and with the check off the simulator's result is wrong too, as OpenFHE's is.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from onnx import numpy_helper

from cryptoface.compile.bounds import MARGIN, calibrate
from cryptoface.compile.pipeline import CompileOptions, compile_model
from cryptoface.errors import DecryptionError, ValueBoundError
from cryptoface.plugins import get_plugins
from cryptoface.runtime.executors import run_program
from cryptoface.simulator import SimulatorEngine

_spec = importlib.util.spec_from_file_location("ir_models", Path(__file__).parents[1] / "ir" / "ir_models.py")
ir_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ir_models)

TOL = 5e-2  # relative; what a bootstrap at N=2^12 keeps (see test_pipeline's bootstrapped test)
FACTOR = 4.0


def _model():
    model = ir_models.tiny_cryptofacenet(patches_per_side=2, patch=4, channels=2, dim=4)
    for init in model.graph.initializer:  # activations O(1) on [-1, 1] inputs, as in test_pipeline
        if init.name.endswith("/W"):
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 0.5, init.name))
    return model


def _compile(engine):
    return compile_model(_model(), engine, CompileOptions(max_depth=4, ring_dim=4096, insecure_test_params=True))


def _run(cm, engine, image) -> np.ndarray:
    ctx = cm.create_context(engine)
    server = ctx.public()
    res = run_program(server, cm.program, cm.encrypt(server, image))
    return cm.decode(ctx.decrypt(next(iter(res.outputs.values()))))


def _rel_err(out: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(out - ref)) / max(1.0, np.max(np.abs(ref))))


def _image(factor: float = 1.0) -> np.ndarray:
    return np.random.default_rng(5).uniform(-1, 1, (1, 3, 8, 8)) * factor


@pytest.fixture(scope="module")
def sim_model():
    return _compile(SimulatorEngine)


def test_every_op_output_and_bootstrap_input_has_a_bound(sim_model):
    cm = sim_model
    bounds = cm.program.bounds
    peaks = calibrate(cm.graph)
    assert cm.program.report["bootstraps"] >= 1
    boot_range = cm.params.bootstrap.input_range
    boot_inputs = [ins.args[0] for s in cm.program.sections for ins in s.instrs if ins.op == "bootstrap"]
    assert boot_inputs and all(bounds[b] == boot_range for b in boot_inputs)
    # every packed op's result (an IR value) carries MARGIN x its calibrated peak, or less
    # where interval propagation is tighter; so does every section input and output
    for p in cm.partitions:
        for op in p.ops:
            assert op.name in peaks
    for s in cm.program.sections:
        for name in (*s.inputs, *s.outputs):
            assert 0 < bounds[name] <= MARGIN * peaks[name] + 1e-12


def test_inputs_in_range_pass_the_checks(sim_model):
    out = _run(sim_model, SimulatorEngine, _image())
    ref = sim_model.reference(_image())
    assert _rel_err(out, ref) < 1e-3


def test_inputs_x4_are_refused_on_the_simulator(sim_model):
    with pytest.raises(ValueBoundError, match=r"value '.+' reached \|[0-9.]+\|, beyond the bound [0-9.]+"):
        _run(sim_model, SimulatorEngine, _image(FACTOR))


def test_inputs_x4_give_a_wrong_result_on_the_simulator_without_the_check(sim_model):
    """The bound check off, the simulator fails as a library does: a wrong number, no error."""
    cm = _compile(SimulatorEngine)
    cm.program.bounds = {}
    image = _image(FACTOR)
    assert _rel_err(_run(cm, SimulatorEngine, image), cm.reference(image)) > TOL


@pytest.mark.slow
def test_inputs_x4_fail_on_openfhe():
    """The same case on the real library (about 4 minutes: 8 bootstraps per run at N=2^12)."""
    engine = get_plugins().get("openfhe")
    cm = _compile(engine)
    assert cm.program.report["bootstraps"] >= 1
    ok = _run(cm, engine, _image())
    assert _rel_err(ok, cm.reference(_image())) < TOL
    image = _image(FACTOR)
    try:
        err = _rel_err(_run(cm, engine, image), cm.reference(image))
    except DecryptionError as exc:  # OpenFHE's decode refuses some overflows itself
        assert "approximation error is too high" in str(exc)
    else:
        assert err > TOL
