"""OpenFHE's process-wide evaluation-key maps, released per key set.

OpenFHE keeps relinearization and rotation keys in static maps keyed by the secret key's
tag, shared by every context of the process. A server holding many clients' key sets must
drop one client's keys when its last engine goes, or it grows without bound. The Python
binding clears only whole maps, so a release takes every other tag's keys out (as shared
handles: nothing is copied), clears, and puts them back.

Evaluation reads the maps in place (EvalMult holds a reference into them) while the binding
has released the GIL, so evaluations hold a shared lock and anything that changes the maps
(key generation, loading, release) holds it exclusively. A release requested while the lock
is busy (a finalizer may run in any thread, even one that is evaluating) is deferred to the
next change of the maps.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class SharedExclusiveLock:
    """Many readers or one writer; waiting writers go first, so releases are not starved."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._readers = 0
        self._writer: int | None = None
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer is not None or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    def acquire_exclusive(self, blocking: bool = True) -> bool:
        me = threading.get_ident()
        with self._cond:
            if not blocking and (self._writer is not None or self._readers):
                return False
            if self._writer == me:
                raise RuntimeError("the key-map lock is not reentrant")
            self._writers_waiting += 1
            try:
                while self._writer is not None or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = me
            return True

    def release_exclusive(self) -> None:
        with self._cond:
            self._writer = None
            self._cond.notify_all()


class KeyMaps:
    """Reference counts of live engines per key tag, and the lock around the maps."""

    def __init__(self, openfhe_module) -> None:
        self._ofhe = openfhe_module  # a callable returning the imported module (imported lazily)
        self._lock = SharedExclusiveLock()
        self._mutex = threading.RLock()
        self._refs: dict[str, int] = {}
        self._pending: set[str] = set()

    def evaluating(self):
        """Held (shared) around every library call that reads evaluation keys."""
        return self._lock.shared()

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Held (exclusive) around key generation and loading; runs deferred releases (before,
        and after: a release inside the block is deferred to its end)."""
        self._lock.acquire_exclusive()
        try:
            self._purge()
            yield
        finally:
            try:
                self._purge()
            finally:
                self._lock.release_exclusive()

    def hold(self, tag: str) -> None:
        with self._mutex:
            self._refs[tag] = self._refs.get(tag, 0) + 1

    def held(self, tag: str) -> bool:
        with self._mutex:
            return tag in self._refs

    def release(self, tag: str) -> None:
        """One engine of `tag` is gone; the last one takes the tag's keys out of the maps."""
        with self._mutex:
            left = self._refs.get(tag, 0) - 1
            if left > 0:
                self._refs[tag] = left
                return
            self._refs.pop(tag, None)
            self._pending.add(tag)
        if self._lock.acquire_exclusive(blocking=False):
            try:
                self._purge()
            finally:
                self._lock.release_exclusive()

    def _purge(self) -> None:
        """Drop the keys of released tags (caller holds the lock exclusively)."""
        with self._mutex:
            gone = self._pending - self._refs.keys()
            self._pending.clear()
        if not gone:
            return
        o = self._ofhe()
        cc = o.CryptoContext
        mult, auto = cc.GetAllEvalMultKeys(), cc.GetAllEvalAutomorphismKeys()
        o.ClearEvalMultKeys()
        cc.ClearEvalAutomorphismKeys()
        for tag, keys in mult.items():
            if tag not in gone:
                cc.InsertEvalMultKey(keys, tag)
        for tag, keys in auto.items():
            if tag not in gone:
                cc.InsertEvalAutomorphismKey(keys, tag)
