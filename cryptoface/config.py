"""Which backend to use, and other settings, from flag, environment and `cryptoface.toml`.

Precedence: the `--backend` flag, then `CRYPTOFACE_BACKEND`, then the config file (found in
the working directory or given with `--config`), then the default. One resolver, so the
CLI, the examples and the server agree on what "the configured backend" is.
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
from .plugins import get_plugins

CONFIG_FILE = "cryptoface.toml"
ENV_BACKEND = "CRYPTOFACE_BACKEND"
DEFAULT_BACKEND = "openfhe"


@dataclass(frozen=True)
class Config:
    backend: str = DEFAULT_BACKEND
    backend_source: str = "default"
    threads: int | None = None
    insecure_test_params: bool = False
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
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def resolve(backend_flag: str | None = None, config_path: Path | None = None, check: bool = True) -> Config:
    """The effective configuration; with `check`, the backend must be registered."""
    data, path = load_file(config_path)
    section = data.get("cryptoface", data)
    file_backend = section.get("backend")
    if isinstance(file_backend, dict):
        file_backend = file_backend.get("name")
    if backend_flag:
        backend, source = backend_flag, "--backend"
    elif os.environ.get(ENV_BACKEND):
        backend, source = os.environ[ENV_BACKEND], ENV_BACKEND
    elif file_backend:
        backend, source = str(file_backend), str(path)
    else:
        backend, source = DEFAULT_BACKEND, "default"
    if check and backend not in get_plugins().names():
        avail = [b.name for b in get_plugins().backends() if b.available]
        raise ConfigError(
            f"unknown backend {backend!r} (from {source}); available backends: {', '.join(avail) or 'none'}"
        )
    threads = section.get("threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer, got {threads!r} in {path}")
    insecure = section.get("insecure_test_params", False)
    if not isinstance(insecure, bool):
        raise ConfigError(f"insecure_test_params must be true or false, got {insecure!r} in {path}")
    return Config(backend, source, threads, insecure, path, data)
