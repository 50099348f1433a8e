"""Shared by the core tests: give memory back between tests.

Whole-model tests hold gigabytes of evaluation keys and encoded constants. Python frees them
when a test ends, but glibc keeps the freed pages, so without a trim one pytest process
accumulates the peaks of every backend it ran (21 GB was seen) and later tests that start
subprocesses run out of memory."""

from __future__ import annotations

import ctypes
import gc

import pytest

try:
    _libc = ctypes.CDLL("libc.so.6")
except OSError:  # pragma: no cover - not glibc
    _libc = None


@pytest.fixture(autouse=True)
def _release_memory():
    yield
    gc.collect()
    if _libc is not None:
        _libc.malloc_trim(0)
