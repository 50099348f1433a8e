"""HerPN: the AESPA-style polynomial activation CryptoFaceNet uses instead of ReLU.

ReLU's expansion in normalized (probabilists') Hermite polynomials starts with
``1/sqrt(2 pi) h0 + 1/2 h1 + 1/sqrt(4 pi) h2`` with h0 = 1, h1 = x, h2 = (x^2 - 1)/sqrt(2).
HerPN batch-normalizes each basis separately (non-affine), weights it by that coefficient and
applies a learnable per-channel scale and shift. In eval mode this is exactly a quadratic
a2 x^2 + a1 x + a0 per channel, which is what encrypted inference evaluates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

HERMITE_COEFFS = (1.0 / math.sqrt(2.0 * math.pi), 0.5, 1.0 / math.sqrt(4.0 * math.pi))

# |a2| below this makes the monic form x(x + a1/a2) + a0/a2 blow up; training keeps the
# learnable scale away from zero (see ``clamp_scale_``) and fusion refuses smaller values.
MIN_ABS_A2 = 1e-4
MIN_ABS_SCALE = 1e-2


@dataclass(frozen=True)
class Quadratic:
    """Per-channel coefficients of a2 x^2 + a1 x + a0, shape (C,), float64."""

    a2: torch.Tensor
    a1: torch.Tensor
    a0: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        a2, a1, a0 = (t.to(x.dtype).reshape(shape) for t in (self.a2, self.a1, self.a0))
        return a2 * x * x + a1 * x + a0


class HerPN(nn.Module):
    """Hermite polynomial activation with per-basis BatchNorm (2d, or 1d on flat features)."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.channels = channels
        self.bn0 = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, affine=False)
        self.bn1 = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, affine=False)
        self.bn2 = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, affine=False)
        self.weight = nn.Parameter(torch.ones(channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c0, c1, c2 = HERMITE_COEFFS
        h0 = self.bn0(torch.ones_like(x))
        h1 = self.bn1(x)
        h2 = self.bn2((x * x - 1.0) / math.sqrt(2.0))
        return self.weight * (c0 * h0 + c1 * h1 + c2 * h2) + self.bias

    @torch.no_grad()
    def clamp_scale_(self) -> None:
        """Keep |scale| >= MIN_ABS_SCALE so that a2 cannot reach zero (depth-optimal fusion divides by it)."""
        w = self.weight
        sign = torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))
        w.copy_(torch.where(w.abs() < MIN_ABS_SCALE, sign * MIN_ABS_SCALE, w))

    @torch.no_grad()
    def quadratic(self) -> Quadratic:
        """Fold the eval-mode HerPN into a2 x^2 + a1 x + a0 (float64, uses running statistics)."""
        c0, c1, c2 = HERMITE_COEFFS
        def stats(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
            return bn.running_mean.double(), torch.sqrt(bn.running_var.double() + bn.eps)
        m0, s0 = stats(self.bn0)
        m1, s1 = stats(self.bn1)
        m2, s2 = stats(self.bn2)
        g = self.weight.detach().double().reshape(-1)
        beta = self.bias.detach().double().reshape(-1)
        r2 = math.sqrt(2.0)
        a2 = g * c2 / (r2 * s2)
        a1 = g * c1 / s1
        a0 = beta + g * (c0 * (1.0 - m0) / s0 - c1 * m1 / s1 + c2 * (-1.0 / r2 - m2) / s2)
        return Quadratic(a2=a2, a1=a1, a0=a0)
