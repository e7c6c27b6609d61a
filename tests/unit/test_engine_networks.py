"""The network model without a kernel: the pre-defined networks, finding by ID, name and
prefix, the create request's checks, the endpoint plans of a create (Docker's refusals),
list filters, and what names and addresses mean to a container (`resolve`, `reverse`),
over a state database of the test's own with endpoints as a start records them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skiff.engine.network_db import EndpointRow, NetworkRow
from skiff.engine.network_endpoints import endpoint_settings, plan, record
from skiff.engine.networks import NetworkService, _create_spec, _resource
from skiff.engine.state_db import ContainerRow, StateDB
from skiff.errors import InvalidArgument, NetworkForbidden, NoSuchNetwork


class Containers:
    """What the network service reads of the container service: its database."""

    def __init__(self, db: StateDB) -> None:
        self.db = db


@pytest.fixture
def net(tmp_path: Path) -> NetworkService:
    db = StateDB(str(tmp_path / "skiff.db"))
    service = NetworkService(db, bridge_subnet="172.29.0.0/16")
    service.containers = Containers(db)  # type: ignore[assignment]
    return service


def user_network(net: NetworkService, name: str, subnet: str, user_subnet: bool = True,
                 internal: bool = False) -> NetworkRow:
    """A user network as `create` stores it (without making its bridge)."""
    nid = (name.encode().hex() * 64)[:64]
    doc = _resource(name, "bridge", [{"Subnet": subnet, "Gateway": subnet[:-4] + "1"}],
                    internal=internal)
    doc.update(Id=nid, _UserSubnet=user_subnet)
    row = NetworkRow(id=nid, name=name, created=doc["Created"], doc=doc)
    assert net.db.insert(row)
    return row


def container(net: NetworkService, name: str, hostname: str = "") -> ContainerRow:
    cid = (name.encode().hex() * 64)[:64]
    row = ContainerRow(id=cid, name=name, image_id="sha256:" + "0" * 64, created="",
                       doc={"Config": {"Hostname": hostname or cid[:12]},
                            "HostConfig": {"NetworkMode": "default"}}, state={})
    net.db.db.insert(row)
    return row


def running_on(net: NetworkService, crow: ContainerRow, network: NetworkRow, address: str,
               aliases: list[str] | None = None) -> None:
    """`crow` attached to `network` and holding `address`, as after its start."""
    asked = {"Aliases": aliases} if aliases else {}
    net.db.attach(EndpointRow(network_id=network.id, container_id=crow.id, address=None,
                              doc={"Asked": asked, "ContainerName": crow.name}))
    net.db.claim(network.id, crow.id, address, {
        "Asked": asked, "ContainerName": crow.name, "EndpointID": "e" * 64,
        "IPAddress": address, "IPPrefixLen": 24, "Gateway": address.rsplit(".", 1)[0] + ".1",
        "MacAddress": "02:42:00:00:00:02", "HostIf": "vethx", "IfName": "eth0"})


def test_predefined_networks_and_finding(net: NetworkService) -> None:
    names = [n["Name"] for n in net.list()]
    assert names == ["bridge", "host", "none"]
    bridge = net.find("bridge")
    assert net.find(bridge.id) == bridge and net.find(bridge.id[:5]) == bridge
    assert net.inspect("bridge")["IPAM"]["Config"] == [{"Subnet": "172.29.0.0/16",
                                                        "Gateway": "172.29.0.1"}]
    assert net.inspect("none")["Driver"] == "null"
    with pytest.raises(NoSuchNetwork, match="network nosuch not found"):
        net.find("nosuch")
    for name in ("bridge", "host", "none"):
        with pytest.raises(NetworkForbidden, match="pre-defined network and cannot be removed"):
            net.remove(name)


def test_the_default_bridge_follows_the_setting_when_idle(tmp_path: Path) -> None:
    db = StateDB(str(tmp_path / "skiff.db"))
    first = NetworkService(db, bridge_subnet="10.9.0.0/24", bridge_name="skt0")
    nid = first.find("bridge").id
    again = NetworkService(db, bridge_subnet="10.9.1.0/24", bridge_name="skt1")
    doc = again.inspect("bridge")
    assert doc["Id"] == nid and doc["IPAM"]["Config"][0]["Subnet"] == "10.9.1.0/24"
    assert doc["Options"]["com.docker.network.bridge.name"] == "skt1"


@pytest.mark.parametrize(("body", "error", "message"), [
    ("x", InvalidArgument, "expected an object"),
    ({}, InvalidArgument, "network name must not be empty"),
    ({"Name": "-bad"}, InvalidArgument, 'invalid network name "-bad"'),
    ({"Name": "n", "Driver": "overlay"}, InvalidArgument, 'plugin "overlay" not found'),
    ({"Name": "n", "Driver": "host"}, NetworkForbidden, 'only one instance of "host"'),
    ({"Name": "n", "Internal": "yes"}, InvalidArgument, "NetworkCreateRequest.Internal"),
    ({"Name": "n", "Labels": {"a": 1}}, InvalidArgument, "NetworkCreateRequest.Labels"),
    ({"Name": "n", "EnableIPv6": True}, InvalidArgument, "IPv6"),
    ({"Name": "n", "IPAM": {"Config": [{"Subnet": "10.1.0.0/16"}, {"Subnet": "10.2.0.0/16"}]}},
     InvalidArgument, "one IPv4 subnet"),
    ({"Name": "n", "IPAM": {"Config": [{"Gateway": "10.1.0.1"}]}}, InvalidArgument,
     "needs a subnet"),
    ({"Name": "n", "Options": {"com.docker.network.driver.mtu": "x"}}, InvalidArgument,
     "invalid MTU"),
])
def test_create_requests_refused(body: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        _create_spec(body)


def test_create_spec_read() -> None:
    spec = _create_spec({"Name": "web.net_1", "Internal": True, "Labels": {"a": "b"},
                         "IPAM": {"Config": [{"Subnet": "10.1.0.0/16", "IPRange": ""}, {}]}})
    assert spec["Internal"] and spec["Labels"] == {"a": "b"}
    assert spec["Config"] == [{"Subnet": "10.1.0.0/16", "IPRange": ""}]


def test_plans_of_a_create(net: NetworkService) -> None:
    mine = user_network(net, "mine", "10.5.0.0/24")
    pooled = user_network(net, "pooled", "10.6.0.0/24", user_subnet=False)
    [(row, asked)] = plan(net, "default", {"EndpointsConfig": {"default": {}}})
    assert row.name == "bridge" and asked == {}
    [(row, asked)] = plan(net, "mine", {"EndpointsConfig": {"mine": {
        "IPAMConfig": {"IPv4Address": "10.5.0.9"}, "Aliases": ["a", "a", "b"]}}},
        mac="02:42:AA:00:00:01")
    assert row.id == mine.id
    assert asked == {"IPAMConfig": {"IPv4Address": "10.5.0.9"}, "Aliases": ["a", "b"],
                     "MacAddress": "02:42:aa:00:00:01"}
    both = plan(net, "mine", {"EndpointsConfig": {"pooled": {}}})
    assert [r.id for r, _ in both] == [mine.id, pooled.id]
    assert plan(net, "container:abc", None) == []
    for mode, config, message in [
        ("default", {"bridge": {"IPAMConfig": {"IPv4Address": "172.29.0.5"}}},
         "supported on user defined networks only"),
        ("default", {"bridge": {"Aliases": ["x"]}}, "network-scoped alias is supported only"),
        ("pooled", {"pooled": {"IPAMConfig": {"IPv4Address": "10.6.0.5"}}},
         "only when connecting to networks with user configured subnets"),
        ("mine", {"mine": {"IPAMConfig": {"IPv4Address": "10.9.9.9"}}},
         "Invalid address 10.9.9.9: It does not belong to any of this network's subnets"),
        ("none", {"mine": {}}, "conflicting options"),
        ("mine", {"mine": {"MacAddress": "zz"}}, "invalid MAC address"),
        ("mine", {"mine": {"Links": ["a:b"]}}, "links"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            plan(net, mode, {"EndpointsConfig": config})
    with pytest.raises(NoSuchNetwork):
        plan(net, "nosuch", None)


def test_names_resolve_on_shared_user_networks_only(net: NetworkService) -> None:
    front = user_network(net, "front", "10.7.0.0/24")
    back = user_network(net, "back", "10.8.0.0/24")
    web = container(net, "web", hostname="webhost")
    db = container(net, "db")
    lone = container(net, "lone")
    on_bridge = container(net, "plain")
    running_on(net, web, front, "10.7.0.2", aliases=["www"])
    running_on(net, web, back, "10.8.0.2")
    running_on(net, db, back, "10.8.0.3", aliases=["Database"])
    running_on(net, lone, front, "10.7.0.3")
    running_on(net, on_bridge, net.find("bridge"), "172.29.0.2")
    running_on(net, container(net, "plain2"), net.find("bridge"), "172.29.0.3")
    assert net.resolve(web.id, "db") == ["10.8.0.3"]
    assert net.resolve(web.id, "DATABASE.") == ["10.8.0.3"]  # no case, trailing dot
    assert net.resolve(web.id, "db.back") == ["10.8.0.3"]
    assert net.resolve(web.id, db.id[:12]) == ["10.8.0.3"]
    assert net.resolve(lone.id, "db") == []  # not on a network they share
    assert net.resolve(lone.id, "www") == ["10.7.0.2"]
    assert net.resolve(lone.id, "webhost") == ["10.7.0.2"]
    assert net.resolve(db.id, "web") == ["10.8.0.2"]  # its address on the shared one
    assert sorted(net.resolve(web.id, "web")) == ["10.7.0.2", "10.8.0.2"]
    assert net.resolve(on_bridge.id, "plain2") == []  # the default bridge has no names
    assert net.resolve(web.id, "") == []
    assert net.reverse(lone.id, "10.7.0.2") == "web.front"
    assert net.reverse(lone.id, "10.8.0.3") is None
    assert net.reverse(on_bridge.id, "172.29.0.3") is None
    net.db.release(back.id, db.id, {"Asked": {}, "ContainerName": "db"})  # db stopped
    assert net.resolve(web.id, "db") == []


def test_endpoint_settings_and_list_filters(net: NetworkService) -> None:
    front = user_network(net, "front", "10.7.0.0/24")
    user_network(net, "idle", "10.9.0.0/24")
    web = container(net, "web")
    record(net, web.id, "web", [(front, {"Aliases": ["www"]})])
    stopped = endpoint_settings(net, web)["front"]
    assert stopped["IPAddress"] == "" and stopped["EndpointID"] == "" and \
        stopped["Aliases"] == ["www"]
    net.db.detach(front.id, web.id)
    running_on(net, web, front, "10.7.0.2", aliases=["www"])
    settings = endpoint_settings(net, web)["front"]
    assert settings["IPAddress"] == "10.7.0.2" and settings["NetworkID"] == front.id
    assert settings["Aliases"] == ["www", web.id[:12]]
    assert settings["DNSNames"] == ["web", "www", web.id[:12]]

    def names(filters: dict[str, list[str]]) -> list[str]:
        return [n["Name"] for n in net.list(filters)]

    assert names({"type": ["custom"]}) == ["front", "idle"]
    assert names({"type": ["builtin"]}) == ["bridge", "host", "none"]
    assert names({"dangling": ["true"]}) == ["idle"]
    assert names({"name": ["ron"]}) == ["front"]
    assert names({"driver": ["null"]}) == ["none"]
    assert names({"id": [front.id[:6]]}) == ["front"]
    with pytest.raises(InvalidArgument, match="invalid filter 'bogus'"):
        net.list({"bogus": ["x"]})
    with pytest.raises(InvalidArgument, match="'type'='weird'"):
        net.list({"type": ["weird"]})
    assert net.inspect("front")["Containers"][web.id]["IPv4Address"] == "10.7.0.2/24"
    assert "_UserSubnet" not in net.inspect("front")


def test_upstream_servers_for_the_dns_server(net: NetworkService) -> None:
    web = container(net, "web")
    from skiff.engine.container_files import host_nameservers

    assert net.upstream_servers(web.id) == host_nameservers()
    assert host_nameservers("nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch x\n") == \
        ["10.0.0.2"]
    crow = net.containers.db.get(web.id)  # type: ignore[union-attr]
    crow.doc["HostConfig"]["Dns"] = ["192.0.2.53"]
    net.containers.db.set_doc(web.id, crow.doc)  # type: ignore[union-attr]
    assert net.upstream_servers(web.id) == ["192.0.2.53"]
