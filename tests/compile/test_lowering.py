"""The lowering table: for every packed-op kind, the depth the level pass plans with equals
the levels its emitted instructions consume, and the compiled op computes its reference.

Levels are followed through the emitted section instruction by instruction (a rescale drops
one, a mod-switch goes to its target, a join needs equal levels), so a lowering that emits
one rescale more or less than its table depth says fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryptoface.compile.emit import SectionEmitter
from cryptoface.compile.lowering import LOWERINGS
from cryptoface.compile.pack import PACKING_RULES
from cryptoface.compile.pipeline import compile_model
from cryptoface.errors import CompileError
from cryptoface.ir.graph import Graph, Node, Value
from cryptoface.ir.ops import OP_TABLE
from cryptoface.program import ConstantTable, Section
from cryptoface.runtime.executors import run_program
from cryptoface.simulator import SimulatorEngine

N = 8
RNG = np.random.default_rng(3)


def _graph(op: str, inputs: tuple[str, ...] = ("x",), **params: np.ndarray) -> Graph:
    out_shape = (1, params["weight"].shape[0]) if "weight" in params else (1, N)
    values = {i: Value(i, (1, N)) for i in inputs} | {"y": Value("y", out_shape)}
    return Graph(inputs, ("y",), (Node(op, op, inputs, ("y",), params=params),), values)


# One IR graph per packed kind (and one per quadratic flavour): what the kind is packed from.
CASES = {
    "linear": _graph("linear", weight=RNG.normal(0, 0.3, (4, N)), bias=RNG.normal(0, 0.1, 4)),
    "quadratic": _graph("quadratic", a=np.ones(1), b=np.full(1, 0.5), c=np.full(1, -0.2)),
    "quadratic (non-monic)": _graph("quadratic", a=np.full(1, 0.7), b=np.full(1, 0.5), c=np.full(1, -0.2)),
    "mul_const": _graph("mul_const", value=RNG.uniform(-1, 1, (1, N))),
    "add_const": _graph("add_const", value=RNG.uniform(-1, 1, (1, N))),
    "neg": _graph("neg"),
    "add": _graph("add", ("x", "z")),
    "sub": _graph("sub", ("x", "z")),
    "mul": _graph("mul", ("x", "z")),
}


def test_every_packed_kind_has_a_case():
    assert {k.split(" ")[0] for k in CASES} | {"input"} == set(LOWERINGS)


def _levels_through(section: Section, inputs: dict[str, int]) -> dict[str, int]:
    """The level of every value of `section`, following its instructions."""
    lvl = dict(inputs)
    for ins in section.instrs:
        at = [lvl[a] for a in ins.args]
        if ins.op in ("add", "sub", "mul", "square"):
            assert len(set(at)) == 1, f"{ins.op} {ins.out!r} joins levels {at}"
        if ins.op == "rescale":
            new = at[0] - 1
        elif ins.op == "mod_switch":
            assert ins.level is not None and ins.level <= at[0], f"mod_switch {ins.out!r} up from {at[0]} to {ins.level}"
            new = ins.level
        else:
            new = min(at)
        assert new >= 0, f"{ins.out!r} below level 0"
        for out in ins.outputs():
            lvl[out] = new
    return lvl


@pytest.mark.parametrize("case", sorted(CASES))
def test_planned_depth_is_what_the_emitted_instructions_consume(case):
    graph = CASES[case]
    cm = compile_model(graph, SimulatorEngine)
    (part,) = cm.partitions
    la = cm.levels[part.index]
    em = SectionEmitter("check", cm.params.slots, ConstantTable(), la, {}, cm.params.depth)
    section = em.partition(part)
    lvl = _levels_through(section, {i: cm.params.depth for i in section.inputs})
    for op in part.ops:
        if op.kind == "input":
            continue
        assert lvl[em.at[op.name]] == la.op_level[op.name] - op.depth == la.assigned[op.name], (
            f"{op.kind} {op.name!r}: runs at {la.op_level[op.name]}, table depth {op.depth}, "
            f"its instructions leave it at {lvl[em.at[op.name]]}")
    assert lvl[section.outputs[0]] == la.assigned[part.output_name]
    # and the lowered op computes what the IR op does
    feeds = {i: RNG.uniform(-1, 1, (1, N)) for i in graph.inputs}
    ctx = cm.create_context(SimulatorEngine)
    res = run_program(ctx.public(), cm.program, cm.encrypt(ctx.public(), **feeds))
    out = cm.decode(ctx.decrypt(res.outputs[cm.program.output_name]))
    np.testing.assert_allclose(out, cm.reference(**feeds), atol=1e-4)


def test_neg_is_free():
    """A negation costs no level: -x = x - (x + x)."""
    cm = compile_model(CASES["neg"], SimulatorEngine)
    (op,) = [o for o in cm.partitions[0].ops if o.kind == "neg"]
    assert op.depth == 0 and cm.program.report["depth_needed"] == 0
    assert cm.program.counts()["rescale"] == 0


def test_ir_kinds_without_a_packing_rule_are_refused():
    """Every IR kind is either packed (then lowered through the table) or refused by name."""
    refused = sorted(set(OP_TABLE) - set(PACKING_RULES))
    assert set(PACKING_RULES) <= set(OP_TABLE)
    assert "concat" in refused and "neg" not in refused
    g = Graph(("x", "z"), ("y",), (Node("c", "concat", ("x", "z"), ("y",), attrs={"axis": 1}),),
              {"x": Value("x", (1, N)), "z": Value("z", (1, N)), "y": Value("y", (1, 2 * N))})
    with pytest.raises(CompileError, match="'concat' at node 'c' cannot run on ciphertexts"):
        compile_model(g, SimulatorEngine)
