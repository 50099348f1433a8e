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
