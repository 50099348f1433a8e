"""Every error a user can cause, through the real command line: exit code 2, one line on
stderr that names the problem, no traceback.

Each case runs `python -m cryptoface.cli` in a fresh working directory (so no stray
cryptoface.toml applies) and stops before any encryption, so the walk takes seconds.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from cryptoface.data import load_orl
from cryptoface.models import MODELS_DIR


def _npy_header_only(path: Path, shape: tuple[int, ...]) -> None:
    """An .npy file whose header claims `shape` of uint8 but that holds no data."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": shape})


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height RGB pixels but that holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b""))


def _copy_small(tmp: Path, sidecar: str | None) -> str:
    shutil.copy(MODELS_DIR / "small.onnx", tmp / "m.onnx")
    if sidecar is not None:
        (tmp / "m.json").write_text(sidecar)
    return "m.onnx"


# (case id, files to write into the working directory, CLI arguments, fragment the one line must hold)
def _cases(tmp: Path) -> list[tuple[str, list[str], str]]:
    face = load_orl()[0][0]
    np.save(tmp / "bright.npy", face.astype(np.float64) * 2000 / 255)
    np.save(tmp / "words.npy", np.array(["a", "b"]))
    np.save(tmp / "bool.npy", face > 100)
    np.save(tmp / "truncated.npy", face)
    (tmp / "truncated.npy").write_bytes((tmp / "truncated.npy").read_bytes()[:500])
    _npy_header_only(tmp / "huge.npy", (1_000_000, 1_000_000))
    (tmp / "notes.onnx").write_text("this is a text file, not a model\n")
    (tmp / "face.png").write_text("not a png\n")
    _png_header_only(tmp / "huge.png", 6000, 6000)
    (tmp / "bad.toml").write_text("backend = \n")
    sim = ["-b", "simulator"]
    return [
        ("orl-not-a-number", ["infer", "small", *sim, "--image", "orl:abc"], "ORL face index must be an integer"),
        ("orl-too-large", ["infer", "small", *sim, "--image", "orl:100000"], "ORL face index 100000 is out of range"),
        ("orl-negative", ["infer", "small", *sim, "--image", "orl:-1"], "ORL face index -1 is out of range"),
        ("npy-missing", ["infer", "small", *sim, "--image", "missing.npy"], "missing.npy does not exist"),
        ("npy-huge-header", ["infer", "small", *sim, "--image", "huge.npy"], "claims shape (1000000, 1000000)"),
        ("npy-truncated", ["infer", "small", *sim, "--image", "truncated.npy"], "is not a readable .npy array"),
        ("npy-strings", ["infer", "small", *sim, "--image", "words.npy"], "not numbers"),
        ("npy-bool", ["infer", "small", *sim, "--image", "bool.npy"], "holds dtype bool, not numbers"),
        ("pixels-out-of-range", ["infer", "small", *sim, "--image", "bright.npy"], "outside the 0..255 the model was calibrated for"),
        ("photo-not-an-image", ["infer", "small", *sim, "--image", "face.png"], "is not an image pillow can read"),
        ("photo-huge-header", ["infer", "small", *sim, "--image", "huge.png"], "huge.png is 6000x6000 pixels"),
        ("photo-missing", ["infer", "small", *sim, "--image", "nobody.png"], "nobody.png does not exist"),
        ("onnx-is-text", ["infer", "notes.onnx", *sim], "notes.onnx is not an ONNX model"),
        ("onnx-missing", ["infer", "absent.onnx", *sim], "absent.onnx does not exist"),
        ("model-unknown", ["infer", "nosuchmodel", *sim], "unknown model 'nosuchmodel'"),
        ("model-name-missing", ["infer", *sim], "Missing argument 'model'"),
        ("backend-unknown", ["plan", "small", "-b", "nope"], "unknown backend 'nope'"),
        ("executor-unknown", ["infer", "small", *sim, "--executor", "bogus"], "unknown executor 'bogus'"),
        ("demo-face-out-of-range", ["demo", *sim, "--face", "1000"], "ORL face index 1000 is out of range"),
        ("bench-backend-unknown", ["bench", "inference", "-b", "nope"], "unknown backend 'nope'"),
        ("bench-ring-dims-not-numbers", ["bench", "primitives", *sim, "--ring-dims", "abc"], "--ring-dims must be"),
        ("option-unknown", ["plan", "small", *sim, "--bogus"], "No such option: --bogus"),
        ("config-missing", ["config", "--config", "nowhere.toml"], "nowhere.toml does not exist"),
        ("config-not-toml", ["config", "--config", "bad.toml"], "is not valid TOML"),
    ]


# TOML files placed as ./cryptoface.toml (found implicitly) and the fragment of the refusal.
TOML_CASES = [
    ("toml-cryptoface-not-a-table", 'cryptoface = "x"\n', "`cryptoface` in"),
    ("toml-threads-bool", "threads = true\n", "threads must be a positive integer, got True"),
    ("toml-threads-zero", "[cryptoface]\nthreads = 0\n", "threads must be a positive integer, got 0"),
    ("toml-unknown-key", "thread = 2\n", "unknown key(s) thread"),
    ("toml-unknown-key-beside-section", '[cryptoface]\nbackend = "simulator"\n[other]\nx = 1\n', "unknown key(s) other beside [cryptoface]"),
    ("toml-backend-not-a-name", "backend = 3\n", "backend must be a backend name"),
    ("toml-insecure-not-bool", '[cryptoface]\ninsecure_test_params = "yes"\n', "insecure_test_params must be true or false"),
    ("toml-insecure-implicit", "insecure_test_params = true\n", "never taken from a file found implicitly"),
]

# Sidecars beside a copy of small.onnx, and the fragment of the refusal.
SIDECAR_CASES = [
    ("sidecar-not-json", "{broken", "model sidecar"),
    ("sidecar-not-an-object", "[1, 2]", "must hold a JSON object"),
    ("sidecar-bad-input-size", json.dumps({"input_size": "32"}), "input_size must be a positive integer"),
    ("sidecar-bad-normalization", json.dumps({"normalization": {"scale": 0, "mean": 0.5, "std": 0.5}}), "normalization must give numbers"),
]


def _run(cwd: Path, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptoface.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _assert_one_clear_line(proc: subprocess.CompletedProcess, fragment: str) -> None:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]


def test_every_user_error_is_one_clear_line(tmp_path) -> None:
    failures = []
    for case, args, fragment in _cases(tmp_path):
        try:
            _assert_one_clear_line(_run(tmp_path, args), fragment)
        except AssertionError as exc:
            failures.append(f"{case}: {exc}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("case,toml,fragment", TOML_CASES, ids=[c[0] for c in TOML_CASES])
def test_bad_config_file_is_one_clear_line(tmp_path, case, toml, fragment) -> None:
    (tmp_path / "cryptoface.toml").write_text(toml)
    _assert_one_clear_line(_run(tmp_path, ["config", "-b", "simulator"]), fragment)


@pytest.mark.parametrize("case,sidecar,fragment", SIDECAR_CASES, ids=[c[0] for c in SIDECAR_CASES])
def test_bad_sidecar_is_one_clear_line(tmp_path, case, sidecar, fragment) -> None:
    model = _copy_small(tmp_path, sidecar)
    _assert_one_clear_line(_run(tmp_path, ["infer", model, "-b", "simulator"]), fragment)


def test_a_real_png_face_is_read_like_the_array(tmp_path) -> None:
    """pillow is installed with cryptoface: a PNG of an ORL face gives the same input as the array."""
    from PIL import Image

    from cryptoface.models import load_bundle
    from cryptoface.preprocess import load_image

    face = load_orl()[0][7]
    Image.fromarray(face).save(tmp_path / "face.png")
    rgb = load_image(str(tmp_path / "face.png"))
    assert rgb.shape == (*face.shape, 3) and rgb.dtype == np.uint8
    bundle = load_bundle("small")
    np.testing.assert_allclose(bundle.preprocess(rgb), bundle.preprocess(face), atol=1e-12)


def test_accepted_input_range_is_the_calibrated_one() -> None:
    """Pixels 0..255 (1% margin) pass and give inputs within -1..1; just past the margin is refused."""
    from cryptoface.errors import InvalidInputError
    from cryptoface.models import load_bundle

    bundle = load_bundle("small")
    assert bundle.input_range == pytest.approx((-1.0, 1.0))
    face = load_orl()[0][3].astype(np.float64)
    x = bundle.preprocess(face)
    assert x.min() >= -1.0 and x.max() <= 1.0
    bundle.preprocess(np.clip(face + 2.5, 0, None))  # within the 2.55-pixel margin
    with pytest.raises(InvalidInputError, match="outside the 0..255"):
        bundle.preprocess(face + 3.0 * (face == face.max()))
    with pytest.raises(InvalidInputError, match="outside the 0..255"):
        bundle.preprocess(face - 3.0 * (face == face.min()) - face.min())
    with pytest.raises(InvalidInputError, match="outside the -1..1"):
        bundle.check_input(np.full((1, 3, 32, 32), 1.05))
    with pytest.raises(InvalidInputError, match="must be numbers"):
        bundle.preprocess(face.astype(np.complex128))
