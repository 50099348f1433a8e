"""Linear layers as slot matrices and their BSGS evaluation.

For every conv shape CryptoFaceNet uses (reduced images for the encrypted runs), avgpool,
global avgpool and Gemm:
(a) the sparse matrix applied to the packed input equals an independent numpy reference
    (exact up to float64 rounding, 1e-9);
(b) the BSGS schedule, in numpy and encrypted on the simulator backend, equals it; the
    encrypted tolerance is max abs error < 1e-3 for inputs and weights in [-1, 1], and the
    evaluation uses exactly one level;
(c) the reported counts are what evaluation does (counted on the context) and the diagonal
    counts equal a numpy count of the slot matrix's generalized diagonals;
(d) rotations per conv layer <= MPCNN's count for the same layer (both printed, `pytest -s`).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptoface.backend import HEContext
from cryptoface.program.layout import Layout, LayoutError
from cryptoface.compile.count_table import format_count_table, patch_layers, pcnn_count_table
from cryptoface.compile.linear_maps import LinearMap, avgpool_map, conv2d_map, gemm_map, global_avgpool_map
from cryptoface.compile.linear_transform import plan_linear_transform
from cryptoface.compile.mpcnn import mpcnn_conv_counts
from cryptoface.params import CKKSParams, next_pow2
from cryptoface.simulator import SimulatorEngine

EXACT = 1e-9  # matrix and numpy BSGS: float64 rounding only
CKKS_TOL = 1e-3  # encrypted (simulated CKKS, scale 2^40), inputs and weights in [-1, 1]


# ---- independent references ------------------------------------------------------------
def ref_conv(x, w, stride, pad, groups=1):
    """Direct loops over output pixels: no shared code with the library."""
    c, h, wd = x.shape
    co, cig, kh, kw = w.shape
    pt, pl, pb, pr = pad if isinstance(pad, tuple) else (pad,) * 4
    xp = np.zeros((c, h + pt + pb, wd + pl + pr))
    xp[:, pt : pt + h, pl : pl + wd] = x
    ho, wo = (h + pt + pb - kh) // stride + 1, (wd + pl + pr - kw) // stride + 1
    y = np.zeros((co, ho, wo))
    cog = co // groups
    for o in range(co):
        g = o // cog
        for i in range(ho):
            for j in range(wo):
                window = xp[g * cig : (g + 1) * cig, i * stride : i * stride + kh, j * stride : j * stride + kw]
                y[o, i, j] = np.sum(window * w[o])
    return y


def ref_avgpool(x, k, s, pad=0, count_include_pad=False):
    c, h, w = x.shape
    ones = np.zeros((c, h + 2 * pad, w + 2 * pad))
    ones[:, pad : pad + h, pad : pad + w] = 1
    sums = ref_conv(x, np.eye(c)[:, :, None, None] * np.ones((1, 1, k, k)), s, pad)
    if count_include_pad:
        return sums / (k * k)
    counts = ref_conv(ones[:, pad : pad + h, pad : pad + w], np.eye(c)[:, :, None, None] * np.ones((1, 1, k, k)), s, pad)
    return sums / counts


def simulator(slots: int, steps) -> HEContext:
    params = CKKSParams(ring_dim=max(1024, 2 * slots), depth=2, scale_bits=40, slots=slots, insecure_test_params=True)
    return HEContext.create(SimulatorEngine, params, steps)


def check_map(lmap: LinearMap, x: np.ndarray, expected: np.ndarray, encrypted: bool = True):
    """(a) matrix, (b) numpy BSGS and encrypted BSGS, one level. Returns the plan."""
    assert np.abs(lmap.apply_tensor(x) - expected).max() < EXACT
    plan = plan_linear_transform(lmap)
    vec = lmap.in_layout.pack(x)
    plain = plan.evaluate_plain(vec)
    out = lmap.out_layout
    assert np.abs(out.unpack(plain) - expected).max() < EXACT
    # The output is replicated with period block_rows, zeros in unused slots of each copy.
    np.testing.assert_allclose(plain, out.pack(expected, period=plan.output_period), atol=EXACT)
    if encrypted:
        ctx = simulator(lmap.slots, plan.rotation_steps)
        ct = ctx.encrypt(vec)
        y = plan.evaluate(ctx, ct)
        assert y.level == ct.level - 1
        got = ctx.decrypt(y)
        assert np.abs(out.unpack(got) - expected).max() < CKKS_TOL
    return plan


# ---- convolutions ------------------------------------------------------------------------
# Every conv shape of a CryptoFaceNet4 patch network, read from the shipped model.
PATCH = patch_layers("cryptofacenet4")
CONVS = PATCH.convs
# (c_in, c_out, size, gap_in, kernel, stride): those shapes with the image reduced 4x (so
# slots shrink 16x: fast on the simulator), plus two layers at full size.
REDUCED_CONVS = [(s.c_in, s.c_out, s.size // 4, s.gap_in, s.kernel, s.stride) for s in CONVS]


def slots_for(c, size, gap):
    return next_pow2(Layout.multiplexed(c, size, size, 1 << 20, gap).used)


@pytest.mark.parametrize("c_in,c_out,size,gap,kernel,stride", REDUCED_CONVS)
def test_conv_reduced_matrix_bsgs_and_encrypted(c_in, c_out, size, gap, kernel, stride):
    rng = np.random.default_rng(c_in * 100 + c_out + stride)
    slots = 2 * max(slots_for(c_in, size, gap), slots_for(c_out, size // stride, gap * stride))
    lay = Layout.multiplexed(c_in, size, size, slots, gap)
    w = rng.uniform(-1, 1, (c_out, c_in, kernel, kernel))
    b = rng.uniform(-1, 1, c_out)
    x = rng.uniform(-1, 1, (c_in, size, size))
    m = conv2d_map(lay, w, b, stride, kernel // 2)
    assert m.out_layout.gap == gap * stride
    check_map(m, x, ref_conv(x, w, stride, kernel // 2) + b[:, None, None])


@pytest.mark.parametrize("spec", [CONVS[0], CONVS[5]], ids=lambda s: s.name)
def test_conv_full_size_matrix(spec):
    """Full-size layers, matrix and numpy BSGS only (the encrypted run is slow-marked)."""
    rng = np.random.default_rng(7)
    lay = Layout.multiplexed(spec.c_in, spec.size, spec.size, 32768, spec.gap_in)
    w = rng.uniform(-1, 1, (spec.c_out, spec.c_in, spec.kernel, spec.kernel))
    x = rng.uniform(-1, 1, (spec.c_in, spec.size, spec.size))
    m = conv2d_map(lay, w, None, spec.stride, spec.pad)
    check_map(m, x, ref_conv(x, w, spec.stride, spec.pad), encrypted=False)


@pytest.mark.slow
@pytest.mark.parametrize("spec", CONVS, ids=lambda s: s.name)
def test_conv_full_size_encrypted(spec):
    rng = np.random.default_rng(11)
    lay = Layout.multiplexed(spec.c_in, spec.size, spec.size, 32768, spec.gap_in)
    w = rng.uniform(-1, 1, (spec.c_out, spec.c_in, spec.kernel, spec.kernel))
    b = rng.uniform(-1, 1, spec.c_out)
    x = rng.uniform(-1, 1, (spec.c_in, spec.size, spec.size))
    m = conv2d_map(lay, w, b, spec.stride, spec.pad)
    check_map(m, x, ref_conv(x, w, spec.stride, spec.pad) + b[:, None, None])


def test_conv_asymmetric_pads_groups_and_odd_sizes():
    rng = np.random.default_rng(3)
    lay = Layout.multiplexed(4, 5, 7, 512, 1)
    w = rng.uniform(-1, 1, (6, 2, 2, 3))
    x = rng.uniform(-1, 1, (4, 5, 7))
    m = conv2d_map(lay, w, None, 1, (1, 0, 0, 2), groups=2)
    check_map(m, x, ref_conv(x, w, 1, (1, 0, 0, 2), groups=2))


def test_conv_stride2_falls_back_to_a_smaller_gap_when_needed():
    # 5x5 -> 3x3 at gap 2 would span a 6x6 big image (36 slots) > 32: gap 1 is used instead.
    lay = Layout.multiplexed(1, 5, 5, 32, 1)
    w = np.random.default_rng(0).uniform(-1, 1, (1, 1, 3, 3))
    m = conv2d_map(lay, w, None, 2, 1)
    assert m.out_layout.gap == 1
    x = np.random.default_rng(1).uniform(-1, 1, (1, 5, 5))
    check_map(m, x, ref_conv(x, w, 2, 1))


def test_conv_output_too_large_is_refused():
    lay = Layout.multiplexed(4, 8, 8, 256, 1)
    with pytest.raises(LayoutError, match="needs 1024 slots"):
        conv2d_map(lay, np.ones((16, 4, 3, 3)), None, 1, 1)


# ---- pooling and Gemm ----------------------------------------------------------------------
@pytest.mark.parametrize("k,s,pad,incl", [(2, 2, 0, False), (4, 4, 0, False), (3, 1, 1, False), (3, 2, 1, True)])
def test_avgpool(k, s, pad, incl):
    rng = np.random.default_rng(k + s)
    lay = Layout.multiplexed(16, 8, 8, 2048, 2)
    x = rng.uniform(-1, 1, (16, 8, 8))
    m = avgpool_map(lay, k, s, pad, count_include_pad=incl)
    check_map(m, x, ref_avgpool(x, k, s, pad, incl))


def test_global_avgpool_into_flat_layout():
    rng = np.random.default_rng(5)
    lay = Layout.multiplexed(16, 4, 4, 512, 2)
    x = rng.uniform(-1, 1, (16, 4, 4))
    m = global_avgpool_map(lay)
    assert m.out_layout.is_flat
    check_map(m, x, x.mean(axis=(1, 2)))


def test_gemm_on_flattened_multiplexed_input_is_free_flatten():
    rng = np.random.default_rng(6)
    lay = Layout.multiplexed(64, 2, 2, 1024, 16)  # the pooled CryptoFaceNet tensor
    w = rng.uniform(-1, 1, (256, 256)) / 16
    b = rng.uniform(-1, 1, 256)
    x = rng.uniform(-1, 1, (64, 2, 2))
    check_map(gemm_map(lay, w, b), x, w @ x.reshape(-1) + b)


def test_gemm_on_flat_input():
    rng = np.random.default_rng(8)
    lay = Layout.flat(100, 256)
    w = rng.uniform(-1, 1, (30, 100)) / 10
    x = rng.uniform(-1, 1, 100)
    plan = check_map(gemm_map(lay, w), x, w @ x)
    assert plan.counts.plaintext_mults <= 128


# ---- the BSGS split on arbitrary matrices --------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    e=st.integers(3, 8),
    nnz=st.integers(0, 60),
    seed=st.integers(0, 2**31),
    force=st.sampled_from(["auto", "square", "n1=3", "n1=5"]),
)
def test_bsgs_equals_matrix_for_random_sparse_maps(e, nnz, seed, force):
    n = 1 << e
    rng = np.random.default_rng(seed)
    out = Layout.flat(int(rng.integers(1, n + 1)), n)
    inp = Layout.flat(int(rng.integers(1, n + 1)), n)
    pairs = {(int(rng.integers(out.numel)), int(rng.integers(inp.numel))) for _ in range(nnz)}
    rows = np.array([p[0] for p in pairs], dtype=np.int64)
    cols = np.array([p[1] for p in pairs], dtype=np.int64)
    m = LinearMap(inp, out, rows, cols, rng.uniform(-1, 1, rows.size), out.pack(rng.uniform(-1, 1, out.numel)))
    kwargs = {"auto": {}, "square": {"block_rows": n}, "n1=3": {"baby_step_count": 3}, "n1=5": {"baby_step_count": 5}}[force]
    plan = plan_linear_transform(m, **kwargs)
    x = rng.uniform(-1, 1, inp.numel)
    y = plan.evaluate_plain(inp.pack(x))
    np.testing.assert_allclose(out.unpack(y), m.apply_tensor(x), atol=EXACT)
    assert len(plan.diagonals) == np.unique((cols - rows) % plan.block_rows).size


class CountingContext:
    """An HEContext that counts what a plan really asks of it (rotations by step)."""

    def __init__(self, ctx: HEContext):
        self.ctx, self.rotations, self.mul_plain_calls = ctx, [], 0

    def __getattr__(self, name):
        return getattr(self.ctx, name)

    def rotate(self, ct, step):
        self.rotations.append(step)
        return self.ctx.rotate(ct, step)

    def rotate_many(self, ct, steps):
        self.rotations += [s for s in steps if s]
        return self.ctx.rotate_many(ct, steps)

    def mul_plain(self, ct, pt, *args, **kwargs):
        self.mul_plain_calls += 1
        return self.ctx.mul_plain(ct, pt, *args, **kwargs)


def test_reported_counts_and_keys_are_what_evaluation_does():
    rng = np.random.default_rng(4)
    lay = Layout.multiplexed(16, 8, 8, 2048, 1)
    w, b = rng.uniform(-1, 1, (16, 16, 3, 3)), rng.uniform(-1, 1, 16)
    m = conv2d_map(lay, w, b, 1, 1)
    plan = plan_linear_transform(m)
    ctx = CountingContext(simulator(2048, plan.rotation_steps))
    x = rng.uniform(-1, 1, (16, 8, 8))
    ct = ctx.encrypt(lay.pack(x))
    y = plan.evaluate(ctx, ct)
    c = plan.counts
    assert c.rotations == len(ctx.rotations) and c.plaintext_mults == ctx.mul_plain_calls
    assert c.levels == ct.level - y.level == 1
    # keys: every step evaluation used, and no key it never uses
    assert set(ctx.rotations) == set(plan.rotation_steps)
    assert np.abs(m.out_layout.unpack(ctx.decrypt(y)) - ref_conv(x, w, 1, 1) - b[:, None, None]).max() < CKKS_TOL


def test_emitted_program_runs_on_the_interpreter_like_evaluate():
    from cryptoface.program import ConstantTable, HEProgram, Section
    from cryptoface.runtime.interpreter import run_section

    rng = np.random.default_rng(9)
    lay = Layout.multiplexed(8, 4, 4, 512, 1)
    w, b = rng.uniform(-1, 1, (16, 8, 3, 3)), rng.uniform(-1, 1, 16)
    x = rng.uniform(-1, 1, (8, 4, 4))
    m = conv2d_map(lay, w, b, 2, 1)
    plan = plan_linear_transform(m)
    section, constants = Section("conv", ("x",), ()), ConstantTable()
    out = plan.emit(section, constants, "x", "conv0")
    section.outputs = (out,)
    ctx = simulator(512, plan.rotation_steps)
    program = HEProgram(ctx.params, list(plan.rotation_steps), False, [section], constants, {}, {})
    counts = section.counts()
    c = plan.counts
    assert counts["rotate_many"] + counts["rotate"] == c.rotations and counts["mul_plain"] == c.plaintext_mults
    assert counts["add"] == c.additions and counts["rescale"] == 1
    ct = ctx.encrypt(lay.pack(x))
    y = run_section(ctx, program, section, {"x": ct})[out]
    assert y.level == ct.level - 1
    assert np.abs(m.out_layout.unpack(ctx.decrypt(y)) - ref_conv(x, w, 2, 1) - b[:, None, None]).max() < CKKS_TOL


# ---- counts against numpy and MPCNN -------------------------------------------------------
def numpy_diagonals(in_layout: Layout, out_layout: Layout, pairs_in: np.ndarray, pairs_out: np.ndarray, block_rows: int) -> int:
    """Distinct generalized diagonals (in_slot - out_slot mod block_rows) of a slot matrix
    whose non-zeros join tensor elements pairs_in[k] -> pairs_out[k] (flat indices)."""
    src = in_layout.slot_indices().reshape(-1)[pairs_in]
    dst = out_layout.slot_indices().reshape(-1)[pairs_out]
    return np.unique((src - dst) % block_rows).size


def conv_pairs(c_in, c_out, size, kernel, stride, pad):
    """(input element, output element) for every weight tap that lands inside the image."""
    ho = (size + 2 * pad - kernel) // stride + 1
    o, c, i, j, di, dj = np.meshgrid(*(np.arange(n) for n in (c_out, c_in, ho, ho, kernel, kernel)), indexing="ij")
    h, w = i * stride - pad + di, j * stride - pad + dj
    ok = (h >= 0) & (h < size) & (w >= 0) & (w < size)
    return ((c * size + h) * size + w)[ok], ((o * ho + i) * ho + j)[ok]


@pytest.fixture(scope="module")
def table32768():
    return pcnn_count_table(32768, layers=PATCH)


def test_diagonal_counts_equal_a_numpy_count(table32768):
    rng = np.random.default_rng(12)
    for spec, row in zip(CONVS, table32768):
        assert row["layer"] == spec.name
        m = conv2d_map(Layout.multiplexed(spec.c_in, spec.size, spec.size, 32768, spec.gap_in),
                       rng.uniform(0.5, 1, (spec.c_out, spec.c_in, spec.kernel, spec.kernel)), None, spec.stride, spec.pad)
        pin, pout = conv_pairs(spec.c_in, spec.c_out, spec.size, spec.kernel, spec.stride, spec.pad)
        assert row["diagonals"] == numpy_diagonals(m.in_layout, m.out_layout, pin, pout, row["block_rows"]), spec.name
    pool_row, linear_row = table32768[-2:]
    c, h, _ = PATCH.pool_in
    pool = avgpool_map(Layout.multiplexed(c, h, h, 32768, PATCH.pool_gap_in), PATCH.pool_kernel, PATCH.pool_kernel)
    k = PATCH.pool_kernel
    # an average pool is a depthwise conv with a k x k box
    pin, pout = conv_pairs(1, 1, h, k, k, 0)
    pin = (np.arange(c)[:, None] * h * h + pin).reshape(-1)
    pout = (np.arange(c)[:, None] * (h // k) ** 2 + pout).reshape(-1)
    assert pool_row["diagonals"] == numpy_diagonals(pool.in_layout, pool.out_layout, pin, pout, pool_row["block_rows"])
    f_out, f_in = PATCH.linear
    gemm = gemm_map(pool.out_layout, np.ones((f_out, f_in)))
    pin, pout = (a.reshape(-1) for a in np.meshgrid(np.arange(f_in), np.arange(f_out)))
    assert linear_row["diagonals"] == numpy_diagonals(gemm.in_layout, gemm.out_layout, pin, pout, linear_row["block_rows"])


# MPCNN's (rotations, ct×pt mults) at n = 32768, counted off the loops of CryptoFace's
# multiplexed_parallel_convolution_seal; 1276 / 1442 over the 13 convolutions.
MPCNN_REFERENCE = {
    "3x3 3->16": (28, 34), "3x3 16->16": (56, 88), "3x3 s2 16->32": (106, 176), "1x1 s2 16->32": (98, 48),
    "3x3 32->32": (82, 104), "3x3 s2 32->64": (158, 208), "1x1 s2 32->64": (150, 80), "3x3 64->64": (126, 136),
}


def test_mpcnn_formula_gives_the_counts_of_cryptoface_code():
    total = [0, 0]
    for s in CONVS:
        m = mpcnn_conv_counts(s.c_in, s.c_out, s.size, s.size, s.kernel, s.stride, 32768, s.gap_in)
        assert (m.rotations, m.plaintext_mults) == MPCNN_REFERENCE[s.name], s.name
        total[0] += s.repeat * m.rotations
        total[1] += s.repeat * m.plaintext_mults
    assert total == [1276, 1442]


@pytest.mark.parametrize("slots", [16384, 32768])
def test_rotations_per_layer_at_most_mpcnn(slots, table32768):
    table = table32768 if slots == 32768 else pcnn_count_table(slots, layers=PATCH)
    print()
    print(format_count_table(table, slots))
    for r in table:
        if r["mpcnn_rotations"] is not None:
            assert r["rotations"] <= r["mpcnn_rotations"], r["layer"]
            assert r["levels"] <= r["mpcnn_levels"]
