"""What names mean on user-defined networks: the model behind the embedded DNS server.

A container on a user network is found by the containers it shares that network with —
by its name, its network aliases, its hostname and its short ID, as Docker's embedded DNS
answers (the default bridge has no names). `resolve` gives the addresses a name has for
one asking container, over every user network it runs on; `reverse` gives the name an
address has (``name.network``, Docker's PTR answer). Both read the endpoints as they are
in the state database, so a container's names appear with its start and go with its stop.
"""

from __future__ import annotations

from skiff.engine.networks import PREDEFINED

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.engine.network_db import EndpointRow
    from skiff.engine.networks import NetworkService


def _shared(net: NetworkService, cid: str) -> dict[str, tuple[str, list[EndpointRow]]]:
    """network ID → (its name, its running endpoints), for the user networks `cid` runs on."""
    out: dict[str, tuple[str, list[EndpointRow]]] = {}
    for mine in net.db.endpoints(cid=cid):
        if mine.address is None:
            continue
        row = net.db.get(mine.network_id)
        if row is None or row.name in PREDEFINED:
            continue
        out[row.id] = (row.name, [e for e in net.db.endpoints(nid=row.id)
                                  if e.address is not None])
    return out


def names_of(net: NetworkService, ep: EndpointRow) -> list[str]:
    """The names an endpoint answers to on its network, lower-cased."""
    names = [str(ep.doc.get("ContainerName") or ""), ep.container_id[:12],
             *((ep.doc.get("Asked") or {}).get("Aliases") or [])]
    if net.containers is not None:
        crow = net.containers.db.get(ep.container_id)
        if crow is not None:
            names.append(str(crow.doc["Config"].get("Hostname") or ""))
            names[0] = crow.name  # a rename since the start
    return [n.lower() for n in names if n]


def resolve(net: NetworkService, cid: str, name: str) -> list[str]:
    wanted = name.rstrip(".").lower()
    if not wanted:
        return []
    found: list[str] = []
    for _, (network, endpoints) in _shared(net, cid).items():
        short = network.lower()
        bare = wanted[:-len(short) - 1] if wanted.endswith("." + short) else wanted
        for ep in endpoints:  # "web" and "web.mynet" alike
            if bare in names_of(net, ep) and ep.address not in found:
                found.append(str(ep.address))
    return found


def reverse(net: NetworkService, cid: str, address: str) -> str | None:
    for _, (network, endpoints) in _shared(net, cid).items():
        for ep in endpoints:
            if ep.address == address:
                name = names_of(net, ep)[0] if names_of(net, ep) else ep.container_id[:12]
                return f"{name}.{network}"
    return None
