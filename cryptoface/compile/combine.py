"""The combine pass: the section after the patch networks.

Each patch network's section ends in its partial output; the shared nodes of the graph (the
Sum of the partial outputs, and data movement after it) become the "combine" section, its
operands mod-switched to one level. A graph whose one section already computes the output
(no patches, or a single patch) gets a combine section that only renames it.
"""

from __future__ import annotations

from ..errors import CompileError
from ..ir.graph import Graph
from ..program import Instr, Section
from ..program.layout import Layout
from .levels import LevelAssignment
from .pack import PackedPartition


def combine(graph: Graph, parts: list[PackedPartition], levels: dict[int, LevelAssignment], whole: bool) -> tuple[Section, Layout, int]:
    """The section after the patch networks, its output's layout and period. `whole`: the
    graph has no patches (its one section is the whole graph)."""
    shared = () if whole else graph.shared_nodes()
    outs = {p.output_name: (levels[p.index].assigned[p.output_name], p) for p in parts}
    section = Section("combine", tuple(outs), (graph.outputs[0],))
    env = {name: name for name in outs}
    lvl = {name: l for name, (l, _) in outs.items()}
    layout = {name: next(op.layout for op in p.ops if op.name == name) for name, (_, p) in outs.items()}
    period = {name: next(op.period for op in p.ops if op.name == name) for name, (_, p) in outs.items()}
    if whole or (len(outs) == 1 and not shared):
        # one section computes the graph output (a whole graph, or one patch whose Sum of one
        # partial output the packer aliased): it is that section's output, under its name
        (only,) = outs
        for d in (env, lvl, layout, period):
            d[graph.outputs[0]] = d[only]
    for node in shared:
        if node.op not in ("sum", "add", "identity", "flatten", "reshape"):
            raise CompileError(f"op {node.op!r} at {node.name!r} joins the patch networks; only sums are supported there")
        ins = list(node.inputs)
        if node.op in ("identity", "flatten", "reshape"):
            env[node.output], lvl[node.output] = env[ins[0]], lvl[ins[0]]
            layout[node.output], period[node.output] = layout[ins[0]], period[ins[0]]
            continue
        low = min(lvl[i] for i in ins)
        names = []
        for i in ins:
            if lvl[i] > low:
                section.instrs.append(Instr("mod_switch", f"{i}.ms{low}", (env[i],), level=low))
                names.append(f"{i}.ms{low}")
            else:
                names.append(env[i])
        acc = names[0]
        for k, n in enumerate(names[1:]):
            out = node.output if k == len(names) - 2 else f"{node.output}#{k}"
            section.instrs.append(Instr("add", out, (acc, n)))
            acc = out
        env[node.output], lvl[node.output] = acc, low
        layout[node.output] = layout[ins[0]]
        period[node.output] = max(period[i] for i in ins)
    final = graph.outputs[0]
    if env[final] != final:
        section.instrs.append(Instr("mod_switch", final, (env[final],), level=lvl[final]))
    return section, layout[final], period[final]
