"""`cryptoface bench inference`: one encrypted inference per backend, with every figure.

Each backend runs in its own subprocess so that its peak RSS is its own; the peak of the
largest forked worker (the processes executor) is reported beside it, since a worker's
allocations never show in the parent's figure. Inside it: compile (or
load a program file from `cryptoface compile`, then `compile_seconds` is the load time),
key generation, client encryption, the server's run on an evaluation context loaded from
bytes, decryption, and comparison with the numpy reference of the same IR. The framework
overhead ratio is wall time of the server run over the time spent inside backend primitives,
both measured in that run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from ..models import load_bundle
from ..plugins import get_plugins
from ..program import is_program_file, load_program
from ..runtime.executors import get_executor, run_program
from ..runtime.memory import peak_memory


def face(bundle, index: int = 0) -> np.ndarray:
    from ..data import load_orl

    images, _ = load_orl()
    return bundle.preprocess(images[index])


def run_one(model: str, backend: str, executor: str = "serial", image_index: int = 0, progress: bool = False) -> dict:
    engine = get_plugins().get(backend)
    t0 = time.perf_counter()
    if is_program_file(model):  # compiled once before: load, do not recompile
        program = load_program(model, backend=backend)
        bundle, reference = program.model.bundle(), program.model.reference
    else:
        from ..compile.pipeline import CompileOptions, compile_model

        bundle = load_bundle(model)
        cm = compile_model(bundle.onnx_path, engine, CompileOptions(calibration=bundle.calibration_images()))
        program, reference = cm.program, cm.reference
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    client = program.create_context(engine)
    keygen_s = time.perf_counter() - t0
    predicted = program.report["key_memory_bytes"]
    if predicted < 2 * 2**30:  # the server really loads its keys from bytes
        eval_bytes = len(blob := client.public().serialize())
        server = type(client).deserialize_public(blob, engine, mac_key=client.mac_key,
                                                 allow_insecure=client.params.insecure_test_params)
        del blob
    else:  # a second copy of many GB of keys would measure the benchmark, not the system
        eval_bytes, server = None, client.public()
    image = face(bundle, image_index)
    t0 = time.perf_counter()
    cts = program.encrypt(client, image)
    wire = {k: client.serialize_ciphertext(v) for k, v in cts.items()}
    encrypt_s = time.perf_counter() - t0
    inputs = {k: server.deserialize_ciphertext(v) for k, v in wire.items()}
    res = run_program(server, program, inputs, get_executor(executor, backend=backend), progress=progress)
    out_ct = next(iter(res.outputs.values()))
    out_bytes = server.serialize_ciphertext(out_ct)
    emb = program.decode(client.decrypt(client.deserialize_ciphertext(out_bytes)))
    ref = reference(image)
    rep = {k: v for k, v in program.report.items() if k != "layers"}
    return {
        "model": model, "backend": backend, "executor": executor,
        "ring_dim": rep["ring_dim"], "depth": rep["depth"], "scale_bits": rep["scale_bits"],
        "security_bits": rep["security_bits"], "bootstraps": rep["bootstraps"],
        "bootstraps_per_patch": rep["bootstraps_per_patch"], "rotations": rep["rotations"],
        "rotation_keys": rep["rotation_keys"], "ct_pt_mults": rep["ct_pt_mults"],
        "predicted_key_memory_bytes": rep["key_memory_bytes"],
        "evaluation_context_bytes": eval_bytes,
        "input_ciphertext_bytes": sum(len(v) for v in wire.values()), "output_ciphertext_bytes": len(out_bytes),
        "program_file": is_program_file(model),  # then compile_seconds is the time to load it
        "compile_seconds": compile_s, "keygen_seconds": keygen_s, "encrypt_seconds": encrypt_s,
        "inference_seconds": res.wall_seconds, "primitive_seconds": res.profile.primitive_seconds,
        "constant_seconds": res.profile.constant_seconds, "overhead_ratio": res.overhead_ratio,
        "max_abs_error": float(np.max(np.abs(emb - ref))),
        "relative_error": float(np.linalg.norm(emb - ref) / np.linalg.norm(ref)),
        "predicted_max_error": rep.get("predicted_max_error"),
        "predicted_relative_error": rep.get("predicted_relative_error"),
        "cosine": float(emb @ ref / (np.linalg.norm(emb) * np.linalg.norm(ref))),
        "peak_rss_bytes": (mem := peak_memory()).self_bytes,
        "peak_rss_workers_bytes": mem.children_bytes,  # largest forked worker; 0 without workers
        "primitive_breakdown_seconds": dict(res.profile.seconds),
    }


def run_isolated(model: str, backend: str, executor: str = "serial") -> dict:
    """run_one in a fresh interpreter, so peak memory is this backend's alone."""
    cmd = [sys.executable, "-m", "cryptoface.bench.inference", model, backend, executor]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"model": model, "backend": backend, "executor": executor, "error": " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def to_markdown(rows: list[dict], command: str) -> str:
    cols = [
        ("backend", "backend", "{}"), ("N", "ring_dim", "{}"), ("depth", "depth", "{}"), ("scale", "scale_bits", "{}"),
        ("bootstraps/patch", "bootstraps_per_patch", "{}"), ("rotations", "rotations", "{}"),
        ("keys", "rotation_keys", "{}"), ("inference s", "inference_seconds", "{:.1f}"),
        ("keygen s", "keygen_seconds", "{:.1f}"), ("peak RSS GB", "peak_rss_bytes", "{:.2f}"),
        ("worker peak GB", "peak_rss_workers_bytes", "{:.2f}"),
        ("eval keys MB", "evaluation_context_bytes", "{:.0f}"), ("overhead", "overhead_ratio", "{:.3f}"),
        ("max abs err", "max_abs_error", "{:.2e}"), ("predicted", "predicted_max_error", "{:.2e}"),
        ("rel err", "relative_error", "{:.2e}"), ("predicted rel", "predicted_relative_error", "{:.2e}"),
        ("cosine", "cosine", "{:.7f}"),
    ]
    if len({r.get("executor", "serial") for r in rows}) > 1:
        cols.insert(1, ("executor", "executor", "{}"))
    lines = [f"Command: `{command}`", "", "| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['backend']} ({r.get('executor', 'serial')}) | failed: {r['error']} |")
            continue
        cells = []
        for _, key, fmt in cols:
            v = r[key]
            if key in ("peak_rss_bytes", "peak_rss_workers_bytes"):
                v = v / 1e9
            if key == "evaluation_context_bytes":
                v = float("nan") if v is None else v / 1e6
            cells.append("–" if v is None else fmt.format(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(json.dumps(run_one(*sys.argv[1:4])))
