"""cryptoface backend plugin for Pyfhel (Microsoft SEAL 4.1 underneath).

Importing this module never imports Pyfhel: the engine does that lazily, so a missing or
broken Pyfhel build makes the backend "unavailable (reason)" instead of breaking discovery.
"""

from cryptoface.plugins import hookimpl

from .engine import PyfhelEngine

__all__ = ["PyfhelEngine"]


@hookimpl
def cryptoface_register_backends(register) -> None:
    register.add(PyfhelEngine)
