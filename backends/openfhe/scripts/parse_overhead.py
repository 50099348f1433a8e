"""Time a server's ciphertext load with and without the parse worker (one JSON line).

    OMP_NUM_THREADS=1 python backends/openfhe/scripts/parse_overhead.py [--ring-dim 16384] [--repeat 30]

Loads one fresh ciphertext (the conformance parameters: N=2^14, 7 levels + q0) repeatedly
through `HEContext.deserialize_ciphertext` (MAC, header, worker check, in-process parse) and
through the in-process parse alone; the difference is what the crash isolation costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

from cryptoface import wire
from cryptoface.backend import HEContext
from cryptoface.testing.conftest import PARAMS, STEPS
from cryptoface_openfhe import OpenFHEEngine


def _median_seconds(fn, repeat: int) -> float:
    fn()  # warm: starts the worker
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ring-dim", type=int, default=PARAMS.ring_dim)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    params = replace(PARAMS, ring_dim=args.ring_dim)
    client = HEContext.create(OpenFHEEngine, params, STEPS[:1])
    server = HEContext.deserialize_public(client.public().serialize(), OpenFHEEngine, mac_key=client.mac_key)
    blob = client.serialize_ciphertext(client.encrypt([0.5] * params.slots))
    payload = wire.unseal(blob, "ciphertext", client.mac_key)[1]
    full = _median_seconds(lambda: server.deserialize_ciphertext(blob), args.repeat)
    bare = _median_seconds(lambda: server.engine.deserialize_ciphertext(payload), args.repeat)
    worker = _median_seconds(lambda: server.engine.check_untrusted_ciphertext(payload), args.repeat)
    print(json.dumps({"ring_dim": params.ring_dim, "levels": params.depth, "ciphertext_bytes": len(blob),
                      "load_ms": round(1e3 * full, 1), "in_process_parse_ms": round(1e3 * bare, 1),
                      "worker_check_ms": round(1e3 * worker, 1), "repeat": args.repeat}))


if __name__ == "__main__":
    main()
