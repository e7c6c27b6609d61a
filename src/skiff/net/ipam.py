"""IPv4 address management for bridge networks, as libnetwork's default IPAM does it.

Pure logic, no kernel: `parse_pool` reads a network's ``--subnet``, ``--gateway`` and
``--ip-range`` with Docker's own messages (``invalid CIDR address: …``, ``no matching subnet
for gateway …``) and picks the gateway (the first host address) when none is given;
`check_overlap` refuses a subnet that overlaps another network's (``Pool overlaps with
other one on this address space``); `default_subnet` finds a subnet for a network created
without ``--subnet`` in Docker's local default pools (172.17.0.0/16 … 172.31.0.0/16, then
192.168.0.0/20 in /20 steps), skipping those that overlap a network or a route of the host;
`allocate` gives the lowest free address in the pool's range — never the network, broadcast
or gateway address — or checks a requested one (``--ip``). Which addresses are taken is the
caller's (the engine keeps them in its database, which refuses a second holder); this module
only chooses. `mac_address` is Docker's ``02:42:`` followed by the address's four bytes.
"""

from __future__ import annotations

import ipaddress

from skiff.errors import InvalidArgument, NetworkConflict
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Container, Iterable

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address
OVERLAP = "Pool overlaps with other one on this address space"
NO_ADDRESSES = "no available IPv4 addresses on this network's address pools"
NO_POOLS = ("could not find an available, non-overlapping IPv4 address pool among the "
            "defaults to assign to the network")


class Pool(Record):
    """One network's IPv4 pool: its subnet, gateway and the range addresses come from."""

    subnet: IPv4Network
    gateway: IPv4Address
    ip_range: IPv4Network

    def ipam_config(self) -> dict[str, str]:
        """Docker's IPAM.Config entry (IPRange only when it is narrower than the subnet)."""
        out = {"Subnet": str(self.subnet), "Gateway": str(self.gateway)}
        if self.ip_range != self.subnet:
            out["IPRange"] = str(self.ip_range)
        return out


def parse_cidr(text: str) -> IPv4Network:
    """A subnet as Go's net.ParseCIDR takes it; host bits are dropped, as libnetwork does."""
    if not isinstance(text, str) or "/" not in text:
        raise InvalidArgument(f"invalid CIDR address: {text}")
    try:
        return ipaddress.ip_network(text, strict=False)  # type: ignore[return-value]
    except ValueError:
        raise InvalidArgument(f"invalid CIDR address: {text}") from None


def parse_address(text: str, what: str = "address") -> IPv4Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text}") from None
    if not isinstance(address, IPv4Address):
        raise InvalidArgument(f"IPv6 is not supported by skiff yet: {text}")
    return address


def parse_pool(subnet: str, gateway: str = "", ip_range: str = "") -> Pool:
    """The pool of ``--subnet`` (with ``--gateway`` and ``--ip-range``, if given)."""
    net = parse_cidr(subnet)
    if not isinstance(net, IPv4Network):
        raise InvalidArgument(f"IPv6 subnets are not supported by skiff yet: {subnet}")
    if net.prefixlen > 30:
        raise InvalidArgument(f"invalid subnet {subnet}: a bridge network needs a prefix of "
                              f"at most /30")
    rng = net
    if ip_range:
        rng = parse_cidr(ip_range)  # type: ignore[assignment]
        if not isinstance(rng, IPv4Network) or not rng.subnet_of(net):
            raise InvalidArgument(f"no matching subnet for range {ip_range}")
    if gateway:
        gw = parse_address(gateway, "gateway address")
        if gw not in net:
            raise InvalidArgument(f"no matching subnet for gateway {gateway}")
        if gw in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"invalid gateway {gateway}: the network or broadcast "
                                  f"address of {net}")
    else:
        gw = net.network_address + 1
    return Pool(subnet=net, gateway=gw, ip_range=rng)


def check_overlap(subnet: IPv4Network, others: Iterable[IPv4Network]) -> None:
    """Docker's refusal of a subnet that overlaps another network's."""
    for other in others:
        if subnet.overlaps(other):
            raise NetworkConflict(OVERLAP)


def default_pools() -> Iterable[IPv4Network]:
    """Docker's local default address pools, in the order it tries them."""
    for second in range(17, 32):
        yield IPv4Network(f"172.{second}.0.0/16")
    for third in range(0, 256, 16):
        yield IPv4Network(f"192.168.{third}.0/20")


def default_subnet(taken: Iterable[IPv4Network], routes: Iterable[IPv4Network] = ()) -> IPv4Network:
    """The first default pool that overlaps neither a network's subnet (`taken`) nor a
    route of the host (`routes`: its connected networks; a default route is no reason)."""
    busy = [*taken, *(r for r in routes if r.prefixlen > 0)]
    for candidate in default_pools():
        if not any(candidate.overlaps(b) for b in busy):
            return candidate
    raise NetworkConflict(NO_POOLS)


def host_routes(text: str | None = None) -> list[IPv4Network]:
    """The IPv4 destinations of the host's routing table (/proc/net/route, or `text`)."""
    if text is None:
        try:
            with open("/proc/net/route") as f:
                text = f.read()
        except OSError:
            return []
    out: list[IPv4Network] = []
    for line in text.splitlines()[1:]:
        words = line.split()
        if len(words) < 8:
            continue
        try:  # little-endian hex, as the kernel prints it
            dest = IPv4Address(int.from_bytes(bytes.fromhex(words[1]), "little"))
            mask = IPv4Address(int.from_bytes(bytes.fromhex(words[7]), "little"))
            out.append(IPv4Network(f"{dest}/{mask}", strict=False))
        except ValueError:
            continue
    return out


def allocate(pool: Pool, taken: Container[str], requested: str = "") -> str:
    """The address to give: `requested` if it is in the subnet and free, or else the lowest
    free one in the pool's range (neither the network, broadcast nor gateway address).
    `taken`: the addresses other endpoints hold."""
    reserved = {pool.subnet.network_address, pool.subnet.broadcast_address, pool.gateway}
    if requested:
        address = parse_address(requested, "IPv4 address")
        if address not in pool.subnet:
            raise InvalidArgument(f"Invalid address {requested}: It does not belong to any "
                                  f"of this network's subnets")
        if address in reserved or str(address) in taken:
            raise NetworkConflict(f"Address already in use: {requested}")
        return str(address)
    # the whole range: only the subnet's own network and broadcast addresses are kept out,
    # as libnetwork does for a sub-range
    for address in pool.ip_range:
        if address not in reserved and str(address) not in taken:
            return str(address)
    raise NetworkConflict(NO_ADDRESSES)


def mac_address(address: str) -> str:
    """Docker's generated MAC: 02:42 and the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in IPv4Address(address).packed)


def check_mac(text: str) -> str:
    """A ``--mac-address`` as Go's net.ParseMAC takes a 48-bit one, lower-cased."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise InvalidArgument(f"invalid MAC address: {text}")
    try:
        values = [int(p, 16) for p in parts]
    except ValueError:
        raise InvalidArgument(f"invalid MAC address: {text}") from None
    if values[0] & 1:
        raise InvalidArgument(f"invalid MAC address: {text} (a multicast address)")
    return ":".join(f"{v:02x}" for v in values)
