"""The plan report: what a compiled model costs and where its levels and bootstraps went."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..backend import Engine
from .levels import LevelAssignment
from .mpcnn import mpcnn_conv_counts
from .pack import PackedPartition
from .precision import PrecisionTarget

if TYPE_CHECKING:
    from .pipeline import CompiledModel


def layer_report(parts: list[PackedPartition], levels: dict[int, LevelAssignment]) -> list[dict]:
    """Per linear layer of the first patch network: its level and rotation/product counts,
    beside the MPCNN counts for the same convolution."""
    rows = []
    p = parts[0]
    la = levels[p.index]
    for op in p.ops:
        if op.plan is None:
            continue
        c = op.plan.counts
        row = {
            "layer": op.name.split("/", 1)[-1], "level": la.op_level[op.name], "diagonals": len(op.plan.diagonals),
            "rotations": c.rotations, "baby": c.baby_rotations, "giant": c.giant_rotations,
            "replication": c.replication_rotations, "pt_mults": c.plaintext_mults,
        }
        row["ir"] = "+".join(n.rsplit("/", 1)[-1] for n in op.ir_nodes)
        if "kernel" in op.meta:
            in_l, out_l = op.plan.in_layout, op.plan.out_layout
            m = mpcnn_conv_counts(in_l.shape[0], out_l.shape[0], in_l.shape[1], in_l.shape[2], op.meta["kernel"],
                                  op.meta["stride"], op.plan.slots, in_l.gap)
            row["mpcnn_rotations"], row["mpcnn_mults"] = m.rotations, m.plaintext_mults
        rows.append(row)
    return rows


def plan_report(cm: "CompiledModel", engine: type[Engine], depth_needed: int, target: PrecisionTarget) -> dict:
    """What `cryptoface plan` prints (and `--json` writes): parameters, levels, bootstraps,
    counts, keys, predicted error, per-layer rows."""
    p = cm.params
    counts = cm.program.counts()
    boots = {f"patch{i}": list(la.bootstraps) for i, la in cm.levels.items()}
    n_boot = sum(len(b) for b in boots.values())
    keys = cm.choice.keys
    per_patch = cm.program.sections[0].counts()
    return {
        "backend": cm.backend,
        "ring_dim": p.ring_dim,
        "slots": p.slots,
        "log_q": p.log_q,
        "log_qp": p.log_qp,
        "scale_bits": p.scale_bits,
        "security_bits": p.security_bits(),
        "depth": p.depth,
        "depth_needed": depth_needed,
        "levels_after_bootstrap": cm.choice.boot_level,
        "bootstraps": n_boot,
        "bootstraps_per_patch": max((len(b) for b in boots.values()), default=0),
        "bootstrap_points": boots,
        "patches": len(cm.partitions),
        "rotations": int(counts["rotate"] + counts["rotate_many"]),
        "rotations_per_patch": int(per_patch["rotate"] + per_patch["rotate_many"]),
        "rotation_keys": len(keys.steps),
        "rotation_keys_composed": keys.composed,
        "ct_pt_mults": int(counts["mul_plain"]),
        "ct_ct_mults": int(counts["mul"]),
        "rescales": int(counts["rescale"]),
        "key_switch_key_bytes": engine.key_switch_key_bytes(p),
        "key_memory_bytes": keys.total_bytes,
        "key_memory_budget_bytes": keys.budget_bytes,
        "key_memory_fits": keys.fits,
        "precision_target_relative": target.max_relative_error,
        "predicted_max_error": cm.choice.predicted.max_abs if cm.choice.predicted else None,
        "predicted_relative_error": cm.choice.predicted.relative if cm.choice.predicted else None,
        "predicted_error_by_source": cm.choice.predicted.parts if cm.choice.predicted else {},
        "bootstrap_option": None if cm.choice.bootstrap is None else {
            "level_budget": list(cm.choice.bootstrap.config.level_budget), "iterations": cm.choice.bootstrap.config.iterations,
            "precision_bits": cm.choice.bootstrap.precision_bits, "rotation_keys": cm.choice.bootstrap.rotation_keys},
        "output_levels": cm.choice.output_levels,
        "notes": list(cm.choice.notes),
        "layers": cm.layer_report,
    }
