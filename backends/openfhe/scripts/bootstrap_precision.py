"""Measure OpenFHE's CKKS bootstrapping precision per scale, level budget and iteration count.

Prints a markdown table (the one in docs/backends/openfhe.md). Rings up to 2^15 with insecure
test parameters keep it to about two minutes; the precision drops 1 to 1.5 bits per doubling of
N, which the plugin's planning extrapolates to 2^16. Usage:

    OMP_NUM_THREADS=2 .venv/bin/python backends/openfhe/scripts/bootstrap_precision.py [N ...]
"""

from __future__ import annotations

import logging
import sys
import time
import warnings

import numpy as np

from cryptoface.backend import HEContext
from cryptoface.params import BootstrapConfig, CKKSParams
from cryptoface_openfhe import OpenFHEEngine

SLOTS = 2048
AFTER = 3  # levels kept after the bootstrap
CASES = [  # (scale_bits, first_mod_bits, level budget, iterations)
    (59, 60, (3, 3), 1), (59, 60, (3, 3), 2), (59, 60, (2, 2), 1), (59, 60, (2, 2), 2), (53, 60, (3, 3), 1),
]


def measure(ring_dim: int, scale_bits: int, first: int, budget: tuple[int, int], iterations: int) -> tuple[float, float]:
    depth = OpenFHEEngine.bootstrap_depth(budget) + iterations - 1
    params = CKKSParams(ring_dim=ring_dim, depth=depth + AFTER, scale_bits=scale_bits, first_mod_bits=first, slots=SLOTS,
                        bootstrap=BootstrapConfig(budget, depth, 1.0, iterations), insecure_test_params=True)
    ctx = HEContext.create(OpenFHEEngine, params)
    x = np.random.default_rng(0).uniform(-1, 1, SLOTS)
    ct = ctx.mod_switch_to(ctx.encrypt(x), 0)
    t = time.perf_counter()
    out = ctx.bootstrap(ct)
    seconds = time.perf_counter() - t
    return float(np.max(np.abs(ctx.decrypt(out) - x))), seconds


def main(rings: list[int]) -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)  # the insecure-parameter warning, once per case
    print(f"| N | scale / q0 | budget | iterations | max error | bits | seconds |  ({SLOTS} slots, uniform [-1, 1])")
    print("|---|---|---|---|---|---|---|")
    for n in rings:
        for sb, first, budget, it in CASES:
            err, secs = measure(n, sb, first, budget, it)
            print(f"| 2^{n.bit_length() - 1} | {sb} / {first} | {budget} | {it} | {err:.1e} | {-np.log2(err):.1f} | {secs:.1f} |", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [8192, 16384, 32768])
