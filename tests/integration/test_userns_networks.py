"""Bridge networking of ``skiffd --userns-remap default`` containers, as dockerd gives them:
their network namespace is the runtime's (owned by the container's user namespace) and
skiffd wires it from the host when the runtime's hook asks. Two remapped containers on a
user network reach each other by name (the embedded DNS in their namespace), with their
address, route, MTU, /etc/hosts and resolv.conf as any container's; a published port
answers on 127.0.0.1; a running one is connected to a second network and disconnected; a
skiffd restart keeps them served (DNS, connect); and nothing is left behind — no netns bind
mount, no veth, no bridge. Traffic stays inside the namespaces the tests make. The test
removes the user it made (userdel takes its /etc/subuid and /etc/subgid lines)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures_daemon import (Skiffd, module_daemon, remove_all, remove_networks,
                             start_skiffd, stop_skiffd, subnet_for)
from test_networks import host_links, links_left, links_on, skiff, unique
from test_published_ports import FETCH, free_ports, http_get, httpd
from test_userns_remap import USER, _first_id, _user_exists

pytestmark = [pytest.mark.root, pytest.mark.netns, pytest.mark.slow]
REMAP = ("--userns-remap", "default", "--dns-upstream", "none")


@pytest.fixture(scope="module")
def remap_user() -> Iterator[None]:
    made_user = not _user_exists()
    try:
        yield
    finally:
        if made_user and _user_exists():
            subprocess.run(["userdel", USER], check=True)


@pytest.fixture(scope="module")
def module_skiffd(tmp_root: Path, remap_user: None) -> Iterator[Skiffd]:
    with module_daemon(tmp_root, "usernsnet", *REMAP) as d:
        try:
            yield d
        finally:
            emptied(d)
    assert d.env["SKIFF_BRIDGE"] not in host_links()


@pytest.fixture
def daemon(module_skiffd: Skiffd) -> Iterator[Skiffd]:
    before = host_links()
    yield module_skiffd
    emptied(module_skiffd, before)


def emptied(d: Skiffd, before: set[str] | None = None) -> None:
    """Every container and user network of `d` removed; with `before` (the host's links
    then), checked that none of their veths, bridges and netns mounts is left."""
    try:
        remove_all(d)
    finally:
        remove_networks(d)  # their bridges outlive skiffd: never left behind
    if before is not None:
        assert_nothing_left(d, before)


def assert_nothing_left(d: Skiffd, before: set[str]) -> None:
    left = links_left(host_links() - before)
    assert not {n for n in left if n.startswith(("veth", "br-"))}, f"links left: {left}"
    assert not netns_mounts(d), "a container's netns is still mounted"
    folder = d.run / "netns"
    assert not (folder.is_dir() and os.listdir(folder)), os.listdir(folder)


def netns_mounts(d: Skiffd) -> list[str]:
    where = str(d.run / "netns")
    return [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(where)]


def network(d: Skiffd) -> str:
    name = unique("skun")
    skiff(d, "network", "create", "--subnet", subnet_for(name), name)
    return name


def inspect(d: Skiffd, ref: str) -> dict:
    return json.loads(skiff(d, "inspect", ref).stdout)[0]


def sh(d: Skiffd, ref: str, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return skiff(d, "exec", ref, "sh", "-c", script, check=check)


def fetch(d: Skiffd, ref: str, url: str) -> str:
    """What `ref` gets at `url`, tried again until the server there listens."""
    deadline = time.monotonic() + 15
    while True:
        done = skiff(d, "exec", ref, *FETCH, url, check=False)
        if done.returncode == 0 or time.monotonic() > deadline:
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()
        time.sleep(0.2)


def same_namespace(d: Skiffd, ref: str) -> bool:
    """The container's init is in the namespace skiffd keeps at its SandboxKey."""
    doc = inspect(d, ref)
    key, pid = doc["NetworkSettings"]["SandboxKey"], doc["State"]["Pid"]
    return bool(key) and os.stat(key).st_ino == os.stat(f"/proc/{pid}/ns/net").st_ino


def test_remapped_containers_reach_each_other_by_name(daemon: Skiffd) -> None:
    net = network(daemon)
    server = unique("srv")
    skiff(daemon, "run", "-d", "--name", server, "--network", net, "--network-alias", "web",
          "busybox", *httpd("remapped"))
    client = skiff(daemon, "run", "-d", "--network", net, "--hostname", "cli", "busybox",
                   "sleep", "60").stdout.strip()
    assert fetch(daemon, client, f"http://{server}/") == "remapped"
    assert fetch(daemon, client, "http://web/") == "remapped"
    doc = inspect(daemon, client)
    ep = doc["NetworkSettings"]["Networks"][net]
    uid = _first_id("/etc/subuid")
    inside = sh(daemon, client, "cat /proc/self/uid_map; ip -4 addr show eth0; ip route; "
                "cat /sys/class/net/eth0/mtu /etc/hosts /etc/resolv.conf").stdout
    assert inside.split()[:3] == ["0", str(uid), "65536"]  # remapped, and still wired
    assert f"inet {ep['IPAddress']}/24" in inside
    assert f"default via {ep['Gateway']} dev eth0" in inside
    assert "\n1500\n" in inside  # sysfs of the container's own namespace shows eth0
    assert f"{ep['IPAddress']}\tcli" in inside and "nameserver 127.0.0.11" in inside
    assert same_namespace(daemon, client)
    # the namespace is the container's user namespace's, not the host's
    pid = doc["State"]["Pid"]
    owner = subprocess.run(["lsns", "-n", "-o", "NS", "-t", "user", "-p", str(pid)],
                           capture_output=True, text=True).stdout.split()
    assert owner and Path("/proc/self/ns/user").stat().st_ino != int(owner[0])
    bridge_veths = {v for n in host_links() if n.startswith("br-") for v in links_on(n)}
    skiff(daemon, "rm", "-f", client, server)
    assert not links_left(bridge_veths)
    assert not netns_mounts(daemon)


def test_a_published_port_answers_on_loopback(daemon: Skiffd) -> None:
    port = free_ports()
    cid = skiff(daemon, "run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox",
                *httpd("published")).stdout.strip()
    assert http_get("127.0.0.1", port) == "published"
    net = network(daemon)
    other = skiff(daemon, "run", "-d", "-p", f"127.0.0.1:{port + 1}:80", "--network", net,
                  "busybox", *httpd("on-a-user-network")).stdout.strip()
    assert http_get("127.0.0.1", port + 1) == "on-a-user-network"
    skiff(daemon, "rm", "-f", cid, other)
    assert http_get_once_refused(port)


def http_get_once_refused(port: int) -> bool:
    from test_published_ports import http_once

    return http_once("127.0.0.1", port, timeout=1) is None


def test_connect_and_disconnect_a_running_remapped_container(daemon: Skiffd) -> None:
    first, second = network(daemon), network(daemon)
    server = unique("srv")
    skiff(daemon, "run", "-d", "--name", server, "--network", second, "busybox",
          *httpd("second"))
    cid = skiff(daemon, "run", "-d", "--network", first, "busybox", "sleep", "60").stdout.strip()
    assert "eth1" not in sh(daemon, cid, "ip link").stdout
    skiff(daemon, "network", "connect", second, cid)
    assert "inet " in sh(daemon, cid, "ip -4 addr show eth1").stdout
    assert fetch(daemon, cid, f"http://{server}/") == "second"
    skiff(daemon, "network", "disconnect", second, cid)
    assert "eth1" not in sh(daemon, cid, "ip link").stdout
    assert second not in inspect(daemon, cid)["NetworkSettings"]["Networks"]


def test_a_skiffd_restart_keeps_remapped_containers_served(tmp_root: Path,
                                                          remap_user: None) -> None:
    workdir = tmp_root / f"skiffd-usernsnet-restart-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    before = host_links()
    d = start_skiffd(workdir, *REMAP)
    try:
        net, other = network(d), network(d)
        server = unique("srv")
        skiff(d, "run", "-d", "--name", server, "--network", net, "busybox",
              *httpd("kept"))
        client = skiff(d, "run", "-d", "--network", net, "busybox", "sleep",
                       "120").stdout.strip()
        assert fetch(d, client, f"http://{server}/") == "kept"
        stop_skiffd(d)  # the containers go on
        assert netns_mounts(d)  # their namespaces are kept
        d = start_skiffd(workdir, *REMAP)
        assert fetch(d, client, f"http://{server}/") == "kept"  # its DNS served again
        skiff(d, "network", "connect", other, client)
        assert "inet " in sh(d, client, "ip -4 addr show eth1").stdout
        emptied(d, before)
    finally:
        try:
            emptied(d)
        finally:
            stop_skiffd(d)
            shutil.rmtree(workdir, ignore_errors=True)


def test_a_failed_start_leaves_nothing(daemon: Skiffd) -> None:
    """The namespace is wired before the program is looked for: a start that fails then
    (no such program), or in the wiring (an address taken), takes it all back."""
    net = network(daemon)
    before = host_links()
    done = skiff(daemon, "run", "--network", net, "busybox", "/no/such/program", check=False)
    assert done.returncode == 127, done.stderr
    first = skiff(daemon, "run", "-d", "--network", net, "busybox", "sleep", "60").stdout.strip()
    taken = inspect(daemon, first)["NetworkSettings"]["Networks"][net]["IPAddress"]
    done = skiff(daemon, "run", "-d", "--network", net, "--ip", taken, "busybox", "sleep", "60",
                 check=False)
    # the engine's own error, as for a container not remapped, not the runtime's hook's
    assert done.returncode == 125 and done.stderr.startswith(
        f"skiff: Error response from daemon: Address already in use: {taken}\n"), done.stderr
    nid = inspect(daemon, first)["NetworkSettings"]["Networks"][net]["NetworkID"]
    assert len(links_on(f"br-{nid[:12]}")) == 1  # the first container's only
    assert len(netns_mounts(daemon)) == 1
    skiff(daemon, "rm", "-f", first)
    assert not netns_mounts(daemon)
    assert not {n for n in links_left(host_links() - before) if n.startswith("veth")}


def test_a_restart_its_monitor_makes_is_wired_again(daemon: Skiffd) -> None:
    """``--restart``: each run's runtime makes a new namespace; skiffd wires each."""
    net = network(daemon)
    server = unique("srv")
    skiff(daemon, "run", "-d", "--name", server, "--network", net, "busybox", *httpd("again"))
    cid = skiff(daemon, "run", "-d", "--restart", "always", "--network", net, "busybox", "sh",
                "-c", "ip -4 addr show eth0 | grep -q inet || exit 3; "
                "[ -e /tmp/ran ] && exec sleep 60; touch /tmp/ran; exit 1").stdout.strip()
    deadline = time.monotonic() + 15
    while inspect(daemon, cid)["RestartCount"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    doc = inspect(daemon, cid)
    assert doc["RestartCount"] >= 1 and doc["State"]["Running"], doc["State"]
    assert fetch(daemon, cid, f"http://{server}/") == "again"
    assert same_namespace(daemon, cid)
    assert len(netns_mounts(daemon)) == 2  # the first run's was let go


def test_network_container_joins_a_remapped_ones_namespace(daemon: Skiffd) -> None:
    """``--network container:<id>``: the other's namespace, and its user namespace with it
    (moby: to share a net namespace they must share a user namespace)."""
    net = network(daemon)
    host = skiff(daemon, "run", "-d", "--network", net, "busybox", *httpd("shared")).stdout.strip()
    address = inspect(daemon, host)["NetworkSettings"]["Networks"][net]["IPAddress"]
    out = skiff(daemon, "run", "--rm", "--network", f"container:{host}", "busybox", "sh", "-c",
                "ip -4 addr show eth0; cat /proc/self/uid_map; "
                "timeout 5 wget -qO- http://127.0.0.1/").stdout
    assert f"inet {address}/24" in out and "shared" in out
    assert out.splitlines()[-2].split()[:2] == ["0", str(_first_id("/etc/subuid"))]


def test_skiffd_wires_only_a_containers_own_namespace(
        daemon: Skiffd, capsys: pytest.CaptureFixture[str]) -> None:
    """An ask on the wiring socket naming a process not the container's (here the host's
    init, whose namespace is the host's) is refused and changes nothing; a stop and a
    start wire the container's next namespace."""
    from skiff.engine.netns_wiring import SOCKET_NAME, ask_wiring

    net = network(daemon)
    cid = skiff(daemon, "run", "-d", "--network", net, "busybox", "sleep", "60").stdout.strip()
    with pytest.raises(SystemExit):
        ask_wiring(str(daemon.run / SOCKET_NAME), cid, 1)
    assert "/proc/1/ns/net is not the network namespace of container" in \
        capsys.readouterr().err
    assert same_namespace(daemon, cid) and "inet " in sh(daemon, cid, "ip -4 a show eth0").stdout
    skiff(daemon, "restart", "-t", "0", cid)
    assert same_namespace(daemon, cid) and "inet " in sh(daemon, cid, "ip -4 a show eth0").stdout
    assert len(netns_mounts(daemon)) == 1
