"""MPCNN's cost for a convolution, the baseline our plans are measured against.

MPCNN (Lee et al., ICML 2022, as implemented in CryptoFace's `cnn_seal.cpp`,
`multiplexed_parallel_convolution_seal`) convolves a multiplexed tensor replicated p times:
f²−1 kernel-offset rotations, then per pass q = ⌈Co/p⌉ a rotate-and-sum over the k
sub-columns, k sub-rows and t blocks, then one collect rotation per output channel and
po−1 rotations to rebuild the output copies. Read off those loops, the counts are:

    rotations = (f²−1) + q·(2·log2 k + log2 t) + (Co−1) + (po−1)    (t−1 if t is not 2^m)
    ct×pt multiplications = q·f² + Co,   2 levels

A plan that needs more rotations than MPCNN for a layer would lose to the method CryptoFace
already ships, so `plan` and the count table print this count beside ours.
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
    """MPCNN's rotations and ct×pt multiplications for one f×f conv (the formula above)."""
    x = MPCNNTensor(gap_in, height, width, c_in, slots)
    gap_out = gap_in * stride
    y = MPCNNTensor(gap_out, height // stride, width // stride, c_out, slots)
    q = -(-c_out // x.copies)
    t = x.blocks
    block_sum = int(math.log2(t)) if t & (t - 1) == 0 else t - 1
    rotations = (kernel * kernel - 1) + q * (2 * int(math.log2(gap_in)) + block_sum) + (c_out - 1) + (y.copies - 1)
    mults = q * kernel * kernel + c_out
    return MPCNNConvCounts(rotations, mults, q, x.copies, y.copies)
