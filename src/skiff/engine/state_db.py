"""The engine's state database: one SQLite file (WAL) under SKIFF_ROOT, for containers
(and, in tables of their own that `network_db` reads and writes, networks and endpoints).

A container is one row: its ID, its name (unique: the database refuses a second holder, which
is what makes concurrent creates with one name safe), its image ID, the moment it was made,
`doc` — what Docker keeps in its config.v2.json and hostconfig.json (Config, HostConfig, the
image as the user named it, Path and Args…), written once at create — and `state`, the small
JSON document that changes as it runs (status, pid, exit code, times). `seq` keeps the order
of creation, which Docker's ``before``/``since`` filters mean. Every write is one statement, so
a crash leaves each row as it was before or after, never half-changed; WAL lets readers go on
while one writer writes. All threads share one connection under a lock (SQLite serialises
writers anyway, and a statement here takes microseconds); `busy_timeout` covers a second
process on the same file (a tool reading it).
"""

from __future__ import annotations

import os
import sqlite3
import threading

from skiff import jsonfast
from skiff.errors import StoreError
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from typing import Any

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT NOT NULL UNIQUE,
    name     TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    created  TEXT NOT NULL,
    doc      TEXT NOT NULL,
    state    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS networks (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT NOT NULL UNIQUE,
    name     TEXT NOT NULL UNIQUE,
    created  TEXT NOT NULL,
    doc      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    network_id   TEXT NOT NULL,
    container_id TEXT NOT NULL,
    address      TEXT,
    doc          TEXT NOT NULL,
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, address)
);
"""
_COLUMNS = "seq, id, name, image_id, created, doc, state"


class ContainerRow(Record):
    """One container as stored. `seq` is 0 until the row is inserted."""

    id: str
    name: str
    image_id: str
    created: str
    doc: dict[str, Any]
    state: dict[str, Any]
    seq: int = 0


class NameTaken(StoreError):
    """The name is held by another container (`holder`, its ID)."""

    def __init__(self, name: str, holder: str) -> None:
        self.name = name
        self.holder = holder
        super().__init__(f"name {name} is held by container {holder}")


def _row(values: tuple[Any, ...]) -> ContainerRow:
    seq, cid, name, image_id, created, doc, state = values
    return ContainerRow(id=cid, name=name, image_id=image_id, created=created,
                        doc=jsonfast.loads(doc), state=jsonfast.loads(state), seq=seq)


class StateDB:
    """The database at `path` (made with its folder on first use)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        # opened on first use, under the lock: Engine objects are made where no state is read
        if self._conn is None:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                       timeout=10.0)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # durable at each WAL checkpoint
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    conn.close()
                    raise StoreError(f"{self.path}: schema version {version} is newer than this "
                                     f"skiff's ({SCHEMA_VERSION}); upgrade skiff")
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            except sqlite3.Error as e:
                raise StoreError(f"open state database {self.path}: {e}") from e
            self._conn = conn
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db().execute(sql, args)
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as e:
                raise StoreError(f"state database {self.path}: {e}") from e

    def _fetch(self, sql: str, args: tuple[Any, ...] = ()) -> builtins.list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db().execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"state database {self.path}: {e}") from e

    # -- writes -----------------------------------------------------------------------------
    def insert(self, row: ContainerRow) -> ContainerRow:
        """Store a new container; NameTaken when its name is held already."""
        try:
            cursor = self._run(
                "INSERT INTO containers (id, name, image_id, created, doc, state) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (row.id, row.name, row.image_id, row.created, jsonfast.dumps(row.doc),
                 jsonfast.dumps(row.state)))
        except sqlite3.IntegrityError as e:
            holder = self.by_name(row.name)
            if holder is not None:
                raise NameTaken(row.name, holder.id) from e
            raise StoreError(f"state database {self.path}: container {row.id}: {e}") from e
        return ContainerRow(id=row.id, name=row.name, image_id=row.image_id,
                            created=row.created, doc=row.doc, state=row.state,
                            seq=int(cursor.lastrowid or 0))

    def set_state(self, cid: str, state: dict[str, Any]) -> bool:
        """Replace the state of `cid`; False when there is no such row."""
        cursor = self._run("UPDATE containers SET state = ? WHERE id = ?",
                           (jsonfast.dumps(state), cid))
        return cursor.rowcount > 0

    def set_doc(self, cid: str, doc: dict[str, Any]) -> bool:
        """Replace the settings of `cid` (``docker update`` changes its HostConfig)."""
        cursor = self._run("UPDATE containers SET doc = ? WHERE id = ?",
                           (jsonfast.dumps(doc), cid))
        return cursor.rowcount > 0

    def rename(self, cid: str, name: str) -> bool:
        """Give `cid` the name `name`; NameTaken when another container holds it."""
        try:
            cursor = self._run("UPDATE containers SET name = ? WHERE id = ?", (name, cid))
        except sqlite3.IntegrityError as e:
            holder = self.by_name(name)
            raise NameTaken(name, holder.id if holder is not None else "") from e
        return cursor.rowcount > 0

    def delete(self, cid: str) -> bool:
        return self._run("DELETE FROM containers WHERE id = ?", (cid,)).rowcount > 0

    # -- reads ------------------------------------------------------------------------------
    def get(self, cid: str) -> ContainerRow | None:
        rows = self._fetch(f"SELECT {_COLUMNS} FROM containers WHERE id = ?", (cid,))
        return _row(rows[0]) if rows else None

    def by_name(self, name: str) -> ContainerRow | None:
        rows = self._fetch(f"SELECT {_COLUMNS} FROM containers WHERE name = ?", (name,))
        return _row(rows[0]) if rows else None

    def ids_starting(self, prefix: str) -> builtins.list[str]:
        """The IDs that begin with `prefix` (a hex prefix: no LIKE wildcards in it)."""
        if not prefix or set(prefix) - set("0123456789abcdef"):
            return []
        upper = prefix + "g"  # every ID with this prefix sorts below prefix + "g"
        return [r[0] for r in self._fetch(
            "SELECT id FROM containers WHERE id >= ? AND id < ?", (prefix, upper))]

    def all(self) -> builtins.list[ContainerRow]:
        """Every container, oldest first."""
        return [_row(r) for r in self._fetch(f"SELECT {_COLUMNS} FROM containers ORDER BY seq")]

    def names(self) -> dict[str, str]:
        """name → ID of every container."""
        return {name: cid for cid, name in self._fetch("SELECT id, name FROM containers")}
