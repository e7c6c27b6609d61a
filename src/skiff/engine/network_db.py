"""Networks and their endpoints in the engine's state database (`state_db`'s file).

A network is a row: its ID, its unique name, its creation time and `doc`, Docker's
NetworkResource without the ``Containers`` (those are read from the endpoints). An endpoint
is one container's attachment to one network, kept from ``create``/``connect`` until
``rm``/``disconnect``: its `doc` holds what was asked (IPAMConfig, Aliases, MacAddress) and,
while the container runs, what it got (EndpointID, the address, the MAC, the interface
names); `address` is the allocated IPv4 address while it runs, NULL otherwise. The database
holds (network, address) unique, so no address is ever handed out twice — two starts that
chose the same one race on the insert, and the loser chooses again — and none is lost:
what a stopped container held is set back to NULL, at its stop or at skiffd's next start.
"""

from __future__ import annotations

import sqlite3

from skiff import jsonfast
from skiff.errors import StoreError
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from typing import Any

    from skiff.engine.state_db import StateDB


class NetworkRow(Record):
    id: str
    name: str
    created: str
    doc: dict[str, Any]


class EndpointRow(Record):
    network_id: str
    container_id: str
    address: str | None
    doc: dict[str, Any]


class AddressTaken(StoreError):
    """Another endpoint of the network holds the address."""


class NetworkDB:
    """The network tables of `db`."""

    def __init__(self, db: StateDB) -> None:
        self.db = db

    # -- networks ---------------------------------------------------------------------------
    def insert(self, row: NetworkRow) -> bool:
        """Store a new network; False when its name or ID is held already."""
        try:
            self.db._run("INSERT INTO networks (id, name, created, doc) VALUES (?, ?, ?, ?)",
                         (row.id, row.name, row.created, jsonfast.dumps(row.doc)))
        except sqlite3.IntegrityError:
            return False
        return True

    def set_doc(self, nid: str, doc: dict[str, Any]) -> None:
        self.db._run("UPDATE networks SET doc = ? WHERE id = ?", (jsonfast.dumps(doc), nid))

    def delete(self, nid: str) -> None:
        self.db._run("DELETE FROM endpoints WHERE network_id = ?", (nid,))
        self.db._run("DELETE FROM networks WHERE id = ?", (nid,))

    def all(self) -> builtins.list[NetworkRow]:
        return [NetworkRow(id=i, name=n, created=c, doc=jsonfast.loads(d)) for i, n, c, d in
                self.db._fetch("SELECT id, name, created, doc FROM networks ORDER BY seq")]

    def get(self, nid: str) -> NetworkRow | None:
        rows = self.db._fetch("SELECT id, name, created, doc FROM networks WHERE id = ?", (nid,))
        return NetworkRow(id=rows[0][0], name=rows[0][1], created=rows[0][2],
                          doc=jsonfast.loads(rows[0][3])) if rows else None

    # -- endpoints --------------------------------------------------------------------------
    def attach(self, ep: EndpointRow) -> bool:
        """Record an attachment (no address yet); False when the container has one there."""
        try:
            self.db._run("INSERT INTO endpoints (network_id, container_id, address, doc) "
                         "VALUES (?, ?, NULL, ?)",
                         (ep.network_id, ep.container_id, jsonfast.dumps(ep.doc)))
        except sqlite3.IntegrityError:
            return False
        return True

    def claim(self, nid: str, cid: str, address: str, doc: dict[str, Any]) -> None:
        """Give the endpoint `address` (and its new `doc`); AddressTaken when another holds it."""
        try:
            self.db._run("UPDATE endpoints SET address = ?, doc = ? WHERE network_id = ? AND "
                         "container_id = ?", (address, jsonfast.dumps(doc), nid, cid))
        except sqlite3.IntegrityError:
            raise AddressTaken(f"{address} is taken on network {nid[:12]}") from None

    def set_endpoint_doc(self, nid: str, cid: str, doc: dict[str, Any]) -> None:
        self.db._run("UPDATE endpoints SET doc = ? WHERE network_id = ? AND container_id = ?",
                     (jsonfast.dumps(doc), nid, cid))

    def release(self, nid: str, cid: str, doc: dict[str, Any]) -> None:
        """The endpoint's address goes back to the pool; `doc` is what stays recorded."""
        self.db._run("UPDATE endpoints SET address = NULL, doc = ? WHERE network_id = ? AND "
                     "container_id = ?", (jsonfast.dumps(doc), nid, cid))

    def detach(self, nid: str, cid: str) -> bool:
        return self.db._run("DELETE FROM endpoints WHERE network_id = ? AND container_id = ?",
                            (nid, cid)).rowcount > 0

    def forget(self, cid: str) -> None:
        """Every attachment of a removed container."""
        self.db._run("DELETE FROM endpoints WHERE container_id = ?", (cid,))

    def taken(self, nid: str) -> set[str]:
        return {a for (a,) in self.db._fetch(
            "SELECT address FROM endpoints WHERE network_id = ? AND address IS NOT NULL",
            (nid,))}

    def endpoints(self, *, nid: str | None = None,
                  cid: str | None = None) -> builtins.list[EndpointRow]:
        """The endpoints of a network, of a container, or all of them (in attach order)."""
        where, args = [], []
        for column, value in (("network_id", nid), ("container_id", cid)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT network_id, container_id, address, doc FROM endpoints"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [EndpointRow(network_id=n, container_id=c, address=a, doc=jsonfast.loads(d))
                for n, c, a, d in self.db._fetch(sql + " ORDER BY rowid", tuple(args))]
