"""A real model bootstrapped at 128-bit security on OpenFHE, against the reference.

The shipped small CryptoFaceNet needs 11 levels; capping fresh ciphertexts at 10
(`max_depth`, a study option) forces one bootstrap per patch network, as the CryptoFace
paper places one. The compiler must find 128-bit bootstrapping parameters that OpenFHE
accepts, that fit the key budget, and whose predicted error meets the precision target;
the run must then meet that prediction.

About 8 minutes and 18 GB here (the compiler takes N=2^17, where 3 key-switching digits fit
and 57 keys take 13.6 GiB; at N=2^16 the same chain needs more digits and larger keys):
slow-marked.
Command: `.venv/bin/python -m pytest -m slow tests/compile/test_bootstrap_128bit.py -s`.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryptoface.compile.pipeline import CompileOptions, compile_model
from cryptoface.compile.precision import PrecisionTarget
from cryptoface.data import load_orl
from cryptoface.models import load_bundle
from cryptoface.plugins import get_plugins
from cryptoface.runtime.executors import run_program

# OpenFHE's one-pass bootstrap keeps only 7-9 bits at N >= 2^16: the default precision target
# needs its two-iteration bootstrap, whose keys (13.6 GiB predicted) exceed the default 12 GiB
# budget. The budget is an explicit option: this study raises it.
TARGET = PrecisionTarget()
KEY_BUDGET = 14 * 2**30


def compile_small_with_bootstraps():
    bundle = load_bundle("small")
    engine = get_plugins().get("openfhe")
    opts = CompileOptions(calibration=bundle.calibration_images(), max_depth=10, precision=TARGET, key_budget=KEY_BUDGET)
    return bundle, engine, compile_model(bundle.onnx_path, engine, opts)


def test_the_bootstrapped_plan_is_128_bit_and_accepted_by_openfhe():
    """Planning only (seconds): the part of the slow run that can fail fast."""
    _, engine, cm = compile_small_with_bootstraps()
    rep, p = cm.program.report, cm.params
    assert rep["security_bits"] == 128 and p.bootstrap is not None
    assert rep["bootstraps_per_patch"] == 1 and rep["bootstraps"] == 4
    assert rep["bootstrap_option"]["iterations"] == 2
    assert engine.refuses(p) is None
    assert rep["predicted_relative_error"] <= cm.program.report["precision_target_relative"]


@pytest.mark.slow
def test_small_model_bootstraps_at_128_bit_on_openfhe():
    bundle, engine, cm = compile_small_with_bootstraps()
    rep = cm.program.report
    ctx = cm.create_context(engine)
    x = bundle.preprocess(load_orl()[0][7])
    res = run_program(ctx.public(), cm.program, cm.encrypt(ctx, x))
    out = cm.decode(ctx.decrypt(res.outputs["embedding"]))
    ref = cm.reference(x)
    err = np.abs(out - ref)
    rel = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
    print(f"\n{rep['bootstraps']} bootstraps at N={rep['ring_dim']}, 128-bit: max abs error {err.max():.2e} "
          f"(predicted {rep['predicted_max_error']:.2e}), relative {rel:.2e} (predicted "
          f"{rep['predicted_relative_error']:.2e}), {res.profile.seconds.get('bootstrap', 0):.0f} s in bootstraps")
    assert res.profile.calls["bootstrap"] == rep["bootstraps"] == 4
    assert rel <= rep["predicted_relative_error"] <= TARGET.max_relative_error
    assert err.max() <= rep["predicted_max_error"] and err.max() < 1e-3 * max(1.0, float(np.abs(ref).max()))
    assert float(out @ ref / (np.linalg.norm(out) * np.linalg.norm(ref))) > 0.9999
