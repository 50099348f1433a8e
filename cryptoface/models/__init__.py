"""The shipped, trained, fused CryptoFaceNet models and their sidecars.

`load_bundle("small")` (or a path to an .onnx file with its .json beside it) gives the ONNX
path, the metadata (input size, normalization, thresholds, squared-norm statistics) and the
client's preprocessing for that model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..preprocess import preprocess

MODELS_DIR = Path(__file__).parent
SHIPPED = ("small", "cryptofacenet4")


@dataclass(frozen=True)
class ModelBundle:
    name: str
    onnx_path: Path
    meta: dict

    @property
    def input_size(self) -> int:
        return int(self.meta["input_size"])

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        norm = self.meta.get("normalization", {"scale": 1 / 255, "mean": 0.5, "std": 0.5})
        return preprocess(image, self.input_size, int(self.meta.get("channels", 3)), norm["scale"], norm["mean"], norm["std"])

    def calibration_images(self, count: int = 8) -> np.ndarray:
        """Real faces (ORL), preprocessed: the range bounds of bootstrapping and q0 come from
        inputs like the ones the model will see, not from noise it never saw."""
        from ..data import load_orl

        images, _ = load_orl()
        pick = np.linspace(0, len(images) - 1, count).astype(int)
        return np.stack([self.preprocess(images[i])[0] for i in pick])


def load_bundle(name_or_path: str | Path) -> ModelBundle:
    p = Path(name_or_path)
    if p.suffix != ".onnx":
        if str(name_or_path) not in SHIPPED:
            raise ConfigError(f"unknown model {name_or_path!r}: give a path to an .onnx file or one of {', '.join(SHIPPED)}")
        p = MODELS_DIR / f"{name_or_path}.onnx"
    if not p.is_file():
        raise ConfigError(f"model file {p} does not exist")
    side = p.with_suffix(".json")
    meta = json.loads(side.read_text()) if side.is_file() else {}
    if not meta:
        import onnx

        shape = [d.dim_value for d in onnx.load(str(p), load_external_data=False).graph.input[0].type.tensor_type.shape.dim]
        meta = {"input_size": shape[-1], "channels": shape[1]}
    return ModelBundle(meta.get("model", p.stem), p, meta)
