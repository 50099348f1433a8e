"""Lowering: packed ops with assigned levels -> primitive HE instructions (one section).

Reads the level pass's decisions (`LevelAssignment`): every operand is mod-switched to the
level its op runs at, then the op's instructions come from the lowering table
(`lowering.py`, which also gives the level pass each op's depth), and a bootstrapped value is
prescaled into the bootstrap's input range (x 1/B, one level), bootstrapped, and scaled back
(x B, as doublings: no level). B comes from the bounds pass (`bounds.prescale`): the largest
magnitude the value takes on the calibration inputs, with a margin, rounded up to a power of
two.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CompileError
from .levels import LevelAssignment
from .lowering import lowering
from .pack import PackedOp, PackedPartition
from ..program import ConstantTable, Instr, Section


class SectionEmitter:
    def __init__(self, name: str, slots: int, constants: ConstantTable, levels: LevelAssignment,
                 bootstrap_bounds: dict[str, float], encrypt_level: int) -> None:
        self.encrypt_level = encrypt_level
        self.slots = slots
        self.constants = constants
        self.levels = levels
        self.bounds = bootstrap_bounds
        self.section: Section | None = None
        self.name = name
        self.at: dict[str, str] = {}  # value -> current ciphertext name
        self.switched: dict[tuple[str, int], str] = {}
        self.count = 0

    def instr(self, ins: Instr) -> str:
        assert self.section is not None
        self.section.instrs.append(ins)
        return ins.out

    def _fresh(self, base: str) -> str:
        self.count += 1
        return f"{base}~{self.count}"

    def const(self, key: str, recipe: dict, maker) -> str:
        return self.constants.add(key, recipe, maker)

    def operand(self, value: str, level: int) -> str:
        """`value` as a ciphertext at `level` (mod-switched once, then reused)."""
        have = self.levels.assigned[value]
        if have == level:
            return self.at[value]
        if have < level:
            raise CompileError(f"operand {value!r} at level {have} is below the {level} its consumer runs at")
        key = (value, level)
        if key not in self.switched:
            self.switched[key] = self.instr(Instr("mod_switch", self._fresh(f"{value}.ms{level}"), (self.at[value],), level=level))
        return self.switched[key]

    def partition(self, part: PackedPartition) -> Section:
        self.section = Section(self.name, tuple(i.name for i in part.inputs), (part.output_name,))
        for op in part.ops:
            if op.kind == "input":
                self.at[op.name] = op.name
                target = self.levels.assigned[op.name]
                if op.name in self.levels.bootstraps:
                    raise CompileError("bootstrapping a fresh input is never useful; encrypt deeper instead")
                if target < self.encrypt_level:
                    self.at[op.name] = self.instr(Instr("mod_switch", self._fresh(f"{op.name}.ms"), (op.name,), level=target))
                continue
            out = self.op(op)
            if op.name in self.levels.bootstraps:
                out = self.bootstrap(op, out)
            self.at[op.name] = out
        # the section's output keeps its IR name
        last = self.at[part.output_name]
        if last != part.output_name:
            self.section.instrs.append(Instr("mod_switch", part.output_name, (last,), level=self.levels.assigned[part.output_name]))
        return self.section

    def op(self, op: PackedOp) -> str:
        """The op's instructions, from the lowering table, on operands at its level."""
        lvl = self.levels.op_level[op.name]
        emit = lowering(op.kind).emit
        if emit is None:
            raise CompileError(f"packed op {op.name!r} ({op.kind}) has nothing to emit")
        return emit(self, op, [self.operand(i, lvl) for i in op.inputs], lvl)

    def bootstrap(self, op: PackedOp, value: str) -> str:
        """x -> (x/B) -> bootstrap -> x: keeps bootstrapping's input inside its range. B is a
        power of two (`bounds.prescale`), so the way back is doublings, which cost no level."""
        bound = self.bounds.get(op.name)
        if bound is None:
            raise CompileError(f"no calibration bound for bootstrapped value {op.name!r}")
        inv = self.const(f"{op.name}.boot.inv", {"kind": "fill", "value": 1 / bound}, lambda: np.full(self.slots, 1 / bound))
        n = op.name
        pre = self.instr(Instr("rescale", f"{n}.pre", (self.instr(Instr("mul_plain", f"{n}.prem", (value,), const=inv)),)))
        lvl_pre = self.levels.op_level[n] - op.depth - 1
        if lvl_pre > 0:  # bootstrap from the lowest level: the cheapest input
            pre = self.instr(Instr("mod_switch", f"{n}.pre0", (pre,), level=0))
        boot = self.instr(Instr("bootstrap", f"{n}.boot", (pre,)))
        out = boot
        for k in range(int(round(math.log2(bound)))):  # x B by doublings: exact, no level
            out = self.instr(Instr("add", f"{n}.post{k}", (out, out)))
        target = self.levels.assigned[n]
        if target < self.levels.available[n]:
            out = self.instr(Instr("mod_switch", f"{n}.postms", (out,), level=target))
        return out
