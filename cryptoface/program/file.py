"""Program files: compile once, ship one file, run it where the compiler is not installed.

A program file is a zip archive (format "cryptoface-program", version `FORMAT_VERSION`):

    program.json      {"format", "version", "program_hash", "backend",
                       "model": {"name", "sha256", "meta"},
                       "program": {"params", "rotation_steps", "compose_rotations", "inputs",
                                   "outputs", "model_inputs", "sections", "report", "bounds"},
                       "constants": {key: {"recipe", "period", "start", "end"}}}
    positions.npy     the constants (`constants.encode_constants`): non-zero positions,
    value_index.npy   index into the distinct values,
    values.npy        the distinct values (float64, so constants come back bit for bit)
    model.onnx        the model it was compiled from (its SHA-256 is model.sha256)

Reading never unpickles (`allow_pickle=False`), checks each array's header before its data
and checks the program hash (SHA-256 over program.json without the hash, then the arrays),
so a truncated or edited file is a `SerializationError`. A file for another backend, another
model or a newer format is a `ProgramMismatchError`. The program hash also names the program:
two files with the same hash run the same computation with the same constants.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, CryptofaceError, InsecureParametersError, ProgramMismatchError, SerializationError
from ..params import CKKSParams
from .constants import StoredConstants, encode_constants
from .instructions import OPS, Instr, Section
from .layout import Layout
from .model import ModelRecord, sha256_hex
from .program import HEProgram

FORMAT = "cryptoface-program"
FORMAT_VERSION = 1
ARRAY_DTYPES = {"positions": ("<i4",), "value_index": ("<u2", "<u4"), "values": ("<f8",)}
_NPY_HEADER = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


# ---- the JSON part -------------------------------------------------------------------------
def program_to_dict(p: HEProgram) -> dict:
    return {
        "params": p.params.to_dict(),
        "rotation_steps": list(p.rotation_steps),
        "compose_rotations": p.compose_rotations,
        "inputs": p.inputs,
        "outputs": p.outputs,
        "model_inputs": {k: list(v) for k, v in p.model_inputs.items()},
        "sections": [
            {"name": s.name, "inputs": list(s.inputs), "outputs": list(s.outputs),
             "instrs": [{k: v for k, v in asdict(i).items() if v is not None} for i in s.instrs]}
            for s in p.sections
        ],
        "report": p.report,
        "bounds": p.bounds,
    }


def _instr(d: dict) -> Instr:
    if not isinstance(d, dict) or d.get("op") not in OPS or not isinstance(d.get("out"), str):
        raise SerializationError(f"program file: invalid instruction {str(d)[:80]}")
    args, steps = d.get("args", []), d.get("steps")
    ints = [d.get("step"), d.get("level")] + list(steps or [])
    if (not isinstance(args, list) or not all(isinstance(a, str) for a in args)
            or not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in ints)
            or not (d.get("const") is None or isinstance(d["const"], str))
            or not (steps is None or isinstance(steps, list)) or set(d) - {"op", "out", "args", "const", "step", "steps", "level"}):
        raise SerializationError(f"program file: invalid instruction {str(d)[:80]}")
    return Instr(d["op"], d["out"], tuple(args), d.get("const"), d.get("step"),
                 None if steps is None else tuple(steps), d.get("level"))


def sections_from_list(items: list) -> list[Section]:
    return [Section(str(s["name"]), tuple(s["inputs"]), tuple(s["outputs"]), [_instr(i) for i in s["instrs"]]) for s in items]


def _check_program(p: HEProgram) -> None:
    """Every value is defined before it is read and every constant exists: a file that
    passes runs to the end or fails in the backend, never on a missing name."""
    for s in p.sections:
        defined = set(s.inputs)
        for ins in s.instrs:
            missing = [a for a in ins.args if a not in defined]
            if missing:
                raise SerializationError(f"program file: section {s.name!r} reads {missing[0]!r} before it is written")
            if (ins.op in ("mul_plain", "add_plain")) != (ins.const is not None) or (ins.const is not None and ins.const not in p.constants):
                raise SerializationError(f"program file: instruction {ins.out!r} has a missing or unexpected constant")
            defined.update(ins.outputs())
        if set(s.outputs) - defined:
            raise SerializationError(f"program file: section {s.name!r} never writes its outputs")
    for name, spec in p.inputs.items():
        Layout.from_dict(spec["layout"])
        if spec["source"] not in p.model_inputs:
            raise SerializationError(f"program file: input {name!r} is cut from unknown model input {spec['source']!r}")
    for spec in p.outputs.values():
        Layout.from_dict(spec["layout"])


# ---- hashing ---------------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON data")


def _digest(doc: dict, arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}:{a.dtype.str}:{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ---- save ------------------------------------------------------------------------------------
def save_program(program: HEProgram, path: str | Path) -> str:
    """Write `program` to `path` (atomically: a temporary file, then a rename); returns its hash."""
    if program.model is None:
        raise ConfigError("this program was compiled from an in-memory graph; compile it from an ONNX file to save it")
    if not program.backend:
        raise ConfigError("this program names no backend; compile it with compile_model to save it")
    entries, arrays = encode_constants(program.constants, program.params.slots)
    doc = {
        "format": FORMAT, "version": FORMAT_VERSION, "backend": program.backend,
        "model": program.model.to_dict(), "program": program_to_dict(program), "constants": entries,
    }
    doc = json.loads(json.dumps(doc, default=_plain))  # exactly what a reader will see
    doc["program_hash"] = _digest(doc, arrays)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            zf.writestr("program.json", json.dumps(doc))
            for name, a in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, a, allow_pickle=False)
            if program.model.onnx is not None:
                zf.writestr("model.onnx", program.model.onnx)
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write program file {path}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return doc["program_hash"]


# ---- load ------------------------------------------------------------------------------------
def is_program_file(name: str | Path) -> bool:
    """Whether a model argument names a program file rather than a model name or an .onnx file."""
    p = Path(name)
    return p.suffix != ".onnx" and p.is_file()


def _read(zf: zipfile.ZipFile, name: str, path: Path) -> bytes:
    try:
        return zf.read(name)
    except KeyError:
        raise SerializationError(f"{path} is not a complete program file: {name} is missing") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise SerializationError(f"{path} is truncated or corrupted ({name}: {exc})") from exc


def _read_array(zf: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    f = io.BytesIO(_read(zf, f"{name}.npy", path))
    try:
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = _NPY_HEADER[version](f)
        if dtype.str not in ARRAY_DTYPES[name] or len(shape) != 1 or fortran:
            raise ValueError(f"unexpected array {dtype.str}{shape}")
        if shape[0] * dtype.itemsize != len(f.getbuffer()) - f.tell():
            raise ValueError(f"{shape[0]} values announced, {len(f.getbuffer()) - f.tell()} bytes stored")
        f.seek(0)
        return np.lib.format.read_array(f, allow_pickle=False)
    except (KeyError, ValueError, EOFError, SyntaxError) as exc:
        raise SerializationError(f"{path}: {name}.npy is not a valid constant array ({exc})") from exc


def _check_header(doc: Any, path: Path, backend: str | None, model_sha256: str | None) -> None:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SerializationError(f"{path} is not a cryptoface program file")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SerializationError(f"{path}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ProgramMismatchError(f"{path} has program format version {version}, newer than the {FORMAT_VERSION} "
                                   "this cryptoface reads: upgrade cryptoface or compile the model again")
    model = doc.get("model")
    if not isinstance(doc.get("backend"), str) or not isinstance(model, dict) or not isinstance(model.get("sha256"), str):
        raise SerializationError(f"{path}: the program names no backend or model")
    if backend is not None and doc["backend"] != backend:
        raise ProgramMismatchError(f"{path} was compiled for backend {doc['backend']!r}, not {backend!r}: "
                                   f"compile the model for {backend!r}")
    if model_sha256 is not None and model["sha256"] != model_sha256:
        raise ProgramMismatchError(f"{path} was compiled from model {model.get('name')!r} (sha256 {model['sha256'][:12]}...), "
                                   f"not the expected model (sha256 {model_sha256[:12]}...)")


def load_program(path: str | Path, backend: str | None = None, model_sha256: str | None = None,
                 allow_insecure: bool = False) -> HEProgram:
    """Read a program file. `backend`/`model_sha256`, when given, must be what it was compiled
    for. A program compiled with insecure test parameters loads only with `allow_insecure`:
    the flag inside a file is not the explicit opt-in it needs."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ConfigError(f"program file {path} does not exist") from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise SerializationError(f"{path} is not a cryptoface program file ({exc})") from exc
    with zf:
        try:
            doc = json.loads(_read(zf, "program.json", path))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise SerializationError(f"{path}: program.json is not valid JSON ({exc})") from exc
        _check_header(doc, path, backend, model_sha256)
        arrays = {name: _read_array(zf, name, path) for name in ARRAY_DTYPES}
        claimed = doc.pop("program_hash", None)
        if _digest(doc, arrays) != claimed:
            raise SerializationError(f"{path} is corrupted: its content does not match its program hash")
        onnx = _read(zf, "model.onnx", path) if "model.onnx" in zf.namelist() else None
    if onnx is not None and sha256_hex(onnx) != doc["model"]["sha256"]:
        raise SerializationError(f"{path} is corrupted: the stored model does not match its SHA-256")
    try:
        p, m = doc["program"], doc["model"]
        params = CKKSParams.from_dict(p["params"])
        program = HEProgram(
            params=params, rotation_steps=[int(s) for s in p["rotation_steps"]],
            compose_rotations=bool(p["compose_rotations"]), sections=sections_from_list(p["sections"]),
            constants=StoredConstants.from_arrays(doc["constants"], arrays, params.slots).table(),
            inputs=dict(p["inputs"]), outputs=dict(p["outputs"]), report=dict(p["report"]),
            backend=doc["backend"], model=ModelRecord(str(m["name"]), m["sha256"], dict(m["meta"]), onnx),
            model_inputs={k: tuple(int(d) for d in v) for k, v in p["model_inputs"].items()},
            bounds={str(k): float(v) for k, v in p["bounds"].items()},
        )
        _check_program(program)
    except SerializationError:
        raise
    except (CryptofaceError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise SerializationError(f"{path}: malformed program ({type(exc).__name__}: {exc})") from exc
    if program.params.insecure_test_params and not allow_insecure:
        raise InsecureParametersError(f"{path} was compiled with insecure test parameters (below 128-bit security): "
                                      "load it only with the explicit opt-in (--insecure-test-params)")
    return program
