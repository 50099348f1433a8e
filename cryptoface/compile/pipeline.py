"""The compiler driver: import ▸ pack ▸ levels ▸ bootstrap ▸ params ▸ lower, once per model.

Each stage is its own module; this one only sequences them and keeps what the client and
the report need: how to cut and pack the image, how to read the embedding back, the
parameters, the keys, and per-layer counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import Ciphertext, Engine, HEContext
from ..errors import CompileError
from ..ir.graph import Graph
from ..ir.interpreter import run as run_reference
from ..ir.onnx_import import import_onnx
from ..params import CKKSParams, next_pow2
from ..plugins import get_plugins
from ..program import ConstantTable, HEProgram, ModelRecord
from ..program.layout import Layout
from .bootstrap import place_bootstraps
from .bounds import calibrate, calibration_feeds, headroom_bits, holders_of, prescale, program_bounds, random_feeds
from .combine import combine
from .compose_rotations import compose_rotations
from .costs import OpCosts
from .emit import SectionEmitter
from .levels import LevelAssignment, LevelGraph, LevelNode, assign_levels, check, critical_depth
from .lowering import work
from .pack import PackedPartition, Packer
from .parameters import ParameterChoice, ParameterRequest, choose_parameters, key_budget_bytes
from .precision import PredictedError, PrecisionModel, PrecisionTarget, ProducedValue, drift_factors
from .report import layer_report, plan_report

PROBE_SLOTS = 1 << 17


@dataclass
class CompileOptions:
    output_levels: int = 0  # levels the consumer of the output (e.g. the matcher) needs
    scale_bits: int = 40
    min_scale_bits: int = 30  # the scale may drop this far when it saves a ring dimension
    key_budget: int | None = None
    insecure_test_params: bool = False
    max_depth: int | None = None  # cap the chain (forces bootstraps; for tests and studies)
    calibration: np.ndarray | None = None  # (n, C, H, W) inputs for bootstrap range bounds
    ring_dim: int | None = None  # force N (tests); below 128-bit only with insecure_test_params
    precision: PrecisionTarget = field(default_factory=PrecisionTarget)


@dataclass
class CompiledModel:
    graph: Graph
    program: HEProgram
    partitions: list[PackedPartition]
    levels: dict[int, LevelAssignment]
    choice: ParameterChoice
    output_layout: Layout
    output_period: int
    backend: str
    layer_report: list[dict] = field(default_factory=list)

    @property
    def params(self) -> CKKSParams:
        return self.program.params

    # ---- client side: the program's own (a loaded program file has the same) ---------------
    def patch_inputs(self, *arrays: np.ndarray, **named: np.ndarray) -> dict[str, np.ndarray]:
        return self.program.patch_inputs(*arrays, **named)

    def encrypt(self, ctx: HEContext, *arrays: np.ndarray, **named: np.ndarray) -> dict[str, Ciphertext]:
        return self.program.encrypt(ctx, *arrays, **named)

    def decode(self, vec: np.ndarray) -> np.ndarray:
        return self.program.decode(vec)

    def reference(self, *arrays: np.ndarray, **named: np.ndarray) -> np.ndarray:
        feeds = dict(zip(self.graph.inputs, arrays)) | named
        feeds = {k: np.asarray(v, dtype=np.float64).reshape(self.graph.shape(k)) for k, v in feeds.items()}
        return run_reference(self.graph, feeds)[self.graph.outputs[0]].reshape(-1)

    def create_context(self, engine: type[Engine]) -> HEContext:
        return self.program.create_context(engine)


def _level_graph(part: PackedPartition) -> LevelGraph:
    nodes = [LevelNode(op.name, op.inputs, op.depth, op.join, op.layout.used, work(op)) for op in part.ops]
    return LevelGraph(nodes, (part.output_name,))


def compile_model(model: Any, engine: type[Engine], options: CompileOptions | None = None) -> CompiledModel:
    opts = options or CompileOptions()
    graph = model if isinstance(model, Graph) else import_onnx(model)
    if len(graph.outputs) != 1:
        raise CompileError(f"expected one output, got {graph.outputs}")
    parts_ir = graph.partitions()
    whole = not parts_ir  # no patches: the whole graph is one section
    if whole:
        parts_ir = {0: graph.topological_order()}
    # 1. packing: find the slots the largest tensor needs, then pack for real.
    probe = [Packer(graph, PROBE_SLOTS, make_plans=False).partition(i, nodes) for i, nodes in sorted(parts_ir.items())]
    used = max(op.layout.used for p in probe for op in p.ops)
    slots = next_pow2(used)
    packer = Packer(graph, slots)
    parts = [packer.partition(i, nodes) for i, nodes in sorted(parts_ir.items())]
    # 2. levels needed, 3. parameters and keys.
    lgraphs = {p.index: _level_graph(p) for p in parts}
    need = max(critical_depth(g, opts.output_levels) for g in lgraphs.values())
    caps = engine.capabilities()
    peaks = calibrate(graph, opts.calibration)
    headroom = headroom_bits(peaks)  # q0 holds the largest value at the last level
    steps = sorted(set().union(*(p.rotation_steps() for p in parts)))
    capped = opts.max_depth is not None and opts.max_depth < need
    if capped and not caps.bootstrapping:
        raise CompileError(f"max_depth={opts.max_depth} < the {need} levels needed, and {engine.name} cannot bootstrap")
    # Precision: how the network amplifies CKKS errors, measured once on the reference.
    feeds = precision_feeds(graph, opts.calibration)
    model_errors = PrecisionModel(graph, _produced_values(parts), feeds)
    request = ParameterRequest(
        depth_needed=need, slots=slots, rotation_steps=steps, op_counts=_op_counts(parts), patches=len(parts),
        output_levels=opts.output_levels, scale_bits=opts.scale_bits, min_scale_bits=opts.min_scale_bits,
        headroom_bits=headroom, max_relative_error=opts.precision.max_relative_error,
        key_budget=key_budget_bytes(opts.key_budget), insecure_test_params=opts.insecure_test_params,
        ring_dim=opts.ring_dim, force_bootstrap=capped, levels_after_bootstrap=opts.max_depth if capped else None,
    )
    choice, levels, bounds = _choose_and_place(engine, request, model_errors, lgraphs, peaks)
    params = choice.params
    # 5. lowering.
    constants = ConstantTable()
    sections = []
    holders = {v: v for v in peaks}  # ciphertext name -> the IR value it holds
    for p in parts:
        em = SectionEmitter(f"patch{p.index}", slots, constants, levels[p.index], bounds, params.depth)
        sections.append(em.partition(p))
        holders |= holders_of(em.at)
    combined, out_layout, out_period = combine(graph, parts, levels, whole)
    sections.append(combined)
    if choice.keys.composed:
        sections = [compose_rotations(s, slots) for s in sections]
    program = HEProgram(
        params=params, rotation_steps=list(choice.keys.steps), compose_rotations=choice.keys.composed,
        sections=sections, constants=constants,
        inputs={i.name: {"level": choice.input_level, "layout": i.layout.to_dict(), "section": f"patch{p.index}",
                         "source": i.source, "slice": i.slice} for p in parts for i in p.inputs},
        outputs={graph.outputs[0]: {"layout": out_layout.to_dict(), "period": out_period}},
        backend=engine.name, model_inputs={i: tuple(graph.shape(i)) for i in graph.inputs},
        model=None if isinstance(model, Graph) else ModelRecord.of(model),
    )
    program.bounds = program_bounds(program, peaks, holders)
    compiled = CompiledModel(graph, program, parts, levels, choice, out_layout, out_period, engine.name)
    compiled.layer_report = layer_report(parts, levels)
    program.report = plan_report(compiled, engine, need, opts.precision)
    return compiled


def precision_feeds(graph: Graph, calibration: np.ndarray | None, count: int = 2) -> list[dict[str, np.ndarray]]:
    """Inputs the precision prediction runs on: the first calibration images, else uniform
    [-1, 1] draws (the range the client's preprocessing produces)."""
    if calibration is not None and len(calibration):
        return calibration_feeds(graph, list(calibration)[:count])
    return random_feeds(graph, count, seed=1)


def _produced_values(parts: list[PackedPartition]) -> list[ProducedValue]:
    """Where CKKS errors enter: every packed op's output (rescales, key switches), fresh inputs."""
    out = []
    for p in parts:
        for op in p.ops:
            if op.kind == "input":
                out.append(ProducedValue(op.name, 0, 0, fresh=True))
                continue
            product = op.kind in ("mul", "quadratic")  # relinearized, and relabelled at joins
            switches = (2 if op.plan is not None and op.plan.counts.rotations else 0) + int(product)
            out.append(ProducedValue(op.name, op.depth, switches, product=product))
    return out


def _op_levels(lgraphs: dict[int, LevelGraph], levels: dict[int, LevelAssignment],
               drifting: set[str] | None) -> dict[str, tuple[int, int]]:
    """Per value whose rescales drift (all, or only `drifting`): (level its op runs at,
    rescales it goes through), for the drift prediction."""
    return {n.name: (levels[i].op_level[n.name], n.depth) for i, g in lgraphs.items() for n in g.nodes
            if n.inputs and n.depth and (drifting is None or n.name in drifting)}


def _place(lgraphs: dict[int, LevelGraph], choice: ParameterChoice, engine: type[Engine]) -> dict[int, LevelAssignment]:
    costs = OpCosts(engine.name, choice.params.ring_dim, get_plugins().op_cost)  # the backend's, else the default model
    levels: dict[int, LevelAssignment] = {}
    for idx, g in lgraphs.items():
        boots = place_bootstraps(g, choice.input_level, choice.boot_level, choice.output_levels,
                                 costs.bootstrap_at(choice.params.depth), costs.op)
        la = assign_levels(g, choice.input_level, boots, choice.boot_level, choice.output_levels)
        check(g, la)
        levels[idx] = la
    return levels


def _choose_and_place(engine: type[Engine], request: ParameterRequest, errors: PrecisionModel, lgraphs: dict[int, LevelGraph],
                      peaks: dict[str, float]) -> tuple[ParameterChoice, dict[int, LevelAssignment], dict[str, float]]:
    """Parameters, then bootstraps and levels, then the predicted error of what was placed; when
    bootstraps make it miss the target, ask again for more precise bootstrapping."""
    leveled = {i: assign_levels(g, request.depth_needed, (), None, request.output_levels) for i, g in lgraphs.items()}
    # A library that tracks true scales drifts only where ct x ct products are relabelled.
    drifting = {p.name for p in errors.produced.values() if p.product} if engine.capabilities().exact_scales else None
    leveled_ops = _op_levels(lgraphs, leveled, drifting)
    min_bits = 0.0
    for _ in range(3):
        choice = choose_parameters(engine, request, _predictor(engine, errors, leveled_ops, min_bits))
        levels = _place(lgraphs, choice, engine)
        p = choice.params
        drift = errors.drift(drift_factors(_op_levels(lgraphs, levels, drifting), engine.scale_errors(p)))
        bounds: dict[str, float] = {}
        boot, bits = (0.0, 0.0), None
        if any(la.bootstraps for la in levels.values()):
            assert p.bootstrap is not None and choice.bootstrap is not None
            bounds = {v: prescale(peaks[v], p.bootstrap.input_range) for la in levels.values() for v in la.bootstraps}
            boot, bits = errors.bootstrap(bounds), choice.bootstrap.precision_bits
        choice.predicted = errors.predict(p, drift, boot, bits)
        if choice.predicted.relative <= request.max_relative_error:
            return choice, levels, bounds
        rest = choice.predicted.relative - choice.predicted.parts.get("bootstrap", 0.0)
        room = request.max_relative_error - rest
        if bits is None or room <= 0 or boot[1] <= 0:
            break
        min_bits = max(min_bits, bits) + max(1.0, math.log2(2.0 * boot[1] / room) - bits)
    raise CompileError(
        f"the plan's predicted output error is {choice.predicted.relative:.1e} relative (target "
        f"{request.max_relative_error:.1e}; by source: "
        + ", ".join(f"{k} {v:.1e}" for k, v in choice.predicted.parts.items() if v)
        + f") and {engine.name} offers nothing more precise here. Relax CompileOptions.precision, or use a "
        "backend or ring with more precision")


def _predictor(engine: type[Engine], errors: PrecisionModel, leveled_ops: dict[str, tuple[int, int]], min_boot_bits: float):
    """The candidate-ranking predictor. A leveled candidate's drift is exact (its levels are
    known); a bootstrapped one gets the worst case (every rescale at the largest drift, one
    sign) until placement; bootstrap options below `min_boot_bits` are refused."""
    def predicted(params: CKKSParams, opt) -> PredictedError:
        if opt is not None and opt.precision_bits < min_boot_bits:
            return PredictedError(math.inf, math.inf, {"bootstrap": math.inf})
        errs = list(engine.scale_errors(params))
        if opt is None:
            factors = drift_factors(leveled_ops, errs)
        else:
            worst = max((abs(e) for e in errs), default=0.0)
            factors = {v: (1 + worst) ** r for v, (_, r) in leveled_ops.items()}
        return errors.predict(params, errors.drift(factors))
    return predicted


def _op_counts(parts: list[PackedPartition]) -> tuple[int, int]:
    """(rotations, plaintext products) of the whole program, for the parameter cost model."""
    rot = mults = 0
    for p in parts:
        for op in p.ops:
            if op.plan is not None:
                c = op.plan.counts
                rot, mults = rot + c.rotations, mults + c.plaintext_mults
            elif op.kind in ("quadratic", "mul_const", "add_const"):
                mults += 1
    return rot, mults
