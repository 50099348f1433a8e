"""`onnx.backend.base.Backend` for cryptoface, so ONNX's own test suite can check us.

`prepare(model, runner=...)` imports the model with `import_onnx` and runs it with a
*runner*: any callable `(graph, inputs) -> outputs`. The default is the float64 reference
interpreter; an encrypted execution path plugs in by passing its runner, or a mapping of
named runners and a mode: `prepare(model, mode="encrypted:seal", runners={...})` (e.g.
`cryptoface.runtime.onnx_runner.encrypted_runners(...)`). Nothing registers into a global.

ONNX test cases hand weights (Conv W, Gemm B/C) and shape tensors (Reshape shape, Slice
starts...) in as graph inputs, where a real model has initializers. The rep binds, at run
time, every graph input used only in a weight position (`WEIGHT_OPERANDS`) as a constant, then imports for those values and the given input shapes
(cached). Everything else stays a variable: what a client would encrypt.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType

from ..errors import ConfigError
from . import interpreter
from .graph import Graph
from .onnx_import import WEIGHT_OPERANDS, import_onnx

Runner = Callable[[Graph, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
RUNNERS: Mapping[str, Runner] = MappingProxyType({"reference": interpreter.run})


def bound_inputs(model: onnx.ModelProto) -> set[str]:
    """Graph inputs the rep treats as constants: those used only in weight positions."""
    initializers = {i.name for i in model.graph.initializer}
    uses: dict[str, set[bool]] = {}
    for node in model.graph.node:
        weight_positions = WEIGHT_OPERANDS.get(node.op_type, ())
        for pos, name in enumerate(node.input):
            uses.setdefault(name, set()).add(pos in weight_positions)
    bound = set()
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        if uses.get(vi.name) == {True}:
            bound.add(vi.name)
    return bound


def _tensor(value: Any) -> Any:
    """Arrays as arrays; sequences/optionals left alone for the importer to refuse."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except ValueError:
        return value


class CryptofaceRep(BackendRep):
    """A prepared model: imports lazily per (input shapes, bound values), then runs."""

    def __init__(self, model: onnx.ModelProto, runner: Runner) -> None:
        self.model = model
        self.runner = runner
        initializers = {i.name for i in model.graph.initializer}
        self.input_names = [vi.name for vi in model.graph.input if vi.name not in initializers]
        self.bound = bound_inputs(model)
        self.output_dtypes = [
            onnx.helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type) if o.type.tensor_type.elem_type else np.float64
            for o in model.graph.output
        ]
        self._graphs: dict[Any, Graph] = {}
        if not self.bound and self._static():
            self._graphs[None] = import_onnx(model)  # fail fast on unsupported ops

    def _static(self) -> bool:
        return all(
            vi.type.HasField("tensor_type") and all(d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim)
            for vi in self.model.graph.input
        )

    def graph_for(self, feeds: Mapping[str, np.ndarray]) -> Graph:
        """The imported graph for these inputs (bound values and shapes are the cache key)."""
        if None in self._graphs:
            return self._graphs[None]
        bindings = {k: v for k, v in feeds.items() if k in self.bound}
        shapes = {k: v.shape for k, v in feeds.items() if k not in self.bound and isinstance(v, np.ndarray)}
        key = (tuple(sorted((k, v.dtype.str, v.shape, v.tobytes()) for k, v in bindings.items())), tuple(sorted(shapes.items())))
        if key not in self._graphs:
            self._graphs[key] = import_onnx(self.model, bindings=bindings, input_shapes=shapes)
        return self._graphs[key]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, Mapping):
            feeds = {k: _tensor(v) for k, v in inputs.items()}
        else:
            arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            feeds = {n: _tensor(a) for n, a in zip(self.input_names, arrays)}
        graph = self.graph_for(feeds)
        results = self.runner(graph, {k: feeds[k] for k in graph.inputs})
        return tuple(np.asarray(results[o]).astype(dt) for o, dt in zip(graph.outputs, self.output_dtypes))


class CryptofaceBackend(Backend):
    """ONNX backend API over the IR; CPU only (encrypted runners are CPU libraries too)."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", mode: str = "reference", runner: Runner | None = None,
                runners: Mapping[str, Runner] = RUNNERS, **kwargs: Any) -> CryptofaceRep:
        """`runner` if given, else `runners[mode]` (the reference interpreter by default)."""
        super().prepare(model, device, **kwargs)
        if runner is None:
            if mode not in runners:
                raise ConfigError(f"unknown cryptoface ONNX backend mode {mode!r}; known: {sorted(runners)}")
            runner = runners[mode]
        return CryptofaceRep(model, runner)

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU", outputs_info: Sequence[Any] | None = None,
                 **kwargs: Any) -> tuple[np.ndarray, ...]:
        raise NotImplementedError("cryptoface runs whole models; use run_model")

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return Device(device).type == DeviceType.CPU


prepare = CryptofaceBackend.prepare
run_model = CryptofaceBackend.run_model
supports_device = CryptofaceBackend.supports_device
