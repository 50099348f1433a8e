"""Random level DAGs for property tests of the level pass and the bootstrap placer."""

from __future__ import annotations

from hypothesis import strategies as st

from cryptoface.compile.levels import LevelGraph, LevelNode


@st.composite
def level_dags(draw, max_nodes: int = 25, window: int = 4, costed: bool = False) -> LevelGraph:
    """Chains with skip connections: operands come from the last `window` values, as in a CNN
    (keeps the live width small); `costed` nodes carry some rotation work for the placer."""
    n = draw(st.integers(2, max_nodes))
    nodes = [LevelNode("v0")]
    for k in range(1, n):
        arity = draw(st.integers(1, min(2, k)))
        ins = tuple(sorted(set(draw(st.lists(st.integers(max(0, k - window), k - 1), min_size=arity, max_size=arity)))))
        depth = draw(st.integers(0, 2))
        extra = {"work": (("rotate", draw(st.integers(0, 20))),)} if costed else {"slots": draw(st.sampled_from([256, 4096]))}
        nodes.append(LevelNode(f"v{k}", tuple(f"v{i}" for i in ins), depth, join=len(ins) > 1, **extra))
    return LevelGraph(nodes, (f"v{n - 1}",))
