"""Bridge networks for real, through skiffd and skiff's own CLI: two containers on a user
network ping each other, the default bridge, an internal network without a default route,
connect and disconnect of a running container (eth1 comes and goes), two networks on two
bridges, twenty containers with twenty addresses, ``container:<id>``, a skiffd restart that
keeps networks and allocations, Docker's refusals with nothing made, and nothing left on the
host afterwards (no bridge, no veth). Traffic stays inside the namespaces the tests make.
Each test's subnets come from `subnet_for`, out of the host's routes and other runs'."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures_daemon import (Skiffd, module_daemon, remove_all, remove_networks, run_client,
                             start_skiffd, stop_skiffd, subnet_for)

SKIFF = str(Path(sys.executable).parent / "skiff")
pytestmark = [pytest.mark.root, pytest.mark.netns]


def skiff(d: Skiffd, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_client(d, [SKIFF, *args], check=check)


def host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line}


def links_left(names: set[str], patience: float = 10.0) -> set[str]:
    """Which of `names` are still links of the host once the veths of ended runs are
    deleted (skiffd unplugs them at once and deletes them on a thread of its own)."""
    import time

    deadline = time.monotonic() + patience
    while names & host_links() and time.monotonic() < deadline:
        time.sleep(0.05)
    return names & host_links()


def links_on(bridge: str) -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True,
                         text=True).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line}


@pytest.fixture(scope="module")
def module_skiffd(tmp_root: Path) -> Iterator[Skiffd]:
    with module_daemon(tmp_root, "networks") as d:
        try:
            yield d
        finally:
            remove_all(d)
            remove_networks(d)
    assert d.env["SKIFF_BRIDGE"] not in host_links()  # the default bridge went with skiffd


MADE: list[str] = []  # the bridges of the networks the running test made
SKIFF_VETH = re.compile(r"veth[0-9a-f]{11}")  # a skiff endpoint's host end


def ours(before: set[str]) -> set[str]:
    """The links of the host that this test's engine made since `before`: its networks'
    bridges and skiff's veths (other programs on the machine make links of their own)."""
    return {n for n in host_links() - before if n in MADE or SKIFF_VETH.fullmatch(n)}


@pytest.fixture
def daemon(module_skiffd: Skiffd) -> Iterator[Skiffd]:
    before = host_links()
    MADE.clear()
    yield module_skiffd
    remove_all(module_skiffd)
    remove_networks(module_skiffd)
    left = links_left(ours(before))
    assert not left, f"links left behind: {left}"  # (the default bridge goes with skiffd)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def network(d: Skiffd, *flags: str, name: str | None = None) -> tuple[str, str]:
    """A new network (with a subnet of its own unless `flags` give one): (name, ID)."""
    name = name or unique("sknet")
    if not any(f.startswith("--subnet") for f in flags):
        flags = (*flags, "--subnet", subnet_for(name))
    nid = skiff(d, "network", "create", *flags, name).stdout.strip()
    assert len(nid) == 64
    MADE.append(f"br-{nid[:12]}")
    return name, nid


def subnet_of(d: Skiffd, name: str) -> str:
    return str(json.loads(skiff(d, "network", "inspect", name).stdout)[0]["IPAM"]["Config"][0]
               ["Subnet"])


def inspect(d: Skiffd, ref: str) -> dict:
    return json.loads(skiff(d, "inspect", ref).stdout)[0]


def ip_of(d: Skiffd, ref: str, net: str) -> str:
    return str(inspect(d, ref)["NetworkSettings"]["Networks"][net]["IPAddress"])


def sh(d: Skiffd, ref: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return skiff(d, "exec", ref, "sh", "-c", script, check=check)


def test_two_containers_ping_each_other_on_a_user_network(daemon: Skiffd) -> None:
    name, nid = network(daemon, "--label", "purpose=test")
    subnet = json.loads(skiff(daemon, "network", "inspect", name).stdout)[0]["IPAM"]["Config"][0]
    a = skiff(daemon, "run", "-d", "--name", unique("a"), "--network", name, "busybox",
              "sleep", "60").stdout.strip()
    b = skiff(daemon, "run", "-d", "--network", name, "--network-alias", "bee",
              "--hostname", "bhost", "busybox", "sleep", "60").stdout.strip()
    ip_a, ip_b = ip_of(daemon, a, name), ip_of(daemon, b, name)
    gateway = subnet["Gateway"]
    assert ip_a != ip_b and gateway not in (ip_a, ip_b)
    sh(daemon, a, f"ping -c1 -W2 {ip_b}")
    sh(daemon, b, f"ping -c1 -W2 {ip_a}")
    settings = inspect(daemon, b)["NetworkSettings"]
    ep = settings["Networks"][name]
    assert ep["NetworkID"] == nid and ep["Gateway"] == gateway and ep["IPPrefixLen"] == 24
    assert ep["MacAddress"] == "02:42:" + ":".join(f"{int(x):02x}" for x in ip_b.split("."))
    assert "bee" in ep["Aliases"] and b[:12] in ep["Aliases"] and len(ep["EndpointID"]) == 64
    assert settings["IPAddress"] == ""  # the top-level fields are the default bridge's
    inside = sh(daemon, b, "cat /etc/hosts /etc/resolv.conf; ip route").stdout
    assert f"{ip_b}\tbhost" in inside
    assert "nameserver 127.0.0.11" in inside and f"default via {gateway} dev eth0" in inside
    shown = json.loads(skiff(daemon, "network", "inspect", name).stdout)[0]
    assert shown["Containers"][a]["IPv4Address"] == f"{ip_a}/24"
    assert shown["Labels"] == {"purpose": "test"}
    bridge = f"br-{nid[:12]}"
    veths = links_on(bridge)
    assert len(veths) == 2
    assert not links_on(bridge) - veths  # nothing else on it
    skiff(daemon, "rm", "-f", a, b)
    assert not links_on(bridge)  # unplugged at once
    assert not links_left(veths)  # and deleted
    skiff(daemon, "network", "rm", name)
    assert bridge not in host_links()


def test_the_default_bridge(daemon: Skiffd) -> None:
    bridge, subnet = daemon.env["SKIFF_BRIDGE"], daemon.env["SKIFF_BRIDGE_SUBNET"]
    prefix = subnet.rsplit(".", 1)[0]
    out = skiff(daemon, "run", "--rm", "busybox", "sh", "-c",
                "ip -4 addr show eth0; ip route; cat /etc/resolv.conf; "
                f"ping -c1 -W2 {prefix}.1").stdout
    assert f"inet {prefix}.2/24" in out or f"inet {prefix}." in out
    assert f"default via {prefix}.1 dev eth0" in out
    assert "127.0.0.11" not in out  # the host's resolvers, as on Docker's default bridge
    c = skiff(daemon, "run", "-d", "busybox", "sleep", "60").stdout.strip()
    doc = inspect(daemon, c)
    settings = doc["NetworkSettings"]
    assert doc["HostConfig"]["NetworkMode"] == "default"
    assert settings["IPAddress"].startswith(prefix + ".")
    assert settings["Gateway"] == f"{prefix}.1" and settings["IPPrefixLen"] == 24
    assert settings["Networks"]["bridge"]["IPAddress"] == settings["IPAddress"]
    assert settings["Networks"]["bridge"]["Aliases"] is None
    shown = json.loads(skiff(daemon, "network", "inspect", "bridge").stdout)[0]
    assert shown["Options"]["com.docker.network.bridge.name"] == bridge
    assert shown["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": f"{prefix}.1"}]
    assert c in shown["Containers"]
    fmt = skiff(daemon, "ps", "--format", "{{.Names}} {{.Networks}}").stdout
    assert "bridge" in fmt


def test_an_internal_network_has_no_default_route(daemon: Skiffd) -> None:
    name, _ = network(daemon, "--internal")
    out = skiff(daemon, "run", "--rm", "--network", name, "busybox", "ip", "route").stdout
    assert "default" not in out and "dev eth0" in out
    assert json.loads(skiff(daemon, "network", "inspect", name).stdout)[0]["Internal"] is True


def test_connect_a_running_container_then_disconnect(daemon: Skiffd) -> None:
    # `one` internal: the only way to the peer is `two` (between bridges the host routes,
    # until the firewall's isolation rules)
    one, _ = network(daemon, "--internal")
    two, _ = network(daemon)
    c = skiff(daemon, "run", "-d", "--network", one, "busybox", "sleep", "60").stdout.strip()
    peer = skiff(daemon, "run", "-d", "--network", two, "busybox", "sleep", "60").stdout.strip()
    peer_ip = ip_of(daemon, peer, two)
    assert "eth1" not in sh(daemon, c, "ip link").stdout
    skiff(daemon, "network", "connect", "--alias", "late", two, c)
    links = sh(daemon, c, "ip -4 addr show eth1").stdout
    mine = ip_of(daemon, c, two)
    assert f"inet {mine}/24" in links
    sh(daemon, c, f"ping -c1 -W2 {peer_ip}")
    assert f"{mine}\t" in sh(daemon, c, "cat /etc/hosts").stdout  # the hosts file follows
    assert "late" in inspect(daemon, c)["NetworkSettings"]["Networks"][two]["Aliases"]
    again = skiff(daemon, "network", "connect", two, c, check=False)
    assert again.returncode == 1 and "already exists in network" in again.stderr
    skiff(daemon, "network", "disconnect", two, c)
    assert "eth1" not in sh(daemon, c, "ip link").stdout
    assert two not in inspect(daemon, c)["NetworkSettings"]["Networks"]
    cut = sh(daemon, c, f"ping -c1 -W1 {peer_ip}", check=False)
    assert cut.returncode != 0
    skiff(daemon, "network", "connect", two, c)  # and connect restores it
    sh(daemon, c, f"ping -c1 -W2 {peer_ip}")


def test_the_default_route_moves_when_its_network_goes(daemon: Skiffd) -> None:
    one, _ = network(daemon)
    two, _ = network(daemon)
    c = skiff(daemon, "run", "-d", "--network", one, "busybox", "sleep", "60").stdout.strip()
    skiff(daemon, "network", "connect", two, c)
    gw_two = inspect(daemon, c)["NetworkSettings"]["Networks"][two]["Gateway"]
    assert "default via" in sh(daemon, c, "ip route show dev eth0").stdout
    skiff(daemon, "network", "disconnect", one, c)
    assert f"default via {gw_two} dev eth1" in sh(daemon, c, "ip route").stdout


def test_a_stopped_container_connected_gets_the_network_at_start(daemon: Skiffd) -> None:
    one, _ = network(daemon)
    two, _ = network(daemon)
    c = skiff(daemon, "create", "--network", one, "busybox", "sleep", "60").stdout.strip()
    skiff(daemon, "network", "connect", "--ip", subnet_of(daemon, two).rsplit(".", 1)[0] + ".77",
          two, c)
    assert ip_of(daemon, c, two) == ""  # recorded, applied at start
    skiff(daemon, "start", c)
    assert ip_of(daemon, c, two).endswith(".77")
    out = sh(daemon, c, "ip -4 addr").stdout
    assert "eth0" in out and "eth1" in out


def test_two_networks_are_two_bridges(daemon: Skiffd) -> None:
    one, id_one = network(daemon)
    two, id_two = network(daemon, "--internal")
    a = skiff(daemon, "run", "-d", "--network", one, "busybox", "sleep", "60").stdout.strip()
    b = skiff(daemon, "run", "-d", "--network", two, "busybox", "sleep", "60").stdout.strip()
    on_one, on_two = links_on(f"br-{id_one[:12]}"), links_on(f"br-{id_two[:12]}")
    assert len(on_one) == 1 and len(on_two) == 1 and not on_one & on_two
    ip_a, ip_b = ip_of(daemon, a, one), ip_of(daemon, b, two)
    # no shared link: b's address is not on a's segment (it would go by a's gateway)
    assert f"via {ip_a.rsplit('.', 1)[0]}.1" in sh(daemon, a, f"ip route get {ip_b}").stdout
    # and from the internal one there is no way out of its bridge at all
    assert sh(daemon, b, f"ping -c1 -W1 {ip_a}", check=False).returncode != 0


def test_twenty_containers_get_twenty_addresses(daemon: Skiffd) -> None:
    name, _ = network(daemon)
    ids = [skiff(daemon, "run", "-d", "--network", name, "busybox", "sleep", "60"
                 ).stdout.strip() for _ in range(20)]
    shown = json.loads(skiff(daemon, "network", "inspect", name).stdout)[0]["Containers"]
    addresses = [shown[c]["IPv4Address"] for c in ids]
    assert len(set(addresses)) == 20
    macs = {shown[c]["MacAddress"] for c in ids}
    assert len(macs) == 20


def test_container_network_mode_joins_the_other(daemon: Skiffd) -> None:
    name, _ = network(daemon)
    a = skiff(daemon, "run", "-d", "--network", name, "busybox", "sleep", "60").stdout.strip()
    ip_a = ip_of(daemon, a, name)
    out = skiff(daemon, "run", "--rm", "--network", f"container:{a}", "busybox",
                "ip", "-4", "addr").stdout
    assert f"inet {ip_a}/24" in out
    stopped = skiff(daemon, "create", "busybox", "true").stdout.strip()
    refused = skiff(daemon, "run", "--rm", "--network", f"container:{stopped}", "busybox",
                    "true", check=False)
    assert refused.returncode != 0 and "non running container" in refused.stderr


def test_ls_filters_and_prune(daemon: Skiffd) -> None:
    kept, _ = network(daemon, "--label", "keep=yes")
    gone, _ = network(daemon)
    used, used_id = network(daemon)
    c = skiff(daemon, "run", "-d", "--network", used, "busybox", "sleep", "60").stdout.strip()
    other = skiff(daemon, "run", "-d", "busybox", "sleep", "60").stdout.strip()
    skiff(daemon, "network", "connect", kept, other)
    assert skiff(daemon, "ps", "-q", "--no-trunc", "-f", f"network={used}").stdout.split() == [c]
    assert skiff(daemon, "ps", "-q", "--no-trunc", "-f", f"network={used_id}").stdout.split() \
        == [c]
    assert skiff(daemon, "ps", "-q", "--no-trunc", "-f", f"network={kept}").stdout.split() \
        == [other]  # connected later, found by it too
    assert skiff(daemon, "ps", "-q", "--no-trunc", "-f", "network=bridge").stdout.split() \
        == [other]
    skiff(daemon, "rm", "-f", other)
    names = skiff(daemon, "network", "ls", "--format", "{{.Name}}").stdout.split()
    assert {"bridge", "host", "none", kept, gone, used} <= set(names)
    custom = skiff(daemon, "network", "ls", "-f", "type=custom", "--format", "{{.Name}}")
    assert "bridge" not in custom.stdout.split() and kept in custom.stdout.split()
    labelled = skiff(daemon, "network", "ls", "-q", "--no-trunc", "-f", "label=keep=yes")
    assert len(labelled.stdout.split()) == 1 and len(labelled.stdout.split()[0]) == 64
    dangling = skiff(daemon, "network", "ls", "-f", "dangling=true", "--format", "{{.Name}}")
    assert used not in dangling.stdout.split() and gone in dangling.stdout.split()
    out = skiff(daemon, "network", "prune", "-f", "--filter", "label!=keep").stdout
    assert out.startswith("Deleted Networks:\n") and gone in out.split()
    assert kept not in out.split() and used not in out.split()
    left = skiff(daemon, "network", "ls", "--format", "{{.Name}}").stdout.split()
    assert gone not in left and kept in left and used in left


def test_bad_input_is_refused_and_nothing_is_made(daemon: Skiffd) -> None:
    name, _ = network(daemon)
    subnet = subnet_of(daemon, name)
    before = skiff(daemon, "network", "ls", "-q").stdout
    containers = skiff(daemon, "ps", "-aq").stdout
    cases = [
        (["network", "create", "--subnet", subnet, unique("dup")],
         "Pool overlaps with other one on this address space"),
        (["network", "create", "--subnet", "10.0.0/33", unique("bad")],
         "invalid CIDR address: 10.0.0/33"),
        (["network", "create", "--subnet", "10.77.0.0/16", "--gateway", "10.78.0.1",
          unique("gw")], "no matching subnet for gateway 10.78.0.1"),
        (["network", "create", name], f"network with name {name} already exists"),
        (["network", "rm", "bridge"], "bridge is a pre-defined network and cannot be removed"),
        (["run", "--rm", "--network", "nosuchnet", "busybox", "true"],
         "network nosuchnet not found"),
        (["run", "--rm", "--network", name, "--ip", "10.1.2.3", "busybox", "true"],
         "Invalid address 10.1.2.3: It does not belong to any of this network's subnets"),
        (["run", "--rm", "--ip", "172.29.0.9", "busybox", "true"],
         "user specified IP address is supported on user defined networks only"),
        (["network", "connect", name, "nosuchcontainer"], "No such container: nosuchcontainer"),
    ]
    for argv, message in cases:
        p = skiff(daemon, *argv, check=False)
        assert p.returncode != 0 and message in p.stderr, (argv, p.stderr)
    assert skiff(daemon, "network", "ls", "-q").stdout == before
    assert skiff(daemon, "ps", "-aq").stdout == containers
    c = skiff(daemon, "run", "-d", "--network", name, "busybox", "sleep", "60").stdout.strip()
    p = skiff(daemon, "network", "rm", name, check=False)
    assert p.returncode == 1 and "has active endpoints" in p.stderr
    status, body = daemon.json("DELETE", f"/networks/{name}")
    assert status == 403 and "has active endpoints" in body["message"]
    status, body = daemon.json("POST", "/networks/create",
                               {"Name": unique("x"), "IPAM": {"Config": [{"Subnet": "bad"}]}})
    assert status == 400 and body["message"] == "invalid CIDR address: bad"
    status, body = daemon.json("POST", "/networks/create", {"Name": unique("x"),
                                                            "IPAM": {"Config": [{"Subnet": subnet}]}})
    assert status == 409
    assert daemon.json("GET", "/networks/nosuch")[0] == 404
    taken = ip_of(daemon, c, name)
    p = skiff(daemon, "run", "--rm", "--network", name, "--ip", taken, "busybox", "true",
              check=False)
    assert p.returncode != 0 and "Address already in use" in p.stderr


def test_skiffd_restart_keeps_networks_and_allocations(tmp_root: Path) -> None:
    workdir = tmp_root / f"skiffd-netrestart-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    d = start_skiffd(workdir)
    before = host_links()
    try:
        name, nid = network(d)
        a = skiff(d, "run", "-d", "--network", name, "busybox", "sleep", "120").stdout.strip()
        ip_a = ip_of(d, a, name)
        stop_skiffd(d)
        # what a host reboot would do to the network under the running container
        subprocess.run(["ip", "link", "del", f"br-{nid[:12]}"], check=True)
        d = start_skiffd(workdir)
        assert ip_of(d, a, name) == ip_a  # still running, still its address
        assert len(links_on(f"br-{nid[:12]}")) == 1  # its bridge made again, its veth on it
        b = skiff(d, "run", "-d", "--network", name, "busybox", "sleep", "60").stdout.strip()
        assert ip_of(d, b, name) != ip_a  # which is not handed out again
        skiff(d, "exec", b, "ping", "-c1", "-W2", ip_a)
        assert json.loads(skiff(d, "network", "inspect", name).stdout)[0]["Id"] == nid
        skiff(d, "stop", "-t", "0", a)
        stop_skiffd(d)
        d = start_skiffd(workdir)
        c = skiff(d, "run", "-d", "--network", name, "busybox", "sleep", "60").stdout.strip()
        assert ip_of(d, c, name) == ip_a  # what a stopped one held went back to the pool
    finally:
        try:
            remove_all(d)
            remove_networks(d)
        finally:
            stop_skiffd(d, check=False)
            shutil.rmtree(workdir, ignore_errors=True)
    assert not links_left(ours(before) | ({d.env["SKIFF_BRIDGE"]} & host_links()))


def test_a_network_removed_under_a_stopped_container(daemon: Skiffd) -> None:
    name, _ = network(daemon)
    c = skiff(daemon, "create", "--network", name, "busybox", "true").stdout.strip()
    skiff(daemon, "network", "rm", name)  # no active endpoint: Docker lets it go
    p = skiff(daemon, "start", c, check=False)
    assert p.returncode == 1 and f"network {name} not found" in p.stderr
    assert inspect(daemon, c)["State"]["Status"] == "created"


def test_network_events(daemon: Skiffd) -> None:
    import time
    from urllib.parse import quote

    since = time.time() - 1
    name, nid = network(daemon)
    c = skiff(daemon, "run", "-d", "busybox", "sleep", "60").stdout.strip()
    skiff(daemon, "network", "connect", name, c)
    skiff(daemon, "network", "disconnect", name, c)
    skiff(daemon, "network", "rm", name)
    filters = quote(json.dumps({"type": ["network"]}))
    status, _, body = daemon.request(
        "GET", f"/events?since={since:.3f}&until={time.time() + 1:.3f}&filters={filters}")
    assert status == 200
    events = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    mine = [(e["Action"], e["Actor"]["Attributes"].get("container")) for e in events
            if e["Actor"]["ID"] == nid]
    assert mine == [("create", None), ("connect", c), ("disconnect", c), ("destroy", None)]
    bridge = daemon.json("GET", "/networks/bridge")[1]["Id"]
    assert ("connect", c) in [(e["Action"], e["Actor"]["Attributes"].get("container"))
                              for e in events if e["Actor"]["ID"] == bridge]  # at its start
    assert all(e["Type"] == "network" and e["Actor"]["Attributes"]["type"] == "bridge"
               for e in events)
