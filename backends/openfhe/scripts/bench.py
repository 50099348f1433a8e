"""Single-threaded OpenFHE primitive timings and key sizes through the cryptoface engine.

Run with OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive python bench.py [ring_dim ...]. Bootstrap rows
use 8 slots and insecure parameters where 128-bit would need a larger ring: the time depends on
N, slots and budget, not on the security label.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from cryptoface.backend import HEContext
from cryptoface.params import BootstrapConfig, CKKSParams
from cryptoface_openfhe import OpenFHEEngine, _unseal


def median_ms(fn, reps: int) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1000 * statistics.median(ts)


def leveled(n: int, depth: int, fm: int, insecure: bool = False) -> None:
    p = CKKSParams(ring_dim=n, depth=depth, scale_bits=40, first_mod_bits=fm, slots=n // 2, insecure_test_params=insecure)
    c = HEContext.create(OpenFHEEngine, p, [1])
    x = np.random.default_rng(0).uniform(-1, 1, p.slots)
    a, b = c.encrypt(x), c.encrypt(x)
    reps = 10 if n <= 16384 else 5
    parts = {k: len(v) for k, v in _unseal(c.public().engine.serialize()).items()}
    print(
        f"| {n} | {depth} | {c.engine.num_large_digits} | {c.engine.cc.GetRingDimension()} "
        f"| {median_ms(lambda: c.rotate(a, 1), reps):.1f} "
        f"| {median_ms(lambda: c.rescale(c.mul(a, b)), reps):.1f} "
        f"| {median_ms(lambda: c.mul_plain(a, x), reps):.1f} "
        f"| {parts['mult'] / 2**20:.1f} | {parts['auto'] / 2**20:.1f} "
        f"| {len(c.serialize_ciphertext(a)) / 2**20:.2f} |",
        flush=True,
    )


def boot(n: int, budget: tuple[int, int], slots: int = 8) -> None:
    bd = OpenFHEEngine.bootstrap_depth(budget, None)
    p = CKKSParams(ring_dim=n, depth=bd + 3, scale_bits=50, first_mod_bits=60, slots=slots,
                   bootstrap=BootstrapConfig(budget, bd), insecure_test_params=True)
    t = time.perf_counter()
    c = HEContext.create(OpenFHEEngine, p, [1])
    keygen = time.perf_counter() - t
    v = np.random.default_rng(0).uniform(-0.9, 0.9, slots)
    ct = c.mod_switch_to(c.encrypt(v), 0)
    t = time.perf_counter()
    out = c.bootstrap(ct)
    secs = time.perf_counter() - t
    err = float(np.max(np.abs(c.decrypt(out) - v)))
    auto = len(_unseal(c.public().engine.serialize())["auto"])
    print(f"| {n} | {slots} | {budget} | {bd} | {keygen:.1f} | {secs:.2f} | {err:.1e} | {auto / 2**20:.0f} |", flush=True)


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what in ("all", "leveled"):
        print("| N | depth | dnum | N used | rotate ms | mul+relin+rescale ms | mul_plain ms | relin key MB | 1 rot key MB | ct MB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        leveled(4096, 3, 50, insecure=True)
        leveled(16384, 7, 50)
        leveled(32768, 16, 50)
    if what in ("all", "boot"):
        print("| N | slots | budget | boot depth | keygen s | bootstrap s | max err | boot keys MB |")
        print("|---|---|---|---|---|---|---|---|")
        boot(4096, (2, 2))
        boot(16384, (2, 2))
        if len(sys.argv) > 2:
            boot(32768, (3, 3))
