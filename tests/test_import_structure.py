"""Layering, checked in a fresh interpreter: what a module must not pull in when imported.

- the runtime and the program format never import the compiler (a server runs a program
  file without it);
- the simulator is a plugin that does not import the plugin manager that loads it (no
  `plugins` <-> `simulator` cycle: both take the pluggy markers from `hooks`).
"""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module, forbidden", [
    ("cryptoface.runtime.executors", "cryptoface.compile"),
    ("cryptoface.runtime.interpreter", "cryptoface.compile"),
    ("cryptoface.runtime.onnx_runner", "cryptoface.compile"),
    ("cryptoface.program", "cryptoface.compile"),
    ("cryptoface.simulator", "cryptoface.plugins"),
])
def test_import_does_not_pull_in(module, forbidden):
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m == {forbidden!r} or m.startswith({forbidden + '.'!r})))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", f"importing {module} imported {proc.stdout.strip()}"
