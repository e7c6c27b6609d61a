"""Networks through skiffd, driven by the real docker CLI and docker-py: `docker network
create/ls/inspect/connect/disconnect/rm` (shapes checked against the API spec), `docker run
--network` with ``--ip`` and ``--network-alias``, a container reaching another by address,
Docker's errors for bad input, and docker-py's ``networks.create`` with a container attached
by ``connect`` and another started on the network. Each test removes its containers and
networks; no bridge or veth is left behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures_daemon import (Skiffd, check_api_shape, docker_py_client, module_daemon,
                             remove_all, subnet_for)
from test_docker_cli import DOCKER, docker
from test_networks import MADE, host_links, links_left, ours, remove_networks

pytestmark = [pytest.mark.root, pytest.mark.netns,
              pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI")]


@pytest.fixture(scope="module")
def module_skiffd(tmp_root: Path) -> Iterator[Skiffd]:
    with module_daemon(tmp_root, "docker-networks") as d:
        try:
            yield d
        finally:
            remove_all(d)
            remove_networks(d)


@pytest.fixture
def daemon(module_skiffd: Skiffd) -> Iterator[Skiffd]:
    before = host_links()
    MADE.clear()
    yield module_skiffd
    status, found = module_skiffd.json("GET", "/networks")
    MADE.extend(f"br-{n['Id'][:12]}" for n in found if n["Name"] not in ("bridge", "host",
                                                                            "none"))
    remove_all(module_skiffd)
    remove_networks(module_skiffd)
    assert not links_left(ours(before))


def test_docker_network_commands(daemon: Skiffd) -> None:
    name = f"dknet-{uuid.uuid4().hex[:6]}"
    subnet = subnet_for(name)
    prefix = subnet.rsplit(".", 1)[0]
    nid = docker(daemon, "network", "create", "--subnet", subnet, "--gateway", f"{prefix}.254",
                 "--ip-range", f"{prefix}.128/25", "--label", "a=b", "-o",
                 "com.docker.network.driver.mtu=1400", name).stdout.strip()
    listed = docker(daemon, "network", "ls", "--format", "{{.ID}} {{.Name}} {{.Driver}}").stdout
    assert f"{nid[:12]} {name} bridge" in listed and " bridge bridge" in listed
    doc = json.loads(docker(daemon, "network", "inspect", name).stdout)[0]
    check_api_shape(doc, "Network")
    assert doc["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": f"{prefix}.254",
                                      "IPRange": f"{prefix}.128/25"}]
    assert doc["Labels"] == {"a": "b"} and doc["Id"] == nid
    a = docker(daemon, "run", "-d", "--network", name, "--network-alias", "alpha", "busybox",
               "sleep", "60").stdout.strip()
    b = docker(daemon, "run", "-d", "--network", name, "--ip", f"{prefix}.10", "busybox",
               "sleep", "60").stdout.strip()
    ip_a = json.loads(docker(daemon, "inspect", a).stdout)[0]["NetworkSettings"]["Networks"][
        name]["IPAddress"]
    assert ip_a == f"{prefix}.128"  # the first of the range
    assert docker(daemon, "exec", b, "ip", "-4", "addr", "show", "eth0").stdout.count(
        f"{prefix}.10/24") == 1
    docker(daemon, "exec", b, "ping", "-c1", "-W2", ip_a)
    mtu = docker(daemon, "exec", a, "cat", "/sys/class/net/eth0/mtu").stdout.strip()
    assert mtu == "1400"
    shown = json.loads(docker(daemon, "network", "inspect", name).stdout)[0]["Containers"]
    assert set(shown) == {a, b}
    c = docker(daemon, "run", "-d", "busybox", "sleep", "60").stdout.strip()
    docker(daemon, "network", "connect", "--alias", "late", name, c)
    assert "eth1" in docker(daemon, "exec", c, "ip", "link").stdout
    docker(daemon, "exec", c, "ping", "-c1", "-W2", f"{prefix}.10")
    doc = json.loads(docker(daemon, "inspect", c).stdout)[0]
    assert set(doc["NetworkSettings"]["Networks"]) == {"bridge", name}
    assert "late" in doc["NetworkSettings"]["Networks"][name]["Aliases"]
    docker(daemon, "network", "disconnect", name, c)
    assert "eth1" not in docker(daemon, "exec", c, "ip", "link").stdout
    p = docker(daemon, "network", "rm", name, check=False)
    assert p.returncode == 1 and "has active endpoints" in p.stderr
    docker(daemon, "rm", "-f", a, b, c)
    assert docker(daemon, "network", "rm", name).stdout.strip() == name
    assert name not in docker(daemon, "network", "ls").stdout
    assert f"br-{nid[:12]}" not in host_links()  # its bridge went with it


def test_docker_cli_bad_input(daemon: Skiffd) -> None:
    name = f"dkbad-{uuid.uuid4().hex[:6]}"
    docker(daemon, "network", "create", "--subnet", subnet_for(name), name)
    subnet = json.loads(docker(daemon, "network", "inspect", name).stdout)[0]["IPAM"][
        "Config"][0]["Subnet"]
    for argv, message in [
        (["network", "create", "--subnet", subnet, name + "2"], "Pool overlaps"),
        (["network", "create", "--subnet", "300.1.1.0/24", name + "3"],
         "invalid CIDR address: 300.1.1.0/24"),
        (["network", "rm", "nosuchnet"], "network nosuchnet not found"),
        (["network", "rm", "host"], "host is a pre-defined network and cannot be removed"),
        (["run", "--rm", "--network", "nosuchnet", "busybox", "true"],
         "network nosuchnet not found"),
        (["run", "--rm", "--network", name, "--ip", "192.0.2.1", "busybox", "true"],
         "does not belong to any of this network's subnets"),
    ]:
        p = docker(daemon, *argv, check=False)
        assert p.returncode != 0 and message in p.stderr, (argv, p.stderr)
    assert docker(daemon, "ps", "-aq").stdout == ""
    names = docker(daemon, "network", "ls", "--format", "{{.Name}}").stdout.split()
    assert sorted(names) == sorted(["bridge", "host", "none", name])


def test_docker_py_creates_a_network_and_attaches_containers(daemon: Skiffd) -> None:
    name = f"dkpy-{uuid.uuid4().hex[:6]}"
    import docker as docker_py

    with docker_py_client(daemon.url) as client:
        ipam = docker_py.types.IPAMConfig(pool_configs=[
            docker_py.types.IPAMPool(subnet=subnet_for(name))])
        net = client.networks.create(name, driver="bridge", ipam=ipam, labels={"k": "v"})
        try:
            assert client.networks.get(net.id).name == name
            assert [n.name for n in client.networks.list(names=[name])] == [name]
            first = client.containers.run("busybox", ["sleep", "60"], detach=True,
                                          network=name)
            second = client.containers.run("busybox", ["sleep", "60"], detach=True,
                                           network_mode="none")
            other = client.containers.run("busybox", ["sleep", "60"], detach=True)
            net.connect(other, aliases=["peer"])
            net.reload()
            assert {c.id for c in net.containers} == {first.id, other.id}
            first.reload()
            ip = first.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
            code, out = other.exec_run(["ping", "-c1", "-W2", ip])
            assert code == 0, out
            net.disconnect(other)
            net.reload()
            assert {c.id for c in net.containers} == {first.id}
            for c in (first, second, other):
                c.remove(force=True)
        finally:
            net.remove()
        assert name not in [n.name for n in client.networks.list()]
