"""Key providers for the sealed template store: where the data keys and the audit key live.

The store seals every template with AES-256-GCM under a *data key* and chains its audit log
with HMAC-SHA256 under an *audit key*. Neither key may sit in the database or beside it: a
thief who copies the database directory must not get them. A provider hands the store
versioned data keys (rows record the version that sealed them, so rotation can re-wrap
them) and one audit key.

Two providers are implemented: `FileKeyProvider` (a 0600 key file outside the database's
directory) and `EnvKeyProvider` (the same key set in an environment variable). A KMS or HSM
provider has the same shape; see `KeyProvider`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Protocol, runtime_checkable

from ..errors import KeyProviderError

KEY_BYTES = 32  # AES-256 data keys and the HMAC-SHA256 audit key
KEY_SET_FORMAT = "cryptoface-store-keys/1"
DEFAULT_KEY_ENV = "CRYPTOFACE_STORE_KEYS"


@runtime_checkable
class KeyProvider(Protocol):
    """What the template store needs from wherever its keys are kept.

    - `current_version`: the data-key version new rows are sealed under.
    - `data_key(version)`: the 32-byte AES-256 key of `version`; a `KeyProviderError` if the
      provider does not have it (a retired or never-created version).
    - `new_version()`: create and persist a new data key, make it current, return its
      version (key rotation calls this before re-wrapping the rows).
    - `audit_key()`: the 32-byte HMAC key of the audit chain (not rotated with data keys).
    - `location`: the file the keys are read from, or None; the store refuses a key file in
      its own directory.

    A KMS provider (AWS KMS, GCP KMS, Vault transit) keeps only *wrapped* data keys locally
    (e.g. in a config table or file, by version) and a key-encryption-key id: `data_key(v)`
    calls the KMS's Decrypt on the wrapped key of version v (cached in memory for the
    process), `new_version()` calls GenerateDataKey and stores the returned wrapped key
    under the next version, `audit_key()` unwraps a wrapped HMAC key the same way, and
    `location` is None. An HSM that refuses to export keys would instead offer
    seal/open calls taking (nonce, plaintext, associated data); the store's `_seal`/`_open`
    are the two places that would call them.
    """

    @property
    def current_version(self) -> int: ...

    def data_key(self, version: int) -> bytes: ...

    def new_version(self) -> int: ...

    def audit_key(self) -> bytes: ...

    @property
    def location(self) -> Path | None: ...


@dataclass(frozen=True)
class KeySet:
    """The keys a file or environment provider holds: versioned data keys and an audit key."""

    current: int
    data_keys: Mapping[int, bytes] = field(repr=False)
    audit_key: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> "KeySet":
        return cls(current=1, data_keys={1: secrets.token_bytes(KEY_BYTES)},
                   audit_key=secrets.token_bytes(KEY_BYTES))

    def with_new_version(self) -> "KeySet":
        version = max(self.data_keys) + 1
        return replace(self, current=version,
                       data_keys={**self.data_keys, version: secrets.token_bytes(KEY_BYTES)})

    def data_key(self, version: int, source: str) -> bytes:
        try:
            return self.data_keys[version]
        except KeyError:
            raise KeyProviderError(f"data key version {version} is not in {source}") from None

    def to_json(self) -> str:
        b64 = lambda key: base64.b64encode(key).decode()  # noqa: E731
        return json.dumps({"format": KEY_SET_FORMAT, "current": self.current,
                           "data_keys": {str(v): b64(k) for v, k in sorted(self.data_keys.items())},
                           "audit_key": b64(self.audit_key)})

    @classmethod
    def from_json(cls, text: str, source: str) -> "KeySet":
        """Parse a key set, refusing anything malformed with one line naming `source`."""
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("format") != KEY_SET_FORMAT:
                raise ValueError(f"not a {KEY_SET_FORMAT} key set")
            data_keys = {_version(v): _key(k) for v, k in dict(doc["data_keys"]).items()}
            current = doc["current"]
            if type(current) is not int or current not in data_keys:
                raise ValueError("its current version has no data key")
            return cls(current=current, data_keys=data_keys, audit_key=_key(doc["audit_key"]))
        except (ValueError, KeyError, TypeError) as err:
            raise KeyProviderError(f"{source} is not a valid store key set: {err}") from None


def _version(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"bad key version {text!r}")
    return int(text)


def _key(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("a key is a base64 string")
    key = base64.b64decode(text, validate=True)
    if len(key) != KEY_BYTES:
        raise ValueError(f"a key is {KEY_BYTES} bytes, got {len(key)}")
    return key


class FileKeyProvider:
    """Keys in a JSON file readable by its owner only (mode 0600), kept away from the database.

    Rotation rewrites the file atomically (temporary file, fsync, rename), so a crash leaves
    either the old or the new key set, and old versions stay in it until retired by hand.
    """

    def __init__(self, path: str | os.PathLike):
        self._path = Path(path)
        self._keys = KeySet.from_json(self._read(), f"key file {self._path}")

    @classmethod
    def create(cls, path: str | os.PathLike) -> "FileKeyProvider":
        """Write a fresh key set to a new file with mode 0600 (an existing file is refused)."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyProviderError(f"key file {path} already exists; not overwriting it") from None
        except OSError as err:
            raise KeyProviderError(f"cannot create key file {path}: {err.strerror}") from None
        with os.fdopen(fd, "w") as handle:
            handle.write(KeySet.generate().to_json())
            handle.flush()
            os.fsync(handle.fileno())
        return cls(path)

    def _read(self) -> str:
        try:
            info = self._path.stat()
        except FileNotFoundError:
            raise KeyProviderError(f"no key file at {self._path}") from None
        except OSError as err:
            raise KeyProviderError(f"cannot read key file {self._path}: {err.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise KeyProviderError(f"key file {self._path} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyProviderError(
                f"key file {self._path} has mode {stat.S_IMODE(info.st_mode):04o}; "
                f"it must be readable by its owner only (chmod 600)")
        try:
            return self._path.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise KeyProviderError(f"cannot read key file {self._path}: {err}") from None

    @property
    def current_version(self) -> int:
        return self._keys.current

    @property
    def location(self) -> Path:
        return self._path

    def data_key(self, version: int) -> bytes:
        return self._keys.data_key(version, f"key file {self._path}")

    def audit_key(self) -> bytes:
        return self._keys.audit_key

    def new_version(self) -> int:
        keys = self._keys.with_new_version()
        tmp = self._path.with_name(f".{self._path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(keys.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(self._path.parent)
        self._keys = keys
        return keys.current


class EnvKeyProvider:
    """Keys in an environment variable (the `KeySet` JSON), e.g. injected by a secret manager.

    It cannot persist a new key: rotate by adding a version to the variable's key set (see
    `KeySet.with_new_version`) and restarting, then re-wrap with `rotate_key(target_version=...)`.
    """

    def __init__(self, variable: str = DEFAULT_KEY_ENV, environ: Mapping[str, str] | None = None):
        environ = os.environ if environ is None else environ
        if variable not in environ:
            raise KeyProviderError(f"environment variable {variable} holding the store keys is not set")
        self._source = f"environment variable {variable}"
        self._keys = KeySet.from_json(environ[variable], self._source)

    @property
    def current_version(self) -> int:
        return self._keys.current

    @property
    def location(self) -> None:
        return None

    def data_key(self, version: int) -> bytes:
        return self._keys.data_key(version, self._source)

    def audit_key(self) -> bytes:
        return self._keys.audit_key

    def new_version(self) -> int:
        raise KeyProviderError(f"keys from the {self._source} cannot be rotated in place: add a "
                               f"version to it and call rotate_key(target_version=...)")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
