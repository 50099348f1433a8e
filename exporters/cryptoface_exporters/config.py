"""Model configurations: the paper's CryptoFaceNet4/9/16 and a small one for tests and the demo.

A configuration is plain data so that it can be written into the JSON sidecar of an exported
model and the torch model rebuilt from it (``verify`` needs that).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class BlockSpec:
    """One HerPN residual block: HerPN -> conv3x3 -> HerPN -> conv3x3, plus a shortcut."""

    in_channels: int
    out_channels: int
    stride: int = 1

    @property
    def downsamples(self) -> bool:
        """A block whose shortcut needs a 1x1 conv (+BN): stride or width changes."""
        return self.stride != 1 or self.in_channels != self.out_channels


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of a CryptoFaceNet. Every patch CNN (PCNN) has the same shape, its own weights."""

    name: str
    input_size: int
    patch_size: int
    in_channels: int = 3
    stem_channels: int = 16
    blocks: tuple[BlockSpec, ...] = field(default_factory=tuple)
    pool_size: int = 2
    embedding_dim: int = 256

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.input_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid * self.grid

    @property
    def final_channels(self) -> int:
        return self.blocks[-1].out_channels if self.blocks else self.stem_channels

    @property
    def patch_features(self) -> int:
        """Length of one PCNN's flattened feature vector (channels x pool x pool)."""
        return self.final_channels * self.pool_size * self.pool_size

    @property
    def final_resolution(self) -> int:
        """Spatial size of the last block's output, before pooling."""
        size = self.patch_size
        for block in self.blocks:
            size //= block.stride
        return size

    def validate(self) -> None:
        """Fail early on shapes that the export contract cannot express."""
        if self.input_size % self.patch_size:
            raise ValueError(f"input_size {self.input_size} is not a multiple of patch_size {self.patch_size}")
        if self.final_resolution % self.pool_size:
            raise ValueError(
                f"final resolution {self.final_resolution} is not divisible by pool_size {self.pool_size}: "
                "the average pool must be an AveragePool with kernel = stride")
        prev = self.stem_channels
        for block in self.blocks:
            if block.in_channels != prev:
                raise ValueError(f"block {block} does not start at {prev} channels")
            prev = block.out_channels

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["blocks"] = [asdict(b) for b in self.blocks]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        data = dict(data)
        data["blocks"] = tuple(BlockSpec(**b) for b in data["blocks"])
        return cls(**data)


_PAPER_BLOCKS = (
    BlockSpec(16, 16, 1),
    BlockSpec(16, 32, 2),
    BlockSpec(32, 32, 1),
    BlockSpec(32, 64, 2),
    BlockSpec(64, 64, 1),
)


def _paper(name: str, input_size: int) -> ModelConfig:
    return ModelConfig(name=name, input_size=input_size, patch_size=32, stem_channels=16,
                       blocks=_PAPER_BLOCKS, pool_size=2, embedding_dim=256)


PRESETS: dict[str, ModelConfig] = {
    "small": ModelConfig(
        name="small", input_size=32, patch_size=16, stem_channels=8,
        blocks=(BlockSpec(8, 8, 1), BlockSpec(8, 16, 2)), pool_size=2, embedding_dim=64),
    "cryptofacenet4": _paper("cryptofacenet4", 64),
    "cryptofacenet9": _paper("cryptofacenet9", 96),
    "cryptofacenet16": _paper("cryptofacenet16", 128),
}

# The parameter counts the CryptoFace paper reports (README of human-analysis/CryptoFace).
PAPER_PARAMS_M: dict[str, float] = {"cryptofacenet4": 0.94, "cryptofacenet9": 2.12, "cryptofacenet16": 3.78}


def get_config(name: str) -> ModelConfig:
    """Look a preset up by name, with an error that lists the known ones."""
    try:
        config = PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(PRESETS)}") from None
    config.validate()
    return config
