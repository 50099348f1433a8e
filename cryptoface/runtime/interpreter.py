"""Executes one section of an HE program on an `HEContext`, timing every primitive.

The timing is what the framework-overhead ratio is made of: wall time divided by the time
spent inside backend primitives, measured in the same run. Constant vectors are built here
(on demand) and their time is reported separately: it is framework work, not backend work.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..backend import Ciphertext, HEContext
from ..program import HEProgram, Section, rotated_name
from ..errors import CryptofaceError, ValueBoundError


@dataclass
class Profile:
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    constant_seconds: float = 0.0

    def add(self, op: str, secs: float, n: int = 1) -> None:
        self.seconds[op] += secs
        self.calls[op] += n

    def merge(self, other: "Profile") -> None:
        for k, v in other.seconds.items():
            self.seconds[k] += v
        for k, v in other.calls.items():
            self.calls[k] += v
        self.constant_seconds += other.constant_seconds

    @property
    def primitive_seconds(self) -> float:
        return sum(self.seconds.values())

    def to_dict(self) -> dict:
        return {
            "primitive_seconds": self.primitive_seconds,
            "constant_seconds": self.constant_seconds,
            "seconds": dict(self.seconds),
            "calls": dict(self.calls),
        }


def run_section(
    ctx: HEContext,
    program: HEProgram,
    section: Section,
    inputs: dict[str, Ciphertext],
    profile: Profile | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict[str, Ciphertext]:
    """Run `section` from the given input ciphertexts; returns its outputs."""
    profile = profile if profile is not None else Profile()
    missing = set(section.inputs) - set(inputs)
    if missing:
        raise CryptofaceError(f"section {section.name!r} is missing inputs {sorted(missing)}")
    env: dict[str, Ciphertext] = {k: inputs[k] for k in section.inputs}
    check = _bound_checker(ctx, program)
    check(section.inputs, env)
    last = section.last_uses()
    for k, ins in enumerate(section.instrs):
        args = [env[a] for a in ins.args]
        const = None
        if ins.const is not None:
            t0 = time.perf_counter()
            const = program.constants.get(ins.const)
            profile.constant_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        op = ins.op
        if op == "add":
            env[ins.out] = ctx.add(*args)
        elif op == "sub":
            env[ins.out] = ctx.sub(*args)
        elif op == "mul":
            env[ins.out] = ctx.mul(*args)
        elif op == "square":
            env[ins.out] = ctx.square(args[0])
        elif op == "rescale":
            env[ins.out] = ctx.rescale(args[0])
        elif op == "mod_switch":
            env[ins.out] = ctx.mod_switch_to(args[0], ins.level)
        elif op == "rotate":
            env[ins.out] = ctx.rotate(args[0], ins.step)
        elif op == "rotate_many":
            for s, ct in ctx.rotate_many(args[0], list(ins.steps)).items():
                env[rotated_name(ins.out, s)] = ct
        elif op == "mul_plain":
            env[ins.out] = ctx.mul_plain(args[0], const)
        elif op == "add_plain":
            env[ins.out] = ctx.add_plain(args[0], const)
        elif op == "bootstrap":
            env[ins.out] = ctx.bootstrap(args[0])
        else:
            raise CryptofaceError(f"unknown HE op {op!r} in section {section.name!r}")
        n = max(1, len(ins.steps or ())) if op == "rotate_many" else 1
        profile.add(op, time.perf_counter() - t0, n)
        check(ins.outputs(), env)
        for a in set(ins.args):
            if last.get(a) == k and a not in section.outputs:
                del env[a]
        if on_step is not None:
            on_step(k)
    return {o: env[o] for o in section.outputs}


def _bound_checker(ctx: HEContext, program: HEProgram) -> Callable[[Sequence[str], dict[str, Ciphertext]], None]:
    """Checks values against the compiler's bounds (`HEProgram.bounds`) where the backend can
    see them (`Engine.observe`); a no-op on backends that cannot, or without bounds."""
    bounds = program.bounds
    engine = ctx.engine

    def check(names: Sequence[str], env: dict[str, Ciphertext]) -> None:
        for name in names:
            bound = bounds.get(name)
            if bound is None:
                continue
            values = engine.observe(env[name].raw)
            if values is None:
                return
            seen = float(np.max(np.abs(values), initial=0.0))
            if not seen <= bound:  # NaN (a wrapped-out value) fails too
                raise ValueBoundError(
                    f"value {name!r} reached |{seen:.4g}|, beyond the bound {bound:.4g} the plan was "
                    "made for: the input is outside the range the model was calibrated for (a real "
                    "backend would return a wrong result here, not an error)"
                )

    return check if bounds else (lambda names, env: None)
