"""Real face data shipped with cryptoface: the ORL (AT&T) faces.

The 350 images of 35 people were taken at the Olivetti Research Laboratory, Cambridge,
1992-94; credit the Olivetti Research Laboratory wherever they are used (ORL_README.txt).
numpy only: this module must stay importable without torch.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

ORL_PATH = Path(__file__).with_name("orl_faces.npz")


def load_orl(path: str | Path = ORL_PATH) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (350, 112, 92) grayscale, labels int64 (350,) with person ids 0..34)."""
    with np.load(path) as data:
        return data["images"], data["labels"]
