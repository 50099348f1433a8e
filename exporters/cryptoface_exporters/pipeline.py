"""Trained backbone -> fused ONNX + JSON sidecar, with every check the importer relies on.

``export_model`` is what ``cryptoface-export export`` runs: it proves that the fused model equals
the trained one, writes the graph, checks onnxruntime against torch, evaluates verification on
held-out identities and records the statistics the encrypted matcher needs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from .config import ModelConfig
from .data import NORMALIZATION, PREPROCESS, IdentitySplit, all_pairs, load_orl, orl_split, preprocess_batch
from .depth import block_depths
from .evaluate import VerificationResult, cosine_scores, verify_pairs
from .export import INPUT_NAME, OPSET, OUTPUT_NAME, save_onnx
from .fuse import Form, fuse
from .inference import CHECKPOINT_DIR, embed_onnx, embed_torch, load_backbone
from .model import CryptoFaceNet, parameter_report

TOLERANCE = 1e-4
SIDECAR_FORMAT = "cryptoface-model/1"


@dataclass(frozen=True)
class Comparison:
    """Max abs difference between two runs of the same model on random and on real faces."""

    what: str
    random: float
    real: float
    scale: float  # max |embedding| over both input sets, to read the errors against

    @property
    def worst(self) -> float:
        return max(self.random, self.real)

    def line(self) -> str:
        return (f"{self.what}: max |diff| random={self.random:.3e} real={self.real:.3e} "
                f"(max |embedding| {self.scale:.3f})")


def probe_inputs(config: ModelConfig, n_random: int = 4, n_real: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random images and real held-out ORL faces, both in the model's input range [-1, 1].

    The random ones are uniform noise at 1/4 resolution, bilinearly upsampled and replicated to
    the channels like a gray face. White N(0, 1) noise is no use here: a degree-2^k polynomial
    network maps it to embeddings of norm ~1e10, where float32 comparisons mean nothing.
    """
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n_random, 1, config.input_size // 4, config.input_size // 4, generator=gen) * 2 - 1
    random = torch.nn.functional.interpolate(low, size=config.input_size, mode="bilinear", align_corners=False)
    random = random.repeat(1, config.in_channels, 1, 1).numpy().astype(np.float32)
    images, labels = load_orl()
    _, test = orl_split().masks(labels)
    real = preprocess_batch(images[test][:: max(1, test.sum() // n_real)][:n_real], config.input_size, config.in_channels)
    return random, real


def _float64_copy(model: CryptoFaceNet) -> CryptoFaceNet:
    ref = CryptoFaceNet(model.config).double().eval()
    ref.load_state_dict(model.state_dict())
    return ref


def compare_fused(model: CryptoFaceNet, form: Form = "monic") -> Comparison:
    """Fused (float64) vs trained eval-mode model (float64): the fusion is an exact rewrite."""
    random, real = probe_inputs(model.config)
    fused, ref64 = fuse(model, form), _float64_copy(model)
    with torch.no_grad():
        runs = [(fused(torch.from_numpy(x)), ref64(torch.from_numpy(x).double())) for x in (random, real)]
    (d_rand, d_real) = (float((a - b).abs().max()) for a, b in runs)
    scale = max(float(b.abs().max()) for _, b in runs)
    return Comparison(f"fused[{form}] vs trained (float64)", d_rand, d_real, scale)


def compare_onnx(model: CryptoFaceNet, onnx_path: str | Path) -> tuple[Comparison, Comparison]:
    """onnxruntime (float32) on the exported graph vs the trained torch model.

    The reference is the torch model evaluated in float64. The same model in float32 is itself
    ~1e-5 off: HerPN's h0 term is a BatchNorm of a constant, (1 - mean) / sqrt(0 + eps), which
    amplifies float32 rounding 300-fold; the fused graph has no such term. Both are returned.
    """
    random, real = probe_inputs(model.config)
    ref64 = _float64_copy(model)
    diffs, diffs32, scale = [], [], 0.0
    for x in (random, real):
        ref = embed_torch(ref64, x.astype(np.float64))
        diffs.append(float(np.abs(embed_onnx(onnx_path, x) - ref).max()))
        diffs32.append(float(np.abs(embed_torch(model, x) - ref).max()))
        scale = max(scale, float(np.abs(ref).max()))
    return (Comparison("onnxruntime (float32) vs torch (float64)", *diffs, scale),
            Comparison("torch (float32) vs torch (float64), for context", *diffs32, scale))


def heldout_verification(embed, config: ModelConfig, split: IdentitySplit | None = None,
                         name: str = "ORL held-out") -> VerificationResult:
    """Verification on every pair of the identities the model never saw in training."""
    split = split or orl_split()
    images, labels = load_orl()
    _, test = split.masks(labels)
    emb = embed(preprocess_batch(images[test], config.input_size, config.in_channels))
    pairs, same = all_pairs(labels[test])
    return verify_pairs(name, cosine_scores(emb[pairs[:, 0]], emb[pairs[:, 1]]), same)


def norm_statistics(model: CryptoFaceNet, split: IdentitySplit | None = None) -> dict[str, Any]:
    """Squared embedding norms on the training faces: the range the encrypted matcher's
    polynomial approximation of 1/sqrt(||e||^2) must cover."""
    split = split or orl_split()
    images, labels = load_orl()
    train, test = split.masks(labels)
    sq = lambda m: np.sum(embed_torch(model, preprocess_batch(images[m], model.config.input_size)) ** 2, axis=1)
    tr, te = sq(train), sq(test)
    return {"min": float(tr.min()), "max": float(tr.max()), "mean": float(tr.mean()), "std": float(tr.std()),
            "count": int(len(tr)), "source": "ORL training identities, no augmentation",
            "heldout_min": float(te.min()), "heldout_max": float(te.max()),
            # unseen people fall outside the training range (in both directions): a margin
            "suggested_fit_range": [0.5 * float(min(tr.min(), te.min())), 1.5 * float(max(tr.max(), te.max()))]}


def depth_report(onnx_model: onnx.ModelProto) -> dict[str, dict[str, int]]:
    return {f"conv_levels_{c}": {b.name: b.depth for b in block_depths(onnx_model, 0, c)} for c in (2, 1)}


def sidecar_path(onnx_path: str | Path) -> Path:
    return Path(onnx_path).with_suffix(".json")


def export_model(model: CryptoFaceNet, onnx_path: str | Path, checkpoint_name: str | None = None,
                 training: dict[str, Any] | None = None, extra_results: list[VerificationResult] | None = None,
                 log=print, form: Form = "monic") -> dict[str, Any]:
    """Fuse, export, check, evaluate and write the JSON sidecar beside the ONNX file.

    ``form="aespa"`` writes the unfused-HerPN graph (2 more levels per block), only for
    measuring what the monic form saves; the shipped models are monic.
    """
    cfg = model.config
    model = model.eval()
    fusion = [compare_fused(model, f) for f in ("monic", "aespa")]
    for c in fusion:
        log(c.line())
        if c.worst > 1e-9 * max(1.0, c.scale):
            raise AssertionError(f"fusion is not exact: {c.line()}")
    onnx_model = save_onnx(fuse(model, form), onnx_path, {"normalization": json.dumps(NORMALIZATION)})
    ort_check, torch32 = compare_onnx(model, onnx_path)
    log(ort_check.line())
    log(torch32.line())
    if ort_check.worst > TOLERANCE:
        raise AssertionError(f"onnxruntime differs from torch by more than {TOLERANCE}: {ort_check.line()}")
    heldout = heldout_verification(lambda x: embed_onnx(onnx_path, x), cfg)
    params = parameter_report(model)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "model": cfg.name,
        "onnx": Path(onnx_path).name,
        "opset": OPSET,
        "form": form,
        "input": {"name": INPUT_NAME, "shape": [1, cfg.in_channels, cfg.input_size, cfg.input_size]},
        "output": {"name": OUTPUT_NAME, "shape": [1, cfg.embedding_dim]},
        "input_size": cfg.input_size,
        "channels": cfg.in_channels,
        "patch_size": cfg.patch_size,
        "num_patches": cfg.num_patches,
        "patch_order": "row-major: patch i covers rows (i // grid)*patch_size.., cols (i % grid)*patch_size..",
        "embedding_dim": cfg.embedding_dim,
        "normalization": NORMALIZATION,
        "preprocess": PREPROCESS,
        "similarity": "cosine",
        "thresholds": {"cosine_best_accuracy": heldout.threshold},
        "embedding_norm_sq": norm_statistics(model),
        "verification": [r.to_dict() for r in [heldout, *(extra_results or [])]],
        "depth": depth_report(onnx_model),
        "parameters": {"backbone": params.backbone, "per_pcnn": params.per_pcnn, "linear": params.linear},
        "checks": {"fused_vs_trained_max_abs": max(c.worst for c in fusion),
                   "onnx_vs_torch_max_abs": ort_check.worst, "torch32_vs_torch64_max_abs": torch32.worst,
                   "tolerance": TOLERANCE},
        "config": cfg.to_dict(),
        "checkpoint": checkpoint_name,
        "training": training or {},
        "data": "ORL faces (AT&T), Olivetti Research Laboratory, Cambridge, 1992-94",
    }
    sidecar_path(onnx_path).write_text(json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def resolve_checkpoint(onnx_path: str | Path, override: str | Path | None = None) -> Path:
    """The torch checkpoint a shipped model was exported from (named in its sidecar)."""
    if override:
        return Path(override)
    meta = json.loads(sidecar_path(onnx_path).read_text())
    name = meta.get("checkpoint")
    if not name:
        raise FileNotFoundError(f"{sidecar_path(onnx_path)} names no checkpoint; pass --checkpoint")
    for candidate in (sidecar_path(onnx_path).parent / name, CHECKPOINT_DIR / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"checkpoint {name} not found beside the model or in {CHECKPOINT_DIR}")


def verify_file(onnx_path: str | Path, checkpoint: str | Path | None = None) -> tuple[Comparison, ...]:
    """What ``cryptoface-export verify`` prints: fusion exactness, onnxruntime vs torch, and
    torch float32 vs float64 for context."""
    model = load_backbone(resolve_checkpoint(onnx_path, checkpoint))
    return (compare_fused(model), *compare_onnx(model, onnx_path))
