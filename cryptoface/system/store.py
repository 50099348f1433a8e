"""The sealed template store: encrypted templates at rest in SQLite, sealed again with AES-256-GCM.

A template is an opaque blob (the server's CKKS ciphertext bytes; never parsed here). Each
row holds it sealed with AES-256-GCM under a data key from a `KeyProvider` (kept outside the
database), with associated data binding identity, model id, parameter id and key version:
a row edited, or copied onto another identity, model, parameter set or key version, fails
to open (`TamperedRecordError`) instead of returning someone else's template.

SQLite runs in WAL mode with synchronous=FULL, and every write is one transaction, together
with its audit entry (see `audit`): a process killed mid-enrollment or mid-rotation leaves
the database as it was before or after the operation, never between. Every operation,
refused ones included, is logged with the `actor` the caller names (the server decides who
may call what; this module only records it).
"""

from __future__ import annotations

import hmac
import os
import secrets
import sqlite3
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import (CryptofaceError, DuplicateIdentityError, InvalidInputError, KeyProviderError, StoreError,
                      TamperedRecordError, UnknownIdentityError)
from . import audit
from .keys import KeyProvider

SCHEMA_VERSION = "1"
DEFAULT_MAX_TEMPLATE_BYTES = 16 << 20  # a CKKS template at N=2^16 with a few limbs is a few MB
MAX_NAME_CHARS = 256
NONCE_BYTES = 12  # random 96-bit GCM nonces: safe for far more than 2^20 seals per key
_AAD_TEMPLATE = b"cryptoface-template/1"
_AAD_KEY_CHECK = b"cryptoface-key-check/1"
_AUDIT_KEY_CHECK = b"cryptoface-audit-key-check/1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS key_checks (
    key_version INTEGER PRIMARY KEY, nonce BLOB NOT NULL, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS templates (
    identity TEXT NOT NULL, model_id TEXT NOT NULL, param_id TEXT NOT NULL,
    key_version INTEGER NOT NULL, nonce BLOB NOT NULL, sealed BLOB NOT NULL,
    enrolled_at TEXT NOT NULL, PRIMARY KEY (identity, model_id));
""" + audit.SCHEMA

T = TypeVar("T")


@dataclass(frozen=True)
class TemplateInfo:
    """A row's public metadata (what `list_identities` shows; no template bytes)."""

    identity: str
    model_id: str
    param_id: str
    key_version: int
    enrolled_at: str


@dataclass(frozen=True)
class StoredTemplate:
    info: TemplateInfo
    blob: bytes


@dataclass(frozen=True)
class RotationReport:
    rows: int
    from_versions: tuple[int, ...]
    to_version: int


def template_aad(identity: str, model_id: str, param_id: str, key_version: int) -> bytes:
    """Associated data of a sealed row: length-prefixed, so no two field tuples encode alike."""
    fields = (_AAD_TEMPLATE, identity.encode(), model_id.encode(), param_id.encode(),
              str(key_version).encode())
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


def _check_name(kind: str, value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS or not value.isprintable():
        raise InvalidInputError(f"{kind} must be a printable string of 1 to {MAX_NAME_CHARS} characters")
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class TemplateStore:
    """Enroll, fetch, delete, list and re-wrap sealed templates; every call audited.

    Open it with a key provider whose keys live elsewhere than the database's directory.
    Methods raise `CryptofaceError` subclasses only; a refused call changes no template.
    """

    def __init__(self, path: str | os.PathLike, keys: KeyProvider, *,
                 max_template_bytes: int = DEFAULT_MAX_TEMPLATE_BYTES):
        self.path = Path(path)
        self._keys = keys
        self._max_bytes = max_template_bytes
        self._checked_keys: dict[int, bytes] = {}
        if keys.location is not None and Path(keys.location).resolve().parent == self.path.resolve().parent:
            raise KeyProviderError(f"key file {keys.location} sits beside the database {self.path}; "
                                   f"keep the data key in another directory")
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        except sqlite3.Error as err:
            raise StoreError(f"cannot open template store {self.path}: {err}") from None
        try:
            with self._sqlite_errors():
                self._prepare()
        except BaseException:
            self._conn.close()
            raise

    def _prepare(self) -> None:
        conn = self._conn
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"template store {self.path}: cannot switch to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise StoreError(f"template store {self.path} is corrupt: {problems[0]}")
        conn.executescript(SCHEMA)  # idempotent (IF NOT EXISTS): a crash here is redone next open
        with self._write():
            self._check_meta("schema", SCHEMA_VERSION.encode(), "schema version")
            self._check_meta("audit_key_check", hmac.new(self._keys.audit_key(), _AUDIT_KEY_CHECK,
                                                          sha256).digest(), "audit key")

    def _check_meta(self, name: str, expected: bytes, what: str) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        if row is None:
            self._conn.execute("INSERT INTO meta VALUES (?, ?)", (name, expected))
        elif not hmac.compare_digest(bytes(row[0]), expected):
            error = KeyProviderError if "key" in what else StoreError
            raise error(f"template store {self.path}: the {what} does not match this database")

    # --- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            raise StoreError(f"template store {self.path}: {err}") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT); any error rolls it back."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            self._checked_keys.clear()  # a key check inserted by this transaction is gone
            raise
        self._conn.execute("COMMIT")

    def _data_key(self, version: int) -> bytes:
        """The provider's key of `version`, checked against the key check this store keeps."""
        if version in self._checked_keys:
            return self._checked_keys[version]
        key = self._keys.data_key(version)
        if len(key) != 32:
            raise KeyProviderError(f"data key version {version} is {len(key)} bytes, not 32")
        aad = _AAD_KEY_CHECK + struct.pack(">I", version)
        row = self._conn.execute("SELECT nonce, sealed FROM key_checks WHERE key_version = ?",
                                 (version,)).fetchone()
        if row is None:  # first use of this version: we are inside a write transaction
            nonce = secrets.token_bytes(NONCE_BYTES)
            self._conn.execute("INSERT INTO key_checks VALUES (?, ?, ?)",
                               (version, nonce, AESGCM(key).encrypt(nonce, b"", aad)))
        else:
            try:
                AESGCM(key).decrypt(bytes(row[0]), bytes(row[1]), aad)
            except InvalidTag:
                raise KeyProviderError(f"data key version {version} is not the key this store was "
                                       f"sealed with (wrong key file or variable?)") from None
        self._checked_keys[version] = key
        return key

    def _seal(self, blob: bytes, identity: str, model_id: str, param_id: str, version: int) -> tuple[bytes, bytes]:
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = template_aad(identity, model_id, param_id, version)
        return nonce, AESGCM(self._data_key(version)).encrypt(nonce, blob, aad)

    def _open(self, info: TemplateInfo, nonce: bytes, sealed: bytes) -> bytes:
        key = self._data_key(info.key_version)
        aad = template_aad(info.identity, info.model_id, info.param_id, info.key_version)
        try:
            return AESGCM(key).decrypt(nonce, sealed, aad)
        except (InvalidTag, ValueError):
            raise TamperedRecordError(
                f"template of {info.identity!r} (model {info.model_id}) does not open: the row was "
                f"edited or moved from another identity, model, parameter set or key version") from None

    def _row(self, identity: str, model_id: str) -> tuple[TemplateInfo, bytes, bytes]:
        row = self._conn.execute(
            "SELECT identity, model_id, param_id, key_version, enrolled_at, nonce, sealed "
            "FROM templates WHERE identity = ? AND model_id = ?", (identity, model_id)).fetchone()
        if row is None:
            raise UnknownIdentityError(f"no template enrolled for {identity!r} under model {model_id}")
        return TemplateInfo(*row[:5]), bytes(row[5]), bytes(row[6])

    def _audited(self, actor: str, operation: str, identity: str | None, model_id: str | None,
                 body: Callable[[sqlite3.Connection], tuple[T, int | None]]) -> T:
        """Run `body` and its audit entry in one transaction; log a refusal if it raises."""
        try:
            _check_name("actor", actor)
            with self._sqlite_errors(), self._write() as conn:
                result, key_version = body(conn)
                audit.append(conn, self._keys.audit_key(), at=_now(), actor=actor, operation=operation,
                             identity=identity, model_id=model_id, outcome="ok", key_version=key_version)
            return result
        except CryptofaceError as err:
            self._log_refusal(actor, operation, identity, model_id, err)
            raise

    def _log_refusal(self, actor: object, operation: str, identity: object, model_id: object,
                     err: CryptofaceError) -> None:
        """Best effort: a refusal whose cause is a broken key or database cannot be logged."""
        name = lambda v: v if isinstance(v, str) and v.isprintable() and 0 < len(v) <= MAX_NAME_CHARS else None  # noqa: E731
        try:
            with self._sqlite_errors(), self._write() as conn:
                audit.append(conn, self._keys.audit_key(), at=_now(), actor=name(actor) or "<invalid>",
                             operation=operation, identity=name(identity), model_id=name(model_id),
                             outcome=f"refused: {type(err).__name__}", key_version=None)
        except CryptofaceError as log_err:
            err.add_note(f"(the refusal could not be audited: {log_err})")

    # --- operations -----------------------------------------------------------------------

    def enroll(self, identity: str, template: bytes, *, model_id: str, param_id: str, actor: str,
               replace: bool = False) -> TemplateInfo:
        """Seal and store `template` for `identity`; an existing one is replaced only if `replace`."""
        def body(conn: sqlite3.Connection) -> tuple[TemplateInfo, int]:
            _check_name("identity", identity), _check_name("model id", model_id)
            _check_name("parameter id", param_id)
            if not isinstance(template, (bytes, bytearray)) or not template:
                raise InvalidInputError("a template is a non-empty bytes object")
            if len(template) > self._max_bytes:
                raise InvalidInputError(f"template of {len(template)} bytes exceeds the store's "
                                        f"limit of {self._max_bytes}")
            exists = conn.execute("SELECT 1 FROM templates WHERE identity = ? AND model_id = ?",
                                  (identity, model_id)).fetchone()
            if exists and not replace:
                raise DuplicateIdentityError(f"{identity!r} is already enrolled under model {model_id} "
                                             f"(re-enroll explicitly to replace it)")
            version = self._keys.current_version
            info = TemplateInfo(identity, model_id, param_id, version, _now())
            nonce, sealed = self._seal(bytes(template), identity, model_id, param_id, version)
            conn.execute("INSERT OR REPLACE INTO templates VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (identity, model_id, param_id, version, nonce, sealed, info.enrolled_at))
            return info, version
        return self._audited(actor, "reenroll" if replace else "enroll", identity, model_id, body)

    def get(self, identity: str, *, model_id: str, actor: str, param_id: str | None = None) -> StoredTemplate:
        """The template of `identity`, opened and authenticated; `param_id` if given must match."""
        def body(conn: sqlite3.Connection) -> tuple[StoredTemplate, int]:
            _check_name("identity", identity), _check_name("model id", model_id)
            info, nonce, sealed = self._row(identity, model_id)
            blob = self._open(info, nonce, sealed)
            if param_id is not None and info.param_id != param_id:
                raise StoreError(f"{identity!r} was enrolled under parameter set {info.param_id}, "
                                 f"not {param_id}: re-enroll under the current parameters")
            return StoredTemplate(info, blob), info.key_version
        return self._audited(actor, "get", identity, model_id, body)

    def delete(self, identity: str, *, model_id: str, actor: str) -> None:
        def body(conn: sqlite3.Connection) -> tuple[None, int]:
            _check_name("identity", identity), _check_name("model id", model_id)
            info, _, _ = self._row(identity, model_id)
            conn.execute("DELETE FROM templates WHERE identity = ? AND model_id = ?", (identity, model_id))
            return None, info.key_version
        return self._audited(actor, "delete", identity, model_id, body)

    def list_identities(self, *, actor: str, model_id: str | None = None) -> list[TemplateInfo]:
        """Metadata of every enrolled template (of one model if given), sorted by identity."""
        def body(conn: sqlite3.Connection) -> tuple[list[TemplateInfo], None]:
            query = "SELECT identity, model_id, param_id, key_version, enrolled_at FROM templates"
            args: tuple[str, ...] = ()
            if model_id is not None:
                _check_name("model id", model_id)
                query, args = query + " WHERE model_id = ?", (model_id,)
            return [TemplateInfo(*row) for row in conn.execute(query + " ORDER BY identity, model_id", args)], None
        return self._audited(actor, "list", None, model_id, body)

    def rotate_key(self, *, actor: str, target_version: int | None = None) -> RotationReport:
        """Re-wrap every row under a new data-key version (made by the provider unless given).

        One transaction: a crash leaves every row under its old version or every row under
        the new one. Rows are opened first, so a tampered row aborts the whole rotation.
        Old versions may be retired from the key provider once `key_versions_in_use` no
        longer lists them.
        """
        def body(conn: sqlite3.Connection) -> tuple[RotationReport, int]:
            version = self._keys.new_version() if target_version is None else target_version
            keys = conn.execute("SELECT identity, model_id FROM templates ORDER BY identity, model_id").fetchall()
            old: set[int] = set()
            for identity, model_id in keys:
                info, nonce, sealed = self._row(identity, model_id)
                blob = self._open(info, nonce, sealed)
                new_nonce, new_sealed = self._seal(blob, identity, model_id, info.param_id, version)
                conn.execute("UPDATE templates SET key_version = ?, nonce = ?, sealed = ? "
                             "WHERE identity = ? AND model_id = ?",
                             (version, new_nonce, new_sealed, identity, model_id))
                old.add(info.key_version)
            return RotationReport(len(keys), tuple(sorted(old)), version), version
        return self._audited(actor, "rotate_key", None, None, body)

    def key_versions_in_use(self) -> dict[int, int]:
        """Data-key version -> number of rows sealed under it."""
        with self._sqlite_errors():
            return dict(self._conn.execute(
                "SELECT key_version, COUNT(*) FROM templates GROUP BY key_version").fetchall())

    def audit_entries(self) -> list[audit.AuditEntry]:
        with self._sqlite_errors():
            return audit.entries(self._conn)

    def verify_audit(self) -> audit.AuditReport:
        """Check the audit chain end to end (`AuditChainError` at the first break)."""
        with self._sqlite_errors():
            return audit.verify(self._conn, self._keys.audit_key())

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "TemplateStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
