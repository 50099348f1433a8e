"""Face data: the shipped ORL faces, users' image folders, LFW pairs.txt and InsightFace .bin files.

Preprocessing is numpy only and fully specified (it is recorded in every model's JSON sidecar),
so the encrypting client can reproduce it without torch:
grayscale (RGB is converted with ITU-R 601 weights) -> center crop to a square -> area
resampling to the input size -> replicate to 3 channels -> (pixel / 255 - 0.5) / 0.5.
"""
from __future__ import annotations

import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp")
NORMALIZATION = {"scale": 1.0 / 255.0, "mean": 0.5, "std": 0.5}
PREPROCESS = {
    "color": "grayscale (ITU-R 601 luma for RGB), replicated to 3 channels",
    "crop": "center square (side = min(height, width))",
    "resize": "area resampling (box filter with fractional pixel overlap)",
    "normalization": "(pixel / 255 - 0.5) / 0.5",
}


def orl_path() -> Path:
    """Where the ORL faces are: $CRYPTOFACE_ORL, else the copy in the repo's cryptoface/data/."""
    env = os.environ.get("CRYPTOFACE_ORL")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "cryptoface" / "data" / "orl_faces.npz"
        if candidate.is_file():
            return candidate
    try:  # an installed core carries it as package data
        import cryptoface.data as core_data  # noqa: PLC0415  (numpy-only module)
        return Path(core_data.ORL_PATH)
    except ImportError:
        pass
    raise FileNotFoundError("orl_faces.npz not found: set CRYPTOFACE_ORL or run from a cryptoface checkout")


def load_orl(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """ORL faces (Olivetti Research Laboratory): uint8 (350, 112, 92) images and person ids."""
    with np.load(path or orl_path()) as data:
        return data["images"], data["labels"].astype(np.int64)


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix averaging the input interval that each output pixel covers."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return overlap / (n_in / n_out)


def to_gray(image: np.ndarray) -> np.ndarray:
    """HxW or HxWx3/4 -> HxW float64 gray."""
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image[..., :3] @ np.array([0.299, 0.587, 0.114])
    return image


def preprocess(image: np.ndarray, size: int, channels: int = 3) -> np.ndarray:
    """One face (uint8 gray or RGB) -> normalized float32 (channels, size, size)."""
    gray = to_gray(image)
    h, w = gray.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = gray[top:top + side, left:left + side]
    small = _area_matrix(side, size) @ square @ _area_matrix(side, size).T
    norm = (small * NORMALIZATION["scale"] - NORMALIZATION["mean"]) / NORMALIZATION["std"]
    return np.repeat(norm[None].astype(np.float32), channels, axis=0)


def preprocess_batch(images: np.ndarray | list[np.ndarray], size: int, channels: int = 3) -> np.ndarray:
    return np.stack([preprocess(im, size, channels) for im in images]) if len(images) else \
        np.zeros((0, channels, size, size), np.float32)


@dataclass(frozen=True)
class IdentitySplit:
    """Split by identity, never by image: held-out people are never seen in training."""

    train_ids: tuple[int, ...]
    test_ids: tuple[int, ...]

    def masks(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.isin(labels, self.train_ids), np.isin(labels, self.test_ids)


def orl_split(num_train: int = 25, num_ids: int = 35) -> IdentitySplit:
    """The fixed split used for the shipped models: people 0..24 train, 25..34 held out."""
    return IdentitySplit(tuple(range(num_train)), tuple(range(num_train, num_ids)))


def identity_split(labels: np.ndarray, heldout_fraction: float = 0.2, seed: int = 0) -> IdentitySplit:
    """A random split of the identities of a user's data set (at least one held out)."""
    ids = np.unique(labels)
    rng = np.random.default_rng(seed)
    held = max(1, int(round(heldout_fraction * len(ids))))
    test = np.sort(rng.choice(ids, size=held, replace=False))
    return IdentitySplit(tuple(int(i) for i in np.setdiff1d(ids, test)), tuple(int(i) for i in test))


# --- users' data -------------------------------------------------------------------------------

def load_image(path: str | Path | bytes) -> np.ndarray:
    """Decode an image file (or encoded bytes) to uint8 RGB/gray with pillow."""
    from PIL import Image  # noqa: PLC0415  (only the loaders need pillow)
    source = io.BytesIO(path) if isinstance(path, (bytes, bytearray)) else path
    with Image.open(source) as im:
        return np.asarray(im.convert("L") if im.mode in ("1", "L", "I", "I;16", "F") else im.convert("RGB"))


def load_image_folder(root: str | Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Image-folder layout: root/<identity>/<image>. Returns paths, integer labels, identity names."""
    root = Path(root)
    names = sorted(d.name for d in root.iterdir() if d.is_dir())
    paths, labels = [], []
    for label, name in enumerate(names):
        for f in sorted((root / name).iterdir()):
            if f.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(f)
                labels.append(label)
    if not paths:
        raise FileNotFoundError(f"no images under {root}/<identity>/")
    return paths, np.asarray(labels, dtype=np.int64), names


@dataclass(frozen=True)
class Pair:
    left: Path
    right: Path
    same: bool


def read_lfw_pairs(pairs_file: str | Path, image_root: str | Path, ext: str = ".jpg") -> list[Pair]:
    """LFW pairs.txt: optional header "folds n", then "name i j" (same) or "name1 i name2 j" (different).

    Image k of person p is image_root/p/p_{k:04d}{ext}, as in the LFW distribution.
    """
    root = Path(image_root)
    path = lambda name, idx: root / name / f"{name}_{int(idx):04d}{ext}"
    pairs = []
    for line_no, line in enumerate(Path(pairs_file).read_text().splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) == 3:
            pairs.append(Pair(path(f[0], f[1]), path(f[0], f[2]), True))
        elif len(f) == 4:
            pairs.append(Pair(path(f[0], f[1]), path(f[2], f[3]), False))
        elif len(f) == 2 and line_no == 1:
            continue  # header: number of folds, pairs per fold
        else:
            raise ValueError(f"{pairs_file}:{line_no}: expected 3 or 4 fields, got {len(f)}: {line!r}")
    return pairs


def read_insightface_bin(path: str | Path) -> tuple[list[np.ndarray], np.ndarray]:
    """InsightFace verification .bin (LFW, CFP-FP, AgeDB-30, CALFW, CPLFW).

    A pickle of (bins, issame_list): bins holds 2 * len(issame_list) encoded images (JPEG/PNG
    bytes); pair k is (bins[2k], bins[2k+1]). Returns decoded images and the issame array.
    """
    with open(path, "rb") as fh:
        bins, issame = pickle.load(fh, encoding="bytes")
    if len(bins) != 2 * len(issame):
        raise ValueError(f"{path}: {len(bins)} images for {len(issame)} pairs (expected twice as many)")
    images = [load_image(bytes(b) if not isinstance(b, bytes) else b) for b in bins]
    return images, np.asarray(issame, dtype=bool)


def load_faces(image_folder: str | Path | None = None) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray]:
    """Training faces: the shipped ORL set, or a user's image folder (root/<identity>/<image>)."""
    if image_folder is None:
        return load_orl()
    paths, labels, _ = load_image_folder(image_folder)
    return [load_image(p) for p in paths], labels


def all_pairs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair (i < j) of a labelled set: (index pairs (P, 2), same-identity flags)."""
    i, j = np.triu_indices(len(labels), k=1)
    return np.stack([i, j], 1), labels[i] == labels[j]
