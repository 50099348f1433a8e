"""The compiler's output: an HE program of primitive CKKS ops, the same for every backend.

A program is a list of `Instr` over named ciphertext values. Plaintext operands are not
stored as vectors (a CryptoFaceNet layer has hundreds of diagonals of 16k slots); an
instruction names a constant, and the program's `constants` table makes the vector when the
runtime needs it, from the model's weights and the layouts. The instructions and the
constants' recipes serialize to JSON; the weights stay in the model file they came from.

Programs are split into independent `Section`s (one per patch network, plus the section
that combines them) so that the runtime can run the patch networks in parallel.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from ..params import CKKSParams

# op -> does it take a constant / a step / a level
OPS = {
    "add", "sub", "mul", "square", "rescale", "mod_switch", "rotate", "rotate_many",
    "mul_plain", "add_plain", "bootstrap",
}


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


@dataclass
class ConstantTable:
    """Lazy plaintext vectors: key -> recipe (JSON-able) and key -> maker (not serialized)."""

    recipes: dict[str, dict] = field(default_factory=dict)
    makers: dict[str, Callable[[], np.ndarray]] = field(default_factory=dict, repr=False)

    def add(self, key: str, recipe: dict, maker: Callable[[], np.ndarray]) -> str:
        self.recipes[key] = recipe
        self.makers[key] = maker
        return key

    def get(self, key: str) -> np.ndarray:
        return self.makers[key]()


@dataclass
class HEProgram:
    params: CKKSParams
    rotation_steps: list[int]
    compose_rotations: bool
    sections: list[Section]
    constants: ConstantTable
    inputs: dict[str, dict]  # input name -> {"level": int, "layout": {...}, "section": name}
    outputs: dict[str, dict]  # output name -> {"layout": {...}}
    report: dict = field(default_factory=dict)

    def counts(self) -> Counter:
        total: Counter = Counter()
        for s in self.sections:
            total += s.counts()
        return total

    def to_json(self) -> str:
        return json.dumps(
            {
                "params": self.params.to_dict(),
                "rotation_steps": self.rotation_steps,
                "compose_rotations": self.compose_rotations,
                "inputs": self.inputs,
                "outputs": self.outputs,
                "sections": [
                    {
                        "name": s.name, "inputs": s.inputs, "outputs": s.outputs,
                        "instrs": [{k: v for k, v in asdict(i).items() if v is not None} for i in s.instrs],
                    }
                    for s in self.sections
                ],
                "constants": self.constants.recipes,
                "report": self.report,
            }
        )

    @staticmethod
    def sections_from_json(text: str) -> list[Section]:
        """Instructions back from JSON (constants are rebuilt by compiling the same model)."""
        d = json.loads(text)
        out = []
        for s in d["sections"]:
            instrs = [Instr(**{**i, "args": tuple(i.get("args", ())),
                               **({"steps": tuple(i["steps"])} if "steps" in i else {})}) for i in s["instrs"]]
            out.append(Section(s["name"], tuple(s["inputs"]), tuple(s["outputs"]), instrs))
        return out
