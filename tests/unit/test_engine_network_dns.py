"""Who the embedded DNS server serves, and where their other names go, without a kernel:
`EmbeddedDns` over the network model of test_engine_networks with a recording server in
place of `net.dns.DnsServer` (whose sockets the integration tests check), and the parsing
of skiffd's ``--dns-upstream``."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.engine.network_dns import EmbeddedDns, parse_upstreams
from skiff.engine.networks import NetworkService
from skiff.errors import InvalidArgument, KernelError
from skiff.net.dns_upstream import Upstream, parse_upstream
from test_engine_networks import container, net, running_on, user_network  # noqa: F401

NETNS = "/run/skiff/netns"


class RecordingServer:
    """A DnsServer's callers' side: what was added (key → (netns, upstreams)), removed
    (with its DNAT deleted, or kept for the namespace to take along or an add to switch)."""

    def __init__(self, fail: bool = False) -> None:
        self.served: dict[str, tuple[str, Any]] = {}
        self.log: list[tuple[str, str]] = []
        self.fail = fail
        self.closed = False

    def add(self, key: str, netns_path: str, upstreams: Any = None,
            from_netns: bool = False) -> None:
        if self.fail:
            raise KernelError.from_os("bind UDP 127.0.0.11:53 in", OSError(98, "in use"),
                                      netns_path)
        assert key not in self.served
        assert from_netns == bool(upstreams)  # --dns from the container's, others the host's
        self.served[key] = (netns_path, upstreams)
        self.log.append(("add", key))

    def remove(self, key: str, keep_redirect: bool = False) -> None:
        self.served.pop(key, None)
        self.log.append(("remove, DNAT kept" if keep_redirect else "remove", key))

    def close(self) -> None:
        self.closed = True


def with_netns(net: NetworkService) -> None:  # noqa: F811
    """Where the container service keeps each container's namespace."""
    setattr(net.containers, "netns_path", lambda cid: f"{NETNS}/{cid}")


@pytest.fixture
def dns(net: NetworkService) -> tuple[EmbeddedDns, RecordingServer]:  # noqa: F811
    server = RecordingServer()
    with_netns(net)
    embedded = EmbeddedDns(net)
    embedded._server = server  # type: ignore[assignment]
    return embedded, server


def test_served_on_a_user_network_only(net: NetworkService,  # noqa: F811
                                       dns: tuple[EmbeddedDns, RecordingServer]) -> None:
    embedded, server = dns
    web, box = container(net, "web"), container(net, "box")
    running_on(net, box, net.find("bridge"), "172.29.0.2")
    embedded.refresh(box)
    assert server.served == {}  # the default bridge has no names, and no server
    front = user_network(net, "front", "10.7.0.0/24")
    running_on(net, web, front, "10.7.0.2")
    embedded.refresh(web)
    assert server.served == {web.id: (f"{NETNS}/{web.id}", None)}  # the server's upstreams
    embedded.refresh(web)  # nothing changed: nothing done
    assert server.log == [("add", web.id)]
    embedded.forget(web.id)
    embedded.forget(web.id)  # again: nothing
    # the end of its run: the DNAT goes with the namespace, not deleted one rule at a time
    assert server.served == {} and server.log == [("add", web.id),
                                                  ("remove, DNAT kept", web.id)]
    assert embedded.served() == []


def test_upstreams_dns_internal_and_their_changes(
        net: NetworkService, dns: tuple[EmbeddedDns, RecordingServer]) -> None:  # noqa: F811
    embedded, server = dns
    web = container(net, "web")
    back = user_network(net, "back", "10.8.0.0/24", internal=True)
    running_on(net, web, back, "10.8.0.2")
    embedded.refresh(web)
    assert server.served[web.id][1] == []  # internal only: nothing is forwarded
    web.doc["HostConfig"]["Dns"] = ["192.0.2.53", "2001:db8::53"]
    embedded.refresh(web)
    assert server.served[web.id][1] == []  # --dns or not: no way out, no forwarding
    front = user_network(net, "front", "10.7.0.0/24")
    running_on(net, web, front, "10.7.0.2")  # a connect to a network with a way out
    embedded.refresh(web)
    assert server.served[web.id][1] == [Upstream("192.0.2.53"), Upstream("2001:db8::53")]
    # served again with new upstreams: its DNAT kept until the add switches it, in one go
    assert server.log == [("add", web.id), ("remove, DNAT kept", web.id), ("add", web.id)]
    net.db.release(back.id, web.id, {})
    net.db.release(front.id, web.id, {})  # disconnected from both
    embedded.refresh(web)
    assert server.served == {}
    assert server.log[-1] == ("remove", web.id)  # live, off its last user network: deleted


def test_skiffds_upstreams_for_containers_without_dns(net: NetworkService) -> None:  # noqa: F811
    embedded = EmbeddedDns(net, [Upstream("127.0.0.1", 5353)])
    made: list[Any] = []

    class Made(RecordingServer):
        def __init__(self, resolve: Any, reverse: Any, upstreams: Any, port: int) -> None:
            super().__init__()
            assert port == 0  # ports of the kernel's choosing, 53 DNAT'd to them
            made.append(upstreams)

    import skiff.net.dns

    real = skiff.net.dns.DnsServer
    skiff.net.dns.DnsServer = Made  # type: ignore[misc,assignment]
    try:
        web = container(net, "web")
        with_netns(net)
        embedded.refresh(web)
        assert made == []  # not on a user network: no server made at all
        running_on(net, web, user_network(net, "front", "10.7.0.0/24"), "10.7.0.2")
        embedded.refresh(web)
        embedded.refresh(container(net, "other"))
        assert made == [[Upstream("127.0.0.1", 5353)]]  # made once, with skiffd's
    finally:
        skiff.net.dns.DnsServer = real  # type: ignore[misc]
    embedded.close()
    assert embedded.served() == []
    embedded.refresh(web)  # closed: nothing served any more
    assert embedded.served() == []


def test_a_failed_add_raises_at_start_and_is_logged_at_a_connect(
        net: NetworkService) -> None:  # noqa: F811
    embedded = EmbeddedDns(net)
    embedded._server = RecordingServer(fail=True)  # type: ignore[assignment]
    with_netns(net)
    web = container(net, "web")
    running_on(net, web, user_network(net, "front", "10.7.0.0/24"), "10.7.0.2")
    with pytest.raises(KernelError, match="127.0.0.11:53"):
        embedded.refresh(web)
    embedded.refresh(web, quiet=True)
    embedded.reconcile({web.id})  # logged, not raised
    assert embedded.served() == []  # nothing recorded as served


def test_parse_upstream() -> None:
    assert parse_upstream("10.0.0.2") == Upstream("10.0.0.2", 53)
    assert parse_upstream("127.0.0.1:5353") == Upstream("127.0.0.1", 5353)
    assert parse_upstream("[2001:db8::1]:5353") == Upstream("2001:db8::1", 5353)
    assert parse_upstream("[::1]") == Upstream("::1", 53)
    assert parse_upstream("2001:db8::1") == Upstream("2001:db8::1", 53)
    for bad in ("dns.example", "10.0.0.2:0", "10.0.0.2:99999", "10.0.0.2:x", "[::1]x",
                "", "300.1.1.1"):
        with pytest.raises(InvalidArgument, match="bad DNS server"):
            parse_upstream(bad)
    assert parse_upstreams([]) is None  # the host's resolvers
    assert parse_upstreams(["none"]) == []  # nowhere
    assert parse_upstreams(["10.0.0.2", "127.0.0.1:53"]) == [Upstream("10.0.0.2"),
                                                            Upstream("127.0.0.1")]
