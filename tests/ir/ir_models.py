"""Small ONNX graphs built with onnx.helper for the IR tests (no torch here)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class GraphMaker:
    """Collects nodes and initializers; every node's output has the node's name (exporter style)."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def rand(self, name: str, shape: tuple[int, ...], scale: float = 0.5) -> str:
        return self.const(name, (self.rng.standard_normal(shape) * scale).astype(np.float32))

    def node(self, op: str, name: str, inputs: list[str], **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def model(self, inputs: list[tuple[str, list[int]]], outputs: list[tuple[str, list[int] | None]], name: str = "g") -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        return model


def herpn(g: GraphMaker, prefix: str, x: str, channels: int) -> str:
    """The exporter's monic activation: x * (x + b) + c with b, c of shape (C,1,1)."""
    t = g.node("Add", f"{prefix}/add_b", [x, g.rand(f"{prefix}/b", (channels, 1, 1))])
    m = g.node("Mul", f"{prefix}/mul", [x, t])
    return g.node("Add", f"{prefix}/add_c", [m, g.rand(f"{prefix}/c", (channels, 1, 1))])


def conv(g: GraphMaker, name: str, x: str, cin: int, cout: int, k: int = 3, stride: int = 1) -> str:
    p = k // 2
    return g.node("Conv", name, [x, g.rand(f"{name}/W", (cout, cin, k, k), 0.3), g.rand(f"{name}/B", (cout,), 0.1)],
                  kernel_shape=[k, k], strides=[stride, stride], pads=[p, p, p, p], dilations=[1, 1], group=1)


def tiny_cryptofacenet(patches_per_side: int = 2, patch: int = 4, channels: int = 4, dim: int = 5, seed: int = 0) -> onnx.ModelProto:
    """A CryptoFaceNet-shaped model: per patch Slice -> Conv -> HerPN -> Conv -> HerPN -> Conv
    (+ scaled identity shortcut) -> HerPN -> AveragePool -> Flatten -> Gemm; then Sum."""
    g = GraphMaker(seed)
    size = patches_per_side * patch
    partials = []
    for i in range(patches_per_side**2):
        r, c = divmod(i, patches_per_side)
        p = f"patch{i}"
        x = g.node("Slice", f"{p}/slice", ["image",
                   g.const(f"{p}/slice/starts", np.array([r * patch, c * patch], np.int64)),
                   g.const(f"{p}/slice/ends", np.array([(r + 1) * patch, (c + 1) * patch], np.int64)),
                   g.const(f"{p}/slice/axes", np.array([2, 3], np.int64))])
        x = conv(g, f"{p}/stem/conv", x, 3, channels)
        h1 = herpn(g, f"{p}/block0/herpn1", x, channels)
        y = conv(g, f"{p}/block0/conv1", h1, channels, channels)
        y = herpn(g, f"{p}/block0/herpn2", y, channels)
        y = conv(g, f"{p}/block0/conv2", y, channels, channels)
        s = g.node("Mul", f"{p}/block0/shortcut/scale", [h1, g.rand(f"{p}/block0/shortcut/a2", (channels, 1, 1))])
        y = g.node("Add", f"{p}/block0/add", [y, s])
        y = herpn(g, f"{p}/final/herpn", y, channels)
        half = patch // 2
        y = g.node("AveragePool", f"{p}/pool", [y], kernel_shape=[half, half], strides=[half, half])
        y = g.node("Flatten", f"{p}/flatten", [y], axis=1)
        y = g.node("Gemm", f"{p}/gemm", [y, g.rand(f"{p}/gemm/W", (dim, 4 * channels)), g.rand(f"{p}/gemm/B", (dim,))], transB=1)
        partials.append(y)
    g.nodes.append(helper.make_node("Sum", partials, ["embedding"], name="embedding/sum"))
    return g.model([("image", [1, 3, size, size])], [("embedding", [1, dim])], name="tiny_cryptofacenet")


def reference_outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """A second, independent implementation: onnxruntime when installed, else ONNX's own
    reference evaluator (pure numpy, written by the ONNX project, not by us)."""
    try:
        import onnxruntime as ort  # noqa: PLC0415
    except ImportError:
        from onnx.reference import ReferenceEvaluator  # noqa: PLC0415

        return ReferenceEvaluator(model).run(None, feeds)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)
