"""The compiler's output: an HE program of primitive CKKS ops, the same for every backend.

An `HEProgram` is everything both sides need to run a compiled model: the parameters and
rotation keys to generate (client), the sections of instructions and their plaintext
constants (server), and how to cut, pack and read back tensors (client: `patch_inputs`,
`encrypt`, `decode`). It does not need the compiler: `save`/`load` move it between machines
(`cryptoface.program.file`).

`inputs` maps each ciphertext the client sends to {"level", "section", "source" (the model
input it is cut from), "slice" (the cut, or None), "layout" (`Layout.to_dict`)};
`outputs` maps the model output to {"layout", "period"}; `model_inputs` gives each model
input's shape.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InvalidInputError
from ..params import CKKSParams
from .constants import ConstantTable
from .instructions import Section
from .layout import Layout
from .model import ModelRecord

if TYPE_CHECKING:
    from ..backend import Ciphertext, Engine, HEContext


@dataclass
class HEProgram:
    params: CKKSParams
    rotation_steps: list[int]
    compose_rotations: bool
    sections: list[Section]
    constants: ConstantTable
    inputs: dict[str, dict]
    outputs: dict[str, dict]
    report: dict = field(default_factory=dict)
    backend: str = ""
    model: ModelRecord | None = None
    model_inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # value -> largest |value| the plan is sized for (compile/bounds.py); the runtime checks
    # them where the backend can see values
    bounds: dict[str, float] = field(default_factory=dict)

    def counts(self) -> Counter:
        total: Counter = Counter()
        for s in self.sections:
            total += s.counts()
        return total

    # ---- client side ----------------------------------------------------------------------
    @property
    def output_name(self) -> str:
        return next(iter(self.outputs))

    def patch_inputs(self, *arrays: np.ndarray, **named: np.ndarray) -> dict[str, np.ndarray]:
        """The inputs cut as the model's Slices cut them (patches), each packed into its layout.

        Positional arrays bind to the model inputs in order (for a face model: the image)."""
        feeds = dict(zip(self.model_inputs, arrays)) | named
        missing = set(self.model_inputs) - set(feeds)
        if missing:
            raise InvalidInputError(f"missing model inputs {sorted(missing)}")
        out = {}
        for name, spec in self.inputs.items():
            x = np.asarray(feeds[spec["source"]])
            if x.dtype.kind not in "uif":
                raise InvalidInputError(f"input {spec['source']!r} must be numbers, got dtype {x.dtype}")
            x = x.astype(np.float64)
            shape = tuple(self.model_inputs[spec["source"]])
            if x.shape != shape:
                if x.size != int(np.prod(shape)):
                    raise InvalidInputError(f"input {spec['source']!r} has shape {x.shape}, the model expects {shape}")
                x = x.reshape(shape)
            if not np.all(np.isfinite(x)):
                raise InvalidInputError(f"input {spec['source']!r} contains NaN or infinity")
            if spec.get("slice") is not None:
                sl = [slice(None)] * x.ndim
                s = spec["slice"]
                steps = s.get("steps") or [1] * len(s["axes"])
                for a, b, e, st in zip(s["axes"], s["starts"], s["ends"], steps):
                    sl[a] = slice(b, e, st)
                x = x[tuple(sl)]
            layout = Layout.from_dict(spec["layout"])
            out[name] = layout.pack(x[0] if not layout.is_flat else x.reshape(-1))
        return out

    def encrypt(self, ctx: "HEContext", *arrays: np.ndarray, **named: np.ndarray) -> dict[str, "Ciphertext"]:
        return {k: ctx.encrypt(v) for k, v in self.patch_inputs(*arrays, **named).items()}

    def decode(self, vec: np.ndarray) -> np.ndarray:
        """The output values (flattened) from the decrypted slot vector."""
        layout = Layout.from_dict(self.outputs[self.output_name]["layout"])
        return np.asarray(layout.unpack(np.asarray(vec)[: self.params.slots])).reshape(-1)

    def create_context(self, engine: type["Engine"]) -> "HEContext":
        from ..backend import HEContext

        return HEContext.create(engine, self.params, self.rotation_steps)

    # ---- files ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> str:
        """Write one versioned program file; returns the program hash."""
        from .file import save_program

        return save_program(self, path)

    @staticmethod
    def load(path: str | Path, backend: str | None = None, model_sha256: str | None = None,
             allow_insecure: bool = False) -> "HEProgram":
        """Read a program file, refusing one for another backend or model (when given)."""
        from .file import load_program

        return load_program(path, backend, model_sha256, allow_insecure)

    def to_json(self) -> str:
        """The instructions and constant recipes as JSON (the constants' data is not in it)."""
        from .file import program_to_dict

        return json.dumps(program_to_dict(self) | {"constants": self.constants.recipes})

    @staticmethod
    def sections_from_json(text: str) -> list[Section]:
        from .file import sections_from_list

        return sections_from_list(json.loads(text)["sections"])

