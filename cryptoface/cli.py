"""The `cryptoface` command line (typer). Commands stay thin: they resolve configuration,
call the library, and print; every error the library raises on purpose is shown as one
clear line with a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from .errors import CryptofaceError

console = Console()
err_console = Console(stderr=True)


def _error_line(message: str) -> None:
    """One line on stderr: no markup parsing (messages quote `[cryptoface]`), no wrapping."""
    err_console.print(Text.assemble(("error: ", "bold red"), " ".join(message.split())), soft_wrap=True)


class _OneLineUsageErrors(TyperGroup):
    """Usage errors (a missing argument, an unknown option) as one line like every other error,
    not typer's framed box. typer's click is vendored: its exceptions are TyperExceptions."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):  # type: ignore[override]
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.TyperException as exc:
            ctx = getattr(exc, "ctx", None)
            if exc.format_message():  # empty when the help was shown for a bare command
                _error_line(f"{exc.format_message()} (see: {ctx.command_path if ctx else 'cryptoface'} --help)")
            sys.exit(getattr(exc, "exit_code", 2))
        except typer.Abort:
            _error_line("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=_OneLineUsageErrors, add_completion=False, no_args_is_help=True,
                  help="End-to-end encrypted face recognition with CKKS.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures (never assert timings).")
app.add_typer(bench_app, name="bench")
store_app = typer.Typer(no_args_is_help=True, help="The sealed template store (docs/store.md).")
app.add_typer(store_app, name="store")

BackendOpt = typer.Option(None, "--backend", "-b", help="Backend name (wins over CRYPTOFACE_BACKEND and cryptoface.toml).")
ConfigOpt = typer.Option(None, "--config", help="Path to cryptoface.toml (default: ./cryptoface.toml if present).")
InsecureOpt = typer.Option(False, "--insecure-test-params",
                           help="TESTS ONLY: allow parameters below 128-bit security (warned every time).")


def _fail(exc: CryptofaceError) -> None:
    _error_line(str(exc))
    raise typer.Exit(2)


def _security(rep: dict) -> str:
    """The plan's real security level, never a number it does not have."""
    return f"{rep['security_bits']}-bit" if rep["security_bits"] else "BELOW 128-bit (insecure test parameters)"


def _command_line() -> str:
    return "cryptoface " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@app.command()
def backends(as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table.")) -> None:
    """List registered backends, whether they work here, and why not."""
    from .plugins import get_plugins

    infos = get_plugins().backends()
    if as_json:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    table = Table(title="cryptoface backends")
    for col in ("name", "available", "library", "version", "bootstraps", "ring dims (128-bit)", "plugin / reason"):
        table.add_column(col)
    for i in infos:
        c = i.capabilities
        dims = "..".join(f"2^{n.bit_length() - 1}" for n in (min(c.max_log_qp_128), max(c.max_log_qp_128))) if c else ""
        table.add_row(
            i.name,
            "[green]yes[/]" if i.available else "[red]no[/]",
            c.library if c else "",
            c.library_version if c else "",
            ("yes" if c.bootstrapping else "no") if c else "",
            dims,
            i.plugin if i.available else i.reason,
        )
    console.print(table)


@app.command()
def config(backend: Optional[str] = BackendOpt, config_path: Optional[Path] = ConfigOpt) -> None:
    """Show the effective configuration and where each value came from."""
    from .config import resolve

    try:
        cfg = resolve(backend, config_path)
    except CryptofaceError as exc:
        _fail(exc)
    typer.echo(json.dumps({"backend": cfg.backend, "backend_source": cfg.backend_source, "threads": cfg.threads,
                           "insecure_test_params": cfg.insecure_test_params, "insecure_source": cfg.insecure_source,
                           "config_file": str(cfg.path) if cfg.path else None}, indent=2))


@app.command()
def demo(backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Backend for the face (default: the configured one)."),
         config_path: Optional[Path] = ConfigOpt,
         model: str = typer.Option("small", help="Model for the encrypted face embedding."),
         face: int = typer.Option(0, help="Index of the ORL face to encrypt.")) -> None:
    """Encrypted computation on every backend, then an encrypted face embedding, against numpy.

    Client and server hold separate contexts that talk only through bytes: the server's
    context has the evaluation keys and no secret key.
    """
    import time

    import numpy as np

    from .backend import HEContext
    from .config import resolve
    from .plugins import get_plugins
    from .preprocess import orl_face
    from .testing.conftest import PARAMS, STEPS
    from .testing.programs import poly7_then_rotate_sum, poly7_then_rotate_sum_reference

    plugins = get_plugins()
    names = [b.name for b in plugins.backends() if b.available]
    x = np.random.default_rng(0).uniform(-1, 1, PARAMS.slots)
    ref = poly7_then_rotate_sum_reference(x, PARAMS.slots)
    table = Table(title=f"1. p7(x) then rotate-and-sum over {PARAMS.slots} slots, N={PARAMS.ring_dim}, 128-bit")
    for col in ("backend", "first values (encrypted)", "numpy", "max abs error", "seconds"):
        table.add_column(col)
    try:
        cfg = resolve(backend, config_path)  # a bad config or face index fails before the slow part 1
        face_image = orl_face(face)
        for name in names:
            engine = plugins.get(name)
            t0 = time.perf_counter()
            client = HEContext.create(engine, PARAMS, STEPS)
            server = HEContext.deserialize_public(client.public().serialize(), engine, mac_key=client.mac_key)
            ct = server.deserialize_ciphertext(client.serialize_ciphertext(client.encrypt(x)))
            out = server.serialize_ciphertext(poly7_then_rotate_sum(server, ct, PARAMS.slots))
            got = client.decrypt(client.deserialize_ciphertext(out))
            table.add_row(name, np.array2string(got[:3], precision=5), np.array2string(ref[:3], precision=5),
                          f"{np.max(np.abs(got - ref)):.2e}", f"{time.perf_counter() - t0:.2f}")
        console.print(table)
        console.print(f"\n[bold]2. encrypted face embedding[/]: model {model!r}, backend {cfg.backend!r} (from {cfg.backend_source}), ORL face {face}")
        bundle, engine, cm = _compile(model, cfg.backend, config_path)
        rep = cm.program.report
        console.print(f"   plan: N={rep['ring_dim']}, depth {rep['depth']}, {_security(rep)}, "
                      f"{rep['bootstraps']} bootstraps, {rep['rotations']} rotations, {rep['rotation_keys']} rotation keys")
        image = bundle.preprocess(face_image)
        emb, res, keys_s = _client_server_inference(cm.program, engine, image)
        console.print(f"   client: keys in {keys_s:.1f} s; encrypted {len(cm.partitions)} patches")
        console.print(f"   server: encrypted inference in {res.wall_seconds:.1f} s, patch networks in parallel")
        ref_emb = cm.reference(image)
    except CryptofaceError as exc:
        _fail(exc)
    cos = float(emb @ ref_emb / (np.linalg.norm(emb) * np.linalg.norm(ref_emb)))
    console.print(f"   client decrypts: {np.array2string(emb[:5], precision=4)}")
    console.print(f"   numpy reference: {np.array2string(ref_emb[:5], precision=4)}")
    console.print(f"   max abs error {np.max(np.abs(emb - ref_emb)):.2e} (predicted at most "
                  f"{rep['predicted_max_error']:.2e}), cosine similarity {cos:.7f}")


MaxDepthOpt = typer.Option(None, "--max-depth", min=1, help="Cap the levels a ciphertext may use (forces bootstraps; for studies).")
PrecisionOpt = typer.Option(None, "--max-relative-error", min=0.0,
                            help="Precision target: largest predicted ||error||/||output|| (default 5e-4).")
KeyMemoryOpt = typer.Option(None, "--key-memory-gb", min=0.0, help="Key-memory budget in GiB (default 12, stated in the plan).")


def _compile_options(bundle, insecure: bool, max_depth: Optional[int] = None, max_relative_error: Optional[float] = None,
                     key_memory_gb: Optional[float] = None):
    from .compile.pipeline import CompileOptions
    from .compile.precision import PrecisionTarget

    return CompileOptions(calibration=bundle.calibration_images(), insecure_test_params=insecure, max_depth=max_depth,
                          key_budget=None if key_memory_gb is None else int(key_memory_gb * 2**30),
                          precision=PrecisionTarget() if max_relative_error is None else PrecisionTarget(max_relative_error))


def _compile(model: str, backend: Optional[str], config_path: Optional[Path], insecure: bool = False, **options):
    from .config import resolve
    from .models import load_bundle
    from .plugins import get_plugins

    cfg = resolve(backend, config_path, insecure_flag=insecure)  # before the compiler's imports: fast errors
    from .compile.pipeline import compile_model

    if cfg.insecure_test_params:
        _insecure_banner(cfg.insecure_source)
    bundle = load_bundle(model)
    engine = get_plugins().get(cfg.backend)
    opts = _compile_options(bundle, cfg.insecure_test_params, **options)
    return bundle, engine, compile_model(bundle.onnx_path, engine, opts)


def _insecure_banner(source: str) -> None:
    err_console.print(Text(f"WARNING: INSECURE TEST PARAMETERS ({source}): encryption may be "
                           "below 128-bit security. For tests only.", style="bold red reverse"), soft_wrap=True)


def _load_program_file(path: str, backend: Optional[str], insecure: bool):
    """The program and its engine, without the compiler; -b, when given, must match the file."""
    from .plugins import get_plugins
    from .program import load_program

    program = load_program(path, backend=backend, allow_insecure=insecure)
    if program.params.insecure_test_params:
        _insecure_banner(f"program file {path}")
    return program, get_plugins().get(program.backend)


def _client_server_inference(program, engine, image, executor: str = "auto"):
    """The protocol in one process: the client makes keys and encrypts; the server gets only
    the evaluation context's bytes and the ciphertexts' bytes; the client decrypts the reply.
    Returns (embedding, run result, seconds spent on keys)."""
    import time

    from .backend import HEContext
    from .runtime.executors import get_executor, run_program

    t0 = time.perf_counter()
    client = program.create_context(engine)
    # In one process the loader's insecure opt-in is the client's own (explicit, warned) flag.
    server = HEContext.deserialize_public(client.public().serialize(), engine, mac_key=client.mac_key,
                                          allow_insecure=client.params.insecure_test_params)
    keys_s = time.perf_counter() - t0
    wire = {k: client.serialize_ciphertext(v) for k, v in program.encrypt(client, image).items()}
    res = run_program(server, program, {k: server.deserialize_ciphertext(v) for k, v in wire.items()},
                      get_executor(executor, backend=engine.name), progress=True)
    reply = server.serialize_ciphertext(res.outputs[program.output_name])
    return program.decode(client.decrypt(client.deserialize_ciphertext(reply))), res, keys_s


@app.command()
def plan(
    model: str = typer.Argument(..., help="small, cryptofacenet4, or a path to an .onnx file."),
    backend: Optional[str] = BackendOpt,
    config_path: Optional[Path] = ConfigOpt,
    as_json: bool = typer.Option(False, "--json", help="Print the plan report as JSON."),
    insecure: bool = InsecureOpt,
    max_depth: Optional[int] = MaxDepthOpt,
    max_relative_error: Optional[float] = PrecisionOpt,
    key_memory_gb: Optional[float] = KeyMemoryOpt,
) -> None:
    """Compile a model for a backend and print the plan: parameters, levels, bootstraps, keys, counts,
    and the predicted output error."""
    try:
        _, _, cm = _compile(model, backend, config_path, insecure, max_depth=max_depth,
                            max_relative_error=max_relative_error, key_memory_gb=key_memory_gb)
    except CryptofaceError as exc:
        _fail(exc)
    rep = cm.program.report
    if as_json:
        typer.echo(json.dumps(rep, indent=2))
        return
    gib = 2**30
    console.print(f"[bold]{model}[/] on [bold]{rep['backend']}[/]: N={rep['ring_dim']}, slots={rep['slots']}, "
                  f"log Q={rep['log_q']}, log QP={rep['log_qp']}, scale 2^{rep['scale_bits']}, "
                  f"security {_security(rep)}")
    console.print(f"depth {rep['depth']} (needed {rep['depth_needed']}), bootstraps {rep['bootstraps']} "
                  f"({rep['bootstraps_per_patch']} per patch network, {rep['patches']} patch networks in parallel)")
    console.print(f"rotations {rep['rotations']} ({rep['rotations_per_patch']} per patch), rotation keys {rep['rotation_keys']}"
                  f"{' (powers of two, composed)' if rep['rotation_keys_composed'] else ''}, ct x pt {rep['ct_pt_mults']}, "
                  f"ct x ct {rep['ct_ct_mults']}, rescales {rep['rescales']}")
    fits = "fits" if rep["key_memory_fits"] else "DOES NOT FIT"
    console.print(f"predicted key memory {rep['key_memory_bytes'] / gib:.2f} GiB ({rep['key_switch_key_bytes'] / 2**20:.0f} MiB "
                  f"per key): {fits} in the budget of {rep['key_memory_budget_bytes'] / gib:.1f} GiB")
    boot = rep.get("bootstrap_option")
    if boot:
        console.print(f"bootstrapping: level budget {tuple(boot['level_budget'])}, {boot['iterations']} iteration(s), "
                      f"{boot['precision_bits']:.0f} bits, {rep['levels_after_bootstrap']} levels after each, "
                      f"{boot['rotation_keys']} bootstrap keys")
    by = ", ".join(f"{k} {v:.1e}" for k, v in rep["predicted_error_by_source"].items() if v)
    console.print(f"predicted output error: max abs {rep['predicted_max_error']:.2e}, relative "
                  f"{rep['predicted_relative_error']:.2e} ({by}); target {rep['precision_target_relative']:.0e} relative")
    for note in rep.get("notes", []):
        console.print(f"  [dim]{note}[/]", soft_wrap=True)
    table = Table(title="per layer (one patch network)")
    for col in ("layer", "level", "diagonals", "rotations (baby+giant+repl)", "ct x pt", "MPCNN rotations / mults"):
        table.add_column(col)
    for r in rep["layers"]:
        mp = f"{r['mpcnn_rotations']} / {r['mpcnn_mults']}" if "mpcnn_rotations" in r else "-"
        table.add_row(r["layer"], str(r["level"]), str(r["diagonals"]),
                      f"{r['rotations']} ({r['baby']}+{r['giant']}+{r['replication']})", str(r["pt_mults"]), mp)
    console.print(table)


@app.command("compile")
def compile_program(
    model: str = typer.Argument(..., help="small, cryptofacenet4, or a path to an .onnx file."),
    backend: Optional[str] = BackendOpt,
    config_path: Optional[Path] = ConfigOpt,
    output: Path = typer.Option(..., "--output", "-o", help="The program file to write (e.g. small-tenseal.cfp)."),
    insecure: bool = InsecureOpt,
    max_depth: Optional[int] = MaxDepthOpt,
    max_relative_error: Optional[float] = PrecisionOpt,
    key_memory_gb: Optional[float] = KeyMemoryOpt,
) -> None:
    """Compile a model for a backend once and write the program file that `infer` and a server
    run without the compiler (versioned; tied to the backend and the model's SHA-256)."""
    try:
        _, _, cm = _compile(model, backend, config_path, insecure, max_depth=max_depth,
                            max_relative_error=max_relative_error, key_memory_gb=key_memory_gb)
        digest = cm.program.save(output)
    except CryptofaceError as exc:
        _fail(exc)
    rep = cm.program.report
    console.print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB): {model} for {rep['backend']}, "
                  f"N={rep['ring_dim']}, depth {rep['depth']}, {_security(rep)}, {rep['rotation_keys']} rotation keys")
    console.print(f"program sha256 {digest}, model sha256 {cm.program.model.sha256}")


@app.command()
def infer(
    model: str = typer.Argument(..., help="small, cryptofacenet4, a path to an .onnx file, or a program file (cryptoface compile -o)."),
    image: str = typer.Option("orl:0", help="An image file (.png/.jpg, .npy; pixels 0..255), or orl:INDEX for a shipped ORL face."),
    backend: Optional[str] = BackendOpt,
    config_path: Optional[Path] = ConfigOpt,
    check: bool = typer.Option(False, "--check", help="Compare with the plaintext reference and print the error."),
    executor: str = typer.Option("auto", help="auto, serial, threads or processes (patch networks in parallel)."),
    insecure: bool = InsecureOpt,
) -> None:
    """One encrypted inference: the client encrypts, the server computes with evaluation keys only.

    Given a program file, nothing is compiled: the file has the program, the client's packing
    and preprocessing, and the model for --check."""
    import numpy as np

    from .models import load_bundle
    from .preprocess import load_image
    from .runtime.executors import get_executor

    try:
        from .program import is_program_file

        if is_program_file(model):
            program, engine = _load_program_file(model, backend, insecure)
            bundle, reference = program.model.bundle(), program.model.reference
        else:
            bundle = load_bundle(model)
        x = bundle.preprocess(load_image(image))  # a bad image fails before the slow compile
        if executor != "auto":
            get_executor(executor)  # an unknown name fails before the compile too
        if not is_program_file(model):
            _, engine, cm = _compile(model, backend, config_path, insecure)
            program, reference = cm.program, cm.reference
        console.print(f"plan: N={program.params.ring_dim}, depth {program.params.depth}, {_security(program.report)}")
        emb, res, keys_s = _client_server_inference(program, engine, x, executor)
        console.print(f"keys: {keys_s:.1f} s")
    except CryptofaceError as exc:
        _fail(exc)
    console.print(f"encrypted inference: {res.wall_seconds:.1f} s with the {executor} executor "
                  f"({res.profile.primitive_seconds:.1f} s inside backend primitives)")
    console.print(f"embedding[:6] = {np.array2string(emb[:6], precision=4)}")
    if check:
        try:
            ref = reference(x)
        except CryptofaceError as exc:
            _fail(exc)
        cos = float(emb @ ref / (np.linalg.norm(emb) * np.linalg.norm(ref)))
        console.print(f"reference[:6] = {np.array2string(ref[:6], precision=4)}")
        pred = program.report.get("predicted_max_error")
        console.print(f"max abs error {np.max(np.abs(emb - ref)):.3e}"
                      + (f" (predicted at most {pred:.3e})" if pred is not None else "") + f", cosine similarity {cos:.8f}")


def _bench_backends(backend: str) -> list[str]:
    """Every available real backend for "all", else the ones named, comma-separated (unknown: a
    ConfigError)."""
    from .plugins import get_plugins

    if backend != "all":
        return [get_plugins().get(b.strip()).name for b in backend.split(",") if b.strip()]
    return [b.name for b in get_plugins().backends() if b.available and b.name != "simulator"]


def _ring_dims(text: str) -> list[int]:
    from .errors import ConfigError

    try:
        dims = [int(d) for d in text.split(",")]
    except ValueError:
        raise ConfigError(f"--ring-dims must be comma-separated powers of two, got {text!r}") from None
    if any(d < 2 or d & (d - 1) for d in dims):
        raise ConfigError(f"--ring-dims must be comma-separated powers of two, got {text!r}")
    return dims


@bench_app.command("primitives")
def bench_primitives(
    backend: Optional[str] = typer.Option("all", "--backend", "-b", help="A backend name, or 'all' (every available one)."),
    ring_dims: str = typer.Option("8192,16384,32768,65536", help="Comma-separated ring dimensions."),
    repeats: int = typer.Option(5, help="Repetitions per op (median reported)."),
    bootstrap: bool = typer.Option(True, help="Also time a sparse bootstrap where supported (N >= 2^15)."),
    json_out: Path = typer.Option(Path("bench-primitives.json"), "--json", help="Where to write the JSON results."),
    markdown: Optional[Path] = typer.Option(None, help="Also write the Markdown table into this file (between markers)."),
) -> None:
    """Median time of every primitive per backend and ring dimension, and key sizes."""
    from .bench.primitives import PrimitiveResult, bench_one_isolated, to_json, to_markdown

    try:
        names = _bench_backends(backend)
        dims = _ring_dims(ring_dims)
        results = []
        for n in names:
            for d in dims:
                try:
                    results.append(bench_one_isolated(n, d, repeats, bootstrap, lambda m: err_console.print(f"[dim]{m}[/]")))
                except CryptofaceError as exc:  # one refused configuration must not lose the rest
                    results.append(PrimitiveResult(n, d, 0, 0, d // 2, skipped=f"{n} at N={d}: {exc}"))
    except CryptofaceError as exc:
        _fail(exc)
    md = to_markdown(results, _command_line())
    json_out.write_text(json.dumps(to_json(results), indent=2))
    console.print(md)
    if markdown is not None:
        _write_between_markers(markdown, "primitives", md)
        console.print(f"table written into {markdown}")


@bench_app.command("inference")
def bench_inference(
    model: str = typer.Option("small", help="small, cryptofacenet4, a path to an .onnx file, or a program file (not recompiled)."),
    backend: str = typer.Option("all", "--backend", "-b", help="A backend name, or 'all' (every available real backend; a program file's own)."),
    executor: str = typer.Option("serial", help="serial (the overhead ratio is meaningful only here), threads, processes or auto; "
                                 "several, comma-separated, give one row per backend and executor."),
    json_out: Path = typer.Option(Path("bench-inference.json"), "--json", help="Where to write the JSON results."),
    markdown: Optional[Path] = typer.Option(None, help="Also write the Markdown table into this file (between markers)."),
) -> None:
    """One encrypted inference per backend: time, memory, keys, error, overhead."""
    from .bench.inference import run_isolated, to_markdown

    from .program import is_program_file, load_program

    from .errors import ConfigError
    from .runtime.executors import EXECUTORS

    executors = [e.strip() for e in executor.split(",") if e.strip()]
    try:
        names = [load_program(model).backend] if is_program_file(model) and backend == "all" else _bench_backends(backend)
        unknown = [e for e in executors if e != "auto" and e not in EXECUTORS]
        if unknown or not executors:
            raise ConfigError(f"unknown executor {', '.join(unknown) or executor!r}; choose from auto, {', '.join(sorted(EXECUTORS))}")
    except CryptofaceError as exc:
        _fail(exc)
    rows = []
    for name in names:
        for ex in executors:
            err_console.print(f"[dim]{model} on {name} ({ex}) ...[/]")
            rows.append(run_isolated(model, name, ex))
            r = rows[-1]
            err_console.print(f"[dim]{name}: {r.get('inference_seconds', float('nan')):.1f} s, cosine {r.get('cosine', float('nan')):.7f} {r.get('error', '')}[/]")
    json_out.write_text(json.dumps(rows, indent=2))
    md = to_markdown(rows, _command_line())
    console.print(md)
    if markdown is not None:
        # one marked section per model and executor set, so each table has its own command
        section = f"inference-{Path(model).stem}" + ("" if executors == ["serial"] else "-" + "-".join(executors))
        _write_between_markers(markdown, section, md)
        console.print(f"table written into {markdown} (section {section})")


@store_app.command("rotate-key")
def store_rotate_key(
    db: Path = typer.Option(..., "--db", help="The template store's SQLite file."),
    key_file: Path = typer.Option(..., "--key-file", help="The store's key file (0600, outside the database's directory)."),
    actor: str = typer.Option("cli", help="Who rotates, as recorded in the audit log."),
) -> None:
    """Re-wrap every template under a new data-key version, in one transaction."""
    from .errors import StoreError
    from .system.keys import FileKeyProvider
    from .system.store import TemplateStore

    try:
        if not db.is_file():
            raise StoreError(f"no template store at {db}")
        with TemplateStore(db, FileKeyProvider(key_file)) as store:
            report = store.rotate_key(actor=actor)
    except CryptofaceError as exc:
        _fail(exc)
    console.print(f"re-wrapped {report.rows} templates from key version(s) "
                  f"{', '.join(map(str, report.from_versions)) or '-'} to {report.to_version}")


def _write_between_markers(path: Path, name: str, text: str) -> None:
    """Replace the block between `<!-- name:begin -->` and `<!-- name:end -->` (append if absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text}{end}"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end):]
    else:
        new = old + ("\n" if old else "") + block + "\n"
    path.write_text(new)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
