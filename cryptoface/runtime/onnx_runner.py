"""Encrypted execution of any importable ONNX graph, for `onnx.backend` and its node tests.

`encrypted_runners(compile_program)` gives a runner per available backend, keyed by the mode
"encrypted:<backend>", to pass to `CryptofaceBackend.prepare(model, mode=..., runners=...)`
(nothing is registered globally): the graph is compiled for that backend by the
function given (`(graph, engine, inputs) -> HEProgram`, e.g. `compile_model(g, e,
CompileOptions(calibration=[inputs])).program`: the runtime never imports the compiler
itself), the inputs encrypted, the program run on the evaluation context and the output
decrypted. The compiler gets the inputs to calibrate on, so that the plan and its value
bounds fit them (the node tests' inputs are far outside [-1, 1]).
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from ..backend import Engine
from ..ir.graph import Graph
from ..ir.onnx_backend import RUNNERS, Runner
from ..plugins import get_plugins
from ..program import HEProgram
from .executors import run_program

CompileProgram = Callable[[Graph, "type[Engine]", Mapping[str, np.ndarray]], HEProgram]


def encrypted_runner(backend: str, compile_program: CompileProgram):
    def run(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        engine = get_plugins().get(backend)
        feeds = {k: inputs[k] for k in graph.inputs}
        program = compile_program(graph, engine, feeds)
        ctx = program.create_context(engine)
        res = run_program(ctx.public(), program, program.encrypt(ctx, **feeds))
        out = program.decode(ctx.decrypt(res.outputs[program.output_name]))
        return {graph.outputs[0]: out.reshape(graph.shape(graph.outputs[0]))}

    return run


def encrypted_runners(compile_program: CompileProgram) -> dict[str, Runner]:
    """Mode "encrypted:<backend>" -> its runner, for every available backend, plus "reference"."""
    runners = dict(RUNNERS)
    for info in get_plugins().backends():
        if info.available:
            runners[f"encrypted:{info.name}"] = encrypted_runner(info.name, compile_program)
    return runners
