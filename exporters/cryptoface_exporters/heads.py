"""Training-only heads: ArcFace margin head and the auxiliary patch-position head.

Neither is part of the exported model; both only shape the embedding during training.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ArcFace(nn.Module):
    """Additive angular margin (Deng et al. 2019): logits s*cos(theta + m) for the true class.

    Uses the usual fallback when theta + m > pi (cos(theta) - m sin(m) m) so the target logit
    stays monotonic in theta.
    """

    def __init__(self, embedding_dim: int, num_classes: int, s: float = 64.0, m: float = 0.5) -> None:
        super().__init__()
        self.s, self.m = s, m
        self.kernel = nn.Parameter(torch.empty(embedding_dim, num_classes))
        nn.init.normal_(self.kernel, std=0.01)
        self.cos_m, self.sin_m = math.cos(m), math.sin(m)
        self.th = math.cos(math.pi - m)
        self.mm = math.sin(math.pi - m) * m

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = F.normalize(embedding, dim=1) @ F.normalize(self.kernel, dim=0)
        cos = cos.clamp(-1.0 + 1e-7, 1.0 - 1e-7)
        sin = torch.sqrt(1.0 - cos * cos)
        cos_margin = cos * self.cos_m - sin * self.sin_m
        cos_margin = torch.where(cos > self.th, cos_margin, cos - self.mm)
        one_hot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
        return self.s * (one_hot * cos_margin + (1.0 - one_hot) * cos)


class PositionHead(nn.Module):
    """Linear(F -> N) applied to every patch's features, predicting which patch it came from.

    One linear map shared by the N patches (as CryptoFace's ``jigsaw = nn.Linear(dim, N)``):
    with a separate head per patch and a fixed patch assignment, the answer would be a constant
    that the bias alone learns, and the loss would teach the PCNNs nothing.
    """

    def __init__(self, features: int, num_patches: int) -> None:
        super().__init__()
        self.linear = nn.Linear(features, num_patches)

    def loss(self, patch_features: torch.Tensor) -> torch.Tensor:
        batch, n, _ = patch_features.shape
        logits = self.linear(patch_features.reshape(batch * n, -1))
        target = torch.arange(n, device=patch_features.device).repeat(batch)
        return F.cross_entropy(logits, target)
