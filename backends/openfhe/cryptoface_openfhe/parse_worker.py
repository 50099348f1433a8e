"""Parse untrusted OpenFHE bytes in a child process before this process parses them.

OpenFHE's binary deserializer trusts its input: crafted bytes kill the process (SIGSEGV,
SIGFPE, SIGABRT) instead of raising. A server cannot let a client's bytes do that, so the
bytes are parsed and exercised first by a worker process (`python -m
cryptoface_openfhe.parse_worker`): it deserializes them, checks their structure against
what the server expects (key tags, levels, the crypto context, which rotation keys exist),
and runs the operations the server will run. Only bytes that survive it are parsed in the
server; a crash, a timeout or a refusal there is one `SerializationError` here.

The child is distrusted too (crafted bytes may have corrupted it): it answers in bounded
JSON, never pickle; it is replaced after every refusal and every `MAX_REQUESTS` checks; and
its verdict only gates, it does not replace, the checks the server process makes itself.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any

from cryptoface.errors import SerializationError

from .blob import unpack_parts

CONTEXT_PARTS = ("meta", "cc", "pk", "mult", "auto", "sk")
MAX_REQUESTS = 1000
MAX_REPLY_BYTES = 1 << 16
_LEN = struct.Struct("<Q")


# ---- framing (both sides) ----------------------------------------------------------------------


def _write_frame(stream, payload: bytes) -> None:
    stream.write(_LEN.pack(len(payload)))
    stream.write(payload)


def _read_exact_stream(stream, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError
    return data


# ---- the server side ------------------------------------------------------------------------------


class ParseWorker:
    """One child process that parses OpenFHE bytes; restarted after a crash or a refusal."""

    def __init__(self, memory_bytes: int = 4 << 30, seconds_per_mb: float = 0.5, min_seconds: float = 30.0) -> None:
        self.memory_bytes = memory_bytes
        self.seconds_per_mb = seconds_per_mb
        self.min_seconds = min_seconds
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._owner = os.getpid()
        self._requests = 0

    def check(self, kind: str, expect: dict[str, Any], blobs: dict[str, bytes]) -> None:
        """Raise `SerializationError` unless the child parses and accepts `blobs`."""
        header = json.dumps({"kind": kind, "expect": expect, "blobs": list(blobs)}).encode()
        size = sum(len(b) for b in blobs.values())
        deadline = time.monotonic() + max(self.min_seconds, self.seconds_per_mb * size / 1e6)
        with self._lock:
            proc = self._running()
            try:
                _write_frame(proc.stdin, header)
                for blob in blobs.values():
                    _write_frame(proc.stdin, blob)
                proc.stdin.flush()
                reply = self._reply(proc, deadline)
            except (OSError, EOFError, TimeoutError, ValueError) as exc:
                why = self._stop(timed_out=isinstance(exc, TimeoutError))
                raise SerializationError(f"OpenFHE could not parse this {kind} in the parse worker ({why}): refused") from exc
            self._requests += 1
            if not reply.get("ok"):
                self._stop()  # a refusal may have left the child in a bad state
                raise SerializationError(f"OpenFHE {kind} refused by the parse worker: {str(reply.get('error'))[:300]}")
            if self._requests >= MAX_REQUESTS:
                self._stop()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _running(self) -> subprocess.Popen:
        if self._owner != os.getpid():  # forked: the pipes belong to the parent
            self._proc, self._owner, self._requests = None, os.getpid(), 0
        if self._proc is None or self._proc.poll() is not None:
            env = dict(os.environ, OMP_NUM_THREADS="1")
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "cryptoface_openfhe.parse_worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            )
            resource.prlimit(self._proc.pid, resource.RLIMIT_AS, (self.memory_bytes, self.memory_bytes))
            self._requests = 0
        return self._proc

    def _reply(self, proc: subprocess.Popen, deadline: float) -> dict[str, Any]:
        fd = proc.stdout.fileno()
        (n,) = _LEN.unpack(_read_fd(fd, _LEN.size, deadline))
        if n > MAX_REPLY_BYTES:
            raise ValueError(f"parse worker reply of {n} bytes")
        reply = json.loads(_read_fd(fd, n, deadline))
        if not isinstance(reply, dict):
            raise ValueError("parse worker reply is not an object")
        return reply

    def _stop(self, timed_out: bool = False) -> str:
        proc, self._proc = self._proc, None
        if proc is None:
            return "no worker"
        if timed_out or proc.poll() is None:
            proc.kill()
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        code = proc.wait()
        if timed_out:
            return "timed out"
        if code < 0:
            return f"the parser crashed with {signal.Signals(-code).name}"
        return f"worker exited with status {code}"


def _read_fd(fd: int, n: int, deadline: float) -> bytes:
    chunks, got = [], 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# ---- the worker side -------------------------------------------------------------------------------


def _same(got: Any, want: Any, what: str) -> None:
    if got != want:
        raise ValueError(f"{what} is {got!r}, expected {want!r}")


def _enabled(o: Any, cc: Any) -> Any:
    for feature in (o.PKE, o.KEYSWITCH, o.LEVELEDSHE):
        cc.Enable(feature)
    return cc


def _check_context(o: Any, expect: dict[str, Any], blobs: dict[str, bytes]) -> None:
    """Keys parse, carry the expected tag and only it, cover exactly the expected rotations,
    and work: encrypt, multiply, rotate (and, with a secret key, decrypt to the right values)."""
    parts = unpack_parts(blobs["data"], CONTEXT_PARTS)
    tag, steps, slots = expect["key_tag"], expect["steps"], expect["slots"]
    o.ClearEvalMultKeys()
    o.CryptoContext.ClearEvalAutomorphismKeys()
    cc = _enabled(o, o.DeserializeCryptoContextString(parts["cc"], o.BINARY))
    pk = o.DeserializePublicKeyString(parts["pk"], o.BINARY)
    _same(pk.GetKeyTag(), tag, "public key tag")
    sk = None
    if "sk" in parts:
        sk = o.DeserializePrivateKeyString(parts["sk"], o.BINARY)
        _same(sk.GetKeyTag(), tag, "secret key tag")
    o.DeserializeEvalMultKeyString(parts["mult"], o.BINARY)
    _same(sorted(o.CryptoContext.GetAllEvalMultKeys()), [tag], "relinearization key tags")
    if "auto" in parts:
        o.DeserializeEvalAutomorphismKeyString(parts["auto"], o.BINARY)
        _same(sorted(o.CryptoContext.GetAllEvalAutomorphismKeys()), [tag], "rotation key tags")
        have = set(cc.GetExistingEvalAutomorphismKeyIndices(tag))
        want = set(cc.FindAutomorphismIndices(steps)) if steps else set()
        if not (want <= have if expect["bootstrap"] else want == have):
            raise ValueError(f"rotation keys for automorphisms {sorted(have)[:20]}, expected {sorted(want)[:20]}")
    elif steps:
        raise ValueError("no rotation keys")
    values = [0.25 + 0.5 * (i % 2) for i in range(slots)]
    ct = cc.Encrypt(pk, cc.MakeCKKSPackedPlaintext(values, 1, 0, None, slots))
    results = {"product": (cc.EvalMult(ct, ct), [v * v for v in values])}
    for s in steps:
        results[f"rotation {s}"] = (cc.EvalRotate(ct, s), [values[(i + s) % slots] for i in range(slots)])
    if sk is not None:  # the secret key must be the one behind the public and evaluation keys
        for what, (out, want) in results.items():
            pt = cc.Decrypt(sk, out)
            pt.SetLength(slots)
            got = pt.GetRealPackedValue()
            if max(abs(a - b) for a, b in zip(got, want)) > 1e-3:
                raise ValueError(f"{what} decrypts wrongly: the keys do not belong together")


def _check_ciphertext(o: Any, expect: dict[str, Any], blobs: dict[str, bytes]) -> None:
    """A relinearized ciphertext of the expected key and crypto context, at a level of the
    chain, which survives adding a plaintext of its own level and scale degree."""
    ct = o.DeserializeCiphertextString(blobs["data"], o.BINARY)
    _same(ct.GetKeyTag(), expect["key_tag"], "key tag")
    _same(ct.NumberCiphertextElements(), 2, "number of elements")
    _same(ct.GetSlots(), expect["slots"], "slots")
    level, degree = ct.GetLevel(), ct.GetNoiseScaleDeg()
    if not 0 <= level <= expect["max_level"] or degree not in (1, 2):
        raise ValueError(f"level {level} or scale degree {degree} outside the chain")
    cc = ct.GetCryptoContext()
    if o.Serialize(cc, o.BINARY) != blobs["cc"]:
        raise ValueError("ciphertext carries another crypto context")
    # Adding a plaintext the context encodes at the claimed level walks every tower of both.
    _enabled(o, cc)
    cc.EvalAdd(ct, cc.MakeCKKSPackedPlaintext([0.0] * expect["slots"], degree, level, None, expect["slots"]))


_CHECKS = {"context": _check_context, "ciphertext": _check_ciphertext}


def _serve() -> None:
    import openfhe as o

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            (n,) = _LEN.unpack(_read_exact_stream(stdin, _LEN.size))
            request = json.loads(_read_exact_stream(stdin, n))
            blobs = {}
            for name in request["blobs"]:
                (size,) = _LEN.unpack(_read_exact_stream(stdin, _LEN.size))
                blobs[name] = _read_exact_stream(stdin, size)
        except EOFError:
            return
        try:
            _CHECKS[request["kind"]](o, request["expect"], blobs)
            reply = {"ok": True}
        except Exception as exc:  # the library's refusals come in many types
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:1000]}
        _write_frame(stdout, json.dumps(reply).encode())
        stdout.flush()


if __name__ == "__main__":
    _serve()
