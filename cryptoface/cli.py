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

from .errors import CryptofaceError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="End-to-end encrypted face recognition with CKKS.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures (never assert timings).")
app.add_typer(bench_app, name="bench")
console = Console()
err_console = Console(stderr=True)

BackendOpt = typer.Option(None, "--backend", "-b", help="Backend name (wins over CRYPTOFACE_BACKEND and cryptoface.toml).")
ConfigOpt = typer.Option(None, "--config", help="Path to cryptoface.toml (default: ./cryptoface.toml if present).")


def _fail(exc: CryptofaceError) -> None:
    err_console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(2)


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
    typer.echo(json.dumps({"backend": cfg.backend, "backend_source": cfg.backend_source,
                           "threads": cfg.threads, "config_file": str(cfg.path) if cfg.path else None}, indent=2))


@app.command()
def demo(backend: Optional[str] = typer.Option(None, "--backend", "-b", help="One backend (default: every available one)."),
         config_path: Optional[Path] = ConfigOpt) -> None:
    """Run an encrypted computation on each backend and print it against numpy.

    The client encrypts, a server context (evaluation keys only, loaded from bytes) computes
    a degree-7 polynomial and a rotate-and-sum, and the client decrypts.
    """
    import time

    import numpy as np

    from .backend import HEContext
    from .plugins import get_plugins
    from .testing.conftest import PARAMS, STEPS
    from .testing.programs import poly7_then_rotate_sum, poly7_then_rotate_sum_reference

    plugins = get_plugins()
    names = [backend] if backend else [b.name for b in plugins.backends() if b.available]
    x = np.random.default_rng(0).uniform(-1, 1, PARAMS.slots)
    ref = poly7_then_rotate_sum_reference(x, PARAMS.slots)
    table = Table(title=f"p7(x) then rotate-and-sum over {PARAMS.slots} slots, N={PARAMS.ring_dim}, 128-bit")
    for col in ("backend", "first values (encrypted)", "numpy", "max abs error", "seconds"):
        table.add_column(col)
    try:
        for name in names:
            engine = plugins.get(name)
            t0 = time.perf_counter()
            client = HEContext.create(engine, PARAMS, STEPS)
            server = HEContext.deserialize(client.public().serialize(), engine)
            ct = server.deserialize_ciphertext(client.serialize_ciphertext(client.encrypt(x)))
            out = server.serialize_ciphertext(poly7_then_rotate_sum(server, ct, PARAMS.slots))
            got = client.decrypt(client.deserialize_ciphertext(out))
            secs = time.perf_counter() - t0
            table.add_row(name, np.array2string(got[:3], precision=5), np.array2string(ref[:3], precision=5),
                          f"{np.max(np.abs(got - ref)):.2e}", f"{secs:.2f}")
    except CryptofaceError as exc:
        _fail(exc)
    console.print(table)


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
    from .bench.primitives import bench_one, to_json, to_markdown
    from .plugins import get_plugins

    try:
        names = [b.name for b in get_plugins().backends() if b.available and b.name != "simulator"] if backend == "all" else [backend]
        dims = [int(d) for d in ring_dims.split(",")]
        results = [bench_one(n, d, repeats, bootstrap, lambda m: err_console.print(f"[dim]{m}[/]")) for n in names for d in dims]
    except CryptofaceError as exc:
        _fail(exc)
    md = to_markdown(results, _command_line())
    json_out.write_text(json.dumps(to_json(results), indent=2))
    console.print(md)
    if markdown is not None:
        _write_between_markers(markdown, "primitives", md)
        console.print(f"table written into {markdown}")


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
