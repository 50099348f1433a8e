"""Peak memory counts forked workers: a child that allocates 200 MB shows up in the figure."""

from __future__ import annotations

import json
import subprocess
import sys

# A fresh interpreter forks a pool worker, as the processes executor does, that fills MB
# megabytes, then reports its peak memory figures. (Linux carries the launching process's peak
# into the interpreter's own figure across exec, so runs are compared with a 0 MB baseline.)
PROBE = """
import json, multiprocessing as mp
import numpy as np
from cryptoface.runtime.memory import peak_memory

def fill(mb):
    block = np.ones(mb * 2**20 // 8)  # touched, so resident
    return float(block.sum())

with mp.get_context("fork").Pool(1) as pool:
    pool.map(fill, [MB])
m = peak_memory()
print(json.dumps({"self": m.self_bytes, "children": m.children_bytes}))
"""


def probe(mb: int) -> dict[str, int]:
    code = f"MB = {mb}\n" + PROBE
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_forked_workers_allocation_is_in_the_children_figure():
    base, filled = probe(0), probe(200)
    assert filled["children"] - base["children"] >= 190 * 2**20, (base, filled)  # the worker's 200 MB show
    assert filled["self"] - base["self"] < 50 * 2**20, (base, filled)  # the parent never held them
