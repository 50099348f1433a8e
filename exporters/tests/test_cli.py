import pytest

from cryptoface_exporters.cli import main


def test_info_prints_paper_counts(capsys):
    assert main(["info", "--model", "cryptofacenet4"]) == 0
    out = capsys.readouterr().out
    assert "944,192 = 0.94M" in out and "[paper: 0.94M]" in out


def test_info_depth(capsys):
    assert main(["info", "--model", "small", "--depth"]) == 0
    out = capsys.readouterr().out
    assert "depth [aespa, conv=2 level(s)]: stem 2, block0 8" in out
    assert "depth [monic, conv=2 level(s)]: stem 2, block0 6" in out


def test_unknown_model_is_refused():
    with pytest.raises(SystemExit):
        main(["info", "--model", "resnet50"])


def test_export_and_verify_roundtrip(tmp_path, small_model, capsys):
    from cryptoface_exporters.inference import save_backbone
    ckpt = tmp_path / "backbone.pt"
    save_backbone(small_model, ckpt)
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "--out", str(out)]) == 0
    assert main(["verify", str(out), "--checkpoint", str(ckpt)]) == 0
    text = capsys.readouterr().out
    assert "OK: onnxruntime vs torch max abs error" in text
    assert main(["depth", str(out), "--conv-levels", "1"]) == 0
    assert "block0     4" in capsys.readouterr().out
    aespa = tmp_path / "aespa.onnx"
    assert main(["export", str(ckpt), "--out", str(aespa), "--form", "aespa"]) == 0
    capsys.readouterr()
    assert main(["depth", str(aespa), "--conv-levels", "1"]) == 0
    assert "block0     6" in capsys.readouterr().out


def test_evaluate_insightface_bin_and_lfw_pairs(tmp_path, small_model, capsys):
    """The evaluate command on a .bin and a pairs.txt built from held-out ORL faces."""
    import io
    import pickle

    from PIL import Image

    from cryptoface_exporters.data import load_orl
    from cryptoface_exporters.export import save_onnx
    from cryptoface_exporters.fuse import fuse

    model_path = tmp_path / "m.onnx"
    save_onnx(fuse(small_model), model_path)
    model_path.with_suffix(".json").write_text('{"input_size": 32, "channels": 3}')
    images, labels = load_orl()
    people = [images[labels == p] for p in range(25, 35)]
    left, right, same = [], [], []
    for p in range(10):
        left += [people[p][0], people[p][1]]
        right += [people[p][2], people[(p + 1) % 10][3]]
        same += [True, False]
    png = lambda a: (Image.fromarray(a).save(buf := io.BytesIO(), format="PNG"), buf.getvalue())[1]
    bins = [png(x) for pair in zip(left, right, strict=True) for x in pair]
    with open(tmp_path / "orl.bin", "wb") as fh:
        pickle.dump((bins, same), fh)
    for p in range(10):
        (tmp_path / "lfw" / f"P{p}").mkdir(parents=True)
        for k in range(4):
            Image.fromarray(people[p][k]).save(tmp_path / "lfw" / f"P{p}" / f"P{p}_{k + 1:04d}.jpg")
    lines = [f"P{p}\t1\t3" for p in range(10)] + [f"P{p}\t2\tP{(p + 1) % 10}\t4" for p in range(10)]
    (tmp_path / "pairs.txt").write_text("1\t10\n" + "\n".join(lines) + "\n")
    assert main(["evaluate", str(model_path), "--bin", str(tmp_path / "orl.bin"),
                 "--lfw-pairs", str(tmp_path / "pairs.txt"), "--lfw-root", str(tmp_path / "lfw")]) == 0
    out = capsys.readouterr().out
    assert "| orl | 20 (10/10) |" in out and "| lfw-pairs | 20 (10/10) |" in out
