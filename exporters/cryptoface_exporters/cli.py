"""``cryptoface-export``: info, train, export, verify, depth, evaluate, teacher.

Thin argparse layer: every command calls one function of the library and prints its result.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from .config import PAPER_PARAMS_M, PRESETS, get_config


def _info(args: argparse.Namespace) -> int:
    from .depth import block_depths  # noqa: PLC0415
    from .export import to_onnx  # noqa: PLC0415
    from .fuse import fuse  # noqa: PLC0415
    from .model import CryptoFaceNet, parameter_report  # noqa: PLC0415

    names = list(PRESETS) if args.model == "all" else [args.model]
    for name in names:
        cfg = get_config(name)
        model = CryptoFaceNet(cfg).eval()
        rep = parameter_report(model)
        paper = PAPER_PARAMS_M.get(name)
        print(f"{name}: input {cfg.input_size}x{cfg.input_size}, {cfg.num_patches} patches of "
              f"{cfg.patch_size}x{cfg.patch_size}, embedding {cfg.embedding_dim}")
        print(f"  parameters (inference backbone = PCNNs + aggregation Linear; non-affine BN1d has none): "
              f"{rep.backbone:,} = {rep.backbone_millions:.2f}M" + (f"  [paper: {paper:.2f}M]" if paper else ""))
        print(f"    per PCNN {rep.per_pcnn:,} x {cfg.num_patches} = {rep.pcnns:,}; Linear {rep.linear:,}; "
              f"training-only: position head {rep.aux_head:,}, ArcFace {rep.arcface_head_per_class} per class")
        if args.depth:
            for form in ("aespa", "monic"):
                graph = to_onnx(fuse(model, form))
                for levels in (2, 1):
                    blocks = block_depths(graph, 0, levels)
                    cells = ", ".join(f"{b.name} {b.depth}" for b in blocks if b.name != "flatten")
                    print(f"  depth [{form:5s}, conv={levels} level(s)]: {cells}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train  # noqa: PLC0415

    cfg = TrainConfig(model=args.model, epochs=args.epochs, lr=args.lr, seed=args.seed, batch_size=args.batch_size,
                      distill_weight=args.distill_weight, teacher=args.teacher, checkpoint_dir=args.out,
                      distill_mode=args.distill_mode,
                      threads=args.threads, image_folder=args.image_folder)
    result = train(cfg)
    last = result.history[-1]
    print(f"trained {args.model} for {result.epochs} epochs in {result.seconds:.0f} s; last epoch {last}")
    print(f"backbone checkpoint: {Path(args.out) / 'backbone.pt'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import torch  # noqa: PLC0415

    from .evaluate import format_table, VerificationResult  # noqa: PLC0415
    from .inference import CHECKPOINT_DIR, load_backbone  # noqa: PLC0415
    from .pipeline import export_model  # noqa: PLC0415

    model = load_backbone(args.checkpoint)
    blob = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    training = {k: blob[k] for k in ("train_seconds", "train_config") if k in blob}
    if "history" in blob:
        training["last_epoch"] = blob["history"][-1]
    training.update(json.loads(args.training_note) if args.training_note else {})
    ckpt_name = None
    if args.ship_checkpoint:
        ckpt_name = f"{Path(args.out).stem}.pt"
        CHECKPOINT_DIR.mkdir(exist_ok=True)
        shutil.copyfile(args.checkpoint, CHECKPOINT_DIR / ckpt_name)
        print(f"checkpoint copied to {CHECKPOINT_DIR / ckpt_name}")
    sidecar = export_model(model, args.out, ckpt_name, training, form=args.form)
    print(format_table([VerificationResult(**r) for r in sidecar["verification"]]))
    print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from .pipeline import TOLERANCE, verify_file  # noqa: PLC0415

    fusion, ort_check, torch32 = verify_file(args.model, args.checkpoint)
    for line in (fusion, ort_check, torch32):
        print(line.line())
    ok = ort_check.worst <= TOLERANCE
    print(f"{'OK' if ok else 'FAIL'}: onnxruntime vs torch max abs error {ort_check.worst:.3e} "
          f"({'<=' if ok else '>'} {TOLERANCE})")
    return 0 if ok else 1


def _depth(args: argparse.Namespace) -> int:
    import onnx  # noqa: PLC0415

    from .depth import block_depths  # noqa: PLC0415

    graph = onnx.load(args.model)
    for b in block_depths(graph, args.patch, args.conv_levels):
        print(f"{b.name:10s} {b.depth}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .data import load_image, preprocess_batch, read_insightface_bin, read_lfw_pairs  # noqa: PLC0415
    from .evaluate import cosine_scores, format_table, verify_pairs  # noqa: PLC0415
    from .inference import embed_onnx, onnx_session  # noqa: PLC0415
    from .pipeline import heldout_verification, sidecar_path  # noqa: PLC0415

    meta = json.loads(sidecar_path(args.model).read_text())
    size, channels = meta["input_size"], meta["channels"]
    sess = onnx_session(args.model)
    embed = lambda images: embed_onnx(sess, preprocess_batch(images, size, channels))
    results = []
    for path in args.bin or []:
        images, same = read_insightface_bin(path)
        emb = embed(images)
        results.append(verify_pairs(Path(path).stem, cosine_scores(emb[0::2], emb[1::2]), same))
    if args.lfw_pairs:
        pairs = read_lfw_pairs(args.lfw_pairs, args.lfw_root)
        left = embed([load_image(p.left) for p in pairs])
        right = embed([load_image(p.right) for p in pairs])
        results.append(verify_pairs("lfw-pairs", cosine_scores(left, right), np.array([p.same for p in pairs])))
    if not results:
        from .config import ModelConfig  # noqa: PLC0415
        cfg = ModelConfig.from_dict(meta["config"])
        results.append(heldout_verification(lambda x: embed_onnx(sess, x), cfg))
    print(format_table(results))
    return 0


def _baselines(args: argparse.Namespace) -> int:
    """Reference rows for the verification table: raw pixels, and the FaceNet teacher if installed."""
    from .data import all_pairs, load_orl, orl_split, preprocess_batch  # noqa: PLC0415
    from .evaluate import cosine_scores, format_table, verify_pairs  # noqa: PLC0415

    images, labels = load_orl()
    _, test = orl_split().masks(labels)
    pairs, same = all_pairs(labels[test])
    score = lambda e: cosine_scores(e[pairs[:, 0]], e[pairs[:, 1]])
    rows = []
    for size in args.sizes:
        pixels = preprocess_batch(images[test], size, 1).reshape(int(test.sum()), -1)
        rows.append(verify_pairs(f"raw pixels {size}x{size}", score(pixels), same))
    if args.teacher:
        rows.append(verify_pairs("FaceNet teacher (512-d, not FHE)", score(np.load(args.teacher)[test]), same))
    print(format_table(rows))
    return 0


def _teacher(args: argparse.Namespace) -> int:
    from .data import load_faces  # noqa: PLC0415
    from .teacher import facenet_embeddings  # noqa: PLC0415

    images, _ = load_faces(args.image_folder)
    emb = facenet_embeddings(images)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, emb)
    print(f"wrote {emb.shape} FaceNet embeddings of {args.image_folder or 'the ORL faces'} to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cryptoface-export", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="parameter counts (and with --depth, depth per block)")
    s.add_argument("--model", default="all", choices=["all", *PRESETS])
    s.add_argument("--depth", action="store_true", help="also print multiplicative depth per block")
    s.set_defaults(func=_info)

    s = sub.add_parser("train", help="train on the ORL faces (25 identities; 10 held out)")
    s.add_argument("--model", default="small", choices=list(PRESETS))
    s.add_argument("--epochs", type=int, default=60)
    s.add_argument("--lr", type=float, default=2e-3)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--distill-weight", type=float, default=0.0)
    s.add_argument("--teacher", help=".npy of teacher embeddings (cryptoface-export teacher)")
    s.add_argument("--distill-mode", default="relational", choices=["relational", "embedding"])
    s.add_argument("--image-folder", help="train on root/<identity>/<image> instead of the ORL faces "
                   "(20%% of the identities are held out for the progress check)")
    s.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is faster on a busy machine)")
    s.add_argument("--out", default="runs/default", help="checkpoint directory (resumes from last.pt)")
    s.set_defaults(func=_train)

    s = sub.add_parser("export", help="fuse, export to ONNX, verify, evaluate, write the JSON sidecar")
    s.add_argument("checkpoint", help="backbone.pt written by train")
    s.add_argument("--out", required=True, help="MODEL.onnx (MODEL.json is written beside it)")
    s.add_argument("--ship-checkpoint", action="store_true",
                   help="copy the checkpoint into cryptoface_exporters/checkpoints/ for verify")
    s.add_argument("--form", default="monic", choices=["monic", "aespa"],
                   help="monic (depth-optimal, the contract) or aespa (unfused HerPN, for comparison)")
    s.add_argument("--training-note", help="JSON merged into the sidecar's 'training' record")
    s.set_defaults(func=_export)

    s = sub.add_parser("verify", help="torch vs onnxruntime max abs error of an exported model")
    s.add_argument("model", help="MODEL.onnx with MODEL.json beside it")
    s.add_argument("--checkpoint", help="defaults to the checkpoint named in MODEL.json")
    s.set_defaults(func=_verify)

    s = sub.add_parser("depth", help="multiplicative depth per block of an ONNX graph")
    s.add_argument("model")
    s.add_argument("--conv-levels", type=int, default=2, help="levels per conv: 2 (MPCNN) or 1 (BSGS)")
    s.add_argument("--patch", type=int, default=0)
    s.set_defaults(func=_depth)

    s = sub.add_parser("evaluate", help="verification table (default: ORL held-out identities)")
    s.add_argument("model")
    s.add_argument("--bin", nargs="*", help="InsightFace .bin pair files (lfw.bin, cfp_fp.bin, ...)")
    s.add_argument("--lfw-pairs", help="LFW-style pairs.txt")
    s.add_argument("--lfw-root", help="image root for --lfw-pairs (root/name/name_0001.jpg)")
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("baselines", help="raw-pixel (and teacher) rows on the ORL held-out pairs")
    s.add_argument("--sizes", type=int, nargs="*", default=[32, 64])
    s.add_argument("--teacher", help=".npy of teacher embeddings (cryptoface-export teacher)")
    s.set_defaults(func=_baselines)

    s = sub.add_parser("teacher", help="FaceNet embeddings of the ORL faces for distillation")
    s.add_argument("--out", default="runs/teacher/facenet_orl.npy")
    s.add_argument("--image-folder", help="embed root/<identity>/<image> (same order as train uses)")
    s.set_defaults(func=_teacher)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
