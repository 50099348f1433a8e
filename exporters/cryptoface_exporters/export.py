"""Write a FusedModel as an ONNX graph that follows the importer's contract (docs/onnx_opset.md).

The graph is built node by node with onnx.helper rather than traced by torch.onnx, so that the
op patterns, node names and constant shapes are exactly the documented ones:

* input ``image`` float32 [1, C, H, W]; output ``embedding`` float32 [1, D]; opset 17;
* one subgraph per patch, every node named ``patch{i}/...``: Slice -> PCNN -> Flatten -> Gemm;
* monic HerPN: Add(x, b) -> Mul(x, .) -> Add(., c) with b, c of shape (C, 1, 1);
* the N partial Gemm outputs summed by one ``Sum`` node named ``embedding/sum``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from .fuse import Activation, Block, Conv, FusedModel, Patch

OPSET = 17
IR_VERSION = 8
INPUT_NAME = "image"
OUTPUT_NAME = "embedding"
ALLOWED_OPS = frozenset({
    "Conv", "Gemm", "MatMul", "Add", "Mul", "Sub", "AveragePool", "GlobalAveragePool",
    "Flatten", "Reshape", "Slice", "Concat", "Sum"})


@dataclass
class _GraphBuilder:
    """Collects nodes and float32 initializers; every value is named after the node producing it."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)

    def const(self, name: str, value: np.ndarray | torch.Tensor, dtype=np.float32) -> str:
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), name))
        return name

    def node(self, op: str, name: str, inputs: list[str], **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def channel_const(self, name: str, value: torch.Tensor) -> str:
        return self.const(name, value.reshape(-1, 1, 1))

    def activation(self, prefix: str, x: str, act: Activation) -> str:
        if act.a2 is None:  # monic: x * (x + b) + c, one ciphertext multiplication
            shifted = self.node("Add", f"{prefix}/add_b", [x, self.channel_const(f"{prefix}/b", act.a1)])
            square = self.node("Mul", f"{prefix}/mul", [x, shifted])
            return self.node("Add", f"{prefix}/add_c", [square, self.channel_const(f"{prefix}/c", act.a0)])
        square = self.node("Mul", f"{prefix}/square", [x, x])
        quad = self.node("Mul", f"{prefix}/mul_a2", [square, self.channel_const(f"{prefix}/a2", act.a2)])
        lin = self.node("Mul", f"{prefix}/mul_a1", [x, self.channel_const(f"{prefix}/a1", act.a1)])
        both = self.node("Add", f"{prefix}/add", [quad, lin])
        return self.node("Add", f"{prefix}/add_a0", [both, self.channel_const(f"{prefix}/a0", act.a0)])

    def conv(self, name: str, x: str, conv: Conv) -> str:
        k = conv.weight.shape[-1]
        return self.node("Conv", name, [x, self.const(f"{name}/W", conv.weight), self.const(f"{name}/B", conv.bias)],
                         kernel_shape=[k, k], strides=[conv.stride] * 2, pads=[conv.padding] * 4,
                         dilations=[1, 1], group=1)

    def block(self, prefix: str, x: str, block: Block) -> str:
        t = self.activation(f"{prefix}/herpn1", x, block.herpn1)
        main = self.conv(f"{prefix}/conv1", t, block.conv1)
        main = self.activation(f"{prefix}/herpn2", main, block.herpn2)
        main = self.conv(f"{prefix}/conv2", main, block.conv2)
        short = t
        if block.shortcut_scale is not None:
            short = self.node("Mul", f"{prefix}/shortcut/scale",
                              [short, self.channel_const(f"{prefix}/shortcut/a2", block.shortcut_scale)])
        if block.shortcut_conv is not None:
            short = self.conv(f"{prefix}/shortcut/conv", short, block.shortcut_conv)
        return self.node("Add", f"{prefix}/add", [main, short])

    def patch(self, i: int, patch: Patch, row: int, col: int, size: int) -> str:
        p = f"patch{i}"
        x = self.node("Slice", f"{p}/slice", [
            INPUT_NAME,
            self.const(f"{p}/slice/starts", np.array([row * size, col * size]), np.int64),
            self.const(f"{p}/slice/ends", np.array([(row + 1) * size, (col + 1) * size]), np.int64),
            self.const(f"{p}/slice/axes", np.array([2, 3]), np.int64)])
        x = self.conv(f"{p}/stem/conv", x, patch.stem)
        for j, block in enumerate(patch.blocks):
            x = self.block(f"{p}/block{j}", x, block)
        x = self.activation(f"{p}/final/herpn", x, patch.final)
        x = self.node("AveragePool", f"{p}/pool", [x], kernel_shape=[patch.pool] * 2, strides=[patch.pool] * 2)
        x = self.node("Flatten", f"{p}/flatten", [x], axis=1)
        return self.node("Gemm", f"{p}/gemm", [x, self.const(f"{p}/gemm/W", patch.gemm_weight),
                                               self.const(f"{p}/gemm/B", patch.gemm_bias)],
                         alpha=1.0, beta=1.0, transB=1)


def to_onnx(fused: FusedModel, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """Build (and check) the ONNX model of a fused CryptoFaceNet."""
    cfg = fused.config
    g = _GraphBuilder()
    parts = [g.patch(i, patch, i // cfg.grid, i % cfg.grid, cfg.patch_size) for i, patch in enumerate(fused.patches)]
    g.nodes.append(helper.make_node("Sum", parts, [OUTPUT_NAME], name="embedding/sum"))
    graph = helper.make_graph(
        g.nodes, f"{cfg.name}-{fused.form}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, cfg.in_channels, cfg.input_size, cfg.input_size])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, cfg.embedding_dim])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cryptoface-exporters", ir_version=IR_VERSION)
    props = {"model": cfg.name, "form": fused.form, "num_patches": str(cfg.num_patches), **(metadata or {})}
    helper.set_model_props(model, props)
    check_contract(model)
    return model


def check_contract(model: onnx.ModelProto) -> None:
    """Raise if the graph leaves the op set / naming the importer relies on."""
    onnx.checker.check_model(model, full_check=True)
    bad = sorted({n.op_type for n in model.graph.node} - ALLOWED_OPS)
    if bad:
        raise ValueError(f"ops outside the importer's op set: {bad}")
    unnamed = [n.op_type for n in model.graph.node if not n.name]
    if unnamed:
        raise ValueError(f"unnamed nodes: {unnamed}")


def save_onnx(fused: FusedModel, path: str | Path, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    model = to_onnx(fused, metadata)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return model
