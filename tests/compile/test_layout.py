"""Layouts: the multiplexed slot formula, pack/unpack, per-channel vectors, refusal to overflow."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoface.program.layout import Layout, LayoutError, conv_output_layout
from cryptoface.errors import CompileError


def slot_by_formula(ch: int, y: int, x: int, h: int, w: int, k: int) -> int:
    """The multiplexed layout's slot formula (program/layout.py), written out element by element."""
    u, rem = divmod(ch, k * k)
    a, b = divmod(rem, k)
    return u * k * k * h * w + (k * y + a) * (k * w) + (k * x + b)


@pytest.mark.parametrize("c,h,w,k", [(3, 4, 4, 1), (5, 3, 2, 2), (64, 2, 2, 4), (64, 2, 2, 16), (16, 8, 8, 1)])
def test_slot_indices_follow_the_multiplexed_formula(c, h, w, k):
    lay = Layout.multiplexed(c, h, w, 4096, k)
    idx = lay.slot_indices()
    assert idx.shape == (c, h, w)
    for ch in range(c):
        for y in range(h):
            for x in range(w):
                assert idx[ch, y, x] == slot_by_formula(ch, y, x, h, w, k)
    assert lay.used == -(-c // (k * k)) * k * k * h * w


@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 40), h=st.integers(1, 9), w=st.integers(1, 9), e=st.integers(0, 3))
def test_indices_are_distinct_and_inside_one_copy(c, h, w, e):
    k = 1 << e
    lay = Layout.multiplexed(c, h, w, 1 << 16, k)
    idx = lay.slot_indices().reshape(-1)
    assert np.unique(idx).size == idx.size
    assert idx.min() >= 0 and idx.max() < lay.used


def test_pack_unpack_roundtrip_and_zeros_elsewhere():
    rng = np.random.default_rng(1)
    lay = Layout.multiplexed(6, 4, 4, 256, 2)
    t = rng.uniform(-1, 1, (6, 4, 4))
    v = lay.pack(t)
    assert np.array_equal(lay.unpack(v), t)
    mask = np.zeros(256, bool)
    mask[lay.slot_indices().reshape(-1)] = True
    assert np.all(v[~mask] == 0)
    assert np.array_equal(lay.valid_mask(), mask.astype(float))


def test_replicated_pack_and_channel_vector():
    lay = Layout.multiplexed(2, 2, 2, 64, 1)  # 8 slots per copy
    v = lay.pack(np.arange(8.0).reshape(2, 2, 2) + 1, period=16)
    assert np.array_equal(v[:16], v[16:32]) and np.array_equal(v[:16], v[48:])
    cv = lay.channel_vector([3.0, -2.0])
    assert np.array_equal(cv[:8], [3, 3, 3, 3, -2, -2, -2, -2]) and not cv[8:].any()
    with pytest.raises(LayoutError):
        lay.pack(np.zeros((2, 2, 2)), period=12)  # does not divide the slots


def test_channel_vector_multiplexed_matches_channel_of_each_slot():
    lay = Layout.multiplexed(5, 3, 3, 128, 2)
    cv = lay.channel_vector(np.arange(5.0) + 10)
    assert np.array_equal(lay.unpack(cv), np.broadcast_to((np.arange(5.0) + 10)[:, None, None], (5, 3, 3)))


def test_flat_layout():
    lay = Layout.flat(10, 16)
    assert lay.used == 10 and np.array_equal(lay.slot_indices(), np.arange(10))
    assert np.array_equal(lay.unpack(lay.pack(np.arange(10.0))), np.arange(10.0))
    with pytest.raises(LayoutError):
        Layout((10,), 16, gap=2)


def test_refuses_a_tensor_that_does_not_fit_and_says_how_many_slots():
    with pytest.raises(LayoutError, match="needs 32768 slots.*has 16384") as info:
        Layout.multiplexed(32, 32, 32, 16384)
    assert isinstance(info.value, CompileError)
    # 3 channels at gap 2 still take one whole block of 4 channel positions.
    with pytest.raises(LayoutError, match="needs 64 slots"):
        Layout.multiplexed(3, 4, 4, 32, 2)


def test_shape_mismatch_is_an_error():
    lay = Layout.multiplexed(2, 3, 3, 64)
    with pytest.raises(LayoutError, match="does not match"):
        lay.pack(np.zeros((3, 3, 2)))
    with pytest.raises(LayoutError, match="64 slots"):
        lay.unpack(np.zeros(32))


def test_conv_output_layout_doubles_the_gap_and_keeps_slots_dense():
    lay = Layout.multiplexed(16, 32, 32, 32768, 1)
    out = conv_output_layout(lay, 32, 16, 16, 2)
    assert out.gap == 2 and out.block_size == lay.block_size and out.used == 8192
