"""Client-side image reading and preprocessing: the exact transform the shipped models were
trained with, and the checks that keep a bad image from becoming a wrong embedding.

grayscale (ITU-R 601 luma for RGB) -> centre square crop -> area resampling (a box filter
with fractional pixel overlap) -> (pixel * scale - mean)/std -> replicated to the model's
input channels. The server never sees the image; everything here runs before encryption.

Accepted input range: pixels in [0, 1/scale] (0..255 for the shipped models, whose sidecar
says scale = 1/255), widened by `RANGE_MARGIN` of that span on each side for rounding; the
model was calibrated on such images only. A value outside it (e.g. 2000) is refused rather
than encrypted: CKKS would return a confidently wrong embedding, not an error.
"""

from __future__ import annotations

import numpy as np

from .errors import InvalidInputError

RANGE_MARGIN = 0.01  # of the input span, each side
# An image file larger than this many values is refused before it is read (a 1e6 x 1e6 header
# must not allocate terabytes); 2^26 is a 4096 x 4096 RGBA photo.
MAX_IMAGE_VALUES = 2**26
ORL_PREFIX = "orl:"


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights averaging the input interval each output pixel covers."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    return np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None) / (n_in / n_out)


def check_range(x: np.ndarray, lo: float, hi: float, what: str) -> np.ndarray:
    """`x` as float64 if it is numeric, finite and within [lo, hi] widened by RANGE_MARGIN."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "uif":
        raise InvalidInputError(f"{what} must be numbers (integers or floats), got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.size == 0:
        raise InvalidInputError(f"{what} is empty")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{what} contains NaN or infinity")
    pad = RANGE_MARGIN * (hi - lo)
    low, high = float(arr.min()), float(arr.max())
    if low < lo - pad or high > hi + pad:
        raise InvalidInputError(
            f"{what} range from {low:g} to {high:g}, outside the {lo:g}..{hi:g} the model was calibrated "
            f"for (margin {RANGE_MARGIN:.0%})"
        )
    return arr


def to_gray(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
    if img.ndim != 2:
        raise InvalidInputError(f"an image must be HxW gray or HxWx3/4 colour, got shape {np.shape(image)}")
    return img


def normalized_range(scale: float, mean: float, std: float) -> tuple[float, float]:
    """The model's input range after preprocessing: pixels 0..1/scale, normalized."""
    return (0.0 - mean) / std, (1.0 - mean) / std


def preprocess(image: np.ndarray, size: int, channels: int = 3, scale: float = 1 / 255, mean: float = 0.5, std: float = 0.5) -> np.ndarray:
    """One face (uint8 gray or RGB array, pixels 0..1/scale) -> float64 (1, channels, size, size)."""
    gray = to_gray(check_range(image, 0.0, 1.0 / scale, "pixel values"))
    h, w = gray.shape
    if min(h, w) < 2:
        raise InvalidInputError(f"image of {h}x{w} pixels is too small")
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = gray[top:top + side, left:left + side]
    small = area_matrix(side, size) @ square @ area_matrix(side, size).T
    norm = (small * scale - mean) / std
    return np.repeat(norm[None], channels, axis=0)[None]


_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def load_npy(path: str) -> np.ndarray:
    """An .npy array, its header checked before any data is read (size, dtype, no pickles)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in _NPY_HEADER_READERS:
                raise InvalidInputError(f"{path} is an .npy file of version {version}; versions 1.0 and 2.0 are read")
            shape, _, dtype = _NPY_HEADER_READERS[version](f)  # the header only, no data yet
            count = int(np.prod(shape, dtype=object))
            if count > MAX_IMAGE_VALUES:
                raise InvalidInputError(f"{path} claims shape {shape} ({count:.3g} values); images are limited to {MAX_IMAGE_VALUES} values")
            if dtype.kind not in "uif":
                raise InvalidInputError(f"{path} holds dtype {dtype}, not numbers")
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"image file {path} does not exist") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidInputError(f"{path} is not a readable .npy array: {exc}") from exc


def load_photo(path: str) -> np.ndarray:
    """A .png/.jpg (any format pillow reads) as an RGB uint8 array, its size checked first."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pillow is a dependency: only a broken install gets here
        raise InvalidInputError(f"reading {path} needs pillow, a cryptoface dependency: reinstall cryptoface") from exc
    try:
        with Image.open(path) as im:  # lazy: reads the header, not the pixels
            w, h = im.size
            if w * h * 3 > MAX_IMAGE_VALUES:
                raise InvalidInputError(f"{path} is {w}x{h} pixels; images are limited to {MAX_IMAGE_VALUES // 3} pixels")
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError as exc:
        raise InvalidInputError(f"image file {path} does not exist") from exc
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidInputError(f"{path} is not an image pillow can read: {exc}") from exc


def orl_face(index: int | str) -> np.ndarray:
    """One of the shipped ORL faces (uint8 112x92) by its index."""
    from .data import load_orl

    images = load_orl()[0]
    try:
        i = int(index)
    except ValueError:
        raise InvalidInputError(f"ORL face index must be an integer 0..{len(images) - 1}, got {index!r}") from None
    if not 0 <= i < len(images):
        raise InvalidInputError(f"ORL face index {i} is out of range 0..{len(images) - 1}")
    return images[i]


def load_image(spec: str) -> np.ndarray:
    """The raw image a user names: `orl:INDEX`, an .npy array, or a photo file."""
    spec = str(spec)
    if spec.startswith(ORL_PREFIX):
        return orl_face(spec[len(ORL_PREFIX):])
    if spec.endswith(".npy"):
        return load_npy(spec)
    return load_photo(spec)
