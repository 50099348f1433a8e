"""The trained models shipped in cryptoface/models/: contract, sidecar, torch vs onnxruntime."""
import json
from pathlib import Path

import onnx
import pytest

from cryptoface_exporters.config import ModelConfig, get_config
from cryptoface_exporters.export import check_contract
from cryptoface_exporters.inference import embed_onnx, onnx_session
from cryptoface_exporters.pipeline import TOLERANCE, heldout_verification, verify_file

MODELS = Path(__file__).resolve().parents[2] / "cryptoface" / "models"
SHIPPED = ["small", "cryptofacenet4"]


def _meta(name):
    return json.loads((MODELS / f"{name}.json").read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_sidecar_describes_the_model(name):
    meta, cfg = _meta(name), get_config(name)
    assert ModelConfig.from_dict(meta["config"]) == cfg
    assert (meta["model"], meta["input_size"], meta["channels"], meta["patch_size"], meta["num_patches"],
            meta["embedding_dim"]) == (name, cfg.input_size, 3, cfg.patch_size, cfg.num_patches, cfg.embedding_dim)
    assert meta["normalization"] == {"scale": 1 / 255, "mean": 0.5, "std": 0.5}
    assert -1.0 < meta["thresholds"]["cosine_best_accuracy"] < 1.0
    n = meta["embedding_norm_sq"]
    assert 0 < n["min"] <= n["mean"] <= n["max"] and n["count"] == 250
    assert meta["verification"][0]["dataset"] == "ORL held-out"
    assert (MODELS / f"{name}.onnx").stat().st_size < 5e6


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_graph_follows_the_contract(name):
    model = onnx.load(MODELS / f"{name}.onnx")
    check_contract(model)
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["embedding"]


@pytest.mark.parametrize("name", SHIPPED)
def test_verify_shipped_model(name):
    fusion, ort_check, _ = verify_file(MODELS / f"{name}.onnx")
    assert fusion.worst < 1e-9 * max(1.0, fusion.scale)
    assert ort_check.worst <= TOLERANCE
    assert ort_check.scale > 0.1


@pytest.mark.parametrize("name", SHIPPED)
def test_recorded_verification_is_reproducible(name):
    meta = _meta(name)
    sess = onnx_session(MODELS / f"{name}.onnx")
    now = heldout_verification(lambda x: embed_onnx(sess, x), get_config(name))
    recorded = meta["verification"][0]
    assert now.accuracy == pytest.approx(recorded["accuracy"], abs=1e-6)
    assert now.eer == pytest.approx(recorded["eer"], abs=1e-6)
    assert now.threshold == pytest.approx(meta["thresholds"]["cosine_best_accuracy"], abs=1e-5)
    assert now.accuracy > 0.8  # far above chance on people the model never saw
