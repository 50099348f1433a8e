"""Schedules the independent sections of a program (one per patch network).

One interface, several strategies: in-process serial, a thread pool (useful only where the
library releases the GIL during its primitives), forked worker processes (keys shared
copy-on-write). The combining section runs after all patch sections, on the caller's thread.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from tqdm import tqdm

from ..backend import Ciphertext, HEContext
from ..program import HEProgram, Section
from ..errors import ConfigError
from .interpreter import Profile, run_section


@dataclass
class RunResult:
    outputs: dict[str, Ciphertext]
    wall_seconds: float
    profile: Profile
    section_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def overhead_ratio(self) -> float:
        """Wall time over time inside backend primitives (1.0 = no framework overhead)."""
        p = self.profile.primitive_seconds
        return self.wall_seconds / p if p > 0 else float("inf")


class Executor(Protocol):
    def map_sections(self, ctx: HEContext, program: HEProgram, sections: list[Section],
                     env: dict[str, Ciphertext], progress: bool) -> list[tuple[dict[str, Ciphertext], Profile, float]]: ...


def _run_one(ctx: HEContext, program: HEProgram, section: Section, env: dict[str, Ciphertext], position: int, progress: bool):
    prof = Profile()
    # disable=None: tqdm stays quiet when stderr is not a terminal (logs, CI)
    bar = tqdm(total=len(section.instrs), desc=section.name, position=position, leave=False, disable=None if progress else True)
    t0 = time.perf_counter()
    out = run_section(ctx, program, section, {k: env[k] for k in section.inputs}, prof, on_step=lambda _: bar.update())
    bar.close()
    return out, prof, time.perf_counter() - t0


class SerialExecutor:
    name = "serial"

    def map_sections(self, ctx, program, sections, env, progress):
        return [_run_one(ctx, program, s, env, 0, progress) for s in sections]


class ThreadExecutor:
    name = "threads"

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers

    def map_sections(self, ctx, program, sections, env, progress):
        with ThreadPoolExecutor(self.workers) as pool:
            futs = [pool.submit(_run_one, ctx, program, s, env, k, progress) for k, s in enumerate(sections)]
            return [f.result() for f in futs]


# State a forked worker inherits (copy-on-write: the keys' C++ memory is shared, not copied).
_FORKED: tuple | None = None


def _run_forked(index: int) -> tuple[dict[str, bytes], dict, float]:
    ctx, program, sections, env = _FORKED  # type: ignore[misc]
    out, prof, secs = _run_one(ctx, program, sections[index], env, index, False)
    return {k: ctx.serialize_ciphertext(v) for k, v in out.items()}, prof.to_dict(), secs


class ProcessExecutor:
    """Sections in forked worker processes (one per core by default).

    Fork shares the parent's keys copy-on-write instead of loading them into every worker;
    results come back as serialized ciphertexts. Libraries that run OpenMP thread pools
    (OpenFHE) are not fork-safe after their pool started, so they are refused here: use
    threads for them (their primitives release the GIL and are multithreaded already).
    """

    name = "processes"

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers

    def map_sections(self, ctx, program, sections, env, progress):
        import multiprocessing as mp

        global _FORKED
        if ctx.engine.capabilities().thread_control:
            raise ConfigError(f"the processes executor forks, which {ctx.backend} (OpenMP) does not survive; use threads")
        _FORKED = (ctx, program, sections, env)
        try:
            with mp.get_context("fork").Pool(min(self.workers, len(sections))) as pool:
                results = pool.map(_run_forked, range(len(sections)))
        finally:
            _FORKED = None
        out = []
        for blobs, prof_d, secs in results:
            prof = Profile()
            for k, v in prof_d["seconds"].items():
                prof.add(k, v, prof_d["calls"][k])
            prof.constant_seconds = prof_d["constant_seconds"]
            out.append(({k: ctx.deserialize_ciphertext(b) for k, b in blobs.items()}, prof, secs))
        return out


EXECUTORS = {"serial": SerialExecutor, "threads": ThreadExecutor, "processes": ProcessExecutor}


def get_executor(name: str, workers: int = 2, backend: str | None = None) -> Executor:
    """`auto` picks what measured fastest (docs/benchmarks.md, small model, 2 cores): threads
    for OpenFHE (its binding releases the GIL: 15.4 s vs 24.4 s serial), forked processes for
    the SEAL bindings, which hold the GIL (TenSEAL 10.1 s vs 19.2 s serial). The workers share
    the parent's keys copy-on-write; what they allocate themselves is the "worker peak" that
    `cryptoface bench inference` reports beside the parent's (`runtime.memory`)."""
    if name == "auto":
        from ..plugins import get_plugins

        caps = get_plugins().get(backend).capabilities() if backend else None
        name = "threads" if caps is not None and caps.thread_control else "processes" if caps is not None else "serial"
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; choose one of auto, {', '.join(sorted(EXECUTORS))}")
    return EXECUTORS[name]() if name == "serial" else EXECUTORS[name](workers)


def run_program(ctx: HEContext, program: HEProgram, inputs: dict[str, Ciphertext],
                executor: Executor | None = None, progress: bool = False) -> RunResult:
    """Run every section: independent ones through the executor, then the rest in order."""
    executor = executor or SerialExecutor()
    t0 = time.perf_counter()
    env = dict(inputs)
    profile = Profile()
    timings: dict[str, float] = {}
    pending = list(program.sections)
    while pending:
        ready = [s for s in pending if all(i in env for i in s.inputs)]
        if not ready:
            missing = sorted({i for s in pending for i in s.inputs} - set(env))
            raise ConfigError(f"program inputs missing: {missing}")
        for s, (out, prof, secs) in zip(ready, executor.map_sections(ctx, program, ready, env, progress)):
            env.update(out)
            profile.merge(prof)
            timings[s.name] = secs
        pending = [s for s in pending if s not in ready]
    outputs = {o: env[o] for o in program.outputs}
    return RunResult(outputs, time.perf_counter() - t0, profile, timings)
