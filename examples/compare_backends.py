"""Run one encrypted inference on every installed backend and print them side by side.

    .venv/bin/python examples/compare_backends.py [small|cryptofacenet4]

Each backend runs in its own process (so peak memory is its own); the same compiled plan
runs everywhere except where capabilities differ.
"""

import sys

from cryptoface.bench.inference import run_isolated, to_markdown
from cryptoface.plugins import get_plugins


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "small"
    rows = [run_isolated(model, b.name) for b in get_plugins().backends() if b.available and b.name != "simulator"]
    print(to_markdown(rows, f"python examples/compare_backends.py {model}"))


if __name__ == "__main__":
    main()
