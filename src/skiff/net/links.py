"""The Linux objects of a bridge network, made over rtnetlink with pyroute2.

`ensure_bridge` makes a network's bridge (its name, MTU and the gateway address, up) unless
it is there already, and turns IPv4 forwarding on as dockerd does when it makes its first
bridge; `delete_bridge` takes it away. `add_endpoint` wires one container into a bridge:
a veth pair whose container end is made directly inside the container's network namespace
(given by path, e.g. ``$SKIFF_RUN/netns/<id>``) under its final name (``eth0``, ``eth1``…),
with its MAC address and MTU, so that no temporary name ever appears on the host; the host
end is attached to the bridge (in hairpin mode, for published ports reached from the
container itself) and brought up; inside, the address is added, the link
brought up and — unless the network is internal — the default route set via the gateway.
`delete_endpoint` deletes the host end, which takes its peer with it. Removals are
idempotent (a missing link is no error), creations are made-or-nothing: a failure half-way
deletes what was made, and the error says which netlink call failed on which link.

Speed: importing pyroute2 costs about 160 ms, so it is imported on first use, and `warm`
does that import (and opens the host's socket) on a background thread when skiffd starts.
The host-side calls all run on one thread that keeps one netlink socket (`_HostSocket`):
pyroute2's synchronous sockets keep per-thread state and an asyncio loop of their own,
while skiffd calls in from many threads, one of them running its own loop. Work inside a
container's namespace runs on a short-lived thread that has joined that namespace (a
namespace is a thread's, so skiffd's other threads stay where they are), with a socket
opened there. A veth pair is one message (its host end made on its bridge and up, its
peer made inside the namespace), then three calls inside: a start costs about 5 ms here.
"""

from __future__ import annotations

import errno
import os
import threading

from skiff.errors import KernelError
from skiff.kernel.netns_thread import in_netns, in_new_thread

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    T = TypeVar("T")

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def warm() -> threading.Thread:
    """Import pyroute2 on a background thread (skiffd's start), so that the first
    container start does not pay for it."""
    def load() -> None:
        _HOST.run(_nothing)  # pyroute2 imported, the host's socket open

    worker = threading.Thread(target=load, name="skiffd-netlink-warm", daemon=True)
    worker.start()
    return worker


def _nothing(ipr: Any) -> None:
    pass


def _iproute() -> Any:
    from pyroute2 import IPRoute

    # no multicast groups: a socket that lives on must not queue every link event
    return IPRoute(groups=0)


class _HostSocket:
    """One netlink socket in skiffd's own network namespace, kept on a thread of its own
    that runs every host-side call in turn: a socket is made once, not per call (under a
    millisecond each, paid twice a run), pyroute2's per-thread state stays on one thread,
    and its asyncio loop never meets a running one (skiffd's, at its stop)."""

    def __init__(self) -> None:
        import queue

        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...],
                                             threading.Event, list[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(iproute, *args)` on the socket's thread; its result, or its error raised."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="skiffd-netlink",
                                                daemon=True)
                self._thread.start()
        done = threading.Event()
        box: list[Any] = []
        self._calls.put((fn, args, done, box))
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def _serve(self) -> None:
        ipr = None
        while True:
            fn, args, done, box = self._calls.get()
            try:
                if ipr is None:
                    ipr = _iproute()
                box.append((True, fn(ipr, *args)))
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                box.append((False, e))
                if isinstance(e, OSError) and not hasattr(e, "code") and ipr is not None:
                    ipr.close()  # the socket itself failed: a new one for the next call
                    ipr = None
            finally:
                done.set()


_HOST = _HostSocket()


def _on_host(fn: Callable[..., T]) -> Callable[..., T]:
    """`fn(iproute, …)` as a call `fn(…)` run on the host's netlink thread."""
    import functools

    @functools.wraps(fn)
    def call(*args: Any) -> T:
        return _HOST.run(fn, *args)

    return call


def _failure(call: str, link: str, e: BaseException) -> KernelError:
    code = getattr(e, "code", None)  # pyroute2's NetlinkError: the kernel's errno
    if isinstance(code, int) and code > 0:
        return KernelError(f"netlink {call}", code, link)
    own = getattr(e, "errno", None)
    return KernelError(f"netlink {call}", own if isinstance(own, int) else errno.EIO, link,
                       str(e))


def _index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


@_on_host
def link_exists(ipr: Any, name: str) -> bool:
    """Whether the host has a link called `name`."""
    return _index(ipr, name) is not None


def _enable_forwarding(path: str = IP_FORWARD) -> None:
    try:
        with open(path, "r+") as f:
            if f.read().strip() != "1":
                f.seek(0)
                f.write("1\n")
    except OSError as e:
        raise KernelError.from_os("write", e, path) from None


@_on_host
def ensure_bridge(ipr: Any, name: str, gateway: str, prefixlen: int, mtu: int = 1500) -> bool:
    """The bridge `name` with `gateway`/`prefixlen` on it, up; True when it was made now."""
    made = False
    index = _index(ipr, name)
    if index is None:
        try:
            ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
        except Exception as e:  # noqa: BLE001 - pyroute2's NetlinkError and OSError
            raise _failure("link add bridge", name, e) from None
        made = True
        index = _index(ipr, name)
    try:
        if index is None:
            raise KernelError("netlink link lookup", errno.ENODEV, name)
        have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
        if gateway not in have:
            ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=index, state="up")
        _enable_forwarding()
    except Exception as e:  # noqa: BLE001
        if made:
            _delete(ipr, name)
        if isinstance(e, KernelError):
            raise
        raise _failure("address add", name, e) from None
    return made


def _delete(ipr: Any, name: str) -> bool:
    index = _index(ipr, name)
    if index is None:
        return False
    try:
        ipr.link("del", index=index)
    except Exception as e:  # noqa: BLE001
        if getattr(e, "code", None) == errno.ENODEV:
            return False  # gone meanwhile (a peer's namespace went away)
        raise _failure("link del", name, e) from None
    return True


def delete_bridge(name: str) -> bool:
    """Remove the bridge `name`; False when there was none."""
    return delete_link(name)


def delete_link(name: str) -> bool:
    """Remove the host's link `name` (a bridge, or a veth with its peer); False when
    there was none. On a socket and thread of its own: a deletion waits for the kernel's
    RCU grace period (tens of milliseconds), which the host's thread must not wait for."""
    def work() -> bool:
        ipr = _iproute()
        try:
            return _delete(ipr, name)
        finally:
            ipr.close()

    return in_new_thread(work)


def delete_endpoint(host_ifname: str) -> bool:
    """Remove a container's veth pair by its host end; False when it was gone already."""
    return delete_link(host_ifname)


@_on_host
def unplug(ipr: Any, host_ifname: str) -> bool:
    """Take a veth's host end off its bridge and down (a millisecond, where deleting the
    pair waits for the kernel's RCU grace period, tens of milliseconds): no frame reaches
    the peer any more, so its address may be given again before the pair is deleted.
    False when the link is gone already."""
    index = _index(ipr, host_ifname)
    if index is None:
        return False
    try:
        ipr.link("set", index=index, state="down", master=0)
    except Exception as e:  # noqa: BLE001
        if getattr(e, "code", None) == errno.ENODEV:
            return False
        raise _failure("link set nomaster down", host_ifname, e) from None
    return True


def _in_netns(path: str, work: Callable[[Any], None]) -> None:
    """Run `work(iproute)` on a thread inside the network namespace kept at `path`, with a
    socket opened there."""
    def inside() -> None:
        ipr = _iproute()
        try:
            work(ipr)
        finally:
            ipr.close()

    in_netns(path, inside)


class Endpoint:
    """What `add_endpoint` makes: one container's interface on one bridge."""

    __slots__ = ("bridge", "host_ifname", "netns", "ifname", "mac", "mtu", "address",
                 "prefixlen", "gateway")

    def __init__(self, *, bridge: str, host_ifname: str, netns: str, ifname: str, mac: str,
                 mtu: int, address: str, prefixlen: int, gateway: str | None) -> None:
        self.bridge, self.host_ifname, self.netns, self.ifname = bridge, host_ifname, netns, ifname
        self.mac, self.mtu, self.address, self.prefixlen = mac, mtu, address, prefixlen
        self.gateway = gateway  # None: no default route (an internal network)


def add_endpoint(ep: Endpoint) -> None:
    """Make `ep`'s veth pair and configure both ends (made or nothing)."""
    _HOST.run(_add_pair, ep)
    try:
        _in_netns(ep.netns, lambda inner: _configure_inside(inner, ep))
    except BaseException as e:
        delete_link(ep.host_ifname)
        if isinstance(e, KernelError):
            raise
        raise _failure("configure", ep.host_ifname, e) from None


def _add_pair(ipr: Any, ep: Endpoint) -> None:
    bridge = _index(ipr, ep.bridge)
    if bridge is None:
        raise KernelError("netlink link lookup", errno.ENODEV, ep.bridge, "no such bridge")
    try:
        fd = os.open(ep.netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise KernelError.from_os("open", e, ep.netns) from None
    try:
        # one message: the pair, its host end on the bridge and up, its peer inside
        ipr.link("add", ifname=ep.host_ifname, kind="veth", mtu=ep.mtu, master=bridge,
                 state="up", peer={"ifname": ep.ifname, "net_ns_fd": fd, "address": ep.mac,
                                   "mtu": ep.mtu})
    except Exception as e:  # noqa: BLE001
        raise _failure("link add veth", ep.host_ifname, e) from None
    finally:
        os.close(fd)
    try:
        host = _index(ipr, ep.host_ifname)
        if host is None:
            raise KernelError("netlink link lookup", errno.ENODEV, ep.host_ifname)
        _hairpin(ipr, host)
    except BaseException:
        _delete(ipr, ep.host_ifname)
        raise


def _hairpin(ipr: Any, index: int) -> None:
    """Hairpin mode on a bridge port (IFLA_BRPORT_MODE, ``bridge_slave hairpin on``): with
    br_netfilter the DNAT of a container's connection to its own published port happens at
    the bridge, which must then send the frame back out of the port it came in by."""
    try:
        ipr.brport("set", index=index, mode=1)
    except Exception as e:  # noqa: BLE001
        raise _failure("brport set hairpin", str(index), e) from None


def _configure_inside(ipr: Any, ep: Endpoint) -> None:
    index = _index(ipr, ep.ifname)
    if index is None:
        raise KernelError("netlink link lookup", errno.ENODEV, ep.ifname, f"in {ep.netns}")
    try:
        ipr.addr("add", index=index, address=ep.address, prefixlen=ep.prefixlen)
        ipr.link("set", index=index, state="up")
        if ep.gateway:
            ipr.route("add", dst="0.0.0.0/0", gateway=ep.gateway, oif=index)
    except Exception as e:  # noqa: BLE001
        raise _failure("configure", f"{ep.ifname} in {ep.netns}", e) from None


@_on_host
def attach_to_bridge(ipr: Any, host_ifname: str, bridge: str) -> bool:
    """Put the host's link `host_ifname` on `bridge` (a bridge made again under running
    containers); False when either is gone."""
    link, master = _index(ipr, host_ifname), _index(ipr, bridge)
    if link is None or master is None:
        return False
    try:
        ipr.link("set", index=link, master=master, state="up")
    except Exception as e:  # noqa: BLE001
        raise _failure("link set master", host_ifname, e) from None
    _hairpin(ipr, link)
    return True


def add_default_route(netns: str, ifname: str, gateway: str) -> None:
    """The default route via `gateway` on `ifname` inside the namespace at `netns` (the
    route a container keeps when the network that gave it one is disconnected)."""
    def work(ipr: Any) -> None:
        index = _index(ipr, ifname)
        if index is None:
            raise KernelError("netlink link lookup", errno.ENODEV, ifname, f"in {netns}")
        try:
            ipr.route("replace", dst="0.0.0.0/0", gateway=gateway, oif=index)
        except Exception as e:  # noqa: BLE001
            raise _failure("route replace default", f"{ifname} in {netns}", e) from None

    _in_netns(netns, work)
