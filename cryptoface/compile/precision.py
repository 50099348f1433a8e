"""Precision as a compile target: the output error of a plan, predicted before any key exists.

CKKS computes approximately. Three sources of error reach the output, and each scales with a
parameter the compiler chooses:
- **noise**: fresh encryption (about 2.6 N / scale per slot, std) and the rounding every rescale
  and key switch adds (about N / (6 scale)); it shrinks as 2^-scale_bits.
- **scale drift**: a library that labels a rescaled value with the nominal scale 2^scale_bits
  instead of the prime it divided by (OpenFHE's FIXEDMANUAL) multiplies the value by
  2^scale_bits / q_l at every rescale; the library states the factors (`Engine.scale_errors`).
- **bootstrapping**: a bootstrap returns its input (prescaled into the library's range B) with
  an error of about B 2^-precision_bits (`BootstrapOption.precision_bits`, measured).

How the network amplifies each is measured once per model on the reference interpreter: every
value the HE program produces is perturbed by a small unit error of the right kind (`run(...,
perturb=...)`) and the output deviation is recorded. Errors this small propagate linearly, so
the prediction for any candidate parameter set is the unit response times that set's error
size: cheap enough to rank every candidate. `safety` covers the rest (correlations the Gaussian
model misses, the key-switching noise inside a linear layer before its weights multiply it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..ir.graph import Graph
from ..ir.interpreter import run as run_reference
from ..params import CKKSParams

UNIT = 1e-7  # small enough that the response is linear, far above float64 rounding
FRESH_NOISE = 2.6  # fresh encryption noise per slot, in units of N / scale (std)
EVENT_NOISE = 1 / 6  # rescale / key-switch rounding per slot, in units of N / scale (std)
SAFETY = 2.0


@dataclass(frozen=True)
class PrecisionTarget:
    """The output error the compiler must guarantee, relative to the output (L2).

    The default, 5e-4, keeps an embedding's cosine with its exact value >= 1 - (5e-4)^2 / 2
    (above 0.99999) and moves a cosine score between two such embeddings by at most about
    2 x 5e-4 = 1e-3."""

    max_relative_error: float = 5e-4


@dataclass(frozen=True)
class PredictedError:
    max_abs: float  # largest |error| over the output's values
    relative: float  # ||error||_2 / ||output||_2
    parts: dict[str, float] = field(default_factory=dict)  # relative error by source

    def to_dict(self) -> dict:
        return {"max_abs": self.max_abs, "relative": self.relative, "by_source": dict(self.parts)}


@dataclass(frozen=True)
class ProducedValue:
    """A ciphertext value the program makes: where errors enter."""

    name: str
    rescales: int  # rescales it goes through (scale drift and rounding)
    key_switches: int  # rotation or relinearization rounds (rounding)
    fresh: bool = False  # a client-encrypted input
    product: bool = False  # made by a ct x ct multiplication (its scale is relabelled at joins)


def _deviation(graph: Graph, feeds: Sequence[Mapping[str, np.ndarray]], refs: Sequence[np.ndarray],
               perturb_for, unit: float = UNIT) -> tuple[float, float]:
    """Max abs and relative L2 deviation of the output over the feeds, per `unit`."""
    worst_abs = worst_rel = 0.0
    out = graph.outputs[0]
    for k, (feed, ref) in enumerate(zip(feeds, refs)):
        inputs_fn, node_fn = perturb_for(k)
        got = run_reference(graph, inputs_fn(feed), perturb=node_fn)[out].reshape(-1)
        err = got - ref
        worst_abs = max(worst_abs, float(np.max(np.abs(err))))
        worst_rel = max(worst_rel, float(np.linalg.norm(err) / max(np.linalg.norm(ref), 1e-30)))
    return worst_abs / unit, worst_rel / unit


class PrecisionModel:
    """The model's error responses, measured on the reference; `predict` for any parameters."""

    def __init__(self, graph: Graph, produced: Sequence[ProducedValue], feeds: Sequence[Mapping[str, np.ndarray]],
                 trials: int = 2) -> None:
        self.graph = graph
        self.feeds = list(feeds)
        self.produced = {p.name: p for p in produced}
        self.refs = [run_reference(graph, f)[graph.outputs[0]].reshape(-1) for f in self.feeds]
        events = {p.name: p.rescales + p.key_switches for p in produced if not p.fresh}
        self.noise = self._gaussian({v: UNIT * math.sqrt(e) for v, e in events.items() if e}, trials, seed=0)
        self.fresh = self._gaussian({p.name: UNIT for p in produced if p.fresh}, trials, seed=500)

    def _gaussian(self, std: Mapping[str, float], trials: int, seed: int) -> tuple[float, float]:
        """Worst output deviation per UNIT over `trials` runs, each value v (a graph input or a
        computed value) receiving Gaussian noise of std std[v]."""
        def run(trial: int) -> tuple[float, float]:
            def for_feed(k: int):
                rng = np.random.default_rng(seed + 1000 * trial + k)

                def on_inputs(feed):
                    return {n: v + rng.normal(0, std[n], v.shape) if n in std else v for n, v in feed.items()}

                def on_node(name, value):
                    return value + rng.normal(0, std[name], value.shape) if name in std else value
                return on_inputs, on_node
            return _deviation(self.graph, self.feeds, self.refs, for_feed)

        runs = [run(t) for t in range(trials)]
        return max(r[0] for r in runs), max(r[1] for r in runs)

    def drift(self, factors: Mapping[str, float]) -> tuple[float, float]:
        """Output deviation when each value named in `factors` is multiplied by its factor
        (the scale drift of the rescales that made it): absolute, not per unit."""
        if not factors or all(f == 1.0 for f in factors.values()):
            return 0.0, 0.0

        def for_feed(k: int):
            return (lambda feed: feed), (lambda name, value: value * factors[name] if name in factors else value)
        return _deviation(self.graph, self.feeds, self.refs, for_feed, unit=1.0)

    def bootstrap(self, bounds: Mapping[str, float], trials: int = 2) -> tuple[float, float]:
        """Output deviation per unit of relative bootstrap error, each bootstrapped value v
        receiving an error of std UNIT x bounds[v] (its prescale range)."""
        if not bounds:
            return 0.0, 0.0
        return self._gaussian({v: UNIT * b for v, b in bounds.items()}, trials, seed=7000)

    def predict(self, params: CKKSParams, drift: tuple[float, float] = (0.0, 0.0),
                boot: tuple[float, float] = (0.0, 0.0), boot_precision_bits: float | None = None) -> PredictedError:
        """The output error of `params`: the unit responses times this parameter set's sizes."""
        unit_noise = params.ring_dim / params.scale
        scaled = {
            "noise": (self.noise, EVENT_NOISE * unit_noise * SAFETY),
            "fresh": (self.fresh, FRESH_NOISE * unit_noise * SAFETY),
            "drift": (drift, SAFETY),
            "bootstrap": (boot, 0.0 if boot_precision_bits is None else SAFETY * 2.0 ** -boot_precision_bits),
        }
        max_abs = sum(r[0] * size for r, size in scaled.values())
        relative = sum(r[1] * size for r, size in scaled.values())
        return PredictedError(max_abs, relative, {k: r[1] * size for k, (r, size) in scaled.items()})


def drift_factors(op_levels: Mapping[str, tuple[int, int]], scale_errors: Sequence[float]) -> dict[str, float]:
    """Per value: the product of (1 + e_l) over the levels l its rescales happen at.

    `op_levels[v] = (level the op runs at, rescales)`; `scale_errors[l - 1]` is level l's error."""
    out = {}
    for name, (level, rescales) in op_levels.items():
        f = 1.0
        for k in range(rescales):
            lvl = level - k
            if 1 <= lvl <= len(scale_errors):
                f *= 1.0 + scale_errors[lvl - 1]
        out[name] = f
    return out
