"""`cryptoface compile -o FILE` then `cryptoface infer FILE`: the second never loads the compiler.

The CLI runs in subprocesses; `infer` is run through a wrapper that prints which
`cryptoface.compile` modules were imported when the command ended.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

WRAPPER = r"""
import sys
from cryptoface.cli import app
code = 0
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("COMPILER MODULES", sorted(m for m in sys.modules if m.startswith("cryptoface.compile")))
sys.exit(code)
"""


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def program_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "small-simulator.cfp"
    proc = _cli("compile", "small", "-b", "simulator", "-o", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "program sha256" in proc.stdout and path.is_file()
    return path


def test_infer_runs_a_program_file_without_compiling(program_file):
    proc = _cli("infer", str(program_file), "--image", "orl:5", "--check", "--executor", "serial")
    assert proc.returncode == 0, proc.stderr
    assert "COMPILER MODULES []" in proc.stdout
    err = float(re.search(r"max abs error ([0-9.e+-]+)", proc.stdout).group(1))
    assert err < 1e-3  # the embedding's entries are of order 1 (see reference[:6] in the output)


def test_infer_refuses_a_program_file_for_another_backend(program_file):
    proc = _cli("infer", str(program_file), "-b", "tenseal")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "compiled for backend 'simulator', not 'tenseal'" in lines[0]


def test_infer_refuses_a_truncated_program_file(program_file, tmp_path):
    cut = tmp_path / "cut.cfp"
    cut.write_bytes(program_file.read_bytes()[:5000])
    proc = _cli("infer", str(cut))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in proc.stderr
