"""The lowering table: for every packed-op kind, the levels it consumes and the instructions
it emits, side by side in one record.

The level pass reads `levels` (through `PackedOp.depth`) and the emitter calls `emit`, so the
depth levels are planned with and the rescales actually emitted come from one place and
cannot disagree (tests/compile/test_lowering.py runs every kind and checks that they do not).
The packer (`pack.py`) turns IR ops into these kinds; a kind missing here has no lowering.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Callable, Mapping, Protocol, Sequence

import numpy as np

from ..errors import CompileError
from ..program import ConstantTable, Instr, Section

if TYPE_CHECKING:
    from .pack import PackedOp


class Emitter(Protocol):
    """What a lowering needs from the section being written."""

    section: Section
    constants: ConstantTable

    def instr(self, ins: Instr) -> str: ...

    def const(self, key: str, recipe: dict, maker: Callable[[], np.ndarray]) -> str: ...


Emit = Callable[[Emitter, "PackedOp", Sequence[str], int], str]


@dataclass(frozen=True)
class Lowering:
    """One packed-op kind: `levels(op)` rescales on its longest path, `emit(em, op, args,
    level)` its instructions on operands already at `level`; returns the result's name."""

    levels: Callable[["PackedOp"], int]
    emit: Emit | None  # None: the op is a section input, nothing to emit


def _channel(em: Emitter, op: "PackedOp", const: str, suffix: str, coef: str | None = None) -> str:
    """The op's constant `const` as the program constant `{op}.{suffix}`."""
    return em.const(f"{op.name}.{suffix}", {"kind": "channel", "value": op.name, "coef": coef or const}, op.consts[const])


def _linear(em: Emitter, op: "PackedOp", args: Sequence[str], level: int) -> str:
    assert op.plan is not None
    return op.plan.emit(em.section, em.constants, args[0], prefix=op.name)


def _monic(op: "PackedOp") -> bool:
    return "a" not in op.consts


def _quadratic(em: Emitter, op: "PackedOp", args: Sequence[str], level: int) -> str:
    x, name = args[0], op.name
    c = _channel(em, op, "c", "c")
    if _monic(op):  # x * (x + b) + c
        t = em.instr(Instr("add_plain", f"{name}.xb", (x,), const=_channel(em, op, "b", "b")))
        m = em.instr(Instr("mul", f"{name}.m", (x, t)))
    else:  # a * x * (x + b/a) + c: ax costs a level, x meets it one level down
        ax = em.instr(Instr("mul_plain", f"{name}.ax", (x,), const=_channel(em, op, "a", "a")))
        ax = em.instr(Instr("rescale", f"{name}.axr", (ax,)))
        xl = em.instr(Instr("mod_switch", f"{name}.xl", (x,), level=level - 1))
        t = em.instr(Instr("add_plain", f"{name}.xb", (xl,), const=_channel(em, op, "b_over_a", "ba", "b/a")))
        m = em.instr(Instr("mul", f"{name}.m", (ax, t)))
    r = em.instr(Instr("rescale", f"{name}.r", (m,)))
    return em.instr(Instr("add_plain", f"{name}.out", (r,), const=c))


def _mul_const(em: Emitter, op: "PackedOp", args: Sequence[str], level: int) -> str:
    m = em.instr(Instr("mul_plain", f"{op.name}.m", (args[0],), const=_channel(em, op, "value", "v")))
    return em.instr(Instr("rescale", f"{op.name}.out", (m,)))


def _add_const(em: Emitter, op: "PackedOp", args: Sequence[str], level: int) -> str:
    return em.instr(Instr("add_plain", f"{op.name}.out", (args[0],), const=_channel(em, op, "value", "v")))


def _neg(em: Emitter, op: "PackedOp", args: Sequence[str], level: int) -> str:
    """-x = x - 2x: two additions, no level (a product by -1 would cost one)."""
    twice = em.instr(Instr("add", f"{op.name}.2x", (args[0], args[0])))
    return em.instr(Instr("sub", f"{op.name}.out", (args[0], twice)))


def _binary(em: Emitter, op: "PackedOp", args: Sequence[str], level: int) -> str:
    return em.instr(Instr(op.kind, f"{op.name}.out", tuple(args)))


def _mul(em: Emitter, op: "PackedOp", args: Sequence[str], level: int) -> str:
    m = em.instr(Instr("mul", f"{op.name}.m", tuple(args)))
    return em.instr(Instr("rescale", f"{op.name}.out", (m,)))


def _levels(n: int) -> Callable[["PackedOp"], int]:
    return lambda op: n


LOWERINGS: Mapping[str, Lowering] = MappingProxyType({
    "input": Lowering(_levels(0), None),
    "linear": Lowering(_levels(1), _linear),  # BSGS: mul_plain per diagonal, one rescale
    "quadratic": Lowering(lambda op: 1 if _monic(op) else 2, _quadratic),
    "mul_const": Lowering(_levels(1), _mul_const),
    "add_const": Lowering(_levels(0), _add_const),
    "neg": Lowering(_levels(0), _neg),
    "add": Lowering(_levels(0), _binary),
    "sub": Lowering(_levels(0), _binary),
    "mul": Lowering(_levels(1), _mul),
})


def lowering(kind: str) -> Lowering:
    """The table entry for a packed-op kind (CompileError when there is none)."""
    try:
        return LOWERINGS[kind]
    except KeyError:
        raise CompileError(f"no lowering for packed op kind {kind!r}; known: {sorted(LOWERINGS)}") from None


class _Counter:
    """An emitter that only keeps the instructions, to count what an op emits."""

    def __init__(self) -> None:
        self.section = Section("count", (), ())
        self.constants = ConstantTable()

    def instr(self, ins: Instr) -> str:
        self.section.instrs.append(ins)
        return ins.out

    def const(self, key: str, recipe: dict, maker: Callable[[], np.ndarray]) -> str:
        return key


def work(op: "PackedOp") -> tuple[tuple[str, int], ...]:
    """The primitive instructions `op` emits, with counts (what running it costs)."""
    emit = lowering(op.kind).emit
    if emit is None:
        return ()
    em = _Counter()
    emit(em, op, [f"{name}.arg" for name in op.inputs], op.depth)
    return tuple(sorted(em.section.counts().items()))
