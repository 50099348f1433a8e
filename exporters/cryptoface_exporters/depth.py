"""Multiplicative depth of an exported graph, per node and per block.

A CKKS level is consumed by every multiplication followed by a rescale: ciphertext x ciphertext
(Mul of two encrypted values) and ciphertext x plaintext (Mul by a constant, Conv, Gemm,
AveragePool's 1/k^2). Additions, slicing and reshaping are free. How many levels a convolution
costs depends on the packing: 2 with MPCNN's multiplexed convolution (the mask after the
rotations, as in CryptoFace's SEAL code), 1 with diagonal/BSGS packing (Orion); both are
reported. Only the critical path counts: a block's depth is the depth of its output minus the
depth of its input.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx

FREE_OPS = {"Add", "Sub", "Sum", "Slice", "Flatten", "Reshape", "Concat"}
LINEAR_OPS = {"Gemm", "MatMul", "AveragePool", "GlobalAveragePool"}


@dataclass(frozen=True)
class BlockDepth:
    name: str
    depth: int


def node_depths(model: onnx.ModelProto, conv_levels: int = 2) -> dict[str, int]:
    """Depth of every encrypted value (constants are plaintext and absent from the result)."""
    consts = {init.name for init in model.graph.initializer}
    depth: dict[str, int] = {i.name: 0 for i in model.graph.input if i.name not in consts}
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        enc = [depth[i] for i in node.input if i in depth]
        if not enc:
            continue
        d = max(enc)
        if node.op_type == "Mul":
            d += 1  # ct x ct or ct x pt: one rescale either way
        elif node.op_type == "Conv":
            d += conv_levels
        elif node.op_type in LINEAR_OPS:
            d += 1
        elif node.op_type not in FREE_OPS:
            raise ValueError(f"no depth rule for op {node.op_type} (node {node.name})")
        for out in node.output:
            depth[out] = d
    return depth


def block_depths(model: onnx.ModelProto, patch: int = 0, conv_levels: int = 2) -> list[BlockDepth]:
    """Depth of the stem, each residual block, the head, and the total, for one patch subgraph."""
    depth = node_depths(model, conv_levels)
    prefix = f"patch{patch}/"
    nodes = [n for n in model.graph.node if n.name.startswith(prefix)]
    groups: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        groups.setdefault(n.name[len(prefix):].split("/")[0], []).append(n)
    result: list[BlockDepth] = []
    current = 0
    for name, members in groups.items():
        out = max(depth[o] for n in members for o in n.output)
        if name in ("slice",):
            current = out
            continue
        result.append(BlockDepth(name, out - current))
        current = out
    result.append(BlockDepth("total", depth[model.graph.output[0].name]))
    return result
