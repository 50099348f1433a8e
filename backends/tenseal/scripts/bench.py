"""Single-threaded medians of the TenSEAL primitives a plan pays for, and Galois key sizes.

    python backends/tenseal/scripts/bench.py [--ring-dims 8192,16384,32768] [--repeats 7]

Parameters are the core benchmark's (`cryptoface.bench.primitives.params_for`: the deepest
128-bit chain, 40-bit primes), so the figures line up with `cryptoface bench primitives`.
Sizes: "seeded" is what the client sends (SEAL replaces the random half by its seed),
"expanded" what a server holds in memory and re-serializes (both zstd-compressed by SEAL).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from cryptoface.backend import HEContext
from cryptoface.bench.primitives import params_for
from cryptoface_tenseal import TenSEALEngine


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ring-dims", default="8192,16384,32768")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    print("| N | depth | encrypt | decrypt | rotate | mul+relin+rescale | mul_plain+rescale | Galois key seeded MB | expanded MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in (int(d) for d in args.ring_dims.split(",")):
        params = params_for(n)
        one = HEContext.create(TenSEALEngine, params, [1])
        two = HEContext.create(TenSEALEngine, params, [1, 2])
        seeded = len(two.public().serialize()) - len(one.public().serialize())
        server1 = HEContext.deserialize(one.public().serialize(), TenSEALEngine)
        server2 = HEContext.deserialize(two.public().serialize(), TenSEALEngine)
        expanded = len(server2.serialize()) - len(server1.serialize())
        del one, server1, server2
        ctx = two
        x = np.random.default_rng(0).uniform(-1, 1, ctx.slots)
        a, b = ctx.encrypt(x), ctx.encrypt(x[::-1].copy())
        pt = ctx.encode(x, a.level, ctx.engine.rescale_divisor(a.level))
        r = args.repeats
        row = [
            median_ms(lambda: ctx.encrypt(x), r),
            median_ms(lambda: ctx.decrypt(a), r),
            median_ms(lambda: ctx.rotate(a, 1), r),
            median_ms(lambda: ctx.rescale(ctx.mul(a, b)), r),
            median_ms(lambda: ctx.rescale(ctx.mul_plain(a, pt)), r),
        ]
        cells = " | ".join(f"{v:.2f}" for v in row)
        print(f"| 2^{n.bit_length() - 1} | {params.depth} | {cells} | {seeded / 2**20:.1f} | {expanded / 2**20:.1f} |", flush=True)


if __name__ == "__main__":
    main()
