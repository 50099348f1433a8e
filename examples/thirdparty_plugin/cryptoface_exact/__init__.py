"""A minimal third-party backend plugin: the simulator's bookkeeping without noise.

It shows everything a plugin needs: an `Engine` subclass, a `capabilities()` record, and a
`cryptoface_register_backends` hook found through the `cryptoface.backends` entry point.
It provides no security at all; start from here to wrap a real FHE library.

    pip install -e examples/thirdparty_plugin
    cryptoface backends                                   # lists "exact"
    python -m pytest --pyargs cryptoface.testing -k exact
"""

from dataclasses import replace

import numpy as np

from cryptoface.plugins import hookimpl
from cryptoface.simulator import SimulatorEngine


class ExactEngine(SimulatorEngine):
    name = "exact"

    @classmethod
    def capabilities(cls):
        return replace(super().capabilities(), name=cls.name, library="numpy (exact, no noise, NO SECURITY)")

    def _noise(self, std: float) -> np.ndarray:
        return np.zeros(self.params.slots)


@hookimpl
def cryptoface_register_backends(register) -> None:
    register.add(ExactEngine)
