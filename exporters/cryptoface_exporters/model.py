"""CryptoFaceNet: a mixture of shallow patch CNNs (PCNNs) with HerPN activations.

The input is cut into a grid of patches; PCNN i sees only patch i (row-major), so the N networks
run in parallel under encryption. Their features are concatenated and mapped to the embedding by
Linear + non-affine BatchNorm1d; at inference that linear map splits into one block per patch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import BlockSpec, ModelConfig
from .herpn import HerPN


class HerPNBlock(nn.Module):
    """HerPN -> conv3x3 -> HerPN -> conv3x3, plus a shortcut taken after the first HerPN."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.spec = spec
        self.herpn1 = HerPN(spec.in_channels)
        self.conv1 = nn.Conv2d(spec.in_channels, spec.out_channels, 3, spec.stride, 1, bias=False)
        self.herpn2 = HerPN(spec.out_channels)
        self.conv2 = nn.Conv2d(spec.out_channels, spec.out_channels, 3, 1, 1, bias=False)
        self.shortcut: nn.Module
        if spec.downsamples:
            self.shortcut = nn.Sequential(
                nn.Conv2d(spec.in_channels, spec.out_channels, 1, spec.stride, 0, bias=False),
                nn.BatchNorm2d(spec.out_channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.herpn1(x)
        return self.conv2(self.herpn2(self.conv1(t))) + self.shortcut(t)


class PCNN(nn.Module):
    """One patch network: stem conv, HerPN blocks, HerPN + average pool, flatten, BatchNorm1d."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.stem = nn.Conv2d(config.in_channels, config.stem_channels, 3, 1, 1, bias=False)
        self.blocks = nn.ModuleList(HerPNBlock(spec) for spec in config.blocks)
        self.final_herpn = HerPN(config.final_channels)
        self.pool = nn.AdaptiveAvgPool2d(config.pool_size)
        self.bn = nn.BatchNorm1d(config.patch_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = self.pool(self.final_herpn(x))
        return self.bn(torch.flatten(x, 1))


@dataclass
class Outputs:
    """What a training forward pass returns: the embedding and the per-patch features."""

    embedding: torch.Tensor
    patch_features: torch.Tensor  # (B, N, F), input to the auxiliary position head


def split_patches(x: torch.Tensor, patch_size: int) -> list[torch.Tensor]:
    """Cut (B, C, H, W) into row-major patches: patch i = (row i // grid, col i % grid)."""
    grid = x.shape[-1] // patch_size
    return [x[..., r * patch_size:(r + 1) * patch_size, c * patch_size:(c + 1) * patch_size]
            for r in range(grid) for c in range(grid)]


class CryptoFaceNet(nn.Module):
    """The inference backbone: N PCNNs + Linear(N*F -> D) + non-affine BatchNorm1d(D)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.nets = nn.ModuleList(PCNN(config) for _ in range(config.num_patches))
        self.linear = nn.Linear(config.num_patches * config.patch_features, config.embedding_dim)
        self.bn = nn.BatchNorm1d(config.embedding_dim, affine=False)

    def forward_features(self, x: torch.Tensor) -> Outputs:
        patches = split_patches(x, self.config.patch_size)
        feats = [net(p) for net, p in zip(self.nets, patches, strict=True)]
        embedding = self.bn(self.linear(torch.cat(feats, dim=1)))
        return Outputs(embedding=embedding, patch_features=torch.stack(feats, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).embedding

    def herpns(self) -> list[HerPN]:
        return [m for m in self.modules() if isinstance(m, HerPN)]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class ParameterReport:
    """Parameter counts, split the way the paper counts them.

    The paper (and CryptoFace's train.py: ``count_parameters(backbone.nets) +
    count_parameters(backbone.linear)``) counts the inference backbone only: the PCNNs and the
    aggregation Linear. The non-affine BatchNorm1d has no parameters; the ArcFace and
    auxiliary position heads are training-only and are not counted.
    """

    per_pcnn: int
    pcnns: int
    linear: int
    backbone: int
    aux_head: int
    arcface_head_per_class: int

    @property
    def backbone_millions(self) -> float:
        return self.backbone / 1e6


def parameter_report(model: CryptoFaceNet) -> ParameterReport:
    cfg = model.config
    per_pcnn = count_parameters(model.nets[0])
    pcnns = count_parameters(model.nets)
    linear = count_parameters(model.linear) + count_parameters(model.bn)
    return ParameterReport(
        per_pcnn=per_pcnn, pcnns=pcnns, linear=linear, backbone=pcnns + linear,
        aux_head=cfg.patch_features * cfg.num_patches + cfg.num_patches,
        arcface_head_per_class=cfg.embedding_dim)
