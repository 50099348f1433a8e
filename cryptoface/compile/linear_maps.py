"""Linear layers as sparse slot matrices: y = M·x + bias between two layouts of one ciphertext.

Every linear layer (conv, avgpool, global avgpool, Gemm) becomes one sparse matrix M from
the input layout's slots to the output layout's slots (`LinearMap`, COO arrays built with
numpy broadcasting, never by probing basis vectors). Zero padding is simply missing
entries; stride 2 writes straight into the gap-doubled output layout; Flatten is just the
column map. This is Orion's Toeplitz construction (docs/packing.md). How M is evaluated
under encryption is `linear_transform.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..program.layout import Layout, LayoutError


@dataclass(frozen=True, eq=False)
class LinearMap:
    """y = M·x + bias between two layouts of one ciphertext; M in COO form.

    `rows`/`cols` are slots of the output/input layout (no duplicate pairs), `bias` is a
    slot vector in the output layout (one copy, zeros elsewhere) or None.
    """

    in_layout: Layout
    out_layout: Layout
    rows: np.ndarray = field(repr=False)
    cols: np.ndarray = field(repr=False)
    values: np.ndarray = field(repr=False)
    bias: np.ndarray | None = field(default=None, repr=False)
    name: str = ""

    def __post_init__(self) -> None:
        if self.in_layout.slots != self.out_layout.slots:
            raise LayoutError(f"input and output layouts have {self.in_layout.slots} and {self.out_layout.slots} slots")

    @property
    def slots(self) -> int:
        return self.in_layout.slots

    @property
    def nnz(self) -> int:
        return int(self.values.size)

    def apply(self, vec: np.ndarray) -> np.ndarray:
        """M·vec + bias in the clear: the reference the encrypted evaluation must match."""
        y = np.bincount(self.rows, weights=self.values * np.asarray(vec)[self.cols], minlength=self.slots)
        return y + self.bias if self.bias is not None else y

    def apply_tensor(self, tensor: np.ndarray) -> np.ndarray:
        return self.out_layout.unpack(self.apply(self.in_layout.pack(tensor)))


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = (int(x) for x in v)
    return a, b


def _pads(pads: int | Sequence[int]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), from an int, (ph, pw), or ONNX's 4-tuple in that order."""
    if isinstance(pads, (int, np.integer)):
        return (int(pads),) * 4
    p = tuple(int(x) for x in pads)
    if len(p) == 2:
        return p[0], p[1], p[0], p[1]
    if len(p) == 4:
        return p  # type: ignore[return-value]
    raise LayoutError(f"pads must be an int, (ph, pw) or (top, left, bottom, right); got {pads}")


def _bias_vector(out_layout: Layout, bias: np.ndarray | None) -> np.ndarray | None:
    if bias is None:
        return None
    return out_layout.channel_vector(bias)


def default_output_layout(in_layout: Layout, channels: int, height: int, width: int, stride: int) -> Layout:
    """The gap-multiplied layout (dense slots after a stride); a smaller gap if it won't fit."""
    gap = in_layout.gap * stride
    while True:
        try:
            return Layout.multiplexed(channels, height, width, in_layout.slots, gap)
        except LayoutError:
            if gap == 1:
                raise
            gap //= 2


def conv2d_map(
    in_layout: Layout,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | Sequence[int] = 1,
    pads: int | Sequence[int] = 0,
    groups: int = 1,
    out_layout: Layout | None = None,
    name: str = "conv",
) -> LinearMap:
    """The slot matrix of a 2-D convolution, weight (Co, Ci/groups, kh, kw), zero padding.

    The output layout defaults to the input gap times the stride, so a stride-2 conv writes
    straight into the gap-doubled layout. Zero weights give no entries.
    """
    w = np.asarray(weight, dtype=np.float64)
    if in_layout.is_flat or w.ndim != 4:
        raise LayoutError("conv2d_map needs a (C, H, W) input layout and a 4-D weight")
    c_in, h, wd = in_layout.shape
    c_out, cig, kh, kw = w.shape
    if c_in != cig * groups or c_out % groups:
        raise LayoutError(f"weight {w.shape} with groups={groups} does not fit {c_in} input channels")
    sh, sw = _pair(stride)
    pt, pl, pb, pr = _pads(pads)
    ho, wo = (h + pt + pb - kh) // sh + 1, (wd + pl + pr - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise LayoutError(f"kernel {kh}x{kw} larger than the padded {h}x{wd} input")
    if out_layout is None:
        out_layout = default_output_layout(in_layout, c_out, ho, wo, sh if sh == sw else 1)
    if out_layout.shape != (c_out, ho, wo):
        raise LayoutError(f"output layout shape {out_layout.shape} != conv output {(c_out, ho, wo)}")
    in_idx, out_idx = in_layout.slot_indices(), out_layout.slot_indices()
    cog = c_out // groups
    # Input channel of (co, j): the j-th channel of co's group.
    ci_of = (np.arange(c_out)[:, None] // cog) * cig + np.arange(cig)[None, :]
    rows, cols, vals = [], [], []
    for dy in range(kh):
        yi = np.arange(ho) * sh + dy - pt
        yok = (yi >= 0) & (yi < h)
        for dx in range(kw):
            xi = np.arange(wo) * sw + dx - pl
            xok = (xi >= 0) & (xi < wd)
            yo_v, xo_v = np.nonzero(yok[:, None] & xok[None, :])
            if yo_v.size == 0:
                continue
            out_sl = out_idx[:, yo_v, xo_v]  # (Co, P)
            in_sl = in_idx[:, yi[yo_v], xi[xo_v]]  # (Ci, P)
            tap = w[:, :, dy, dx]  # (Co, cig)
            keep = tap != 0
            co, j = np.nonzero(keep)
            rows.append(np.broadcast_to(out_sl[co], (co.size, yo_v.size)).reshape(-1))
            cols.append(in_sl[ci_of[co, j]].reshape(-1))
            vals.append(np.repeat(tap[co, j], yo_v.size))
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt)) if rows else (lambda xs, dt: np.zeros(0, dt))
    return LinearMap(
        in_layout, out_layout, cat(rows, np.int64), cat(cols, np.int64), cat(vals, np.float64),
        _bias_vector(out_layout, bias), name,
    )


def avgpool_map(
    in_layout: Layout,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    pads: int | Sequence[int] = 0,
    count_include_pad: bool = False,
    out_layout: Layout | None = None,
    name: str = "avgpool",
) -> LinearMap:
    """AveragePool as a depthwise conv of ones, divided per output by its tap count
    (ONNX's default count_include_pad=0 divides by the taps inside the image)."""
    kh, kw = _pair(kernel)
    c = in_layout.shape[0]
    stride = (kh, kw) if stride is None else stride
    ones = np.ones((c, 1, kh, kw))
    m = conv2d_map(in_layout, ones, None, stride, pads, groups=c, out_layout=out_layout, name=name)
    if count_include_pad:
        vals = m.values / (kh * kw)
    else:
        vals = m.values / np.bincount(m.rows, minlength=m.slots)[m.rows]
    return LinearMap(m.in_layout, m.out_layout, m.rows, m.cols, vals, None, name)


def global_avgpool_map(in_layout: Layout, out_layout: Layout | None = None, name: str = "global_avgpool") -> LinearMap:
    """GlobalAveragePool: channel means, by default into a flat (C,) layout."""
    c, h, w = in_layout.shape
    out_layout = Layout.flat(c, in_layout.slots) if out_layout is None else out_layout
    if out_layout.numel != c:
        raise LayoutError(f"output layout {out_layout.shape} does not hold {c} channel means")
    in_idx = in_layout.slot_indices()
    rows = np.repeat(out_layout.slot_indices().reshape(-1), h * w)
    return LinearMap(in_layout, out_layout, rows, in_idx.reshape(-1).copy(), np.full(rows.size, 1.0 / (h * w)), None, name)


def gemm_map(
    in_layout: Layout,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    out_layout: Layout | None = None,
    name: str = "gemm",
) -> LinearMap:
    """y = W·flatten(x) + b for x in any layout (Flatten is free: it is the column map);
    weight (F_out, F_in) with F_in = numel of the input, output flat by default."""
    w = np.asarray(weight, dtype=np.float64)
    f_out, f_in = w.shape
    if f_in != in_layout.numel:
        raise LayoutError(f"Gemm weight takes {f_in} features, the input has {in_layout.numel}")
    out_layout = Layout.flat(f_out, in_layout.slots) if out_layout is None else out_layout
    if out_layout.numel != f_out:
        raise LayoutError(f"output layout {out_layout.shape} does not hold {f_out} features")
    r, c = np.nonzero(w)
    rows = out_layout.slot_indices().reshape(-1)[r]
    cols = in_layout.slot_indices().reshape(-1)[c]
    b = None if bias is None else np.asarray(bias, dtype=np.float64).reshape(out_layout.shape)
    return LinearMap(in_layout, out_layout, rows, cols, w[r, c], None if b is None else out_layout.pack(b), name)
