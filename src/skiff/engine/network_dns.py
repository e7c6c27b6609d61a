"""The embedded DNS server wired into containers' lives: who is served, and where names go.

`EmbeddedDns` holds skiffd's one `net.dns.DnsServer`, made at the first container that
needs it (not at skiffd's start, which stays fast) and closed with the engine. A running
container is served — on 127.0.0.11:53 inside its own network namespace, DNAT'd there to
the server's ports of the kernel's choosing as Docker does, so that port 53 stays the
container's — while it has an endpoint on a user-defined network, as Docker's resolver
runs for those only: `refresh` after its start, a connect or a disconnect makes the
server agree with its endpoints (the DNAT deleted with the last user network, kept when
it is served anew), and `forget` at the end of its run closes its sockets before its
namespace is let go (they would keep it alive; the DNAT goes with the namespace). A
``container:<id>`` container shares the other's namespace and its server; a
userns-remapped container's namespace, its runtime's, is kept at the same path. Names the
engine does not know go to the container's ``--dns`` servers when it has some (asked from
its own namespace, as moby asks them), else to skiffd's upstreams (``skiffd
--dns-upstream``, default the host's resolv.conf, ``none``: nowhere), and nowhere when
every network it is on is ``--internal`` (moby's "no external access": SERVFAIL, nothing
leaves). After a skiffd restart the sockets are gone with the old process; `reconcile`
serves every running container again (their namespaces are bind mounts that outlived
it), with new sockets on the ports its DNAT names (untouched, and so are the NAT'd
connections of its clients), or on new ones with the DNAT switched in one transaction when
those are taken.
"""

from __future__ import annotations

import threading
import time

from skiff.engine.networks import PREDEFINED
from skiff.errors import SkiffError
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from skiff.engine.networks import NetworkService
    from skiff.engine.state_db import ContainerRow
    from skiff.net.dns import DnsServer
    from skiff.net.dns_upstream import Upstream

_log = logger("skiff.engine.networks")
NO_UPSTREAM = "none"  # skiffd --dns-upstream none: names the engine does not know fail


class EmbeddedDns:
    """The DNS server of the network service `net` (see the module's text). `upstreams`:
    where unknown names go for containers without ``--dns`` (None: the host's resolvers,
    read at each container's start; empty: nowhere)."""

    def __init__(self, net: NetworkService,
                 upstreams: Sequence[Upstream] | None = None) -> None:
        self.net = net
        self.upstreams = None if upstreams is None else list(upstreams)
        self._server: DnsServer | None = None
        self._served: dict[str, tuple[Upstream, ...] | None] = {}  # cid → its upstreams
        self._lock = threading.Lock()  # the server's making, the served table
        self._closed = False

    def _ensure_server(self) -> DnsServer:
        if self._server is None:
            from skiff.net.dns import DnsServer

            net = self.net
            # ports of the kernel's choosing, 53 DNAT'd to them: Docker's way
            self._server = DnsServer(net.resolve, net.reverse, self.upstreams, port=0)
        return self._server

    def wanted(self, crow: ContainerRow) -> tuple[bool, tuple[Upstream, ...] | None]:
        """Whether the container is to be served now, and its upstreams (None: the
        server's own)."""
        from skiff.engine.network_endpoints import active

        rows = [self.net.db.get(ep.network_id) for ep in active(self.net, crow.id)]
        user = [r for r in rows if r is not None and r.name not in PREDEFINED]
        if not user:
            return False, None
        if all(r.doc.get("Internal") for r in rows if r is not None):
            return True, ()
        dns = crow.doc["HostConfig"].get("Dns") or ()
        if dns:
            from skiff.net.dns_upstream import Upstream

            return True, tuple(Upstream(str(a)) for a in dns)
        return True, None

    def refresh(self, crow: ContainerRow, quiet: bool = False) -> None:
        """Serve the running container `crow` as its endpoints say now: added on its
        first user network, again when its upstreams changed (a connect to a network
        with a way out), removed when it left the last one. `quiet`: a failure is logged
        (a live connect or disconnect, which is done by then), not raised."""
        try:
            self._refresh(crow)
        except SkiffError as e:
            if not quiet:
                raise
            _log.warning("container %s: its DNS server: %s", crow.id[:12], e)

    def _refresh(self, crow: ContainerRow) -> None:
        serve, upstreams = self.wanted(crow)
        cid = crow.id
        with self._lock:
            if self._closed:
                return
            if cid in self._served:
                if serve and self._served[cid] == upstreams:
                    return
                self._remove(cid, keep_redirect=serve)  # the add below takes its ports
            if not serve:
                return
            assert self.net.containers is not None
            began = time.perf_counter()
            made = self._server is None
            server = self._ensure_server()
            # a container's --dns servers are asked from its namespace, as moby asks them;
            # skiffd's (or the host's) from the host's, where they were found
            server.add(cid, self.net.containers.netns_path(cid),
                       None if upstreams is None else list(upstreams),
                       from_netns=bool(upstreams))
            self._served[cid] = upstreams
            _log.debug("container %s: DNS served in %.2f ms%s", cid[:12],
                       (time.perf_counter() - began) * 1000,
                       " (the server made first)" if made else "")

    def forget(self, cid: str) -> None:
        """The run of `cid` ends: its sockets close (before its namespace goes)."""
        with self._lock:
            if cid in self._served:
                self._remove(cid, keep_redirect=True)  # the namespace takes it along

    def _remove(self, cid: str, keep_redirect: bool) -> None:
        del self._served[cid]
        if self._server is not None:
            began = time.perf_counter()
            self._server.remove(cid, keep_redirect=keep_redirect)
            _log.debug("container %s: DNS let go in %.2f ms", cid[:12],
                       (time.perf_counter() - began) * 1000)

    def served(self) -> list[str]:
        """The containers served now."""
        with self._lock:
            return sorted(self._served)

    def reconcile(self, running: set[str]) -> None:
        """skiffd's start: every running container on a user network is served again (a
        failure is logged, as Docker's resolver setup failures are: the container runs on)."""
        if self.net.containers is None:
            return
        for cid in sorted(running):
            crow = self.net.containers.db.get(cid)
            if crow is not None:
                self.refresh(crow, quiet=True)

    def close(self) -> None:
        """skiffd stops: every socket closes and the server's thread ends."""
        with self._lock:
            self._closed = True
            self._served.clear()
            if self._server is not None:
                self._server.close()
                self._server = None


def parse_upstreams(values: Sequence[str]) -> list[Upstream] | None:
    """skiffd's ``--dns-upstream`` values (each ``ADDR``, ``ADDR:PORT`` or
    ``[ADDR6]:PORT``): None when there are none (the host's resolvers), an empty list for
    ``none``; a bad one raises InvalidArgument."""
    from skiff.net.dns_upstream import parse_upstream

    if not values:
        return None
    if list(values) == [NO_UPSTREAM]:
        return []
    return [parse_upstream(v) for v in values]
