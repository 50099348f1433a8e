"""Client-side image preprocessing: the exact transform the shipped models were trained with.

grayscale (ITU-R 601 luma for RGB) -> centre square crop -> area resampling (a box filter
with fractional pixel overlap) -> (pixel/255 - mean)/std -> replicated to the model's input
channels. numpy only: the client needs no image library for arrays, and the server never
sees the image at all.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidInputError


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights averaging the input interval each output pixel covers."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    return np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None) / (n_in / n_out)


def to_gray(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
    if img.ndim != 2:
        raise InvalidInputError(f"an image must be HxW gray or HxWx3/4 colour, got shape {np.shape(image)}")
    return img


def preprocess(image: np.ndarray, size: int, channels: int = 3, scale: float = 1 / 255, mean: float = 0.5, std: float = 0.5) -> np.ndarray:
    """One face (uint8 gray or RGB array) -> float64 (1, channels, size, size)."""
    gray = to_gray(image)
    if not np.all(np.isfinite(gray)):
        raise InvalidInputError("image contains NaN or infinity")
    h, w = gray.shape
    if min(h, w) < 2:
        raise InvalidInputError(f"image of {h}x{w} pixels is too small")
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = gray[top:top + side, left:left + side]
    small = area_matrix(side, size) @ square @ area_matrix(side, size).T
    norm = (small * scale - mean) / std
    return np.repeat(norm[None], channels, axis=0)[None]


def load_image(path: str) -> np.ndarray:
    """An image file as an array (needs pillow for jpg/png; .npy works without it)."""
    if str(path).endswith(".npy"):
        return np.load(path)
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InvalidInputError(f"reading {path} needs pillow (pip install pillow), or pass a .npy array") from exc
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
