"""`cryptoface bench primitives`: median time of each CKKS primitive per backend and ring dim.

Figures are printed and written, never asserted: machines are noisy. Each backend runs at
128-bit parameters as deep as the HE standard allows at that ring dimension (capped), so
the table shows what a real plan would pay. Key and ciphertext sizes are the serialized
sizes of the objects a server would hold or receive.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from ..backend import HEContext
from ..params import HE_STD_128_MAX_LOG_QP, BootstrapConfig, CKKSParams
from ..plugins import get_plugins

DEFAULT_RING_DIMS = (8192, 16384, 32768, 65536)
MAX_BENCH_DEPTH = 24
BOOTSTRAP_SLOTS = 4096


@dataclass
class PrimitiveResult:
    backend: str
    ring_dim: int
    depth: int
    log_qp: int
    slots: int
    ms: dict[str, float] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    skipped: str = ""


def params_for(engine, ring_dim: int, scale_bits: int = 40) -> CKKSParams | None:
    """The deepest 128-bit chain at this ring dim (60-bit q0 and special prime) that the
    backend accepts: OpenFHE counts a larger key-switching modulus than one special prime."""
    bound = HE_STD_128_MAX_LOG_QP[ring_dim]
    for depth in range(min(MAX_BENCH_DEPTH, (bound - 120) // scale_bits), 0, -1):
        params = CKKSParams(ring_dim=ring_dim, depth=depth, scale_bits=scale_bits)
        if engine.refuses(params) is None:
            return params
    return None


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def bench_one(backend: str, ring_dim: int, repeats: int, bootstrap: bool, log: Callable[[str], None]) -> PrimitiveResult:
    engine = get_plugins().get(backend)
    caps = engine.capabilities()
    params = params_for(engine, ring_dim) if ring_dim in caps.max_log_qp_128 else None
    res = PrimitiveResult(backend, ring_dim, params.depth if params else 0, params.log_qp if params else 0, ring_dim // 2)
    if ring_dim not in caps.max_log_qp_128 or params is None or caps.max_log_qp_128[ring_dim] < params.log_qp:
        res.skipped = f"{backend} has no 128-bit parameters at N={ring_dim}"
        return res
    _time_ops(engine, params, repeats, res, log)  # returns with every key of it released
    if bootstrap and caps.bootstrapping and ring_dim >= 32768:
        res.ms.update(bench_bootstrap(engine, ring_dim, log))
    return res


def _bootstrap_isolated(backend: str, ring_dim: int, log: Callable[[str], None]) -> dict[str, float]:
    """The bootstrap keys (GBs at N=2^16) get a process of their own."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "cryptoface.bench.primitives", "--bootstrap", backend, str(ring_dim)],
                          capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if line.startswith("bench: "):
            log(line[7:])
    if proc.returncode != 0:
        log(f"bootstrap at N={ring_dim} on {backend} failed (exit {proc.returncode})")
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# OpenFHE refuses EvalBootstrap at N=2^16 with a 50-bit scale ("degree 10 > correction factor
# 8"); with q0 = 60 and a 59-bit scale it works (values then stay below 1 at level 0).
BOOT_SCALE_BITS = 59


def _time_ops(engine, params: CKKSParams, repeats: int, res: PrimitiveResult, log: Callable[[str], None]) -> None:
    backend, ring_dim = res.backend, res.ring_dim
    log(f"{backend} N={ring_dim} depth={params.depth}: keygen")
    t0 = time.perf_counter()
    ctx = HEContext.create(engine, params, [1, 2])
    res.ms["keygen (relin + 2 rotation keys)"] = 1000 * (time.perf_counter() - t0)
    one_key = HEContext.create(engine, params, [1]).public().serialize()
    res.bytes["evaluation context, 1 rotation key"] = len(one_key)
    res.bytes["evaluation context, 2 rotation keys"] = len(ctx.public().serialize())
    res.bytes["one rotation key (difference)"] = res.bytes["evaluation context, 2 rotation keys"] - len(one_key)
    x = np.random.default_rng(0).uniform(-1, 1, ctx.slots)
    a, b = ctx.encrypt(x), ctx.encrypt(x[::-1].copy())
    prod = ctx.mul(a, b)
    pt_mul = ctx.encode(x, a.level, ctx.engine.rescale_divisor(a.level))
    pt_add = ctx.encode(x, a.level, a.scale)
    res.bytes["ciphertext (fresh)"] = len(ctx.serialize_ciphertext(a))
    ops: dict[str, Callable[[], object]] = {
        "encrypt": lambda: ctx.encrypt(x),
        "decrypt": lambda: ctx.decrypt(a),
        "encode": lambda: ctx.encode(x, a.level),
        "add": lambda: ctx.add(a, b),
        "add_plain": lambda: ctx.add_plain(a, pt_add),
        "mul_plain": lambda: ctx.mul_plain(a, pt_mul),
        "mul (relinearized)": lambda: ctx.mul(a, b),
        "rescale": lambda: ctx.rescale(prod),
        "mul + rescale": lambda: ctx.rescale(ctx.mul(a, b)),
        "rotate": lambda: ctx.rotate(a, 1),
        "rotate x2 hoisted": lambda: ctx.rotate_many(a, [1, 2]),
        "mod_switch (1 level)": lambda: ctx.mod_switch_to(a, a.level - 1),
        "serialize ciphertext": lambda: ctx.serialize_ciphertext(a),
    }
    for name, fn in ops.items():
        res.ms[name] = _median_ms(fn, repeats)
    log(f"{backend} N={ring_dim}: rotate {res.ms['rotate']:.1f} ms, mul+rescale {res.ms['mul + rescale']:.1f} ms")


def bench_bootstrap(engine, ring_dim: int, log: Callable[[str], None]) -> dict[str, float]:
    """One bootstrap of BOOTSTRAP_SLOTS sparse slots at 128-bit, if the chain fits."""
    budget = (3, 3)
    probe = CKKSParams(ring_dim=ring_dim, depth=2, scale_bits=BOOT_SCALE_BITS)
    boot_depth = engine.bootstrap_depth(budget, probe)
    params = None
    for extra in range(4, 1, -1):  # a few levels after the bootstrap (its keys grow with the chain)
        cand = CKKSParams(
            ring_dim=ring_dim, depth=boot_depth + extra, scale_bits=BOOT_SCALE_BITS, first_mod_bits=60,
            slots=BOOTSTRAP_SLOTS, bootstrap=BootstrapConfig(level_budget=budget, depth=boot_depth),
        )
        if cand.security_bits() >= 128 and engine.refuses(cand) is None:
            params = cand
            break
    if params is None:
        log(f"bootstrap at N={ring_dim} skipped: no 128-bit chain holds the bootstrap and 2 more levels")
        return {}
    log(f"{engine.name} N={ring_dim}: bootstrap keygen ({BOOTSTRAP_SLOTS} slots, depth {params.depth})")
    t0 = time.perf_counter()
    ctx = HEContext.create(engine, params, [1])
    keygen = 1000 * (time.perf_counter() - t0)
    ct = ctx.mod_switch_to(ctx.encrypt(np.linspace(-0.9, 0.9, params.slots)), 0)
    t0 = time.perf_counter()
    try:
        ctx.bootstrap(ct)
    except RuntimeError as exc:  # a library refusal is a figure to report, not a crash
        log(f"bootstrap at N={ring_dim} failed in {engine.name}: {exc}")
        return {}
    took = 1000 * (time.perf_counter() - t0)
    log(f"{engine.name} N={ring_dim}: bootstrap {took / 1000:.1f} s")
    return {f"bootstrap keygen ({BOOTSTRAP_SLOTS} slots)": keygen, f"bootstrap ({BOOTSTRAP_SLOTS} slots)": took}


def to_markdown(results: list[PrimitiveResult], command: str) -> str:
    lines = [f"Command: `{command}`", ""]
    ops = []
    for r in results:
        for k in r.ms:
            if k not in ops:
                ops.append(k)
    done = [r for r in results if not r.skipped]
    lines.append("| op (median ms) | " + " | ".join(f"{r.backend} N=2^{r.ring_dim.bit_length() - 1}" for r in done) + " |")
    lines.append("|---|" + "---|" * len(done))
    for op in ops:
        lines.append(f"| {op} | " + " | ".join(f"{r.ms[op]:.2f}" if op in r.ms else "–" for r in done) + " |")
    sizes = []
    for r in done:
        for k in r.bytes:
            if k not in sizes:
                sizes.append(k)
    for k in sizes:
        lines.append(f"| {k} (MB) | " + " | ".join(f"{r.bytes[k] / 1e6:.2f}" if k in r.bytes else "–" for r in done) + " |")
    lines.append("| depth / log QP | " + " | ".join(f"{r.depth} / {r.log_qp}" for r in done) + " |")
    skipped = [r for r in results if r.skipped]
    if skipped:
        lines += ["", "Not measured: " + "; ".join(r.skipped for r in skipped) + "."]
    return "\n".join(lines) + "\n"


def to_json(results: list[PrimitiveResult]) -> list[dict]:
    return [asdict(r) for r in results]


def bench_one_isolated(backend: str, ring_dim: int, repeats: int, bootstrap: bool, log: Callable[[str], None]) -> PrimitiveResult:
    """bench_one in a fresh interpreter: libraries keep keys in process-wide caches (OpenFHE),
    so one process per configuration keeps each measurement's memory its own."""
    import json
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "cryptoface.bench.primitives", backend, str(ring_dim), str(repeats), "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stderr.splitlines():
        if line.startswith("bench: "):
            log(line[7:])
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
        return PrimitiveResult(backend, ring_dim, 0, 0, ring_dim // 2, skipped=f"{backend} at N={ring_dim} failed (exit {proc.returncode}): {tail}")
    res = PrimitiveResult(**json.loads(proc.stdout.strip().splitlines()[-1]))
    # The bootstrap keys (GBs at N=2^16) get a process of their own, started from here, so
    # that no other measurement's keys share the machine's memory with them.
    if bootstrap and not res.skipped and ring_dim >= 32768 and get_plugins().get(backend).capabilities().bootstrapping:
        res.ms.update(_bootstrap_isolated(backend, ring_dim, log))
    return res


if __name__ == "__main__":
    import json
    import sys

    say = lambda m: print(f"bench: {m}", file=sys.stderr, flush=True)  # noqa: E731
    if sys.argv[1] == "--bootstrap":
        print(json.dumps(bench_bootstrap(get_plugins().get(sys.argv[2]), int(sys.argv[3]), say)))
    else:
        b, n, r, boot = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), bool(int(sys.argv[4]))
        print(json.dumps(asdict(bench_one(b, n, r, boot, say))))
