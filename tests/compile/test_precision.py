"""Precision is a compile target: the prediction bounds what the libraries really do, and a
parameter set the compiler rejects as imprecise really is."""

from __future__ import annotations

import numpy as np
import pytest

from cryptoface.compile.pipeline import CompileOptions, compile_model
from cryptoface.compile.precision import PrecisionModel, PrecisionTarget, ProducedValue, drift_factors
from cryptoface.data import load_orl
from cryptoface.errors import CompileError
from cryptoface.ir.onnx_import import import_onnx
from cryptoface.models import load_bundle
from cryptoface.params import CKKSParams
from cryptoface.plugins import get_plugins
from cryptoface.runtime.executors import run_program


@pytest.fixture(scope="module")
def small():
    return load_bundle("small")


def test_default_target_rejects_the_imprecise_ring_openfhe_would_have_taken(small):
    """N=2^14 holds the 11 levels only at a 30-bit scale, where OpenFHE's nominal scales drift."""
    engine = get_plugins().get("openfhe")
    with pytest.raises(CompileError, match="predicted error .* > target 5.0e-04"):
        compile_model(small.onnx_path, engine, CompileOptions(calibration=small.calibration_images(), ring_dim=16384))


def test_the_rejected_parameters_really_miss_the_target_and_the_prediction_bounds_them(small):
    """Relax the target to let N=2^14 through, run it on OpenFHE: the measured error is above
    the default target (so the rejection was right) and below what was predicted."""
    engine = get_plugins().get("openfhe")
    opts = CompileOptions(calibration=small.calibration_images(), ring_dim=16384,
                          precision=PrecisionTarget(max_relative_error=5e-2))
    cm = compile_model(small.onnx_path, engine, opts)
    rep = cm.program.report
    assert rep["ring_dim"] == 16384 and rep["security_bits"] == 128
    ctx = cm.create_context(engine)
    x = small.preprocess(load_orl()[0][7])
    res = run_program(ctx.public(), cm.program, cm.encrypt(ctx, x))
    out, ref = cm.decode(ctx.decrypt(res.outputs["embedding"])), cm.reference(x)
    rel = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
    print(f"\nN=2^14, {rep['scale_bits']}-bit scale on OpenFHE: relative error {rel:.2e}, predicted {rep['predicted_relative_error']:.2e}")
    assert PrecisionTarget().max_relative_error < rel <= rep["predicted_relative_error"]
    assert float(np.max(np.abs(out - ref))) <= rep["predicted_max_error"]


def test_noise_prediction_scales_as_ring_over_scale(small):
    g = import_onnx(small.onnx_path)
    produced = [ProducedValue(n.output, 1, 1) for n in g.nodes]
    feeds = [{g.inputs[0]: small.calibration_images(1)[0].reshape(g.shape(g.inputs[0]))}]
    model = PrecisionModel(g, produced, feeds)
    a = model.predict(CKKSParams(ring_dim=16384, depth=4, scale_bits=30))
    b = model.predict(CKKSParams(ring_dim=16384, depth=4, scale_bits=40))
    c = model.predict(CKKSParams(ring_dim=32768, depth=4, scale_bits=40))
    assert a.relative == pytest.approx(b.relative * 2**10) and c.relative == pytest.approx(b.relative * 2)
    assert a.parts["drift"] == 0.0 and a.relative > 0


def test_drift_follows_the_levels_rescales_happen_at():
    errors = [1e-3, -2e-3, 4e-3]  # levels 1, 2, 3
    f = drift_factors({"a": (3, 1), "b": (3, 2), "c": (1, 1), "d": (2, 0)}, errors)
    assert f["a"] == pytest.approx(1.004) and f["b"] == pytest.approx(1.004 * 0.998)
    assert f["c"] == pytest.approx(1.001) and f["d"] == 1.0
