"""Face verification metrics: the standard 10-fold protocol, EER and TAR at a fixed FAR.

Scores are cosine similarities (higher = same person). numpy only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class VerificationResult:
    """One row of the verification table."""

    dataset: str
    pairs: int
    genuine: int
    impostor: int
    accuracy: float  # 10-fold mean, threshold chosen on the other 9 folds
    accuracy_std: float
    threshold: float  # best-accuracy threshold on all the pairs
    eer: float
    tar_at_far: float | None  # None when there are too few impostor pairs for the FAR
    far: float

    def to_dict(self) -> dict:
        return asdict(self)


def cosine_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def _candidate_thresholds(scores: np.ndarray) -> np.ndarray:
    s = np.unique(scores)
    mids = (s[:-1] + s[1:]) / 2 if len(s) > 1 else s
    return np.concatenate([[s[0] - 1e-6], mids, [s[-1] + 1e-6]])


def _accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    return float(np.mean((scores > threshold) == same))


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Threshold with the best accuracy on these pairs, and that accuracy."""
    cands = _candidate_thresholds(scores)
    accs = np.array([_accuracy(scores, same, t) for t in cands])
    k = int(np.argmax(accs))
    return float(cands[k]), float(accs[k])


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: int = 10, seed: int = 0) -> tuple[float, float]:
    """LFW protocol: for each fold, pick the threshold on the others, measure on it."""
    order = np.random.default_rng(seed).permutation(len(scores))
    folds = max(2, min(folds, len(scores)))
    accs = []
    for test in np.array_split(order, folds):
        train = np.setdiff1d(order, test)
        t, _ = best_threshold(scores[train], same[train])
        accs.append(_accuracy(scores[test], same[test], t))
    return float(np.mean(accs)), float(np.std(accs))


def roc(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, FAR, TAR), with acceptance meaning score > threshold."""
    cands = _candidate_thresholds(scores)
    gen, imp = scores[same], scores[~same]
    far = np.array([np.mean(imp > t) for t in cands])
    tar = np.array([np.mean(gen > t) for t in cands])
    return cands, far, tar


def equal_error_rate(scores: np.ndarray, same: np.ndarray) -> float:
    _, far, tar = roc(scores, same)
    frr = 1.0 - tar
    k = int(np.argmin(np.abs(far - frr)))
    return float((far[k] + frr[k]) / 2)


def tar_at_far(scores: np.ndarray, same: np.ndarray, far_target: float = 1e-3) -> float | None:
    """Best TAR with FAR <= far_target; None when fewer than 1/far_target impostor pairs exist."""
    if np.sum(~same) < round(1.0 / far_target):
        return None
    _, far, tar = roc(scores, same)
    ok = far <= far_target
    return float(tar[ok].max()) if ok.any() else 0.0


def balanced_subset(same: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices with every genuine pair and as many impostor pairs drawn at random (LFW-style)."""
    rng = np.random.default_rng(seed)
    gen, imp = np.flatnonzero(same), np.flatnonzero(~same)
    imp = rng.choice(imp, size=min(len(gen), len(imp)), replace=False)
    return np.sort(np.concatenate([gen, imp]))


def verify_pairs(dataset: str, scores: np.ndarray, same: np.ndarray, far: float = 1e-3,
                 balance: bool = True, seed: int = 0) -> VerificationResult:
    """Accuracy (10-fold) and its threshold on a balanced subset; EER and TAR@FAR on all pairs."""
    scores, same = np.asarray(scores, np.float64), np.asarray(same, bool)
    idx = balanced_subset(same, seed) if balance else np.arange(len(same))
    acc, std = kfold_accuracy(scores[idx], same[idx], seed=seed)
    threshold, _ = best_threshold(scores[idx], same[idx])
    return VerificationResult(
        dataset=dataset, pairs=int(len(same)), genuine=int(same.sum()), impostor=int((~same).sum()),
        accuracy=acc, accuracy_std=std, threshold=threshold,
        eer=equal_error_rate(scores, same), tar_at_far=tar_at_far(scores, same, far), far=far)


def format_table(results: list[VerificationResult]) -> str:
    """Markdown table, the form docs/exporters.md shows."""
    head = "| model / data | pairs (gen/imp) | 10-fold acc | threshold | EER | TAR@FAR=1e-3 |"
    rows = [head, "|---|---|---|---|---|---|"]
    for r in results:
        tar = "n/a" if r.tar_at_far is None else f"{r.tar_at_far:.3f}"
        rows.append(f"| {r.dataset} | {r.pairs} ({r.genuine}/{r.impostor}) | {r.accuracy:.4f} ± {r.accuracy_std:.4f} "
                    f"| {r.threshold:.4f} | {r.eer:.4f} | {tar} |")
    return "\n".join(rows)
