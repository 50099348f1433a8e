"""Small programs the conformance suite runs on every backend and checks against numpy."""

from __future__ import annotations

import numpy as np

from ..backend import Ciphertext, HEContext

# A degree-7 polynomial (close to a scaled tanh on [-1, 1]) used as the shared program.
POLY7 = np.array([0.02, 1.1, 0.03, -0.35, -0.01, 0.08, 0.004, -0.009])


def poly7_then_rotate_sum(ctx: HEContext, x: Ciphertext, width: int) -> Ciphertext:
    """p(x) in depth 3 from the powers x, x^2, x^4, then a rotate-and-sum over `width` slots.

    Uses every primitive the compiler emits: square, mul, rescale, mod_switch_to, mul_plain,
    add, add_plain, rotate.
    """
    lvl = x.level
    x2 = ctx.rescale(ctx.square(x))
    x3 = ctx.rescale(ctx.mul(x2, ctx.mod_switch_to(x, lvl - 1)))
    x4 = ctx.rescale(ctx.square(x2))
    low = ctx.mod_switch_to
    powers = {
        1: x,
        2: x2,
        3: x3,
        4: x4,
        5: ctx.rescale(ctx.mul(x4, low(x, lvl - 2))),
        6: ctx.rescale(ctx.mul(x4, low(x2, lvl - 2))),
        7: ctx.rescale(ctx.mul(x4, x3)),
    }
    top = lvl - 3
    terms = [ctx.rescale(ctx.mul_plain(low(p, top), np.full(ctx.slots, POLY7[k]))) for k, p in powers.items()]
    acc = terms[0]
    for t in terms[1:]:
        acc = ctx.add(acc, t)
    acc = ctx.add_plain(acc, np.full(ctx.slots, POLY7[0]))
    step = 1
    while step < width:
        acc = ctx.add(acc, ctx.rotate(acc, step))
        step *= 2
    return acc


def poly7_then_rotate_sum_reference(x: np.ndarray, width: int) -> np.ndarray:
    y = np.polynomial.polynomial.polyval(x, POLY7)
    out = y.copy()
    step = 1
    while step < width:
        out = out + np.roll(out, -step)
        step *= 2
    return out
