"""Train CryptoFaceNet on real faces (CPU): ArcFace + auxiliary patch-position loss, optional
relational distillation from a teacher's embeddings.

Why these choices:
* ArcFace (s=64, m=0.5) as in the paper; the margin is ramped in over the first epochs because
  from a random start a full 0.5 rad margin on 25 classes stalls the loss.
* The HerPN scales are clamped away from zero after every step, so the depth-optimal fusion
  (which divides by a2) is always possible.
* Augmentation (flip, shift, brightness/contrast) matters more than anything else on 250 images.
* Distillation (optional), two kinds: ``relational`` matches the batch's cosine-similarity
  matrix to the teacher's (no projection between the embedding sizes needed); ``embedding``
  maps the student's embedding through a training-only Linear(D -> teacher dim) and maximizes
  its cosine with the teacher's embedding.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .config import get_config
from .data import IdentitySplit, identity_split, load_faces, orl_split, preprocess_batch
from .heads import ArcFace, PositionHead
from .inference import embed_torch, save_backbone
from .model import CryptoFaceNet


@dataclass
class TrainConfig:
    model: str = "small"
    epochs: int = 60
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 5e-4
    seed: int = 0
    arcface_s: float = 64.0
    arcface_m: float = 0.5
    margin_warmup_epochs: int = 10
    aux_weight: float = 0.005
    distill_weight: float = 0.0  # > 0 needs teacher embeddings
    teacher: str | None = None  # .npy of teacher embeddings, one row per ORL image
    distill_mode: str = "relational"  # or "embedding"
    max_shift: int = 0  # pixels; 0 means input_size // 16
    grad_clip: float = 5.0
    threads: int = 1
    checkpoint_dir: str = "runs/default"
    stop_after: int | None = None  # stop (resumably) after this epoch, e.g. to time-box a run
    image_folder: str | None = None  # root/<identity>/<image>; None = the shipped ORL faces
    split: IdentitySplit | None = None  # None: ORL's fixed split, or 20% of a folder's identities

    def resolved_split(self, labels: np.ndarray) -> IdentitySplit:
        if self.split is not None:
            return self.split
        return orl_split() if self.image_folder is None else identity_split(labels, 0.2, self.seed)


@dataclass
class TrainResult:
    model: CryptoFaceNet
    seconds: float
    epochs: int
    history: list[dict]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def augment(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flip, translation (reflect padding) and brightness/contrast, per image."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if max_shift > 0:
        padded = F.pad(x, [max_shift] * 4, mode="reflect")
        dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
        dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
        x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    contrast = 1.0 + 0.4 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    bright = 0.2 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean + bright


def relational_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    s = F.normalize(student, dim=1)
    t = F.normalize(teacher, dim=1)
    return F.mse_loss(s @ s.T, t @ t.T)


def _pair_accuracy(model: CryptoFaceNet, images: np.ndarray, labels: np.ndarray) -> float:
    """Quick held-out check for the progress bar (best-threshold accuracy on balanced pairs)."""
    from .data import all_pairs  # noqa: PLC0415
    from .evaluate import balanced_subset, best_threshold, cosine_scores  # noqa: PLC0415
    emb = embed_torch(model, images)
    pairs, same = all_pairs(labels)
    idx = balanced_subset(same)
    scores = cosine_scores(emb[pairs[idx, 0]], emb[pairs[idx, 1]])
    return best_threshold(scores, same[idx])[1]


def _public_config(cfg: TrainConfig, split: IdentitySplit) -> dict:
    data = {k: v for k, v in asdict(cfg).items() if k not in ("split", "checkpoint_dir", "stop_after")}
    data["train_ids"], data["heldout_ids"] = list(split.train_ids), list(split.test_ids)
    return data


@dataclass
class _State:
    """Everything a training run updates, saved in last.pt so a run can resume."""

    model: CryptoFaceNet
    head: ArcFace
    aux: PositionHead
    project: torch.nn.Linear | None  # training-only, embedding distillation
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler

    def modules(self) -> dict:
        parts = {"backbone": self.model, "head": self.head, "aux": self.aux, "optimizer": self.opt,
                 "scheduler": self.sched}
        return parts | ({"project": self.project} if self.project is not None else {})

    def save(self, path: Path, extra: dict) -> None:
        tmp = path.with_suffix(".tmp")  # write then rename: an interrupted save never corrupts last.pt
        torch.save({k: m.state_dict() for k, m in self.modules().items()} | extra, tmp)
        os.replace(tmp, path)

    def load(self, path: Path) -> dict:
        blob = torch.load(path, map_location="cpu", weights_only=False)
        for key, module in self.modules().items():
            module.load_state_dict(blob[key])
        return blob


def _build(cfg: TrainConfig, num_classes: int, teacher_dim: int | None, steps_per_epoch: int) -> _State:
    mcfg = get_config(cfg.model)
    model = CryptoFaceNet(mcfg)
    head = ArcFace(mcfg.embedding_dim, num_classes, s=cfg.arcface_s, m=cfg.arcface_m)
    aux = PositionHead(mcfg.patch_features, mcfg.num_patches)
    project = None
    if teacher_dim is not None and cfg.distill_mode == "embedding":
        project = torch.nn.Linear(mcfg.embedding_dim, teacher_dim)
    params = [p for m in (model, head, aux, project) if m is not None for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.1)
    return _State(model, head, aux, project, opt, sched)


def _load_teacher(cfg: TrainConfig, train_mask: np.ndarray) -> torch.Tensor | None:
    if cfg.distill_weight <= 0:
        return None
    if not cfg.teacher:
        raise ValueError("distill_weight > 0 needs --teacher embeddings (cryptoface-export teacher)")
    if cfg.distill_mode not in ("relational", "embedding"):
        raise ValueError(f"unknown distill_mode {cfg.distill_mode!r}")
    return torch.from_numpy(np.load(cfg.teacher)[train_mask]).float()


def _step(st: _State, cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor, teacher: torch.Tensor | None) -> dict:
    """One optimizer step; returns the loss terms."""
    out = st.model.forward_features(x)
    arc = F.cross_entropy(st.head(out.embedding, y), y)
    aux_loss = st.aux.loss(out.patch_features)
    loss = arc + cfg.aux_weight * aux_loss
    kd = torch.zeros(())
    if teacher is not None:
        if st.project is None:
            kd = relational_loss(out.embedding, teacher)
        else:
            kd = 1.0 - F.cosine_similarity(st.project(out.embedding), teacher).mean()
        loss = loss + cfg.distill_weight * kd
    st.opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for g in st.opt.param_groups for p in g["params"]], cfg.grad_clip)
    st.opt.step()
    st.sched.step()
    for h in st.model.herpns():
        h.clamp_scale_()
    return {"loss": float(loss.detach()), "arc": float(arc.detach()), "aux": float(aux_loss.detach()),
            "kd": float(kd.detach())}


def train(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Train from scratch (or resume from checkpoint_dir/last.pt) and return the eval-mode backbone."""
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.threads)
    mcfg = get_config(cfg.model)
    images, labels = load_faces(cfg.image_folder)
    split = cfg.resolved_split(labels)
    train_mask, test_mask = split.masks(labels)
    x_all = preprocess_batch(images, mcfg.input_size, mcfg.in_channels)
    id_map = {pid: k for k, pid in enumerate(split.train_ids)}
    x_train = torch.from_numpy(x_all[train_mask])
    y_train = torch.tensor([id_map[int(l)] for l in labels[train_mask]])
    teacher = _load_teacher(cfg, train_mask)
    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    st = _build(cfg, len(split.train_ids), None if teacher is None else teacher.shape[1], steps_per_epoch)

    ckpt_dir = Path(cfg.checkpoint_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    last = ckpt_dir / "last.pt"
    start, history = 1, []
    if last.exists():
        blob = st.load(last)
        start, history = blob["epoch"] + 1, blob["history"]
    gen = torch.Generator().manual_seed(cfg.seed + start)
    max_shift = cfg.max_shift or max(1, mcfg.input_size // 16)
    t0 = time.time()
    bar = tqdm(range(start, cfg.epochs + 1), desc=f"train {cfg.model}", disable=not progress, unit="epoch")
    for epoch in bar:
        if cfg.stop_after is not None and epoch > cfg.stop_after:
            break
        st.model.train()
        st.head.m = cfg.arcface_m * min(1.0, epoch / max(1, cfg.margin_warmup_epochs))
        perm = torch.randperm(len(x_train), generator=gen)
        totals = {"loss": 0.0, "arc": 0.0, "aux": 0.0, "kd": 0.0}
        for k in range(steps_per_epoch):
            idx = perm[k * cfg.batch_size:(k + 1) * cfg.batch_size]
            if len(idx) < 2:
                continue
            terms = _step(st, cfg, augment(x_train[idx], max_shift, gen), y_train[idx],
                          None if teacher is None else teacher[idx])
            for key, val in terms.items():
                totals[key] += val / steps_per_epoch
        record = {"epoch": epoch, **{k: round(v, 4) for k, v in totals.items()},
                  "heldout_acc": round(_pair_accuracy(st.model, x_all[test_mask], labels[test_mask]), 4)}
        history.append(record)
        bar.set_postfix(loss=record["loss"], heldout=record["heldout_acc"])
        st.save(last, {"epoch": epoch, "history": history, "train_config": _public_config(cfg, split)})
    seconds = time.time() - t0
    model = st.model.eval()
    if history and history[-1]["epoch"] < cfg.epochs:
        return TrainResult(model=model, seconds=seconds, epochs=history[-1]["epoch"], history=history)
    save_backbone(model, ckpt_dir / "backbone.pt", {"train_seconds": seconds, "history": history,
                                                    "train_config": _public_config(cfg, split)})
    return TrainResult(model=model, seconds=seconds, epochs=cfg.epochs, history=history)
