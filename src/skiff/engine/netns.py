"""A container's own network namespace, made by the engine before the container starts.

A container with ``--network none`` (and skiff's ``default``, until bridge networks come)
gets a namespace holding only the loopback interface — up, with 127.0.0.1 and ::1, as
libnetwork leaves it; the kernel makes ``lo`` down, and the runtime, like runc, brings no
interface up. `make_netns` unshares a new network namespace in a short-lived thread (a
namespace is a thread's, so skiffd's other threads stay where they are), brings ``lo`` up
from a socket made inside it, and keeps the namespace by bind-mounting it at `path`
(``$SKIFF_RUN/netns/<id>``, Docker's SandboxKey) for the spec to join by path.
`release_netns` lets it go when the run ends. Made or not at all: a failure half-way
unmounts and removes what was made.

A user-namespace-remapped container cannot use a namespace made here: its root would not
own it (no sysctl, no sysfs, no interface change). Its runtime makes the namespace inside the
container's user namespace, and `loopback_hook` — a createRuntime hook, as Docker uses
libnetwork's setkey hook there — brings that one's loopback up from the host side and, for a
container with networks, has skiffd wire it (`netns_wiring`), which keeps it at the same
place with `bind_netns`, so that what follows is as for a namespace made here.
"""

from __future__ import annotations

import errno
import os

from skiff.errors import KernelError
from skiff.kernel import syscall

WIRING_TIMEOUT = 30  # seconds skiffd may take to wire a remapped container's namespace
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            request = fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, struct.pack("16sh22x", b"lo", 0))
            flags = struct.unpack("16sh22x", request)[1]
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))
        except OSError as e:
            raise KernelError.from_os("ioctl SIOCSIFFLAGS lo", e, "lo") from None


def make_netns(path: str) -> None:
    """A new network namespace with its loopback up, kept at `path` (made; must not exist)."""
    import threading  # (here: the hooks import this module, and need neither)

    from skiff.kernel.netns_thread import in_new_thread

    _mount_point(path)

    def inside() -> None:
        syscall.unshare(syscall.CLONE_NEWNET)
        own = f"/proc/self/task/{threading.get_native_id()}/ns/net"
        syscall.mount(own, path, None, syscall.MS_BIND)
        _loopback_up()

    try:
        in_new_thread(inside)
    except BaseException:
        release_netns(path)
        raise


def bind_netns(source: str, path: str) -> None:
    """Keep the network namespace at `source` (another's: ``/proc/<pid>/ns/net``) at `path`
    too, for as long as `release_netns(path)` has not been called (made; must not exist)."""
    _mount_point(path)
    try:
        syscall.mount(source, path, None, syscall.MS_BIND)
    except BaseException:
        release_netns(path)
        raise


def _mount_point(path: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    except OSError as e:
        raise KernelError.from_os("create", e, path) from None


def release_netns(path: str) -> None:
    """Unmount and remove the namespace kept at `path` (nothing to do when there is none)."""
    try:
        syscall.umount(path, syscall.MNT_DETACH)
    except KernelError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# a createRuntime hook's argv: [python, -S, -I, -c, HOOK_BOOT, <src dir>, [<socket>, <id>]];
# the OCI state (with the container's pid) comes on stdin
HOOK_BOOT = ("import sys;src=sys.argv.pop(1);M=type(sys)\n"
             "for name in ('skiff','skiff.engine'):\n"
             " m=M(name);m.__path__=[src+'/'+name.replace('.','/')];sys.modules[name]=m\n"
             "from skiff.engine.netns import loopback_hook;loopback_hook()")


def loopback_hook_spec(wiring_socket: str = "", container_id: str = "") -> dict[str, object]:
    """The OCI hook that runs `loopback_hook` for a container; with a `wiring_socket`, it
    has the skiffd there wire the container `container_id`'s namespace too."""
    import sys

    from skiff.engine.monitor.launch import src_dir

    args = [sys.executable, "-S", "-I", "-c", HOOK_BOOT, src_dir()]
    if not wiring_socket:
        return {"path": sys.executable, "args": args}
    # a skiffd that never answers fails the start rather than leave it hanging
    return {"path": sys.executable, "args": [*args, wiring_socket, container_id],
            "timeout": WIRING_TIMEOUT}


def loopback_hook() -> None:
    """Bring up the loopback of the network namespace of the container whose OCI state
    is on stdin (this process joins the namespace; it is a hook's, and ends here), then,
    when its argv names a wiring socket and a container, wait for skiffd to wire it."""
    import json
    import sys

    pid = json.load(sys.stdin)["pid"]
    path = f"/proc/{pid}/ns/net"
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        syscall.setns(fd, syscall.CLONE_NEWNET, path)
    finally:
        os.close(fd)
    _loopback_up()
    if len(sys.argv) == 3:  # a unix socket's path is found the same from any netns
        from skiff.engine.netns_wiring import ask_wiring

        ask_wiring(sys.argv[1], sys.argv[2], int(pid))
