"""Fold a trained CryptoFaceNet into the form encrypted inference evaluates.

Two forms, both exact rewrites of the eval-mode model (computed in float64):

* ``monic`` (depth-optimal, what we ship): every HerPN becomes x * (x + b) + c with
  b = a1/a2, c = a0/a2, which costs one ciphertext multiplication and no plaintext one;
  the a2 that was divided out is multiplied into whatever linear op reads the activation:
  the next conv's weights (per input channel), the 1x1 shortcut conv, an explicit
  per-channel Mul on identity shortcuts, and after pooling the per-patch Gemm.
* ``aespa``: every HerPN stays a2 x^2 + a1 x + a0 (two levels: x*x then *a2), as in AESPA.
  Only used to measure what the monic form saves.

In both forms every BatchNorm disappears into an adjacent conv or Gemm, and the aggregation
Linear + non-affine BatchNorm1d is split into one Gemm per patch whose outputs are summed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .herpn import MIN_ABS_A2, HerPN
from .model import CryptoFaceNet, split_patches

Form = Literal["monic", "aespa"]


class FusionError(ValueError):
    """The trained model cannot be put in the requested form (e.g. a2 too close to zero)."""


@dataclass
class Activation:
    """a2 x^2 + a1 x + a0 per channel; in the monic form a2 is None (implicitly 1)."""

    a1: torch.Tensor
    a0: torch.Tensor
    a2: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        v = lambda t: t.reshape(1, -1, 1, 1)
        if self.a2 is None:
            return x * (x + v(self.a1)) + v(self.a0)
        return v(self.a2) * (x * x) + v(self.a1) * x + v(self.a0)


@dataclass
class Conv:
    weight: torch.Tensor  # (Co, Ci, k, k)
    bias: torch.Tensor  # (Co,)
    stride: int
    padding: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


@dataclass
class Block:
    herpn1: Activation
    conv1: Conv
    herpn2: Activation
    conv2: Conv
    shortcut_conv: Conv | None = None
    shortcut_scale: torch.Tensor | None = None  # (C,) Mul on an identity shortcut (monic form)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        t = self.herpn1(x)
        s = t
        if self.shortcut_scale is not None:
            s = s * self.shortcut_scale.reshape(1, -1, 1, 1)
        if self.shortcut_conv is not None:
            s = self.shortcut_conv(s)
        return self.conv2(self.herpn2(self.conv1(t))) + s


@dataclass
class Patch:
    """One PCNN plus its slice of the aggregation: emits W_i f_i + b_i, summed over patches."""

    stem: Conv
    blocks: list[Block]
    final: Activation
    pool: int  # AveragePool kernel = stride
    gemm_weight: torch.Tensor  # (D, F)
    gemm_bias: torch.Tensor  # (D,)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = F.avg_pool2d(self.final(x), self.pool, self.pool)
        return torch.flatten(x, 1) @ self.gemm_weight.T + self.gemm_bias


@dataclass
class FusedModel:
    config: ModelConfig
    form: Form
    patches: list[Patch] = field(default_factory=list)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        parts = [p(xi) for p, xi in zip(self.patches, split_patches(x, self.config.patch_size), strict=True)]
        return torch.stack(parts, 0).sum(0)


def _bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as y = scale * x + shift (float64)."""
    scale = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = -bn.running_mean.double() * scale
    if bn.affine:
        scale, shift = scale * bn.weight.double(), shift * bn.weight.double() + bn.bias.double()
    return scale, shift


def _activation(herpn: HerPN, form: Form, where: str) -> tuple[Activation, torch.Tensor]:
    """Return the exported activation and the per-channel factor its consumers must apply."""
    q = herpn.quadratic()
    if form == "aespa":
        return Activation(a1=q.a1, a0=q.a0, a2=q.a2), torch.ones_like(q.a2)
    small = q.a2.abs() < MIN_ABS_A2
    if bool(small.any()):
        channels = torch.nonzero(small).flatten().tolist()
        raise FusionError(f"{where}: |a2| < {MIN_ABS_A2} in channels {channels}; the monic form "
                          "x(x + a1/a2) + a0/a2 would blow up. Retrain with the HerPN scale clamp.")
    return Activation(a1=q.a1 / q.a2, a0=q.a0 / q.a2), q.a2


def _conv(conv: nn.Conv2d, in_scale: torch.Tensor) -> Conv:
    weight = conv.weight.detach().double() * in_scale.reshape(1, -1, 1, 1)
    bias = torch.zeros(weight.shape[0], dtype=torch.float64)
    if conv.bias is not None:
        bias = conv.bias.detach().double()
    return Conv(weight=weight, bias=bias, stride=conv.stride[0], padding=conv.padding[0])


@torch.no_grad()
def fuse(model: CryptoFaceNet, form: Form = "monic") -> FusedModel:
    """Fold every BatchNorm and HerPN of an eval-mode model into convs, Gemms and quadratics."""
    cfg = model.config
    model = model.eval()
    fused = FusedModel(config=cfg, form=form)
    n = cfg.num_patches
    bn_scale, bn_shift = _bn_affine(model.bn)  # non-affine BatchNorm1d after the Linear
    w_all = model.linear.weight.detach().double() * bn_scale[:, None]
    b_all = model.linear.bias.detach().double() * bn_scale + bn_shift
    feats = cfg.patch_features
    for i, net in enumerate(model.nets):
        stem = _conv(net.stem, torch.ones(cfg.in_channels, dtype=torch.float64))
        blocks = []
        for j, blk in enumerate(net.blocks):
            h1, a2_1 = _activation(blk.herpn1, form, f"patch{i}/block{j}/herpn1")
            h2, a2_2 = _activation(blk.herpn2, form, f"patch{i}/block{j}/herpn2")
            block = Block(herpn1=h1, conv1=_conv(blk.conv1, a2_1), herpn2=h2, conv2=_conv(blk.conv2, a2_2))
            if isinstance(blk.shortcut, nn.Sequential):
                sc = _conv(blk.shortcut[0], a2_1)
                s, t = _bn_affine(blk.shortcut[1])
                block.shortcut_conv = Conv(sc.weight * s.reshape(-1, 1, 1, 1), sc.bias * s + t, sc.stride, sc.padding)
            elif form == "monic":
                block.shortcut_scale = a2_1
            blocks.append(block)
        final, a2_f = _activation(net.final_herpn, form, f"patch{i}/final_herpn")
        # flatten order is channel-major: feature k belongs to channel k // pool^2
        a2_flat = a2_f.repeat_interleave(cfg.pool_size * cfg.pool_size)
        s, t = _bn_affine(net.bn)
        w_i = w_all[:, i * feats:(i + 1) * feats]
        fused.patches.append(Patch(
            stem=stem, blocks=blocks, final=final, pool=cfg.final_resolution // cfg.pool_size,
            gemm_weight=w_i * (s * a2_flat)[None, :],
            gemm_bias=w_i @ t + b_all / n))
    return fused
