"""`net.links` on the real kernel: a bridge made once (the second call finds it), a veth
pair whose container end is made inside a network namespace with its name, MAC, MTU,
address and default route, made-or-nothing when a step fails, and removals that are
idempotent. Every link and namespace is the test's own (unique names) and removed."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import LINK_PREFIX
from fixtures_daemon import subnet_for
from skiff.engine.netns import make_netns, release_netns
from skiff.errors import KernelError
from skiff.net import links

pytestmark = [pytest.mark.root, pytest.mark.netns]


def inside(netns: Path, *argv: str) -> str:
    return subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture
def netns(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ns"
    make_netns(str(path))
    try:
        yield path
    finally:
        release_netns(str(path))


@pytest.fixture
def bridge() -> Iterator[tuple[str, str]]:
    name = LINK_PREFIX + uuid.uuid4().hex[:6]  # the session's, which its end checks
    subnet = subnet_for(name)
    try:
        yield name, subnet
    finally:
        links.delete_bridge(name)
    assert not links.link_exists(name)


def test_bridge_and_endpoint(netns: Path, bridge: tuple[str, str]) -> None:
    name, subnet = bridge
    prefix = subnet.rsplit(".", 1)[0]
    assert links.ensure_bridge(name, f"{prefix}.1", 24, 1500) is True
    assert links.ensure_bridge(name, f"{prefix}.1", 24, 1500) is False  # found, kept
    host_if = "vskt" + uuid.uuid4().hex[:8]
    links.add_endpoint(links.Endpoint(bridge=name, host_ifname=host_if, netns=str(netns),
                                      ifname="eth0", mac="02:42:0a:00:00:05", mtu=1400,
                                      address=f"{prefix}.5", prefixlen=24,
                                      gateway=f"{prefix}.1"))
    try:
        shown = inside(netns, "ip", "-o", "link", "show", "eth0")
        assert "02:42:0a:00:00:05" in shown and "mtu 1400" in shown and "UP" in shown
        assert f"inet {prefix}.5/24" in inside(netns, "ip", "-o", "-4", "addr", "show", "eth0")
        assert f"default via {prefix}.1 dev eth0" in inside(netns, "ip", "route")
        host = subprocess.run(["ip", "-o", "link", "show", host_if], capture_output=True,
                              text=True, check=True).stdout
        assert f"master {name}" in host
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            assert f.read().strip() == "1"  # as dockerd sets it with its first bridge
        # a second eth0 in the same namespace: refused, and nothing of it is left
        other = "vskt" + uuid.uuid4().hex[:8]
        with pytest.raises(KernelError, match="netlink link add veth"):
            links.add_endpoint(links.Endpoint(bridge=name, host_ifname=other,
                                              netns=str(netns), ifname="eth0",
                                              mac="02:42:0a:00:00:06", mtu=1500,
                                              address=f"{prefix}.6", prefixlen=24,
                                              gateway=None))
        assert not links.link_exists(other)
        # a bad address inside: the pair made is taken back
        with pytest.raises(KernelError):
            links.add_endpoint(links.Endpoint(bridge=name, host_ifname=other,
                                              netns=str(netns), ifname="eth1",
                                              mac="02:42:0a:00:00:07", mtu=1500,
                                              address=f"{prefix}.5", prefixlen=24,
                                              gateway=f"{prefix}.1"))  # a second default
        assert not links.link_exists(other) and "eth1" not in inside(netns, "ip", "link")
    finally:
        assert links.delete_endpoint(host_if) is True
    assert links.delete_endpoint(host_if) is False  # idempotent
    assert "eth0" not in inside(netns, "ip", "link")  # the peer went with it


def test_an_endpoint_needs_its_bridge(netns: Path) -> None:
    host_if = "vskt" + uuid.uuid4().hex[:8]
    with pytest.raises(KernelError, match="no such bridge"):
        links.add_endpoint(links.Endpoint(bridge="sktnosuch0", host_ifname=host_if,
                                          netns=str(netns), ifname="eth0",
                                          mac="02:42:0a:00:00:05", mtu=1500,
                                          address="10.0.0.5", prefixlen=24, gateway=None))
    assert not links.link_exists(host_if)
    assert links.delete_bridge("sktnosuch0") is False
