"""The sealed template store: sealing with bound associated data, key providers, rotation,
the audit chain, refusals that change nothing, and SIGKILL in the middle of writes."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cryptoface.errors import (AuditChainError, CryptofaceError, DuplicateIdentityError, InvalidInputError,
                               KeyProviderError, StoreError, TamperedRecordError, UnknownIdentityError)
from cryptoface.system.keys import EnvKeyProvider, FileKeyProvider, KeySet
from cryptoface.system.store import TemplateStore

from store_crash_child import ACTOR, MODEL, PARAMS, identity, template_for

CHILD = Path(__file__).with_name("store_crash_child.py")
ALICE, BOB = b"alice-template-" * 40, b"bob-template-" * 40


@pytest.fixture
def dirs(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "keys").mkdir()
    return tmp_path


@pytest.fixture
def key_file(dirs):
    return FileKeyProvider.create(dirs / "keys" / "store.keys").location


@pytest.fixture
def store(dirs, key_file):
    with TemplateStore(dirs / "db" / "t.db", FileKeyProvider(key_file)) as opened:
        opened.enroll("alice", ALICE, model_id=MODEL, param_id=PARAMS, actor="admin")
        opened.enroll("bob", BOB, model_id=MODEL, param_id=PARAMS, actor="admin")
        yield opened


def raw(store: TemplateStore) -> sqlite3.Connection:
    """A second connection, as a thief or a tamperer with the file would have."""
    return sqlite3.connect(store.path, isolation_level=None)


def rows(store: TemplateStore) -> list[tuple]:
    return raw(store).execute("SELECT * FROM templates ORDER BY identity, model_id").fetchall()


def get(store: TemplateStore, name: str, model: str = MODEL) -> bytes:
    return store.get(name, model_id=model, actor="verifier").blob


def assert_one_line(err: pytest.ExceptionInfo) -> None:
    assert isinstance(err.value, CryptofaceError) and str(err.value) and "\n" not in str(err.value)


# --- normal operation -------------------------------------------------------------------------

def test_roundtrip_list_delete_and_nothing_in_clear_on_disk(store):
    assert get(store, "alice") == ALICE and get(store, "bob") == BOB
    assert [i.identity for i in store.list_identities(actor="admin")] == ["alice", "bob"]
    store.delete("bob", model_id=MODEL, actor="admin")
    assert [i.identity for i in store.list_identities(actor="admin", model_id=MODEL)] == ["alice"]
    assert store.list_identities(actor="admin", model_id="other-model") == []
    on_disk = b"".join(p.read_bytes() for p in store.path.parent.iterdir())
    assert b"alice-template-" not in on_disk and b"bob-template-" not in on_disk


def test_wal_mode_and_key_version_per_row(store):
    assert raw(store).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {row[3] for row in rows(store)} == {1}


def test_same_identity_under_two_models_are_two_rows(store):
    store.enroll("alice", b"other model", model_id="model-b", param_id=PARAMS, actor="admin")
    assert get(store, "alice") == ALICE and get(store, "alice", "model-b") == b"other model"


def test_duplicate_refused_unless_reenroll(store):
    before = rows(store)
    with pytest.raises(DuplicateIdentityError) as err:
        store.enroll("alice", b"impostor", model_id=MODEL, param_id=PARAMS, actor="admin")
    assert_one_line(err)
    assert rows(store) == before and get(store, "alice") == ALICE
    store.enroll("alice", b"new face", model_id=MODEL, param_id=PARAMS, actor="admin", replace=True)
    assert get(store, "alice") == b"new face"


@pytest.mark.parametrize("call", ["get", "delete"])
def test_unknown_identity(store, call):
    before = rows(store)
    with pytest.raises(UnknownIdentityError) as err:
        getattr(store, call)("carol", model_id=MODEL, actor="admin")
    assert_one_line(err)
    assert rows(store) == before


@pytest.mark.parametrize("template", [b"", bytearray(), "a string", None, b"x" * 1025])
def test_bad_template_refused(dirs, key_file, template):
    with TemplateStore(dirs / "db" / "t.db", FileKeyProvider(key_file), max_template_bytes=1024) as s:
        with pytest.raises(InvalidInputError) as err:
            s.enroll("alice", template, model_id=MODEL, param_id=PARAMS, actor="admin")
        assert_one_line(err)
        assert rows(s) == []
        s.enroll("alice", b"x" * 1024, model_id=MODEL, param_id=PARAMS, actor="admin")  # the limit itself


@pytest.mark.parametrize("name", ["", "a\nb", "x" * 257, 7])
def test_bad_identity_refused(store, name):
    before = rows(store)
    with pytest.raises(InvalidInputError):
        store.enroll(name, b"t", model_id=MODEL, param_id=PARAMS, actor="admin")
    assert rows(store) == before


def test_param_id_checked_on_get(store):
    assert store.get("alice", model_id=MODEL, actor="v", param_id=PARAMS).blob == ALICE
    with pytest.raises(StoreError, match="parameter set"):
        store.get("alice", model_id=MODEL, actor="v", param_id="params-2")


# --- tampering: GCM with identity, model, parameters and key version as associated data -------

def edit(store: TemplateStore, sql: str, *args) -> None:
    raw(store).execute(sql, args)


def swap_sealed(store):
    conn = raw(store)
    (a_nonce, a_sealed), (b_nonce, b_sealed) = conn.execute(
        "SELECT nonce, sealed FROM templates ORDER BY identity").fetchall()
    conn.execute("UPDATE templates SET nonce = ?, sealed = ? WHERE identity = 'alice'", (b_nonce, b_sealed))
    conn.execute("UPDATE templates SET nonce = ?, sealed = ? WHERE identity = 'bob'", (a_nonce, a_sealed))


def flip_bit(store, name="alice"):
    sealed = bytearray(raw(store).execute("SELECT sealed FROM templates WHERE identity = ?", (name,)).fetchone()[0])
    sealed[len(sealed) // 2] ^= 1
    edit(store, "UPDATE templates SET sealed = ? WHERE identity = ?", bytes(sealed), name)


def copy_alice_onto(store, column, value):
    edit(store, "DELETE FROM templates WHERE identity = 'bob'")
    edit(store, f"INSERT INTO templates SELECT {', '.join(value if c == column else c for c in COLUMNS)} "
                "FROM templates WHERE identity = 'alice'")


COLUMNS = ["identity", "model_id", "param_id", "key_version", "nonce", "sealed", "enrolled_at"]


@pytest.mark.parametrize("tamper, victim", [
    (flip_bit, "alice"),
    (swap_sealed, "alice"),
    (swap_sealed, "bob"),
    (lambda s: copy_alice_onto(s, "identity", "'bob'"), "bob"),
    (lambda s: edit(s, "UPDATE templates SET identity = 'mallory' WHERE identity = 'alice'"), "mallory"),
    (lambda s: edit(s, "UPDATE templates SET param_id = 'params-2' WHERE identity = 'alice'"), "alice"),
    (lambda s: edit(s, "UPDATE templates SET sealed = substr(sealed, 1, 20) WHERE identity = 'alice'"), "alice"),
], ids=["bit-flip", "swapped-a", "swapped-b", "copied-onto-bob", "renamed", "param-edited", "truncated"])
def test_tampered_row_never_opens(store, tamper, victim):
    tamper(store)
    with pytest.raises(TamperedRecordError) as err:
        get(store, victim)
    assert_one_line(err)


def test_row_moved_to_another_model_or_key_version(store):
    store.rotate_key(actor="admin")  # versions 1 and 2 both exist now
    copy_alice_onto(store, "model_id", "'model-b'")
    with pytest.raises(TamperedRecordError):
        get(store, "alice", "model-b")
    edit(store, "UPDATE templates SET key_version = 1 WHERE identity = 'alice' AND model_id = ?", MODEL)
    with pytest.raises(TamperedRecordError):
        get(store, "alice")


def test_tampered_row_aborts_rotation_whole(store):
    flip_bit(store, "bob")  # rotation re-wraps alice first, then meets bob
    before = rows(store)
    with pytest.raises(TamperedRecordError):
        store.rotate_key(actor="admin")
    assert rows(store) == before and get(store, "alice") == ALICE


# --- keys -------------------------------------------------------------------------------------

def test_wrong_data_key_refused_and_nothing_written(dirs, store):
    before = rows(store)
    store.close()
    impostor_keys = json.loads(KeySet.generate().to_json())
    impostor_keys["audit_key"] = json.loads((dirs / "keys" / "store.keys").read_text())["audit_key"]
    env = {"K": json.dumps(impostor_keys)}
    with TemplateStore(store.path, EnvKeyProvider("K", env)) as wrong:
        for call in (lambda: get(wrong, "alice"),
                     lambda: wrong.enroll("carol", b"t", model_id=MODEL, param_id=PARAMS, actor="admin")):
            with pytest.raises(KeyProviderError, match="not the key this store was sealed with") as err:
                call()
            assert_one_line(err)
        assert rows(wrong) == before


def test_wrong_audit_key_refused_at_open(dirs, store):
    store.close()
    with pytest.raises(KeyProviderError, match="audit key"):
        TemplateStore(store.path, EnvKeyProvider("K", {"K": KeySet.generate().to_json()}))


def test_missing_key_version_refused(dirs, store):
    store.rotate_key(actor="admin")
    store.close()
    keys = KeySet.from_json((dirs / "keys" / "store.keys").read_text(), "test")
    only_v1 = KeySet(current=1, data_keys={1: keys.data_keys[1]}, audit_key=keys.audit_key)
    with TemplateStore(store.path, EnvKeyProvider("K", {"K": only_v1.to_json()})) as s:
        with pytest.raises(KeyProviderError, match="version 2 is not in") as err:
            get(s, "alice")
        assert_one_line(err)


def test_key_file_checks(dirs, key_file):
    with pytest.raises(KeyProviderError, match="no key file"):
        FileKeyProvider(dirs / "keys" / "absent")
    with pytest.raises(KeyProviderError, match="already exists"):
        FileKeyProvider.create(key_file)
    for mode in (0o640, 0o604):
        os.chmod(key_file, mode)
        with pytest.raises(KeyProviderError, match="chmod 600") as err:
            FileKeyProvider(key_file)
        assert_one_line(err)
    os.chmod(key_file, 0o600)
    beside = FileKeyProvider.create(dirs / "db" / "store.keys")
    with pytest.raises(KeyProviderError, match="beside the database"):
        TemplateStore(dirs / "db" / "t.db", beside)
    assert not (dirs / "db" / "t.db").exists()
    assert oct(os.stat(key_file).st_mode & 0o777) == oct(0o600)


@pytest.mark.parametrize("text", ["", "{}", "not json", '{"format": "cryptoface-store-keys/1"}',
                                  KeySet.generate().to_json().replace('"current": 1', '"current": 2')])
def test_malformed_key_set_refused(text):
    with pytest.raises(KeyProviderError) as err:
        EnvKeyProvider("K", {"K": text})
    assert_one_line(err)


def test_env_provider(dirs):
    keys = KeySet.generate()
    with pytest.raises(KeyProviderError, match="not set"):
        EnvKeyProvider("K", {})
    with TemplateStore(dirs / "db" / "t.db", EnvKeyProvider("K", {"K": keys.to_json()})) as s:
        s.enroll("alice", ALICE, model_id=MODEL, param_id=PARAMS, actor="admin")
        with pytest.raises(KeyProviderError, match="cannot be rotated in place"):
            s.rotate_key(actor="admin")
        assert rows(s)[0][3] == 1
    rotated = keys.with_new_version()
    with TemplateStore(dirs / "db" / "t.db", EnvKeyProvider("K", {"K": rotated.to_json()})) as s:
        assert s.rotate_key(actor="admin", target_version=2).to_version == 2
        assert get(s, "alice") == ALICE and s.key_versions_in_use() == {2: 1}


def test_rotation_rewraps_every_row(dirs, store):
    before = rows(store)
    report = store.rotate_key(actor="admin")
    assert (report.rows, report.from_versions, report.to_version) == (2, (1,), 2)
    after = rows(store)
    assert [r[3] for r in after] == [2, 2]
    assert all(a[5] != b[5] and a[4] != b[4] for a, b in zip(before, after))  # new nonces, new seals
    assert get(store, "alice") == ALICE and get(store, "bob") == BOB
    assert FileKeyProvider(dirs / "keys" / "store.keys").current_version == 2
    store.enroll("carol", b"c", model_id=MODEL, param_id=PARAMS, actor="admin")
    assert store.key_versions_in_use() == {2: 3}


# --- corrupt or unreadable database -------------------------------------------------------------

def test_garbage_database_file(dirs, key_file):
    path = dirs / "db" / "t.db"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(StoreError) as err:
        TemplateStore(path, FileKeyProvider(key_file))
    assert_one_line(err)


def test_directory_as_database(dirs, key_file):
    with pytest.raises(StoreError) as err:
        TemplateStore(dirs / "db", FileKeyProvider(key_file))
    assert_one_line(err)


def test_damaged_pages(dirs, key_file, store):
    for i in range(30):
        store.enroll(f"user-{i}", os.urandom(3000), model_id=MODEL, param_id=PARAMS, actor="admin")
    store.close()
    raw(store).execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(store.path.read_bytes())
    data[4096 * 3: 4096 * 6] = os.urandom(4096 * 3)
    store.path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as err:
        with TemplateStore(store.path, FileKeyProvider(key_file)) as s:
            for info in s.list_identities(actor="admin"):
                get(s, info.identity)
    assert_one_line(err)


# --- audit chain ----------------------------------------------------------------------------------

def test_audit_records_every_operation(store):
    store.get("alice", model_id=MODEL, actor="verifier-1")
    with pytest.raises(UnknownIdentityError):
        store.delete("carol", model_id=MODEL, actor="admin-2")
    store.rotate_key(actor="admin-3")
    entries = store.audit_entries()
    assert [(e.actor, e.operation, e.identity, e.outcome, e.key_version) for e in entries] == [
        ("admin", "enroll", "alice", "ok", 1),
        ("admin", "enroll", "bob", "ok", 1),
        ("verifier-1", "get", "alice", "ok", 1),
        ("admin-2", "delete", "carol", "refused: UnknownIdentityError", None),
        ("admin-3", "rotate_key", None, "ok", 2),
    ]
    assert all(e.at.endswith("+00:00") for e in entries)
    assert store.verify_audit().entries == 5


def audit_rows(store):
    return raw(store).execute("SELECT * FROM audit ORDER BY seq").fetchall()


def rewrite_audit(store, new_rows):
    conn = raw(store)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute("DELETE FROM audit")
    conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", new_rows)


def edited(rows_):
    rows_[0] = rows_[0][:2] + ("someone-else",) + rows_[0][3:]
    return rows_


def reordered(rows_):
    (seq1, *one), (seq2, *two) = rows_[0], rows_[1]
    rows_[0], rows_[1] = (seq1, *two), (seq2, *one)
    return rows_


@pytest.mark.parametrize("change", [
    edited,
    reordered,
    lambda r: r[:1] + r[2:],  # a middle entry deleted
    lambda r: [(seq,) + row[1:] for seq, row in enumerate(r[:1] + r[2:], start=1)],  # ... and renumbered
    lambda r: r[:-1],  # the last entry deleted
], ids=["edited", "reordered", "deleted", "deleted-renumbered", "truncated"])
def test_audit_tampering_detected(store, change):
    store.get("alice", model_id=MODEL, actor="v")
    store.get("bob", model_id=MODEL, actor="v")
    rewrite_audit(store, change(audit_rows(store)))
    with pytest.raises(AuditChainError) as err:
        store.verify_audit()
    assert_one_line(err)


def test_audit_entry_spliced_from_another_store_with_the_same_key(dirs, key_file, store):
    """Each entry's MAC covers the previous one: a validly MACed entry from elsewhere does not fit."""
    with TemplateStore(dirs / "db" / "other.db", FileKeyProvider(key_file)) as other:
        other.enroll("alice", b"x", model_id=MODEL, param_id=PARAMS, actor="admin")
        other.enroll("eve", b"x", model_id=MODEL, param_id=PARAMS, actor="admin")
        foreign = audit_rows(other)[1]
    mine = audit_rows(store)
    rewrite_audit(store, mine[:1] + [foreign])
    with pytest.raises(AuditChainError, match="entry 2"):
        store.verify_audit()


def test_audit_table_refuses_update_and_delete(store):
    for sql in ("UPDATE audit SET outcome = 'ok'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw(store).execute(sql)


# --- SIGKILL in the middle of writes ----------------------------------------------------------------

def kill_child_midway(mode: str, db: Path, key_file: Path, first: int, rng: random.Random) -> None:
    child = subprocess.Popen([sys.executable, str(CHILD), mode, str(db), str(key_file), str(first)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n", child.stderr.read()
        time.sleep(rng.uniform(0.02, 0.35))
        assert child.poll() is None, child.stderr.read()
    finally:
        child.kill()  # SIGKILL
        child.wait()


def test_sigkill_during_enrollment_leaves_store_consistent(dirs, key_file):
    db, rng, enrolled = dirs / "db" / "t.db", random.Random(9), 0
    for _ in range(20):
        kill_child_midway("enroll", db, key_file, enrolled, rng)
        with TemplateStore(db, FileKeyProvider(key_file)) as s:
            s.verify_audit()
            oks = [e.identity for e in s.audit_entries() if (e.operation, e.outcome) == ("enroll", "ok")]
            names = [i.identity for i in s.list_identities(actor="checker")]
            assert names == oks == [identity(i) for i in range(len(names))]
            for name in names[enrolled:]:
                assert get(s, name) == template_for(name)
            enrolled = len(names)
    assert enrolled > 20


def test_sigkill_during_rotation_leaves_all_old_or_all_new(dirs, key_file):
    db, rng, count = dirs / "db" / "t.db", random.Random(10), 150
    with TemplateStore(db, FileKeyProvider(key_file)) as s:
        for i in range(count):
            s.enroll(identity(i), template_for(identity(i)), model_id=MODEL, param_id=PARAMS, actor=ACTOR)
    versions_seen = set()
    for trial in range(20):
        kill_child_midway("rotate", db, key_file, 0, rng)
        with TemplateStore(db, FileKeyProvider(key_file)) as s:
            s.verify_audit()
            in_use = s.key_versions_in_use()
            assert len(in_use) == 1 and sum(in_use.values()) == count, in_use
            (version,) = in_use
            rotations = [e.key_version for e in s.audit_entries() if e.operation == "rotate_key"]
            assert version == (rotations[-1] if rotations else 1)
            for i in rng.sample(range(count), 15) if trial < 19 else range(count):
                assert get(s, identity(i)) == template_for(identity(i))
            versions_seen.add(version)
    assert len(versions_seen) > 5  # rotations did commit between kills


# --- command line -----------------------------------------------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptoface.cli", "store", "rotate-key", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_rotate_key(dirs, key_file, store):
    store.close()
    proc = cli("--db", str(store.path), "--key-file", str(key_file), "--actor", "ops")
    assert proc.returncode == 0, proc.stderr
    assert "re-wrapped 2 templates from key version(s) 1 to 2" in proc.stdout
    with TemplateStore(store.path, FileKeyProvider(key_file)) as s:
        assert s.key_versions_in_use() == {2: 2} and get(s, "alice") == ALICE
        assert s.audit_entries()[-2].actor == "ops"
    for db, mode in ((dirs / "db" / "absent.db", 0o600), (store.path, 0o644)):
        os.chmod(key_file, mode)
        proc = cli("--db", str(db), "--key-file", str(key_file))
        assert proc.returncode == 2 and proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert not (dirs / "db" / "absent.db").exists()
