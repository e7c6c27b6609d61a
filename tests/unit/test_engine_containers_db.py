"""The engine's state database (`engine.state_db`): rows, unique names, prefixes, order, WAL,
and many threads at once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from skiff.engine.names import new_id
from skiff.engine.state_db import SCHEMA_VERSION, ContainerRow, NameTaken, StateDB
from skiff.errors import StoreError


def row(name: str, cid: str | None = None, **state: object) -> ContainerRow:
    return ContainerRow(id=cid or new_id(), name=name, image_id="sha256:" + "1" * 64,
                        created="2026-01-01T00:00:00Z", doc={"Config": {"Labels": {"a": "b"}}},
                        state={"Status": "created", **state})


@pytest.fixture
def db(tmp_path: Path) -> StateDB:
    d = StateDB(str(tmp_path / "sub" / "skiff.db"))
    yield d
    d.close()


def test_rows_round_trip_in_order(db: StateDB) -> None:
    a = db.insert(row("alpha"))
    b = db.insert(row("beta"))
    assert 0 < a.seq < b.seq
    assert db.get(a.id) == a
    assert db.by_name("beta") == b and db.by_name("gamma") is None
    assert [r.name for r in db.all()] == ["alpha", "beta"]
    assert db.names() == {"alpha": a.id, "beta": b.id}
    assert db.get("0" * 64) is None


def test_state_updates_and_deletes(db: StateDB) -> None:
    a = db.insert(row("alpha"))
    assert db.set_state(a.id, {"Status": "running", "Pid": 42})
    got = db.get(a.id)
    assert got is not None and got.state == {"Status": "running", "Pid": 42}
    assert got.doc == a.doc  # untouched
    assert db.delete(a.id) and not db.delete(a.id)
    assert not db.set_state(a.id, {})


def test_a_name_has_one_holder(db: StateDB) -> None:
    a = db.insert(row("web"))
    with pytest.raises(NameTaken) as info:
        db.insert(row("web"))
    assert (info.value.name, info.value.holder) == ("web", a.id)
    db.delete(a.id)
    db.insert(row("web"))  # free again once its holder is gone


def test_prefixes(db: StateDB) -> None:
    one = db.insert(row("one", "abc" + "0" * 61))
    two = db.insert(row("two", "abd" + "0" * 61))
    assert db.ids_starting("ab") == sorted([one.id, two.id])
    assert db.ids_starting("abc") == [one.id]
    assert db.ids_starting("abc0000") == [one.id]
    assert db.ids_starting("") == [] and db.ids_starting("a%") == [] and db.ids_starting("ABC") == []


def test_the_file_is_wal_and_versioned(db: StateDB, tmp_path: Path) -> None:
    db.insert(row("x"))
    conn = sqlite3.connect(db.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    finally:
        conn.close()
    newer = StateDB(db.path)
    with pytest.raises(StoreError, match="newer than this skiff"):
        newer.all()


def test_a_second_object_sees_the_first_ones_rows(db: StateDB) -> None:
    a = db.insert(row("persisted"))
    again = StateDB(db.path)
    try:
        assert again.get(a.id) == a
    finally:
        again.close()


def test_many_threads_at_once(db: StateDB) -> None:
    errors: list[BaseException] = []
    taken: list[str] = []

    def work(i: int) -> None:
        try:
            r = db.insert(row(f"c{i}"))
            db.set_state(r.id, {"Status": "running", "I": i})
            assert db.get(r.id) is not None
            try:
                db.insert(row("contended"))
                taken.append(r.id)
            except NameTaken:
                pass
            db.all()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(taken) == 1
    assert len(db.all()) == 51
    assert {r.state.get("I") for r in db.all() if r.name != "contended"} == set(range(50))
