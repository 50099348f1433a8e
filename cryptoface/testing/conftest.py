"""Fixtures of the conformance suite: one parameter per registered backend."""

from __future__ import annotations

import os

import pytest

from ..backend import Engine, HEContext
from ..params import CKKSParams
from ..plugins import get_plugins

# 128-bit parameters, small enough to be quick: log QP = 50 + 7*40 + 60 = 390 <= 438. A 50-bit
# q0 leaves OpenFHE room for its larger HYBRID key-switching modulus at this ring dimension.
PARAMS = CKKSParams(ring_dim=16384, depth=7, scale_bits=40, first_mod_bits=50, special_mod_bits=60, slots=64)
STEPS = (1, 2, 4, 8, 16, 32, 3, -1)


def selected_backends() -> list[str]:
    names = get_plugins().names()
    wanted = os.environ.get("CRYPTOFACE_TEST_BACKENDS")
    if wanted:
        chosen = [s.strip() for s in wanted.split(",") if s.strip()]
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            raise pytest.UsageError(f"CRYPTOFACE_TEST_BACKENDS names unregistered backends {unknown}; registered: {names}")
        return chosen
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", selected_backends(), scope="module")


@pytest.fixture(scope="module")
def engine_cls(backend_name: str) -> type[Engine]:
    # get() raises BackendUnavailableError with the reason: an error, never a skip.
    return get_plugins().get(backend_name)


@pytest.fixture(scope="module")
def ctx(engine_cls: type[Engine]) -> HEContext:
    return HEContext.create(engine_cls, PARAMS, STEPS)


@pytest.fixture(scope="module")
def other_ctx(engine_cls: type[Engine]) -> HEContext:
    """A second key set on the same backend, to check that mixing them is refused."""
    return HEContext.create(engine_cls, PARAMS, STEPS)
