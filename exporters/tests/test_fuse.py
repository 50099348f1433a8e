import pytest
import torch

from cryptoface_exporters.fuse import FusionError, fuse
from cryptoface_exporters.herpn import MIN_ABS_SCALE, HerPN

from conftest import randomized_model


def test_herpn_eval_is_the_folded_quadratic():
    torch.manual_seed(1)
    h = HerPN(5)
    torch.nn.init.normal_(h.weight, 1.0, 0.3)
    torch.nn.init.normal_(h.bias, 0.0, 0.3)
    h.train()
    for _ in range(4):
        h(torch.randn(16, 5, 6, 6) * 2 + 0.5)
    h.eval().double()
    x = torch.randn(3, 5, 6, 6, dtype=torch.float64) * 2
    assert torch.allclose(h(x), h.quadratic()(x), atol=1e-10)


def test_clamp_keeps_scale_away_from_zero():
    h = HerPN(3)
    with torch.no_grad():
        h.weight.copy_(torch.tensor([0.0, -1e-5, 0.5]).reshape(3, 1, 1))
    h.clamp_scale_()
    w = h.weight.flatten()
    assert torch.all(w.abs() >= MIN_ABS_SCALE)
    assert w[1] < 0 and w[2] == 0.5


@pytest.mark.parametrize("name", ["small", "cryptofacenet4"])
@pytest.mark.parametrize("form", ["monic", "aespa"])
def test_fused_equals_trained(name, form):
    model = randomized_model(name).double()
    size = model.config.input_size
    x = torch.randn(3, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x)
    out = fuse(model, form)(x)
    assert ref.abs().max() > 0.1  # a meaningful comparison, not zeros
    assert (out - ref).abs().max() < 1e-9


def test_monic_form_is_monic_and_scales_move_into_convs(small_model):
    fused = fuse(small_model, "monic")
    block = fused.patches[0].blocks[0]
    assert block.herpn1.a2 is None and block.shortcut_scale is not None  # identity block: explicit a2 Mul
    assert fused.patches[0].blocks[1].shortcut_conv is not None  # downsampling: a2 inside the 1x1 conv
    q = small_model.nets[0].blocks[0].herpn1.quadratic()
    w = small_model.nets[0].blocks[0].conv1.weight.double()
    assert torch.allclose(block.conv1.weight, w * q.a2.reshape(1, -1, 1, 1))
    assert torch.allclose(block.herpn1.a1, q.a1 / q.a2)


def test_fusion_refuses_vanishing_a2(small_model):
    model = randomized_model("small")
    with torch.no_grad():
        model.nets[2].blocks[1].herpn2.weight[3] = 0.0
    with pytest.raises(FusionError, match="patch2/block1/herpn2"):
        fuse(model, "monic")
    fuse(model, "aespa")  # the unfused form has no division
