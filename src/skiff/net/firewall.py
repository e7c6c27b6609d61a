"""skiff's packet filter: outbound NAT, isolation of bridges, published ports — one nftables table.

Every rule skiff needs lives in ONE nftables table of its own (``ip <table>``, default
``skiff``; each skiffd and each test names its own, `table_for_run`). `apply` renders the
whole table from the engine's current bridges and published ports and hands it to
``nft -f -`` as one batch that creates, deletes and re-creates the table: the kernel runs a
batch as one transaction, so the old rules stay in force until the new ones replace them
all, a refused batch changes nothing, and applying the same state twice is a no-op in
effect (idempotent). `remove` deletes the table whole. Why nftables and not iptables: a
table of our own that no one else writes to (iptables has fixed shared tables and chains
that dockerd, podman and firewalld all edit in place, where ordering and clean-up are
everyone's problem), atomic replace of the whole ruleset instead of rule-by-rule edits
that leave a half-state on failure, clean removal (one ``delete table``), and no
interference with the ``ip filter``/``ip nat`` tables that other engines make through
iptables-nft. One limit of that separation: netfilter runs every base chain registered at
a hook, and a packet must get past all of them — an ``accept`` in our forward chain does
not overrule a ``drop`` elsewhere. dockerd sets its ``filter FORWARD`` policy to DROP, so
with dockerd on the same host, traffic of skiff's bridges is dropped by Docker's chain
unless Docker's own ``DOCKER-USER`` chain accepts it. skiff does not edit another engine's
tables; `foreign_forward_drops` names such chains so that the engine can warn with the fix
(e.g. ``iptables -I DOCKER-USER -i <bridge> -j ACCEPT`` and the same with ``-o``).

What the table holds (IPv4; IPv6 published ports are left to the userland proxy):

- masquerade of each non-internal subnet leaving through any interface but its bridge;
- an internal bridge forwards nothing in or out (its containers reach only each other);
- no forwarding from one skiff bridge to another, except for traffic to a published port
  (DNAT'd: reachable from anywhere, as in Docker);
- no new connection into a bridge from outside it but to a published port: a neighbour
  with a route to a container's subnet cannot reach its unpublished ports (Docker 28's
  direct-access filtering); replies to what the containers opened pass;
- published ports DNAT'd in prerouting (from other hosts, namespaces and containers:
  hairpin included) and in output (the host's own connections, 127.0.0.1 included, as
  dockerd with ``userland-proxy=false``): that needs ``route_localnet=1`` on the target
  bridge (set here) and masquerade of 127.0.0.0/8 sources leaving through it, and a
  container's connection to its own published port (hairpin) is masqueraded too, so that
  the reply comes back through the host's conntrack instead of being answered locally.
  With br_netfilter loaded (bridge-nf-call-iptables=1, as here) the DNAT of a hairpin
  connection happens at the bridge, which then sends the frame back out of the port it
  came in by: the container's bridge port needs hairpin mode (``ip link set <port> type
  bridge_slave hairpin on``, as libnetwork sets it without the userland proxy): that is
  the veth's maker's job (links), not this table's.

`apply` also turns on ``net.ipv4.ip_forward`` when a bridge needs it, as dockerd does.

Speed: a batch goes to the kernel through libnftables in this process (ctypes; the ``nft``
command only where the library is missing), which saves a fork and exec of ``nft`` (about
7 ms here) per change. Replacing the whole table re-registers its base chains, and any
deletion — of a rule, an element, a table — waits in the kernel for an RCU grace period
(10-20 ms here); adding rules does not (under a millisecond). So `append_ports` adds a
container's new ports to the table in force without replacing it, when the result is the
very table `render` would make; their removal at the end of a run is a replace.
"""

from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import json
import re
import subprocess
import threading
from dataclasses import dataclass
from typing import Iterable, Sequence

from skiff.errors import FirewallError, InvalidArgument

DEFAULT_TABLE = "skiff"
PROTOCOLS = ("tcp", "udp", "sctp")
# nft's identifier grammar, kept strict; interface names as the kernel's dev_valid_name,
# without the characters nft's quoting could not carry
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}\Z")
_IFNAME = re.compile(r"[A-Za-z0-9_.+@-]{1,15}\Z")


@dataclass(frozen=True)
class BridgeRule:
    """One skiff bridge: its Linux interface name, its subnet (CIDR), whether it is internal
    (no forwarding in or out) and whether its outbound traffic is masqueraded."""

    bridge: str
    subnet: str
    internal: bool = False
    masquerade: bool = True


@dataclass(frozen=True)
class PortRule:
    """One published port: `host_ip` "" or "0.0.0.0" for every local address."""

    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    bridge: str


def table_for_run(skiff_run: str) -> str:
    """The table name of the skiffd whose SKIFF_RUN is `skiff_run`: ``skiff`` for the
    default /run/skiff, else a name of its own so that engines on one host never share one."""
    if skiff_run.rstrip("/") in ("", "/run/skiff"):
        return DEFAULT_TABLE
    return "skiff_" + hashlib.sha256(skiff_run.encode()).hexdigest()[:12]


def _check_table(table: str) -> None:
    if not _TABLE_NAME.match(table):
        raise InvalidArgument(f"invalid firewall table name {table!r}: letters, digits, _ and -, "
                              "starting with a letter, at most 63")


def _check_ifname(name: str) -> None:
    if not _IFNAME.match(name):
        raise InvalidArgument(f"invalid interface name {name!r}")


def _check_bridges(bridges: Sequence[BridgeRule]) -> None:
    seen: set[str] = set()
    for b in bridges:
        _check_ifname(b.bridge)
        if b.bridge in seen:
            raise InvalidArgument(f"bridge {b.bridge} given twice")
        seen.add(b.bridge)
        try:
            net = ipaddress.ip_network(b.subnet, strict=False)
        except ValueError as e:
            raise InvalidArgument(f"invalid subnet {b.subnet!r} of bridge {b.bridge}: {e}") from None
        if net.version != 4:
            raise InvalidArgument(f"subnet {b.subnet} of bridge {b.bridge}: only IPv4 is filtered")


def _check_ports(ports: Sequence[PortRule], bridges: dict[str, BridgeRule]) -> None:
    taken: dict[tuple[str, int], set[str]] = {}
    for p in ports:
        where = f"{p.host_ip or '0.0.0.0'}:{p.host_port}/{p.proto}"
        if p.proto not in PROTOCOLS:
            raise InvalidArgument(f"invalid proto: {p.proto}")
        for port in (p.host_port, p.container_port):
            if not 1 <= port <= 65535:
                raise InvalidArgument(f"invalid port {port} in {where}")
        for ip in (p.host_ip or "0.0.0.0", p.container_ip):
            try:
                if ipaddress.ip_address(ip).version != 4:
                    raise InvalidArgument(f"{where}: only IPv4 is DNAT'd (IPv6 goes to the proxy)")
            except ValueError:
                raise InvalidArgument(f"invalid IP address {ip!r} in {where}") from None
        bridge = bridges.get(p.bridge)
        if bridge is None:
            raise InvalidArgument(f"{where}: bridge {p.bridge} is not among the bridges")
        if bridge.internal:
            raise InvalidArgument(f"{where}: bridge {p.bridge} is internal, its ports are not published")
        ips = taken.setdefault((p.proto, p.host_port), set())
        host_ip = "0.0.0.0" if p.host_ip in ("", "0.0.0.0") else p.host_ip
        if host_ip in ips or (ips and "0.0.0.0" in (ips | {host_ip})):
            raise InvalidArgument(f"Bind for {where} given twice")
        ips.add(host_ip)


def _names(names: Iterable[str]) -> str:
    return "{ " + ", ".join(f'"{n}"' for n in names) + " }"


def render(table: str, bridges: Sequence[BridgeRule], ports: Sequence[PortRule]) -> str:
    """The nft batch that replaces `table` with the rules for `bridges` and `ports` (checked)."""
    _check_table(table)
    _check_bridges(bridges)
    by_name = {b.bridge: b for b in bridges}
    _check_ports(ports, by_name)
    forward: list[str] = []
    post: list[str] = []
    for b in bridges:
        net = str(ipaddress.ip_network(b.subnet, strict=False))
        if b.internal:
            forward.append(f'iifname "{b.bridge}" oifname != "{b.bridge}" drop')
            forward.append(f'oifname "{b.bridge}" iifname != "{b.bridge}" drop')
        elif b.masquerade:
            post.append(f'ip saddr {net} oifname != "{b.bridge}" masquerade')
    # replies to what the containers opened, and published ports (from everywhere, other
    # bridges included) pass; then nothing new enters a bridge from outside it
    forward.append("ct state established,related accept")
    forward.append("ct status dnat accept")
    for b in bridges:
        others = [o.bridge for o in bridges if o.bridge != b.bridge]
        if others:
            forward.append(f'iifname "{b.bridge}" oifname {_names(others)} drop')
    for b in bridges:
        if not b.internal:
            forward.append(f'oifname "{b.bridge}" iifname != "{b.bridge}" drop')
    for bridge in dict.fromkeys(p.bridge for p in ports):
        post += _port_masquerade(by_name[bridge])
    published = [_dnat(p) for p in ports]

    def chain(name: str, hook: str | None, rules: list[str]) -> str:
        head = f"\t\ttype {hook}; policy accept;\n" if hook else ""
        return f"\tchain {name} {{\n{head}" + "".join(f"\t\t{r}\n" for r in rules) + "\t}\n"

    body = (chain("forward", "filter hook forward priority filter", forward)
            + chain("prerouting", "nat hook prerouting priority dstnat",
                    ["fib daddr type local jump published"])
            + chain("output", "nat hook output priority -100",
                    ["fib daddr type local jump published"])
            + chain("published", None, published)
            + chain("postrouting", "nat hook postrouting priority srcnat", post))
    return f"table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n{body}}}\n"


def _port_masquerade(bridge: BridgeRule) -> list[str]:
    """What a bridge with published ports needs in postrouting: the host's own 127.0.0.1
    connections, and hairpin ones, must both come back through the host's conntrack."""
    net = str(ipaddress.ip_network(bridge.subnet, strict=False))
    return [f'oifname "{bridge.bridge}" ip saddr 127.0.0.0/8 masquerade',
            f'oifname "{bridge.bridge}" ct status dnat ip saddr {net} masquerade']


def _dnat(p: PortRule) -> str:
    match = "" if p.host_ip in ("", "0.0.0.0") else f"ip daddr {p.host_ip} "
    return (f"{match}meta l4proto {p.proto} th dport {p.host_port} "
            f"dnat to {p.container_ip}:{p.container_port}")


class _Libnftables:
    """libnftables.so.1 through ctypes: a batch run in this process, its errors as text."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libnftables.so.1")
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error", "nft_ctx_free"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        for name in ("nft_ctx_get_error_buffer", "nft_ctx_get_output_buffer"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = ctypes.c_char_p
        self.lib = lib
        self.lock = threading.Lock()  # one context at a time: its buffers are not shared

    def run(self, batch: str) -> str:
        lib = self.lib
        with self.lock:
            ctx = lib.nft_ctx_new(0)
            if not ctx:
                raise FirewallError("libnftables: no context")
            try:
                lib.nft_ctx_buffer_output(ctx)
                lib.nft_ctx_buffer_error(ctx)
                if lib.nft_run_cmd_from_buffer(ctx, batch.encode()) != 0:
                    error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
                    raise FirewallError(f"nft -f -: {error.strip()}")
                return (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
            finally:
                lib.nft_ctx_free(ctx)


_LIB: list[_Libnftables | None] = []


def run_batch(batch: str) -> str:
    """Run an nft batch (what it prints, a ``list`` command's text, is returned): in this
    process when libnftables is there, else with ``nft``; in the calling thread's network
    namespace either way (the library's netlink socket is made per batch, by this thread,
    and a child inherits its thread's namespace), so a thread that joined a container's
    namespace (``kernel.netns_thread.in_netns``) reads and writes that namespace's
    ruleset."""
    if not _LIB:
        try:
            _LIB.append(_Libnftables())
        except OSError:
            _LIB.append(None)
    lib = _LIB[0]
    if lib is None:
        return _nft(batch, "-f", "-")
    return lib.run(batch)


def _nft(batch: str, *args: str) -> str:
    try:
        done = subprocess.run(["nft", *args], input=batch, capture_output=True, text=True)
    except FileNotFoundError:
        raise FirewallError("nft not found: skiff's firewall needs the nftables package") from None
    if done.returncode != 0:
        raise FirewallError(f"nft {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise FirewallError(f"write {value} to {path}: {e.strerror}") from None


def apply(table: str, bridges: Sequence[BridgeRule], ports: Sequence[PortRule],
          forwarding: bool = True) -> None:
    """Replace `table` with the rules for `bridges` and `ports`, atomically (idempotent).

    The bridges must exist (route_localnet is set on those with published ports). With
    `forwarding`, ip_forward is turned on when a bridge is not internal (dockerd's
    ``--ip-forward``). A bad argument raises before anything is touched; a batch nft
    refuses leaves the table as it was (only the sysctls above may have been set)."""
    batch = render(table, bridges, ports)
    for bridge in dict.fromkeys(p.bridge for p in ports):
        _write_sysctl(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet", "1")
    if forwarding and any(not b.internal for b in bridges):
        _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    run_batch(batch)


def append_ports(table: str, bridges: Sequence[BridgeRule], applied: Sequence[PortRule],
                 ports: Sequence[PortRule]) -> bool:
    """Bring the table in force — `apply`'d with `bridges` and `applied` — to `bridges` and
    `ports` by adding rules only, when `ports` is `applied` with more at its end (then the
    table is the one `render` makes of them). False, with nothing changed, otherwise: the
    caller applies the whole table. Checked as `render` checks."""
    if list(ports[:len(applied)]) != list(applied) or len(ports) == len(applied):
        return False
    render(table, bridges, ports)  # every check, before anything is touched
    by_name = {b.bridge: b for b in bridges}
    had = set(p.bridge for p in applied)
    extra = ports[len(applied):]
    lines = []
    for bridge in dict.fromkeys(p.bridge for p in extra):
        if bridge not in had:
            _write_sysctl(f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet", "1")
            lines += [f"add rule ip {table} postrouting {r}"
                      for r in _port_masquerade(by_name[bridge])]
    lines += [f"add rule ip {table} published {_dnat(p)}" for p in extra]
    run_batch("".join(line + "\n" for line in lines))
    return True


def remove(table: str) -> None:
    """Delete `table` whole (nothing happens when it is not there)."""
    _check_table(table)
    run_batch(f"table ip {table} {{}}\ndelete table ip {table}\n")


def exists(table: str) -> bool:
    """Whether `table` is in the kernel's ruleset now."""
    _check_table(table)
    return any(t.get("table", {}).get("name") == table and t["table"].get("family") == "ip"
               for t in json.loads(_nft("", "-j", "list", "tables"))["nftables"])


def foreign_forward_drops(table: str) -> list[str]:
    """The forward chains of other tables whose policy is drop (``family table chain``):
    they drop what our table accepts, see the module's docstring."""
    found = []
    for item in json.loads(_nft("", "-j", "list", "chains"))["nftables"]:
        c = item.get("chain")
        if c and c.get("hook") == "forward" and c.get("policy") == "drop" and not (
                c["table"] == table and c["family"] == "ip"):
            found.append(f"{c['family']} {c['table']} {c['name']}")
    return found
