"""127.0.0.11:53 brought to the embedded DNS server's ports: a small nftables table inside a
container's own network namespace.

As Docker's embedded resolver does (libnetwork's ``setupNAT``, its ``docker-dns`` table),
the server listens on 127.0.0.11 at ports of the kernel's choosing, one for UDP and one for
TCP, and this table — ``ip skiff-dns``, in the container's namespace, never the host's —
DNATs what the container sends to 127.0.0.11:53 to them (``output`` hook, as a container's
queries are locally made packets) and SNATs their source port back to 53 (``postrouting``)
for a packet from the server's port that conntrack no longer ties to a query (conntrack
itself puts 53 back on the reply to a DNAT'd one). Port 53 is thus the container's own:
``nc -l -p 53``, dnsmasq or coredns on 0.0.0.0:53 bind, as under Docker, while names still
resolve through 127.0.0.11:53.

`apply`, `in_force` and `remove` act on the namespace of the calling thread (the DNS server
calls them from the short-lived thread that joined the container's namespace to make its
sockets, ``kernel.netns_thread.in_netns``): one thread, one setns, and libnftables in this
process (`firewall.run_batch`; the ``nft`` command where the library is missing), about
0.6 ms to make the table in a new namespace, 0.1 ms to find that it has none. `apply`
declares the table and its two base chains, flushes their rules and adds the new ones in
ONE batch: the kernel runs it as one transaction, so a namespace whose table points at
other ports is switched at once, with no moment where 127.0.0.11:53 goes nowhere, and a
refused batch leaves the old rules in force. Flushing rules and not re-creating the table
keeps the base chains registered; a switch still waits in the kernel for an RCU grace
period (10-20 ms here), as any deletion does. `in_force` tells the ports a table of ours
already names, so that a server coming back (skiffd restarted) can listen on them again
and touch no rule. The table goes with the namespace: nothing is left on the host.
"""

from __future__ import annotations

import ipaddress
import re

from skiff.errors import FirewallError, InvalidArgument
from skiff.net import firewall

TABLE = "skiff-dns"
DNS_PORT = 53
DNAT_PRIORITY = -100  # dstnat: nft names that priority in prerouting only, not in output


def _check(address: str, udp_port: int, tcp_port: int) -> None:
    try:
        if ipaddress.ip_address(address).version != 4:
            raise InvalidArgument(f"DNS redirect to {address}: only IPv4 is redirected")
    except ValueError:
        raise InvalidArgument(f"invalid DNS redirect address {address!r}") from None
    for port in (udp_port, tcp_port):
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidArgument(f"invalid DNS redirect port {port!r}")


def _chains(address: str, udp_port: int, tcp_port: int) -> dict[str, list[str]]:
    """Each base chain's type line and rules, as nft also lists them."""
    return {"output": [f"type nat hook output priority {DNAT_PRIORITY}; policy accept;",
                       f"ip daddr {address} udp dport {DNS_PORT} dnat to {address}:{udp_port}",
                       f"ip daddr {address} tcp dport {DNS_PORT} dnat to {address}:{tcp_port}"],
            "postrouting": ["type nat hook postrouting priority srcnat; policy accept;",
                            f"ip saddr {address} udp sport {udp_port} snat to :{DNS_PORT}",
                            f"ip saddr {address} tcp sport {tcp_port} snat to :{DNS_PORT}"]}


def render(address: str, udp_port: int, tcp_port: int) -> str:
    """The nft batch that makes (or switches) the table to DNAT `address`:53 to
    `address`:`udp_port` for UDP and `address`:`tcp_port` for TCP (checked)."""
    _check(address, udp_port, tcp_port)
    chains = "".join(f"\tchain {name} {{\n" + "".join(f"\t\t{line}\n" for line in lines)
                     + "\t}\n" for name, lines in _chains(address, udp_port, tcp_port).items())
    return (f"table ip {TABLE} {{}}\nflush table ip {TABLE}\n"
            f"table ip {TABLE} {{\n{chains}}}\n")


def apply(address: str, udp_port: int, tcp_port: int) -> None:
    """Redirect `address`:53 to the server's ports in the calling thread's namespace, in
    one transaction (see the module's text); bad arguments raise before anything is done."""
    firewall.run_batch(render(address, udp_port, tcp_port))


def in_force(address: str) -> tuple[int, int] | None:
    """The UDP and TCP ports the table in the calling thread's namespace DNATs `address`:53
    to, when it holds exactly the rules `apply` makes for them; None otherwise (no table —
    a new namespace's case, ~0.1 ms to learn —, or one not of our making)."""
    try:
        listing = firewall.run_batch(f"list table ip {TABLE}\n")
    except FirewallError:
        return None  # none there (and were it unreadable, `apply` would say why)
    found = {proto: int(port) for proto, port in re.findall(
        rf"ip daddr {re.escape(address)} (udp|tcp) dport {DNS_PORT} "
        rf"dnat to {re.escape(address)}:(\d+)", listing)}
    if set(found) != {"udp", "tcp"}:
        return None
    ports = found["udp"], found["tcp"]
    expected = [line for lines in _chains(address, *ports).values() for line in lines]
    listed = [line.strip() for line in listing.splitlines()
              if line.strip().startswith("type ") or " dnat to " in line or " snat to " in line]
    return ports if listed == expected else None


def remove() -> None:
    """Delete the table from the calling thread's namespace (nothing when it has none)."""
    firewall.run_batch(f"table ip {TABLE} {{}}\ndelete table ip {TABLE}\n")
