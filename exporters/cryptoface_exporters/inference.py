"""Run a model on preprocessed faces: the trained torch model, or an exported ONNX file.

Also the checkpoint format: a small dict that is enough to rebuild the inference backbone
(``config`` + ``state_dict``), which ``verify`` compares against onnxruntime.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import ModelConfig
from .model import CryptoFaceNet

CHECKPOINT_DIR = Path(__file__).with_name("checkpoints")


def save_backbone(model: CryptoFaceNet, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Save what rebuilding the eval-mode backbone needs (no optimizer, no training heads)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict(), **(extra or {})}, path)


def load_backbone(path: str | Path) -> CryptoFaceNet:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    state = blob["state_dict"] if "state_dict" in blob else blob["backbone"]
    model = CryptoFaceNet(ModelConfig.from_dict(blob["config"]))
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def embed_torch(model: CryptoFaceNet, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Embeddings (float64) of preprocessed images (B, C, H, W) with the eval-mode model."""
    model.eval()
    out = [model(torch.from_numpy(images[i:i + batch_size])).double().numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.config.embedding_dim))


def onnx_session(path: str | Path):
    import onnxruntime as ort  # noqa: PLC0415
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def embed_onnx(path_or_session, images: np.ndarray) -> np.ndarray:
    """Embeddings from the exported graph (batch size 1 by contract, so one image at a time)."""
    sess = onnx_session(path_or_session) if isinstance(path_or_session, (str, Path)) else path_or_session
    return np.concatenate([sess.run(["embedding"], {"image": images[i:i + 1]})[0] for i in range(len(images))]
                          ).astype(np.float64)
