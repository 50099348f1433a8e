"""Per-layer counts of one patch network, our BSGS plans against MPCNN's.

`python -m cryptoface.compile.count_table [--slots N] [--model M]` prints the table of
docs/packing.md (default: CryptoFaceNet4 at 16384 and 32768 slots). The layer shapes are read
from the model's first patch network; counts depend on shapes only, so weights are random.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..ir.graph import Graph
from ..ir.onnx_import import import_onnx
from ..models import load_bundle
from ..program.layout import Layout
from .linear_maps import avgpool_map, conv2d_map, gemm_map
from .linear_transform import LinearTransformPlan, plan_linear_transform
from .mpcnn import mpcnn_conv_counts


@dataclass(frozen=True)
class ConvLayerSpec:
    """One convolution shape of a patch network (square images, symmetric pads)."""

    name: str
    c_in: int
    c_out: int
    size: int  # input H = W
    gap_in: int  # multiplexing gap of the input: the product of the strides before it
    kernel: int
    stride: int
    pad: int
    repeat: int = 1  # how many layers of the network have this shape


@dataclass(frozen=True)
class PatchLayers:
    """The linear layers of one patch network, as the count table needs them."""

    convs: tuple[ConvLayerSpec, ...]
    pool_in: tuple[int, int, int]  # (C, H, W) into the average pool
    pool_kernel: int
    pool_gap_in: int
    linear: tuple[int, int]  # (F_out, F_in)


def patch_layers(model: str = "cryptofacenet4") -> PatchLayers:
    """Read the shapes of the first patch network from the model (one row per distinct conv
    shape, in order of first use, with how many layers share it)."""
    graph = import_onnx(str(load_bundle(model).onnx_path))
    nodes = [n for n in graph.nodes if n.partition in (0, None) and n.op in ("conv", "avgpool", "linear")]
    convs = [n for n in nodes if n.op == "conv"]
    if not convs:
        raise ValueError(f"model {model!r} has no convolution to tabulate")
    first = _chw(graph, convs[0])[1]
    specs: dict[tuple, ConvLayerSpec] = {}
    for n in convs:
        (c_in, size, _), (c_out, _, k, _) = _chw(graph, n), n.params["weight"].shape
        stride, pad = n.attrs["strides"][0], n.attrs["pads"][0]
        key = (c_in, c_out, size, k, stride, pad)
        if key in specs:
            specs[key] = ConvLayerSpec(**{**specs[key].__dict__, "repeat": specs[key].repeat + 1})
        else:
            name = f"{k}x{k}{f' s{stride}' if stride > 1 else ''} {c_in}->{c_out}"
            specs[key] = ConvLayerSpec(name, c_in, c_out, size, first // size, k, stride, pad)
    pool = next(n for n in nodes if n.op == "avgpool")
    linear = next(n for n in nodes if n.op == "linear")
    pool_in = _chw(graph, pool)
    return PatchLayers(tuple(specs.values()), pool_in, pool.attrs["kernel"][0], first // pool_in[1],
                       tuple(linear.params["weight"].shape))


def _chw(graph: Graph, node: Any) -> tuple[int, int, int]:
    shape = graph.values[node.inputs[0]].shape
    return tuple(int(d) for d in shape[-3:])  # type: ignore[return-value]


def _random_weight(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Dense non-zero weights: the diagonal set, hence the counts, depends only on the shape.
    return rng.uniform(0.5, 1.0, shape)


def pcnn_count_table(slots: int = 32768, seed: int = 0, layers: PatchLayers | None = None) -> list[dict[str, Any]]:
    """Counts per layer of one patch network (CryptoFaceNet4's by default): our plan vs MPCNN's.

    Rows: the convolutions (`repeat` says how many share a shape), the average pool and the
    linear layer. MPCNN has a closed formula for convolutions only, so its pool and linear
    columns are empty (docs/packing.md gives counts replayed from CryptoFace's code).
    """
    layers = layers or patch_layers()
    rng = np.random.default_rng(seed)
    table: list[dict[str, Any]] = []

    def row(name: str, plan: LinearTransformPlan, repeat: int, mpcnn: tuple[int, int] | None, mpcnn_levels: int) -> None:
        c = plan.counts
        mpcnn = mpcnn or (None, None)
        table.append(
            {
                "layer": name, "repeat": repeat, "diagonals": c.plaintext_mults,
                "block_rows": plan.block_rows, "baby_step_count": plan.baby_step_count,
                "baby": c.baby_rotations, "giant": c.giant_rotations, "replication": c.replication_rotations,
                "rotations": c.rotations, "mults": c.plaintext_mults, "levels": c.levels,
                "mpcnn_rotations": mpcnn[0], "mpcnn_mults": mpcnn[1], "mpcnn_levels": mpcnn_levels,
            }
        )

    for spec in layers.convs:
        layout = Layout.multiplexed(spec.c_in, spec.size, spec.size, slots, spec.gap_in)
        w = _random_weight(rng, (spec.c_out, spec.c_in, spec.kernel, spec.kernel))
        plan = plan_linear_transform(conv2d_map(layout, w, stride=spec.stride, pads=spec.pad, name=spec.name))
        m = mpcnn_conv_counts(spec.c_in, spec.c_out, spec.size, spec.size, spec.kernel, spec.stride, slots, spec.gap_in)
        row(spec.name, plan, spec.repeat, (m.rotations, m.plaintext_mults), m.levels)
    c, h, w = layers.pool_in
    k = layers.pool_kernel
    pool = avgpool_map(Layout.multiplexed(c, h, w, slots, layers.pool_gap_in), k, k, name=f"avgpool {h}x{w}->{h // k}x{w // k}")
    row(pool.name, plan_linear_transform(pool), 1, None, 1)
    f_out, f_in = layers.linear
    gemm = gemm_map(pool.out_layout, _random_weight(rng, (f_out, f_in)), name=f"linear {f_in}->{f_out}")
    row(gemm.name, plan_linear_transform(gemm), 1, None, 1)
    return table


def _cell(v: int | None) -> str:
    return "–" if v is None else str(v)


def format_count_table(table: list[dict[str, Any]], slots: int) -> str:
    """Markdown table with conv totals (weighted by repeat)."""
    lines = [
        f"n = {slots} slots",
        "",
        "| layer | x | diagonals | bh | N1 | rotations (baby+giant+repl) | ct×pt mults | levels "
        "| MPCNN rotations | MPCNN mults | MPCNN levels |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tot = dict.fromkeys(("rotations", "mults", "mpcnn_rotations", "mpcnn_mults"), 0)
    for r in table:
        lines.append(
            f"| {r['layer']} | {r['repeat']} | {r['diagonals']} | {r['block_rows']} | {r['baby_step_count']} "
            f"| {r['rotations']} ({r['baby']}+{r['giant']}+{r['replication']}) | {r['mults']} | {r['levels']} "
            f"| {_cell(r['mpcnn_rotations'])} | {_cell(r['mpcnn_mults'])} | {r['mpcnn_levels']} |"
        )
        if r["mpcnn_rotations"] is not None:
            for key in tot:
                tot[key] += r[key] * r["repeat"]
    convs = sum(r["repeat"] for r in table if r["mpcnn_rotations"] is not None)
    lines.append(
        f"| **all {convs} convs** | | | | | **{tot['rotations']}** | **{tot['mults']}** | {convs} "
        f"| **{tot['mpcnn_rotations']}** | **{tot['mpcnn_mults']}** | {2 * convs} |"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m cryptoface.compile.count_table", description=__doc__.split("\n")[0])
    ap.add_argument("--slots", type=int, action="append", help="slot count(s) (default: 16384 and 32768)")
    ap.add_argument("--model", default="cryptofacenet4", help="shipped model name or .onnx path (default: cryptofacenet4)")
    args = ap.parse_args(argv)
    layers = patch_layers(args.model)
    for slots in args.slots or [16384, 32768]:
        print(format_count_table(pcnn_count_table(slots, layers=layers), slots))
        print()


if __name__ == "__main__":
    main()
