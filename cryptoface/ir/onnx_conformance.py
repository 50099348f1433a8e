"""ONNX's own node tests against cryptoface: `python -m cryptoface.ir.onnx_conformance`.

The `onnx` wheel generates its node test cases (model + inputs + expected outputs). Each case
is classified by the ops it uses:
- `float`: only ops the importer supports, float data inputs: must PASS;
- `non-float`: supported ops on integer data: must raise UnsupportedOpError;
- `other-op`: uses an op the importer does not support: must raise UnsupportedOpError, or
  pass when that op only touches constants or static shapes (Shape) and is folded away
  (only with --all).
The report gives, per ONNX op, pass / fail / unsupported / error counts.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import onnx

from ..errors import UnsupportedOpError
from .onnx_backend import CryptofaceBackend, bound_inputs
from .onnx_import import FLOAT_TYPES, SUPPORTED_ONNX_OPS

DATA_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE}


@dataclass(frozen=True)
class CaseResult:
    name: str
    op: str  # the ONNX op under test
    kind: str  # float | non-float | other-op
    status: str  # pass | fail | unsupported | error
    detail: str = ""

    @property
    def as_expected(self) -> bool:
        if self.kind == "other-op":  # refused, or right because only its constant part used the op
            return self.status in ("unsupported", "pass")
        return self.status == ("pass" if self.kind == "float" else "unsupported")


def node_cases() -> list:
    """ONNX's node test cases (generated in memory by the onnx wheel)."""
    import warnings  # noqa: PLC0415

    from onnx.backend.test.loader import load_model_tests  # noqa: PLC0415

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return [c for c in load_model_tests(kind="node") if c.model is not None]


def primary_op(case) -> str:
    ops = [n.op_type for n in case.model.graph.node if n.op_type != "Constant"] or ["Constant"]
    return ops[0] if len(set(ops)) == 1 else "+".join(sorted(set(ops)))


def classify(case) -> str:
    model = case.model
    if not {n.op_type for n in model.graph.node} <= SUPPORTED_ONNX_OPS or any(n.domain not in ("", "ai.onnx") for n in model.graph.node):
        return "other-op"
    bound = bound_inputs(model)
    for vi in model.graph.input:
        if vi.name in bound:
            continue
        if not vi.type.HasField("tensor_type") or vi.type.tensor_type.elem_type not in DATA_FLOAT_TYPES:
            return "non-float"
    for vo in model.graph.output:
        if not vo.type.HasField("tensor_type") or vo.type.tensor_type.elem_type not in FLOAT_TYPES | {onnx.TensorProto.INT64}:
            return "non-float"
    return "float"


def run_case(case, mode: str = "reference") -> CaseResult:
    """Run one case the way onnx.backend.test does; never raises."""
    from onnx.backend.test.runner import Runner  # noqa: PLC0415

    kind, op = classify(case), primary_op(case)
    try:
        rep = CryptofaceBackend.prepare(case.model, "CPU", mode=mode)
        for inputs, expected in case.data_sets:
            outputs = rep.run(list(inputs))
            Runner.assert_similar_outputs(list(expected), outputs, rtol=case.rtol, atol=case.atol)
    except UnsupportedOpError as exc:
        return CaseResult(case.name, op, kind, "unsupported", str(exc))
    except AssertionError as exc:
        return CaseResult(case.name, op, kind, "fail", str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    except Exception as exc:  # noqa: BLE001 - a report, not a crash
        return CaseResult(case.name, op, kind, "error", f"{type(exc).__name__}: {exc}")
    return CaseResult(case.name, op, kind, "pass")


def run_suite(include_other_ops: bool = False, mode: str = "reference", cases: Iterable | None = None) -> list[CaseResult]:
    results = []
    for case in cases if cases is not None else node_cases():
        if not include_other_ops and classify(case) == "other-op":
            continue
        results.append(run_case(case, mode))
    return results


def summarize(results: Sequence[CaseResult]) -> str:
    """Per-op table: float cases passed/total, then how non-float cases were refused."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    other: dict[str, int] = defaultdict(int)
    for r in results:
        if r.kind == "other-op":
            other[r.status] += 1
            continue
        row = table[r.op]
        row[f"{r.kind}:{r.status}"] += 1
        row[r.kind] += 1
    lines = [f"{'op':<18} {'float pass':>10} {'float fail':>10} {'float err':>9} {'non-float refused':>18}"]
    totals = defaultdict(int)
    for op in sorted(table):
        row = table[op]
        cells = (row["float:pass"], row["float"], row["float:fail"] + row["float:unsupported"], row["float:error"],
                 row["non-float:unsupported"], row["non-float"])
        for k, v in zip(("p", "f", "ff", "fe", "nu", "n"), cells):
            totals[k] += v
        lines.append(f"{op:<18} {cells[0]:>5}/{cells[1]:<4} {cells[2]:>10} {cells[3]:>9} {cells[4]:>12}/{cells[5]:<5}")
    lines.append(f"{'TOTAL':<18} {totals['p']:>5}/{totals['f']:<4} {totals['ff']:>10} {totals['fe']:>9} "
                 f"{totals['nu']:>12}/{totals['n']:<5}")
    if other:
        n = sum(other.values())
        lines.append(f"cases using other ONNX ops: {n}, refused with UnsupportedOpError: {other['unsupported']}, "
                     f"passed (the op only on constants/shapes, folded at import): {other['pass']}"
                     + "".join(f", {k}: {v}" for k, v in sorted(other.items()) if k not in ("unsupported", "pass")))
    bad = [r for r in results if not r.as_expected]
    for r in bad[:40]:
        lines.append(f"  unexpected {r.status}: {r.name} ({r.kind}) {r.detail[:160]}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptoface.ir.onnx_conformance", description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="also check that cases using other ops are refused cleanly")
    parser.add_argument("--mode", default="reference", help="a runner of cryptoface.ir.onnx_backend.RUNNERS (reference)")
    parser.add_argument("--json", help="write every case's result to this file")
    args = parser.parse_args(argv)
    results = run_suite(include_other_ops=args.all, mode=args.mode)
    print(summarize(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in results], f, indent=1)
    return 0 if all(r.as_expected for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
