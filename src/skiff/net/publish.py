"""Every published port of one engine, kept together: held, proxied, and as firewall rules.

The engine publishes a container's ports with one call when its network is up and
unpublishes them when it stops: `PortPublisher.publish` reserves each binding's host port
(skiff.net.ports), has the userland proxy serve it (skiff.net.proxy; SCTP is left to the
kernel's DNAT alone, as it has no proxy here), and remembers the IPv4 ones as
`PortRule`s; the engine then hands `rules()` with its bridges to
``skiff.net.firewall.apply``. A publish is all or nothing: when one binding cannot be had
(Docker's ``port is already allocated``), what the call already took is given back.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from typing import Sequence

from skiff.errors import InvalidArgument
from skiff.net.firewall import PortRule
from skiff.net.ports import PortAllocator, PortBinding, Published, Reservation
from skiff.net.proxy import Forward, ProxyLoop


@dataclass(frozen=True)
class _Held:
    published: Published
    container_ip: str
    bridge: str
    reservation: Reservation
    forward: Forward | None


class PortPublisher:
    """The published ports of every container of an engine, by owner (a container ID)."""

    def __init__(self, allocator: PortAllocator | None = None, proxy: ProxyLoop | None = None) -> None:
        self.allocator = allocator or PortAllocator()
        self.proxy = proxy or ProxyLoop()
        self._held: dict[str, list[_Held]] = {}
        self._lock = threading.Lock()

    def publish(self, owner: str, bindings: Sequence[PortBinding], container_ip: str,
                bridge: str) -> list[Published]:
        """Hold and serve `bindings` of `owner`'s container at `container_ip` on `bridge`;
        what each got (an ephemeral host port filled in). PortAllocated: nothing held."""
        try:
            if ipaddress.ip_address(container_ip).version != 4:
                raise ValueError
        except ValueError:
            raise InvalidArgument(f"invalid container IPv4 address {container_ip!r}") from None
        with self._lock:
            if owner in self._held:
                raise InvalidArgument(f"the ports of {owner} are published already")
            self._held[owner] = []
        taken: list[_Held] = []
        try:
            for b in bindings:
                r = self.allocator.reserve(b.proto, b.host_ip, b.host_port)
                fwd = None
                try:
                    if b.proto in ("tcp", "udp"):
                        fwd = self.proxy.add(r, container_ip, b.container_port)
                except BaseException:
                    r.close()
                    raise
                taken.append(_Held(Published(b.proto, b.container_port, b.host_ip, r.host_port),
                                   container_ip, bridge, r, fwd))
        except BaseException:
            self._release(taken)
            with self._lock:
                del self._held[owner]
            raise
        with self._lock:
            self._held[owner] = taken
        return [h.published for h in taken]

    def unpublish(self, owner: str) -> None:
        """Free `owner`'s ports (nothing happens for an owner with none)."""
        with self._lock:
            held = self._held.pop(owner, [])
        self._release(held)

    def _release(self, held: list[_Held]) -> None:
        for h in held:
            if h.forward is not None:
                h.forward.close()  # closes the reservation too
            else:
                h.reservation.close()

    def published(self, owner: str) -> list[Published]:
        with self._lock:
            return [h.published for h in self._held.get(owner, [])]

    def rules(self) -> list[PortRule]:
        """The DNAT rules of every IPv4 (or unspecified) host address, for the firewall."""
        with self._lock:
            everything = [h for held in self._held.values() for h in held]
        return [PortRule(h.published.proto, h.published.host_ip, h.published.host_port,
                         h.container_ip, h.published.container_port, h.bridge)
                for h in everything if ":" not in h.published.host_ip]

    def close(self) -> None:
        """Every port freed and the proxy's thread ended."""
        with self._lock:
            owners = list(self._held)
        for owner in owners:
            self.unpublish(owner)
        self.proxy.close()
