"""The rotation-composition pass: when the key budget holds only power-of-two rotation keys,
every rotation by another step becomes a chain of power-of-two rotations (its non-adjacent
form, `parameters.naf`), so the program needs keys for those steps only.
"""

from __future__ import annotations

from ..program import Instr, Section, rotated_name
from .parameters import naf


def compose_rotations(section: Section, slots: int) -> Section:
    """Rewrite rotations into chains of power-of-two rotations (keys for those only)."""
    out = Section(section.name, section.inputs, section.outputs)
    for ins in section.instrs:
        if ins.op == "rotate":
            parts = naf(ins.step, slots)
            cur = ins.args[0]
            for k, s in enumerate(parts):
                name = ins.out if k == len(parts) - 1 else f"{ins.out}.naf{k}"
                out.instrs.append(Instr("rotate", name, (cur,), step=s))
                cur = name
        elif ins.op == "rotate_many":
            for s in ins.steps or ():
                parts = naf(s, slots)
                cur = ins.args[0]
                for k, p in enumerate(parts):
                    name = rotated_name(ins.out, s) if k == len(parts) - 1 else f"{rotated_name(ins.out, s)}.naf{k}"
                    out.instrs.append(Instr("rotate", name, (cur,), step=p))
                    cur = name
        else:
            out.instrs.append(ins)
    return out
