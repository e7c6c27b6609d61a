"""IPAM's choices and Docker's refusals, without a kernel."""

from __future__ import annotations

import ipaddress

import pytest

from skiff.errors import InvalidArgument, NetworkConflict
from skiff.net import ipam

N = ipaddress.IPv4Network


def test_pool_gateway_is_first_host_and_host_bits_dropped() -> None:
    pool = ipam.parse_pool("10.5.3.7/16")
    assert str(pool.subnet) == "10.5.0.0/16" and str(pool.gateway) == "10.5.0.1"
    assert pool.ipam_config() == {"Subnet": "10.5.0.0/16", "Gateway": "10.5.0.1"}


def test_pool_with_gateway_and_range() -> None:
    pool = ipam.parse_pool("10.6.0.0/16", "10.6.0.254", "10.6.8.0/24")
    assert pool.ipam_config() == {"Subnet": "10.6.0.0/16", "Gateway": "10.6.0.254",
                                  "IPRange": "10.6.8.0/24"}
    assert ipam.allocate(pool, set()) == "10.6.8.0"  # a sub-range's first is no network's


@pytest.mark.parametrize(("subnet", "gateway", "ip_range", "message"), [
    ("10.0.0/33", "", "", "invalid CIDR address: 10.0.0/33"),
    ("foo", "", "", "invalid CIDR address: foo"),
    ("10.0.0.0", "", "", "invalid CIDR address: 10.0.0.0"),
    ("10.7.0.0/16", "10.8.0.1", "", "no matching subnet for gateway 10.8.0.1"),
    ("10.7.0.0/16", "", "10.9.0.0/24", "no matching subnet for range 10.9.0.0/24"),
    ("10.7.0.0/16", "bad", "", "invalid gateway address: bad"),
    ("10.7.0.0/16", "10.7.0.0", "", "invalid gateway 10.7.0.0"),
])
def test_bad_pools(subnet: str, gateway: str, ip_range: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace(".", r"\.")):
        ipam.parse_pool(subnet, gateway, ip_range)


def test_overlap_refused_with_dockers_message() -> None:
    ipam.check_overlap(N("10.1.0.0/16"), [N("10.2.0.0/16")])
    with pytest.raises(NetworkConflict, match="Pool overlaps with other one on this address space"):
        ipam.check_overlap(N("10.1.2.0/24"), [N("10.2.0.0/16"), N("10.1.0.0/16")])


def test_default_subnet_skips_taken_and_routes() -> None:
    assert ipam.default_subnet([]) == N("172.17.0.0/16")
    assert ipam.default_subnet([N("172.17.0.0/16")], [N("172.18.5.0/24"), N("0.0.0.0/0")]) \
        == N("172.19.0.0/16")
    every16 = [N(f"172.{i}.0.0/16") for i in range(17, 32)]
    assert ipam.default_subnet(every16) == N("192.168.0.0/20")
    assert ipam.default_subnet([*every16, N("192.168.0.0/19")]) == N("192.168.32.0/20")
    with pytest.raises(NetworkConflict, match="non-overlapping IPv4 address pool"):
        ipam.default_subnet([N("172.16.0.0/12"), N("192.168.0.0/16")])


def test_host_routes_parsed_from_proc_format() -> None:
    text = ("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
            "eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
            "eth0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    assert ipam.host_routes(text) == [N("0.0.0.0/0"), N("192.168.2.0/24")]


def test_allocate_lowest_free_never_gateway_network_broadcast() -> None:
    pool = ipam.parse_pool("10.3.0.0/29")  # hosts .1-.6, gateway .1
    got: set[str] = set()
    for _ in range(5):
        got.add(ipam.allocate(pool, got))
    assert got == {f"10.3.0.{i}" for i in range(2, 7)}
    with pytest.raises(NetworkConflict, match="no available IPv4 addresses"):
        ipam.allocate(pool, got)
    assert ipam.allocate(pool, {"10.3.0.2"}) == "10.3.0.3"


def test_allocate_gateway_in_the_middle_is_skipped() -> None:
    pool = ipam.parse_pool("10.4.0.0/29", "10.4.0.2")
    assert ipam.allocate(pool, set()) == "10.4.0.1"
    assert ipam.allocate(pool, {"10.4.0.1"}) == "10.4.0.3"


def test_requested_address() -> None:
    pool = ipam.parse_pool("10.3.0.0/24", "", "10.3.0.128/25")
    assert ipam.allocate(pool, set(), "10.3.0.5") == "10.3.0.5"  # the subnet, not the range
    with pytest.raises(NetworkConflict, match="Address already in use"):
        ipam.allocate(pool, {"10.3.0.5"}, "10.3.0.5")
    with pytest.raises(NetworkConflict, match="Address already in use"):
        ipam.allocate(pool, set(), "10.3.0.1")
    with pytest.raises(InvalidArgument, match="does not belong to any of this network's subnets"):
        ipam.allocate(pool, set(), "10.9.0.5")
    with pytest.raises(InvalidArgument, match="invalid IPv4 address"):
        ipam.allocate(pool, set(), "10.3.0.500")


def test_mac_addresses() -> None:
    assert ipam.mac_address("172.29.0.2") == "02:42:ac:1d:00:02"
    assert ipam.check_mac("02:42:AC:11:00:09") == "02:42:ac:11:00:09"
    for bad in ("02:42:ac:11:00", "zz:42:ac:11:00:02", "01:00:5e:00:00:01"):
        with pytest.raises(InvalidArgument, match="invalid MAC address"):
            ipam.check_mac(bad)
