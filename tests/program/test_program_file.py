"""Compile once, ship the program: a program file runs where the compiler never loads.

The round trip compiles the shipped `small` model, saves it, and runs encrypted inference
from the file in a fresh interpreter that must never import `cryptoface.compile`; the
result must match the numpy reference of the model within 1e-3 relative. The error tests
give the loader files for another backend, another model, a newer format, truncated and
edited files: each is one clear `CryptofaceError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cryptoface.compile.pipeline import CompileOptions, compile_model
from cryptoface.errors import ConfigError, ProgramMismatchError, SerializationError
from cryptoface.models import load_bundle
from cryptoface.plugins import get_plugins
from cryptoface.program import FORMAT_VERSION, HEProgram, load_program

RTOL = 1e-3  # relative to the largest |reference| value

# The server and client side of the protocol, from the program file alone.
CHILD = r"""
import json, sys
import numpy as np
from cryptoface.plugins import get_plugins
from cryptoface.program import HEProgram
from cryptoface.runtime.executors import run_program

path, backend, image_path, out_path = sys.argv[1:5]
program = HEProgram.load(path, backend=backend)
engine = get_plugins().get(backend)
client = program.create_context(engine)
server = client.public()  # evaluation keys only
wire = {k: client.serialize_ciphertext(v) for k, v in program.encrypt(client, np.load(image_path)).items()}
res = run_program(server, program, {k: server.deserialize_ciphertext(v) for k, v in wire.items()})
reply = server.serialize_ciphertext(res.outputs[program.output_name])
np.save(out_path, program.decode(client.decrypt(client.deserialize_ciphertext(reply))))
print(json.dumps({"compiler_modules": sorted(m for m in sys.modules if m.startswith("cryptoface.compile"))}))
"""


def _compile_small(backend: str):
    bundle = load_bundle("small")
    return bundle, compile_model(bundle.onnx_path, get_plugins().get(backend), CompileOptions(calibration=bundle.calibration_images()))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, object]:
    bundle, cm = _compile_small("simulator")
    path = tmp_path_factory.mktemp("program") / "small.cfp"
    cm.program.save(path)
    return path, cm


@pytest.mark.parametrize("backend", ["simulator", "tenseal"])
def test_program_file_runs_in_a_process_without_the_compiler(backend, tmp_path):
    from cryptoface.data import load_orl

    bundle, cm = _compile_small(backend)
    path = tmp_path / "small.cfp"
    digest = cm.program.save(path)
    image = bundle.preprocess(load_orl()[0][3])
    np.save(tmp_path / "image.npy", image)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(path), backend, str(tmp_path / "image.npy"), str(tmp_path / "out.npy")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["compiler_modules"] == []
    out, ref = np.load(tmp_path / "out.npy"), cm.reference(image)
    err = float(np.max(np.abs(out - ref)))
    print(f"{backend}: program {digest[:12]}, {path.stat().st_size} bytes, max abs error {err:.2e}, max |ref| {np.max(np.abs(ref)):.2f}")
    assert out.shape == ref.shape and err <= RTOL * float(np.max(np.abs(ref)))


def test_loaded_program_is_the_compiled_one(saved):
    path, cm = saved
    p = load_program(path, backend="simulator", model_sha256=cm.program.model.sha256)
    assert p.params == cm.params and p.rotation_steps == cm.program.rotation_steps and p.backend == "simulator"
    assert [s.instrs for s in p.sections] == [s.instrs for s in cm.program.sections]
    assert p.inputs == json.loads(json.dumps(cm.program.inputs)) and p.model_inputs == cm.program.model_inputs
    assert p.bounds == cm.program.bounds and p.bounds  # the runtime's value checks travel too
    assert set(p.constants.recipes) == set(cm.program.constants.recipes)
    for key in cm.program.constants.recipes:  # bit for bit
        assert np.array_equal(p.constants.get(key), cm.program.constants.get(key)), key
    image = np.random.default_rng(1).uniform(-1, 1, (1, 3, 32, 32))
    got, want = p.patch_inputs(image), cm.program.patch_inputs(image)
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in got)
    assert p.model.onnx == load_bundle("small").onnx_path.read_bytes()
    assert np.allclose(p.model.reference(image), cm.reference(image))


def test_program_for_another_backend_is_refused(saved):
    path, _ = saved
    with pytest.raises(ProgramMismatchError, match="compiled for backend 'simulator', not 'tenseal'"):
        load_program(path, backend="tenseal")


def test_program_for_another_model_is_refused(saved):
    path, cm = saved
    other = load_bundle("cryptofacenet4").onnx_path.read_bytes()
    with pytest.raises(ProgramMismatchError, match="compiled from model 'small'"):
        load_program(path, model_sha256=hashlib.sha256(other).hexdigest())


def _rewrite(src: Path, dst: Path, edit_json=None, edit_member=None) -> Path:
    """A copy of a program file with program.json (or another member) edited; valid zip CRCs."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "program.json" and edit_json is not None:
                doc = json.loads(data)
                edit_json(doc)
                data = json.dumps(doc).encode()
            elif edit_member is not None:
                data = edit_member(info.filename, data)
            zout.writestr(info.filename, data)
    return dst


def test_newer_format_version_is_refused(saved, tmp_path):
    path, _ = saved
    newer = _rewrite(path, tmp_path / "newer.cfp", edit_json=lambda d: d.update(version=FORMAT_VERSION + 1))
    with pytest.raises(ProgramMismatchError, match=f"format version {FORMAT_VERSION + 1}, newer than the {FORMAT_VERSION}"):
        load_program(newer)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_refused(saved, tmp_path, fraction):
    path, _ = saved
    data = path.read_bytes()
    cut = tmp_path / "cut.cfp"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(SerializationError):
        load_program(cut)


def test_flipped_byte_is_refused(saved, tmp_path):
    path, _ = saved
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    bad = tmp_path / "flipped.cfp"
    bad.write_bytes(bytes(data))
    with pytest.raises(SerializationError):
        load_program(bad)


def test_edited_content_with_valid_zip_is_refused_by_the_program_hash(saved, tmp_path):
    """An edit the zip CRCs cannot see (the member rewritten whole) still fails the hash."""
    path, _ = saved

    def bump_level(doc):
        ins = next(i for s in doc["program"]["sections"] for i in s["instrs"] if i["op"] == "mod_switch")
        ins["level"] += 1

    with pytest.raises(SerializationError, match="does not match its program hash"):
        load_program(_rewrite(path, tmp_path / "level.cfp", edit_json=bump_level))

    def scale_values(name, data):
        if name != "values.npy":
            return data
        a = np.load(io.BytesIO(data))
        buf = io.BytesIO()
        np.save(buf, a * 1.001)
        return buf.getvalue()

    with pytest.raises(SerializationError, match="does not match its program hash"):
        load_program(_rewrite(path, tmp_path / "values.cfp", edit_member=scale_values))


def test_pickled_array_is_refused_unread(saved, tmp_path):
    path, _ = saved

    def pickled(name, data):
        if name != "values.npy":
            return data
        buf = io.BytesIO()
        np.save(buf, np.array([{"boom": 1}], dtype=object), allow_pickle=True)
        return buf.getvalue()

    with pytest.raises(SerializationError, match="values.npy is not a valid constant array"):
        load_program(_rewrite(path, tmp_path / "pickle.cfp", edit_member=pickled))


def test_not_a_program_file(tmp_path):
    text = tmp_path / "notes.cfp"
    text.write_text("hello")
    with pytest.raises(SerializationError, match="not a cryptoface program file"):
        load_program(text)
    with pytest.raises(ConfigError, match="does not exist"):
        load_program(tmp_path / "missing.cfp")


def test_program_from_an_in_memory_graph_cannot_be_saved(tmp_path):
    import importlib.util

    from cryptoface.ir.onnx_import import import_onnx
    from cryptoface.simulator import SimulatorEngine

    spec = importlib.util.spec_from_file_location("ir_models", Path(__file__).parents[1] / "ir" / "ir_models.py")
    ir_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ir_models)
    proto = ir_models.tiny_cryptofacenet(patches_per_side=2, patch=8, channels=4, dim=6)
    cm = compile_model(import_onnx(proto), SimulatorEngine)
    with pytest.raises(ConfigError, match="in-memory graph"):
        cm.program.save(tmp_path / "x.cfp")
    assert not (tmp_path / "x.cfp").exists()
    # the same model given as an ONNX proto carries its bytes and hash, so it can be shipped
    cm = compile_model(proto, SimulatorEngine)
    cm.program.save(tmp_path / "x.cfp")
    assert load_program(tmp_path / "x.cfp").model.sha256 == hashlib.sha256(proto.SerializeToString()).hexdigest()


def test_program_with_insecure_parameters_needs_the_explicit_opt_in(tmp_path):
    import importlib.util

    from cryptoface.errors import InsecureParametersError
    from cryptoface.simulator import SimulatorEngine

    spec = importlib.util.spec_from_file_location("ir_models", Path(__file__).parents[1] / "ir" / "ir_models.py")
    ir_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ir_models)
    proto = ir_models.tiny_cryptofacenet(patches_per_side=2, patch=8, channels=4, dim=6)
    cm = compile_model(proto, SimulatorEngine, CompileOptions(insecure_test_params=True, ring_dim=2048))
    assert cm.params.insecure_test_params
    cm.program.save(tmp_path / "weak.cfp")
    with pytest.raises(InsecureParametersError, match="insecure test parameters"):
        load_program(tmp_path / "weak.cfp")
    assert load_program(tmp_path / "weak.cfp", allow_insecure=True).params == cm.params
