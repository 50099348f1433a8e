"""ONNX's own node tests, run encrypted: compiled, encrypted, evaluated, decrypted.

Every float case of a supported op must either match ONNX's expected output within CKKS
tolerance or be refused with a clear cryptoface error (a CompileError naming what the
packer cannot do); a wrong answer fails the test. The per-op counts are printed.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from cryptoface.compile.pipeline import CompileOptions, compile_model
from cryptoface.errors import CryptofaceError
from cryptoface.ir.onnx_backend import CryptofaceBackend
from cryptoface.ir.onnx_conformance import classify, node_cases, primary_op
from cryptoface.runtime.onnx_runner import register_encrypted_runners

# CKKS is approximate: absolute error relative to the output's magnitude.
RTOL = 1e-3


def run_encrypted(mode: str) -> dict[str, Counter]:
    register_encrypted_runners(
        lambda graph, engine, feeds: compile_model(graph, engine, CompileOptions(calibration=[feeds])).program)
    per_op: dict[str, Counter] = defaultdict(Counter)
    wrong = []
    for case in node_cases():
        if classify(case) != "float":
            continue
        op = primary_op(case)
        try:
            rep = CryptofaceBackend.prepare(case.model, "CPU", mode=mode)
            for inputs, expected in case.data_sets:
                outputs = rep.run(list(inputs))
                for got, want in zip(outputs, expected):
                    want = np.asarray(want, dtype=np.float64)
                    err = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want))) if want.size else 0.0
                    if err > RTOL * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0):
                        wrong.append(f"{case.name}: max abs error {err:.3g}")
                        raise AssertionError
        except AssertionError:
            per_op[op]["wrong"] += 1
            continue
        except CryptofaceError as exc:
            per_op[op]["refused"] += 1
            per_op[op][f"refused: {str(exc)[:70]}"] += 0
            continue
        per_op[op]["pass"] += 1
    print(f"\nONNX node tests, encrypted on {mode}:")
    for op in sorted(per_op):
        c = per_op[op]
        print(f"  {op:<18} pass {c['pass']:>3}  refused {c['refused']:>3}  wrong {c['wrong']:>3}")
    total = sum((c for c in per_op.values()), Counter())
    print(f"  TOTAL              pass {total['pass']:>3}  refused {total['refused']:>3}  wrong {total['wrong']:>3}")
    assert not wrong, "wrong answers: " + "; ".join(wrong[:10])
    return per_op


def test_onnx_node_tests_encrypted_on_simulator():
    per_op = run_encrypted("encrypted:simulator")
    for op in ("Conv", "Gemm", "Add", "Mul", "Sum", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "Sub", "Neg", "Identity"):
        assert per_op[op]["pass"] >= 1, f"no {op} case passes encrypted"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tenseal", "pyfhel", "openfhe"])
def test_onnx_node_tests_encrypted_on_real_backends(backend):
    run_encrypted(f"encrypted:{backend}")
