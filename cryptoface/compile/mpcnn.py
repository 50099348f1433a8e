"""MPCNN's cost for a convolution, the baseline our plans are measured against.

MPCNN (Lee et al., ICML 2022, as implemented in CryptoFace's `cnn_seal.cpp`,
`multiplexed_parallel_convolution_seal`) convolves a multiplexed tensor replicated p times:
f²−1 kernel-offset rotations, then per pass q = ⌈Co/p⌉ a rotate-and-sum over the k
sub-columns, k sub-rows and t blocks, then one collect rotation per output channel and
po−1 rotations to rebuild the output copies. /work/shared/PACKING.md §2.2 reads the counts
off its loops:

    rotations = (f²−1) + q·(2·log2 k + log2 t) + (Co−1) + (po−1)    (t−1 if t is not 2^m)
    ct×pt multiplications = q·f² + Co,   2 levels

The issue's goal is "rotations per convolution layer no more than MPCNN's count for the same
layer"; this module gives that count, and the CryptoFaceNet patch-network layer list the
reports and tests use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def _floor_pow2(x: float) -> int:
    return 1 << int(math.floor(math.log2(x)))


@dataclass(frozen=True)
class MPCNNTensor:
    """MPCNN's `TensorCipher` geometry (k, h, w, c, t, p) for one tensor in `slots` slots."""

    gap: int
    height: int
    width: int
    channels: int
    slots: int

    @property
    def blocks(self) -> int:
        """t = ⌈c/k²⌉."""
        return -(-self.channels // (self.gap * self.gap))

    @property
    def copy_size(self) -> int:
        return self.gap * self.gap * self.height * self.width * self.blocks

    @property
    def copies(self) -> int:
        """p = 2^⌊log2(n / k²hwt)⌋: how many times the tensor is replicated."""
        return _floor_pow2(self.slots / self.copy_size)


@dataclass(frozen=True)
class MPCNNConvCounts:
    rotations: int
    plaintext_mults: int
    passes: int  # q = ⌈Co/p_in⌉
    copies_in: int
    copies_out: int
    levels: int = 2


def mpcnn_conv_counts(
    c_in: int, c_out: int, height: int, width: int, kernel: int, stride: int, slots: int, gap_in: int = 1
) -> MPCNNConvCounts:
    """MPCNN's rotations and ct×pt multiplications for one f×f conv (PACKING.md §2.2)."""
    x = MPCNNTensor(gap_in, height, width, c_in, slots)
    gap_out = gap_in * stride
    y = MPCNNTensor(gap_out, height // stride, width // stride, c_out, slots)
    q = -(-c_out // x.copies)
    t = x.blocks
    block_sum = int(math.log2(t)) if t & (t - 1) == 0 else t - 1
    rotations = (kernel * kernel - 1) + q * (2 * int(math.log2(gap_in)) + block_sum) + (c_out - 1) + (y.copies - 1)
    mults = q * kernel * kernel + c_out
    return MPCNNConvCounts(rotations, mults, q, x.copies, y.copies)


@dataclass(frozen=True)
class ConvLayerSpec:
    """One convolution of a network, as the count tables need it (square images, pad f//2)."""

    name: str
    c_in: int
    c_out: int
    size: int  # input H = W
    gap_in: int
    kernel: int
    stride: int
    repeat: int = 1  # how many layers of this shape the network has

    @property
    def pad(self) -> int:
        return self.kernel // 2


# The 13 convolutions of one CryptoFaceNet patch network (32×32 patch), PACKING.md §2.4.
CRYPTOFACENET_PCNN_CONVS: tuple[ConvLayerSpec, ...] = (
    ConvLayerSpec("stem 3->16", 3, 16, 32, 1, 3, 1),
    ConvLayerSpec("16->16", 16, 16, 32, 1, 3, 1, repeat=2),
    ConvLayerSpec("16->32 s2", 16, 32, 32, 1, 3, 2),
    ConvLayerSpec("1x1 s2 16->32", 16, 32, 32, 1, 1, 2),
    ConvLayerSpec("32->32", 32, 32, 16, 2, 3, 1, repeat=3),
    ConvLayerSpec("32->64 s2", 32, 64, 16, 2, 3, 2),
    ConvLayerSpec("1x1 s2 32->64", 32, 64, 16, 2, 1, 2),
    ConvLayerSpec("64->64", 64, 64, 8, 4, 3, 1, repeat=3),
)

# MPCNN's counts for the layers after the convolutions, replayed from CryptoFace's code in
# PACKING.md §2.4 (no closed formula there): (rotations, ct×pt multiplications).
MPCNN_AVGPOOL_8_TO_2_COUNTS = (67, 64)
MPCNN_LINEAR_256_COUNTS = (537, 511)
