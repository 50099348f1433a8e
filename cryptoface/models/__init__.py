"""The shipped, trained, fused CryptoFaceNet models and their sidecars.

`load_bundle("small")` (or a path to an .onnx file with its .json beside it) gives the ONNX
path, the metadata (input size, normalization, thresholds, squared-norm statistics) and the
client's preprocessing for that model. A file that is not what it claims (text named .onnx,
a sidecar that is not JSON or lacks a field) is a `ConfigError` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..preprocess import check_range, normalized_range, preprocess

MODELS_DIR = Path(__file__).parent
SHIPPED = ("small", "cryptofacenet4")
DEFAULT_NORMALIZATION = {"scale": 1 / 255, "mean": 0.5, "std": 0.5}


@dataclass(frozen=True)
class ModelBundle:
    name: str
    onnx_path: Path
    meta: dict

    @property
    def input_size(self) -> int:
        return int(self.meta["input_size"])

    @property
    def normalization(self) -> dict:
        return self.meta.get("normalization", DEFAULT_NORMALIZATION)

    @property
    def input_range(self) -> tuple[float, float]:
        """The model's input range after preprocessing (pixels 0..255 give -1..1 for ours)."""
        n = self.normalization
        return normalized_range(n["scale"], n["mean"], n["std"])

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """Raw pixels -> the model's input, refused if outside the range it was calibrated for."""
        n = self.normalization
        x = preprocess(image, self.input_size, int(self.meta.get("channels", 3)), n["scale"], n["mean"], n["std"])
        return self.check_input(x)

    def check_input(self, x: np.ndarray) -> np.ndarray:
        """A preprocessed input checked against `input_range` before it is encrypted."""
        return check_range(x, *self.input_range, f"inputs of model {self.name!r}")

    def calibration_images(self, count: int = 8) -> np.ndarray:
        """Real faces (ORL), preprocessed: the range bounds of bootstrapping and q0 come from
        inputs like the ones the model will see, not from noise it never saw."""
        from ..data import load_orl

        images, _ = load_orl()
        pick = np.linspace(0, len(images) - 1, count).astype(int)
        return np.stack([self.preprocess(images[i])[0] for i in pick])


def _onnx_input_meta(path: Path) -> dict:
    """Input size and channels from the ONNX graph itself; fails cleanly on a non-ONNX file."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several unrelated types on junk
        raise ConfigError(f"{path} is not an ONNX model: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    inputs = model.graph.input
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim] if inputs else []
    if len(dims) != 4 or min(dims[1:]) < 1:
        raise ConfigError(f"{path}: expected one image input of shape (N, C, H, W), got {dims or 'none'}")
    return {"input_size": dims[-1], "channels": dims[1]}


def _sidecar(path: Path) -> dict:
    """The model's .json sidecar, with the fields preprocessing relies on checked."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"model sidecar {path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ConfigError(f"model sidecar {path} must hold a JSON object, got {type(meta).__name__}")
    for key in ("input_size", "channels"):
        if key in meta and (isinstance(meta[key], bool) or not isinstance(meta[key], int) or meta[key] < 1):
            raise ConfigError(f"model sidecar {path}: {key} must be a positive integer, got {meta[key]!r}")
    norm = meta.get("normalization", DEFAULT_NORMALIZATION)
    ok = isinstance(norm, dict) and all(
        isinstance(norm.get(k), (int, float)) and not isinstance(norm.get(k), bool) for k in DEFAULT_NORMALIZATION
    )
    if not ok or norm["scale"] <= 0 or norm["std"] <= 0:
        raise ConfigError(f"model sidecar {path}: normalization must give numbers scale > 0, mean, std > 0, got {norm!r}")
    return meta


def load_bundle(name_or_path: str | Path) -> ModelBundle:
    p = Path(name_or_path)
    if p.suffix != ".onnx":
        if str(name_or_path) not in SHIPPED:
            raise ConfigError(f"unknown model {str(name_or_path)!r}: give a path to an .onnx file or one of {', '.join(SHIPPED)}")
        p = MODELS_DIR / f"{name_or_path}.onnx"
    if not p.is_file():
        raise ConfigError(f"model file {p} does not exist")
    graph_meta = _onnx_input_meta(p)
    side = p.with_suffix(".json")
    meta = graph_meta | _sidecar(side) if side.is_file() else graph_meta
    return ModelBundle(str(meta.get("model", p.stem)), p, meta)
