"""Peak memory counts forked workers: a child that allocates 200 MB shows up in the figure."""

from __future__ import annotations

import json
import subprocess
import sys

# A fresh interpreter (small, so its own peak stays far below 200 MB) forks a pool worker, as
# the processes executor does, that fills 200 MB, then reports its peak memory figures.
PROBE = """
import json, multiprocessing as mp
import numpy as np
from cryptoface.runtime.memory import peak_memory

def fill(mb):
    block = np.ones(mb * 2**20 // 8)  # touched, so resident
    return float(block.sum())

with mp.get_context("fork").Pool(1) as pool:
    pool.map(fill, [200])
m = peak_memory()
print(json.dumps({"self": m.self_bytes, "children": m.children_bytes}))
"""


def test_a_forked_workers_allocation_is_in_the_children_figure():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    assert m["self"] < 150 * 2**20, m  # the parent never held the 200 MB
    assert m["children"] >= 200 * 2**20, m  # the worker did, and the figure sees it
