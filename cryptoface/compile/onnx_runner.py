"""Encrypted execution of any importable ONNX graph, for `onnx.backend` and its node tests.

`register_encrypted_runners()` adds a mode "encrypted:<backend>" per available backend to
`cryptoface.ir.onnx_backend`: the graph is compiled for that backend, the inputs encrypted,
the program run on the evaluation context and the output decrypted. The plan is calibrated
on the inputs it runs on (value bounds, q0 headroom).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..ir.graph import Graph
from ..ir.onnx_backend import register_runner
from ..plugins import get_plugins
from ..runtime.executors import run_program
from .pipeline import CompileOptions, compile_model


def encrypted_runner(backend: str, insecure_test_params: bool = False):
    def run(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        engine = get_plugins().get(backend)
        feeds = {k: inputs[k] for k in graph.inputs}
        # Calibrated for the inputs it runs on: the plan (and its value bounds) fits them.
        cm = compile_model(graph, engine, CompileOptions(insecure_test_params=insecure_test_params, calibration=[feeds]))
        ctx = cm.create_context(engine)
        res = run_program(ctx.public(), cm.program, cm.encrypt(ctx, **feeds))
        out = cm.decode(ctx.decrypt(next(iter(res.outputs.values()))))
        return {graph.outputs[0]: out.reshape(graph.shape(graph.outputs[0]))}

    return run


def register_encrypted_runners() -> list[str]:
    modes = []
    for info in get_plugins().backends():
        if info.available:
            mode = f"encrypted:{info.name}"
            register_runner(mode, encrypted_runner(info.name))
            modes.append(mode)
    return modes
