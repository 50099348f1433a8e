"""The store's append-only, tamper-evident audit log (a MAC chain inside the same database).

Each entry records who did what to which identity, when, with what outcome and under which
data-key version; never template bytes. Its MAC is HMAC-SHA256 under the audit key over the
previous entry's MAC followed by this entry's canonical encoding (sequence number included),
and a one-row head holds a MAC over (entry count, last MAC). So without the audit key an
edited, inserted, deleted (even the last), or reordered entry breaks `verify`. Rolling the
whole database file back to an older copy is not detectable from inside it.

Entries are appended inside the caller's transaction, so an operation and its entry commit
or vanish together. Triggers refuse UPDATE and DELETE on entries (a guard against our own
code; the chain is what holds against someone editing the file).
"""

from __future__ import annotations

import hmac
import json
import sqlite3
from dataclasses import asdict, dataclass
from hashlib import sha256

from ..errors import AuditChainError

GENESIS_MAC = bytes(32)

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, operation TEXT NOT NULL,
    identity TEXT, model_id TEXT, outcome TEXT NOT NULL, key_version INTEGER, mac BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head (
    one INTEGER PRIMARY KEY CHECK (one = 1), count INTEGER NOT NULL, mac BLOB NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


@dataclass(frozen=True)
class AuditEntry:
    """One logged operation. `outcome` is "ok" or "refused: <error class>"."""

    seq: int
    at: str
    actor: str
    operation: str
    identity: str | None
    model_id: str | None
    outcome: str
    key_version: int | None

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class AuditReport:
    entries: int
    head_mac: str  # hex; an operator may note it elsewhere to detect a rollback of the file


def _mac(key: bytes, previous: bytes, body: bytes) -> bytes:
    return hmac.new(key, previous + body, sha256).digest()


def _head_mac(key: bytes, count: int, last: bytes) -> bytes:
    return _mac(key, last, b"head:%d" % count)


def append(conn: sqlite3.Connection, key: bytes, *, at: str, actor: str, operation: str,
           identity: str | None, model_id: str | None, outcome: str,
           key_version: int | None) -> AuditEntry:
    """Append one entry chained to the last; the caller holds a write transaction."""
    last = conn.execute("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    count, previous = (0, GENESIS_MAC) if last is None else (last[0], bytes(last[1]))
    entry = AuditEntry(count + 1, at, actor, operation, identity, model_id, outcome, key_version)
    mac = _mac(key, previous, entry.encode())
    conn.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 (*asdict(entry).values(), mac))
    conn.execute("INSERT OR REPLACE INTO audit_head VALUES (1, ?, ?)",
                 (entry.seq, _head_mac(key, entry.seq, mac)))
    return entry


def entries(conn: sqlite3.Connection) -> list[AuditEntry]:
    rows = conn.execute("SELECT seq, at, actor, operation, identity, model_id, outcome, key_version "
                        "FROM audit ORDER BY seq").fetchall()
    return [AuditEntry(*row) for row in rows]


def verify(conn: sqlite3.Connection, key: bytes) -> AuditReport:
    """Recompute the chain from the first entry; an `AuditChainError` names the first break."""
    previous, expected_seq = GENESIS_MAC, 1
    for *fields, mac in conn.execute("SELECT seq, at, actor, operation, identity, model_id, outcome, "
                                     "key_version, mac FROM audit ORDER BY seq"):
        entry = AuditEntry(*fields)
        if entry.seq != expected_seq:
            raise AuditChainError(f"audit log: entry {expected_seq} is missing (next is {entry.seq})")
        if not hmac.compare_digest(_mac(key, previous, entry.encode()), bytes(mac)):
            raise AuditChainError(f"audit log: entry {entry.seq} does not verify "
                                  f"(edited, reordered or written without the audit key)")
        previous, expected_seq = bytes(mac), expected_seq + 1
    count = expected_seq - 1
    head = conn.execute("SELECT count, mac FROM audit_head WHERE one = 1").fetchone()
    if count == 0 and head is None:
        return AuditReport(0, GENESIS_MAC.hex())
    if head is None or head[0] != count or not hmac.compare_digest(
            _head_mac(key, count, previous), bytes(head[1])):
        raise AuditChainError(f"audit log: its head does not match the {count} entries "
                              f"(entries deleted from the end, or the head edited)")
    return AuditReport(count, bytes(head[1]).hex())
