"""ONNX's own node tests, run encrypted: compiled, encrypted, evaluated, decrypted.

Every float case of a supported op must either match ONNX's expected output within CKKS
tolerance or be refused by a CompileError (UnsupportedOpError is one) whose message names what
the compiler cannot do; a wrong answer or any other exception fails the test. The per-op
counts are printed.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest

from cryptoface.compile.pipeline import CompileOptions, compile_model
from cryptoface.errors import CompileError
from cryptoface.ir.onnx_backend import CryptofaceBackend
from cryptoface.ir.onnx_conformance import classify, node_cases, primary_op
from cryptoface.runtime.onnx_runner import encrypted_runners

# CKKS is approximate: absolute error relative to the output's magnitude.
RTOL = 1e-3


def max_error(outputs, expected) -> str | None:
    """None when every output matches ONNX's within RTOL of its magnitude, else what differs."""
    for got, want in zip(outputs, expected, strict=True):
        want = np.asarray(want, dtype=np.float64)
        got = np.asarray(got, dtype=np.float64)
        if got.shape != want.shape:
            return f"shape {got.shape} instead of {want.shape}"
        if want.size:
            err = float(np.max(np.abs(got - want)))
            if not err <= RTOL * max(1.0, float(np.max(np.abs(want)))):
                return f"max abs error {err:.3g}"
    return None


def outcome(case, mode: str, runners) -> tuple[str, str]:
    """("pass" | "refused" | "wrong" | "error", detail) for one node test.

    Only a CompileError (UnsupportedOpError is one) with a message is a refusal: the compiler
    saying what it cannot do. Any other exception, even another CryptofaceError, is an error.
    """
    try:
        rep = CryptofaceBackend.prepare(case.model, "CPU", mode=mode, runners=runners)
        runs = [(rep.run(list(inputs)), expected) for inputs, expected in case.data_sets]
    except CompileError as exc:
        message = str(exc).strip()
        return ("refused", message[:70]) if message else ("error", f"{type(exc).__name__} without a message")
    except Exception as exc:  # noqa: BLE001 - reported below as a failure of this case
        return "error", f"{type(exc).__name__}: {exc}"
    for outputs, expected in runs:
        problem = max_error(outputs, expected)
        if problem:
            return "wrong", problem
    return "pass", ""


def run_encrypted(mode: str) -> dict[str, Counter]:
    runners = encrypted_runners(
        lambda graph, engine, feeds: compile_model(graph, engine, CompileOptions(calibration=[feeds])).program)
    per_op: dict[str, Counter] = defaultdict(Counter)
    failures = []
    for case in node_cases():
        if classify(case) != "float":
            continue
        op = primary_op(case)
        kind, detail = outcome(case, mode, runners)
        per_op[op][kind] += 1
        if kind in ("wrong", "error"):
            failures.append(f"{case.name}: {kind}: {detail}")
    print(f"\nONNX node tests, encrypted on {mode}:")
    for op in sorted(per_op):
        c = per_op[op]
        print(f"  {op:<18} pass {c['pass']:>3}  refused {c['refused']:>3}  wrong {c['wrong']:>3}  error {c['error']:>3}")
    total = sum((c for c in per_op.values()), Counter())
    print(f"  TOTAL              pass {total['pass']:>3}  refused {total['refused']:>3}  wrong {total['wrong']:>3}  error {total['error']:>3}")
    assert not failures, f"{len(failures)} case(s) neither right nor refused: " + "; ".join(failures[:10])
    return per_op


def test_onnx_node_tests_encrypted_on_simulator():
    per_op = run_encrypted("encrypted:simulator")
    for op in ("Conv", "Gemm", "Add", "Mul", "Sum", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "Sub", "Neg", "Identity"):
        assert per_op[op]["pass"] >= 1, f"no {op} case passes encrypted"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tenseal", "pyfhel", "openfhe"])
def test_onnx_node_tests_encrypted_on_real_backends(backend):
    run_encrypted(f"encrypted:{backend}")
