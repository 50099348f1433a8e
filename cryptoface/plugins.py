"""Backend discovery through pluggy.

A backend distribution declares an entry point in the group `cryptoface.backends` pointing
at a module with a `cryptoface_register_backends(register)` hook implementation that calls
`register.add(MyEngine)`. Discovery never imports an FHE library: the engine class imports
it lazily in `capabilities()`, so a missing or broken library shows up as "unavailable
(reason)" in `cryptoface backends` instead of breaking every command.

`CRYPTOFACE_LOAD_PLUGINS` (comma-separated entry-point names) restricts which plugins load,
like datasette's DATASETTE_LOAD_PLUGINS; unset means all.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import pluggy

from .errors import BackendUnavailableError, ConfigError
from .hooks import hookimpl, hookspec

if TYPE_CHECKING:
    from .backend import Capabilities, Engine

ENTRY_POINT_GROUP = "cryptoface.backends"
__all__ = ["hookimpl", "hookspec", "get_plugins"]  # plugins import `hookimpl` from here


class BackendHookSpecs:
    @hookspec
    def cryptoface_register_backends(self, register: "BackendRegistry") -> None:
        """Register engine classes: `register.add(EngineClass)`."""

    @hookspec(firstresult=True)
    def cryptoface_op_cost(self, backend: str, op: str, level: int, ring_dim: int) -> float | None:
        """Seconds one `op` takes at `level` and `ring_dim` on `backend`, if the plugin knows.

        The bootstrap placer minimises the program cost with it; None lets the default model
        (compile/costs.py) answer.
        """


@dataclass
class BackendInfo:
    """One registered backend and whether it can be used here."""

    name: str
    engine: "type[Engine] | None"
    plugin: str
    available: bool
    reason: str = ""
    capabilities: "Capabilities | None" = None

    def to_dict(self) -> dict:
        caps = self.capabilities
        return {
            "name": self.name,
            "plugin": self.plugin,
            "available": self.available,
            "reason": self.reason,
            "library": caps.library if caps else None,
            "library_version": caps.library_version if caps else None,
            "bootstrapping": bool(caps and caps.bootstrapping),
            "capabilities": caps.to_dict() if caps else None,
        }


@dataclass
class BackendRegistry:
    """What plugins register into; one per plugin manager."""

    engines: dict[str, "type[Engine]"] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    _current_plugin: str = "builtin"

    def add(self, engine_cls: "type[Engine]") -> None:
        name = engine_cls.name
        if name in self.engines and self.engines[name] is not engine_cls:
            raise ConfigError(
                f"backend name {name!r} registered twice (by {self.origin[name]} and {self._current_plugin})"
            )
        self.engines[name] = engine_cls
        self.origin[name] = self._current_plugin


class Plugins:
    """The loaded plugins and the backends they registered."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager("cryptoface")
        self.pm.add_hookspecs(BackendHookSpecs)
        self.registry = BackendRegistry()
        self.broken: dict[str, str] = {}  # entry-point name -> why it did not load
        from . import simulator

        self._register_plugin(simulator, "cryptoface.simulator")
        if load_entry_points:
            self._load_entry_points()
        self.pm.check_pending()

    def _register_plugin(self, module: object, name: str) -> None:
        if self.pm.is_registered(module):
            return
        self.pm.register(module, name=name)
        self.registry._current_plugin = name
        hook = getattr(module, "cryptoface_register_backends", None)
        if hook is not None:
            hook(register=self.registry)

    def _load_entry_points(self) -> None:
        allowed = os.environ.get("CRYPTOFACE_LOAD_PLUGINS")
        allow = None if allowed is None else {s.strip() for s in allowed.split(",") if s.strip()}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allow is not None and ep.name not in allow:
                continue
            try:
                module = ep.load()
                self._register_plugin(module, ep.value)
            except Exception as exc:  # a broken plugin must not break discovery
                self.broken[ep.name] = f"plugin {ep.value} failed to load: {type(exc).__name__}: {exc}"

    def backends(self) -> list[BackendInfo]:
        """Every registered backend, probed for availability, then the broken plugins."""
        out = [probe(name, cls, self.registry.origin[name]) for name, cls in sorted(self.registry.engines.items())]
        for name, reason in sorted(self.broken.items()):
            if name not in self.registry.engines:
                out.append(BackendInfo(name, None, name, False, reason))
        return out

    def names(self) -> list[str]:
        return sorted(set(self.registry.engines) | set(self.broken))

    def get(self, name: str) -> "type[Engine]":
        """The engine class for `name`, or a clear error listing what exists."""
        if name in self.broken and name not in self.registry.engines:
            raise BackendUnavailableError(f"backend {name!r} is unavailable: {self.broken[name]}")
        if name not in self.registry.engines:
            avail = [b.name for b in self.backends() if b.available]
            raise ConfigError(f"unknown backend {name!r}; available backends: {', '.join(avail) or 'none'}")
        info = probe(name, self.registry.engines[name], self.registry.origin[name])
        if not info.available:
            raise BackendUnavailableError(f"backend {name!r} is unavailable: {info.reason}")
        return self.registry.engines[name]

    def op_cost(self, backend: str, op: str, level: int, ring_dim: int) -> float | None:
        return self.pm.hook.cryptoface_op_cost(backend=backend, op=op, level=level, ring_dim=ring_dim)


@lru_cache(maxsize=None)
def _probe_cached(cls: "type[Engine]") -> tuple[bool, str, "Capabilities | None"]:
    try:
        return True, "", cls.capabilities()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}", None


def probe(name: str, cls: "type[Engine]", plugin: str) -> BackendInfo:
    ok, reason, caps = _probe_cached(cls)
    return BackendInfo(name, cls, plugin, ok, reason, caps)


@lru_cache(maxsize=1)
def get_plugins() -> Plugins:
    """The process-wide plugin manager (discovery runs once)."""
    return Plugins()
