"""Instructions and sections: the straight-line code of an HE program.

A program is a list of `Instr` over named ciphertext values, split into independent
`Section`s (one per patch network, plus the section that combines them) so that the
runtime can run the patch networks in parallel.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

# Every op the runtime executes. `const` names a plaintext in the program's constant table,
# `step`/`steps` are rotation amounts, `level` is a mod-switch target.
OPS = frozenset({
    "add", "sub", "mul", "square", "rescale", "mod_switch", "rotate", "rotate_many",
    "mul_plain", "add_plain", "bootstrap",
})


@dataclass(frozen=True)
class Instr:
    op: str
    out: str
    args: tuple[str, ...] = ()
    const: str | None = None
    step: int | None = None
    steps: tuple[int, ...] | None = None  # rotate_many: outputs are f"{out}@{step}"
    level: int | None = None

    def outputs(self) -> tuple[str, ...]:
        if self.op == "rotate_many":
            return tuple(rotated_name(self.out, s) for s in self.steps or ())
        return (self.out,)


def rotated_name(base: str, step: int) -> str:
    return f"{base}@{step}"


@dataclass
class Section:
    """A straight-line sequence of instructions from `inputs` to `outputs`."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    instrs: list[Instr] = field(default_factory=list)

    def counts(self) -> Counter:
        c: Counter = Counter()
        for i in self.instrs:
            c[i.op] += len(i.steps or ()) if i.op == "rotate_many" else 1
        return c

    def last_uses(self) -> dict[str, int]:
        """Index of the last instruction reading each value (outputs live to the end)."""
        last: dict[str, int] = {}
        for k, ins in enumerate(self.instrs):
            for a in ins.args:
                last[a] = k
        for o in self.outputs:
            last[o] = len(self.instrs)
        return last
