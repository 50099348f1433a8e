import pytest

from cryptoface_exporters.config import PAPER_PARAMS_M, get_config
from cryptoface_exporters.model import CryptoFaceNet, parameter_report


@pytest.mark.parametrize("name, exact", [
    ("cryptofacenet4", 944_192), ("cryptofacenet9", 2_124_112), ("cryptofacenet16", 3_776_000)])
def test_paper_parameter_counts(name, exact):
    rep = parameter_report(CryptoFaceNet(get_config(name)))
    assert rep.backbone == exact
    assert round(rep.backbone_millions, 2) == PAPER_PARAMS_M[name]
    # every PCNN is the same network with its own weights
    assert rep.per_pcnn == 170_448


def test_training_heads_are_not_counted():
    model = CryptoFaceNet(get_config("cryptofacenet4"))
    from cryptoface_exporters.model import count_parameters
    assert count_parameters(model) == parameter_report(model).backbone


def test_small_config_shape():
    cfg = get_config("small")
    assert (cfg.input_size, cfg.patch_size, cfg.num_patches, cfg.patch_features, cfg.embedding_dim) == (32, 16, 4, 64, 64)
