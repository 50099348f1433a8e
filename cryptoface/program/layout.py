"""Where each tensor element sits in the slots of one ciphertext.

Two layouts cover CryptoFaceNet:

- **multiplexed with gap k** (MPCNN's `TensorCipher`, Orion's pixel-shuffled "multiplexed
  gap") for (C, H, W) feature maps. Channel
  ``ch = k²·u + k·a + b`` puts pixel (y, x) at position (k·y + a, k·x + b) of a
  (k·H)×(k·W) "big image" in block u::

      slot = u·k²HW + (k·y + a)·kW + (k·x + b)

  With k = 1 this is the plain channel-major layout. A stride-2 layer doubles k and halves
  H and W, so the big image keeps its size and the slots stay dense: the extra channels
  fill the holes subsampling leaves. That is why convolutions write straight into the
  gap-doubled layout (see `compile.linear_maps.conv2d_map`).
- **flat** for 1-D tensors (feature vectors): slot i holds element i.

A layout describes one copy starting at slot 0. Linear transforms evaluated in "hybrid"
mode leave their output replicated with a period (`LinearTransformPlan.output_period`);
`pack` and `channel_vector` take that period so plaintext constants match every copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import CompileError


class LayoutError(CompileError):
    """A tensor does not fit in the slots, or values do not match a layout's shape."""


@dataclass(frozen=True)
class Layout:
    """Slot placement of one tensor: (C, H, W) multiplexed with `gap`, or (F,) flat.

    Build with `Layout.multiplexed` or `Layout.flat`; the constructor refuses a tensor that
    needs more slots than the ciphertext has, saying how many it needs.
    """

    shape: tuple[int, ...]
    slots: int
    gap: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if len(self.shape) not in (1, 3) or min(self.shape) < 1:
            raise LayoutError(f"a layout is for a (C, H, W) or (F,) tensor, got shape {self.shape}")
        if self.gap < 1 or self.gap & (self.gap - 1):
            raise LayoutError(f"gap must be a power of two >= 1, got {self.gap}")
        if self.is_flat and self.gap != 1:
            raise LayoutError("a flat layout has no gap")
        if self.used > self.slots:
            raise LayoutError(
                f"tensor {self.shape} in {self.describe()} needs {self.used} slots, but the "
                f"ciphertext has {self.slots}; use a larger ring dimension (slots = N/2) or split "
                "the tensor over several ciphertexts (not supported yet)"
            )

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def multiplexed(cls, channels: int, height: int, width: int, slots: int, gap: int = 1) -> "Layout":
        return cls((channels, height, width), slots, gap)

    @classmethod
    def flat(cls, size: int, slots: int) -> "Layout":
        return cls((size,), slots, 1)

    # ---- geometry -----------------------------------------------------------------------
    @property
    def is_flat(self) -> bool:
        return len(self.shape) == 1

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def blocks(self) -> int:
        """t = ⌈C/k²⌉: blocks of k² channels (1 for a flat layout)."""
        if self.is_flat:
            return 1
        return -(-self.shape[0] // (self.gap * self.gap))

    @property
    def block_size(self) -> int:
        """k²·H·W slots per block (the big image)."""
        if self.is_flat:
            return self.shape[0]
        _, h, w = self.shape
        return self.gap * self.gap * h * w

    @property
    def used(self) -> int:
        """Slots one copy spans, holes included: t·k²HW (F when flat). Must be <= slots."""
        return self.blocks * self.block_size

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "slots": self.slots, "gap": self.gap}

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        return cls(tuple(d["shape"]), int(d["slots"]), int(d["gap"]))

    def describe(self) -> str:
        if self.is_flat:
            return "flat layout"
        return f"multiplexed layout gap {self.gap} ({self.blocks} blocks of {self.block_size} slots)"

    # ---- maps ---------------------------------------------------------------------------
    @cached_property
    def _indices(self) -> np.ndarray:
        if self.is_flat:
            return np.arange(self.shape[0], dtype=np.int64)
        c, h, w = self.shape
        k = self.gap
        ch = np.arange(c, dtype=np.int64)
        u, a, b = ch // (k * k), (ch // k) % k, ch % k
        y = np.arange(h, dtype=np.int64)
        x = np.arange(w, dtype=np.int64)
        idx = (
            u[:, None, None] * (k * k * h * w)
            + (k * y[None, :, None] + a[:, None, None]) * (k * w)
            + (k * x[None, None, :] + b[:, None, None])
        )
        idx.setflags(write=False)
        return idx

    def slot_indices(self) -> np.ndarray:
        """Array of the tensor's shape whose entries are the slots holding each element."""
        return self._indices

    def _check_period(self, period: int | None) -> int:
        if period is None:
            return self.slots
        if period < self.used or self.slots % period:
            raise LayoutError(f"replication period {period} must divide {self.slots} and be >= {self.used}")
        return period

    def _replicate(self, vec: np.ndarray, period: int) -> np.ndarray:
        return np.tile(vec[:period], self.slots // period) if period < self.slots else vec

    def pack(self, tensor: np.ndarray, period: int | None = None) -> np.ndarray:
        """The slot vector of `tensor` (zeros in unused slots), copied every `period` slots."""
        t = np.asarray(tensor, dtype=np.float64)
        if t.shape != self.shape:
            raise LayoutError(f"tensor of shape {t.shape} does not match layout shape {self.shape}")
        period = self._check_period(period)
        vec = np.zeros(self.slots)
        vec[self._indices] = t
        return self._replicate(vec, period)

    def unpack(self, vec: np.ndarray) -> np.ndarray:
        """The tensor read back from a slot vector (the first copy)."""
        v = np.asarray(vec)
        if v.shape != (self.slots,):
            raise LayoutError(f"expected a vector of {self.slots} slots, got shape {v.shape}")
        return v[self._indices]

    def channel_vector(self, per_channel: np.ndarray, period: int | None = None) -> np.ndarray:
        """Per-channel constants at every slot of their channel, 0 in unused slots.

        This is how a per-channel affine map (BatchNorm, the HerPN coefficients) is applied
        to a packed tensor with one plaintext multiplication or addition. For a flat layout
        the "channels" are the elements.
        """
        values = np.asarray(per_channel, dtype=np.float64).reshape(-1)
        if values.size != self.shape[0]:
            raise LayoutError(f"{values.size} per-channel values for {self.shape[0]} channels")
        period = self._check_period(period)
        vec = np.zeros(self.slots)
        bcast = values if self.is_flat else values[:, None, None]
        vec[self._indices] = np.broadcast_to(bcast, self.shape)
        return self._replicate(vec, period)

    def valid_mask(self, period: int | None = None) -> np.ndarray:
        """1.0 at the slots that hold an element, else 0.0."""
        return self.channel_vector(np.ones(self.shape[0]), period)


def conv_output_layout(layout: Layout, channels: int, height: int, width: int, stride: int) -> Layout:
    """The layout a convolution writes: gap multiplied by the stride (MPCNN's ko = s·ki).

    When the output, with the multiplied gap, would not fit (small images where the gap
    outgrows the channels), the caller can pass any other layout explicitly.
    """
    return Layout.multiplexed(channels, height, width, layout.slots, layout.gap * stride)
