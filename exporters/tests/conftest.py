"""Shared fixtures: models with non-trivial weights and BatchNorm statistics (no training needed)."""
from __future__ import annotations

import pytest
import torch

from cryptoface_exporters.config import get_config
from cryptoface_exporters.model import CryptoFaceNet

# One thread: the test machines are shared, and oversubscribed torch threads are far slower.
torch.set_num_threads(1)


def randomized_model(name: str, seed: int = 0) -> CryptoFaceNet:
    """A model whose HerPN scales/shifts and BN statistics are all non-trivial, in eval mode."""
    torch.manual_seed(seed)
    model = CryptoFaceNet(get_config(name))
    for h in model.herpns():
        torch.nn.init.uniform_(h.weight, 0.5, 1.5)
        torch.nn.init.normal_(h.bias, 0.0, 0.1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d) and m.affine:
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.normal_(m.bias, 0.0, 0.1)
    size = model.config.input_size
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 3, size, size) * 0.7 + 0.1)
    return model.eval()


@pytest.fixture(scope="session")
def small_model() -> CryptoFaceNet:
    return randomized_model("small")


@pytest.fixture(scope="session")
def cfn4_model() -> CryptoFaceNet:
    return randomized_model("cryptofacenet4")
