"""Per-layer counts of one CryptoFaceNet patch network, our BSGS plans against MPCNN's.

`python -m cryptoface.compile.count_table [--slots N]` prints the table of docs/packing.md
(default: 16384 and 32768 slots). Counts depend on layer shapes only, so weights are random.
"""

from __future__ import annotations

import argparse
from typing import Any, Sequence

import numpy as np

from ..program.layout import Layout
from .linear_maps import avgpool_map, conv2d_map, gemm_map
from .linear_transform import LinearTransformPlan, plan_linear_transform
from .mpcnn import (
    CRYPTOFACENET_PCNN_CONVS,
    MPCNN_AVGPOOL_8_TO_2_COUNTS,
    MPCNN_LINEAR_256_COUNTS,
    mpcnn_conv_counts,
)


def _random_weight(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Dense non-zero weights: the diagonal set, hence the counts, depends only on the shape.
    return rng.uniform(0.5, 1.0, shape)


def pcnn_count_table(slots: int = 32768, seed: int = 0) -> list[dict[str, Any]]:
    """Counts per layer of one CryptoFaceNet patch network: our plan vs MPCNN's.

    Rows: the 13 convolutions (`repeat` says how many share a shape), the 8²→2² average
    pool and the 256→256 linear layer. Counts depend on shapes only, so weights are random.
    """
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

    for spec in CRYPTOFACENET_PCNN_CONVS:
        layout = Layout.multiplexed(spec.c_in, spec.size, spec.size, slots, spec.gap_in)
        w = _random_weight(rng, (spec.c_out, spec.c_in, spec.kernel, spec.kernel))
        plan = plan_linear_transform(conv2d_map(layout, w, stride=spec.stride, pads=spec.pad, name=spec.name))
        m = mpcnn_conv_counts(spec.c_in, spec.c_out, spec.size, spec.size, spec.kernel, spec.stride, slots, spec.gap_in)
        row(spec.name, plan, spec.repeat, (m.rotations, m.plaintext_mults), m.levels)
    pool_in = Layout.multiplexed(64, 8, 8, slots, 4)
    pool = avgpool_map(pool_in, 4, 4, name="avgpool 8x8->2x2")
    # MPCNN's pool and linear counts are replays at n = 32768 only (PACKING.md §2.4).
    replayed = slots == 32768
    row(pool.name, plan_linear_transform(pool), 1, MPCNN_AVGPOOL_8_TO_2_COUNTS if replayed else None, 1)
    gemm = gemm_map(pool.out_layout, _random_weight(rng, (256, 256)), name="linear 256->256")
    row(gemm.name, plan_linear_transform(gemm), 1, MPCNN_LINEAR_256_COUNTS if replayed else None, 1)
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
        if "pool" not in r["layer"] and "linear" not in r["layer"]:
            for key in tot:
                tot[key] += r[key] * r["repeat"]
    lines.append(
        f"| **all 13 convs** | | | | | **{tot['rotations']}** | **{tot['mults']}** | 13 "
        f"| **{tot['mpcnn_rotations']}** | **{tot['mpcnn_mults']}** | 26 |"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m cryptoface.compile.count_table", description=__doc__.split("\n")[0])
    ap.add_argument("--slots", type=int, action="append", help="slot count(s) (default: 16384 and 32768)")
    args = ap.parse_args(argv)
    for slots in args.slots or [16384, 32768]:
        print(format_count_table(pcnn_count_table(slots), slots))
        print()


if __name__ == "__main__":
    main()
