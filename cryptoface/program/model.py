"""Which model a program was compiled from: name, SHA-256 of the ONNX file, sidecar metadata.

The hash ties a program file to its model (a server refuses a program for another model);
the metadata is what the client needs to preprocess a face without the model's files; the
ONNX bytes ride along so the file alone can also compute the plaintext reference.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ModelRecord:
    name: str
    sha256: str
    meta: dict = field(default_factory=dict)
    onnx: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(cls, model: object) -> "ModelRecord":
        """The record of what `compile_model` was given: an ONNX path, bytes or ModelProto."""
        if isinstance(model, (str, Path)):
            return cls.from_onnx(model)
        data = model if isinstance(model, bytes) else model.SerializeToString()  # type: ignore[attr-defined]
        return cls("model", sha256_hex(data), {}, data)

    @classmethod
    def from_onnx(cls, path: str | Path) -> "ModelRecord":
        from ..models import load_bundle

        bundle = load_bundle(Path(path))
        data = bundle.onnx_path.read_bytes()
        return cls(bundle.name, sha256_hex(data), dict(bundle.meta), data)

    def to_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "meta": self.meta}

    def bundle(self):
        """The client's preprocessing for this model (a `models.ModelBundle` from the metadata)."""
        from ..models import ModelBundle

        return ModelBundle(self.name, Path(f"{self.name}.onnx"), self.meta)

    def reference(self, *arrays: np.ndarray) -> np.ndarray:
        """The plaintext output of the stored ONNX model (numpy interpreter, no compiler)."""
        from ..errors import ConfigError
        from ..ir.interpreter import run
        from ..ir.onnx_import import import_onnx

        if self.onnx is None:
            raise ConfigError(f"the program for model {self.name!r} does not hold the model, so it has no reference")
        graph = import_onnx(self.onnx)
        feeds = {k: np.asarray(v, dtype=np.float64).reshape(graph.shape(k)) for k, v in zip(graph.inputs, arrays)}
        return run(graph, feeds)[graph.outputs[0]].reshape(-1)
