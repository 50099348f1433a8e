"""Which backend to use, and other settings, from flag, environment and `cryptoface.toml`.

Precedence: the `--backend` flag, then `CRYPTOFACE_BACKEND`, then the config file (found in
the working directory or given with `--config`), then the default. One resolver, so the
CLI, the examples and the server agree on what "the configured backend" is.

`insecure_test_params` weakens encryption, so it is never taken from a file nobody named:
only from the `--insecure-test-params` flag or a file given explicitly with `--config`. A
`./cryptoface.toml` found implicitly that sets it is refused (not ignored): running with a
file whose meaning depends on how it was found would leave the user unsure which setting
was used, and a refusal is the one outcome nobody can miss.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 runtime
    import tomli as tomllib

from .errors import ConfigError
from .params import warn_insecure
from .plugins import get_plugins

CONFIG_FILE = "cryptoface.toml"
ENV_BACKEND = "CRYPTOFACE_BACKEND"
DEFAULT_BACKEND = "openfhe"
INSECURE_FLAG = "--insecure-test-params"
# Every key a config file may hold; anything else (a typo such as `thread`) is refused.
KNOWN_KEYS = ("backend", "threads", "insecure_test_params")


@dataclass(frozen=True)
class Config:
    backend: str = DEFAULT_BACKEND
    backend_source: str = "default"
    threads: int | None = None
    insecure_test_params: bool = False
    insecure_source: str | None = None
    path: Path | None = None
    raw: dict = field(default_factory=dict, compare=False)


def load_file(path: Path | None) -> tuple[dict, Path | None]:
    """The parsed config file: the given path (must exist) or ./cryptoface.toml if present."""
    if path is None:
        candidate = Path.cwd() / CONFIG_FILE
        if not candidate.is_file():
            return {}, None
        path = candidate
    elif not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text()), path
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def settings(data: dict, path: Path | None) -> dict:
    """The settings table of a parsed file (top level or `[cryptoface]`), every key checked."""
    section = data
    if "cryptoface" in data:
        section = data["cryptoface"]
        if not isinstance(section, dict):
            raise ConfigError(f"`cryptoface` in {path} must be a table ([cryptoface]), got {section!r}")
        extra = sorted(set(data) - {"cryptoface"})
        if extra:
            raise ConfigError(f"unknown key(s) {', '.join(extra)} beside [cryptoface] in {path}")
    unknown = sorted(set(section) - set(KNOWN_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {path}; known keys: {', '.join(KNOWN_KEYS)}")
    return section


def _file_backend(section: dict, path: Path | None) -> str | None:
    value = section.get("backend")
    if isinstance(value, dict):
        value = value.get("name")
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"backend must be a backend name (a string), got {value!r} in {path}")
    return value


def _threads(section: dict, path: Path | None) -> int | None:
    threads = section.get("threads")
    # bool is an int in Python: `threads = true` must not mean one thread.
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer, got {threads!r} in {path}")
    return threads


def _insecure(section: dict, path: Path | None, explicit_file: bool, flag: bool) -> tuple[bool, str | None]:
    value = section.get("insecure_test_params", False)
    if not isinstance(value, bool):
        raise ConfigError(f"insecure_test_params must be true or false, got {value!r} in {path}")
    if value and not explicit_file:
        raise ConfigError(
            f"{path} sets insecure_test_params, which is never taken from a file found implicitly: "
            f"pass it with --config {path} or use {INSECURE_FLAG}"
        )
    if flag:
        return True, INSECURE_FLAG
    return (True, f"--config {path}") if value else (False, None)


def announce_insecure(source: str) -> str:
    """Say loudly that encryption may be weakened, every time the flag is resolved."""
    msg = f"requested by {source}: parameters may fall below 128-bit security; for tests only, never for real faces"
    warn_insecure(msg)
    return msg


def resolve(backend_flag: str | None = None, config_path: Path | None = None, check: bool = True,
            insecure_flag: bool = False) -> Config:
    """The effective configuration; with `check`, the backend must be registered."""
    data, path = load_file(config_path)
    section = settings(data, path)
    file_backend = _file_backend(section, path)
    if backend_flag:
        backend, source = backend_flag, "--backend"
    elif os.environ.get(ENV_BACKEND):
        backend, source = os.environ[ENV_BACKEND], ENV_BACKEND
    elif file_backend:
        backend, source = file_backend, str(path)
    else:
        backend, source = DEFAULT_BACKEND, "default"
    if check and backend not in get_plugins().names():
        avail = [b.name for b in get_plugins().backends() if b.available]
        raise ConfigError(
            f"unknown backend {backend!r} (from {source}); available backends: {', '.join(avail) or 'none'}"
        )
    threads = _threads(section, path)
    insecure, insecure_source = _insecure(section, path, config_path is not None, insecure_flag)
    if insecure:
        announce_insecure(insecure_source)
    return Config(backend, source, threads, insecure, insecure_source, path, data)
