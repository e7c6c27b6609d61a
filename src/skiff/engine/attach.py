"""Attach and resize on the engine's side: which containers have a TTY or an open stdin,
where their monitor serves attachers, what an attach needs to know of a container, and the
resize of its terminal — with Docker's events (``attach``, ``detach``, ``resize``).

A container made with ``-t`` or ``-i`` gets a monitor that serves ``attach.sock`` in its
bundle (`monitor.attach_server`, speaking `monitor.control`'s frames); `stdio_of` says what
its start hands the monitor. The API's attach connects there itself (an asyncio stream:
the bytes of a client go on without a thread of the engine's), from `AttachTarget.socket`;
`resize` is a short blocking call. A resize of a container without a TTY does nothing and
is answered as Docker does (its runtime ignores it); one of a container that does not run
is Docker's 409 ``Container <id> is not running``.
"""

from __future__ import annotations

import contextlib
import os
import socket

from skiff.engine.events import actor_attributes
from skiff.engine.monitor import control
from skiff.engine.monitor.launch import Stdio
from skiff.errors import ContainerConflict
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from skiff.engine.containers import ContainerService

ATTACH_SOCKET = "attach.sock"
SUN_PATH_MAX = 100  # (as monitor.attach_server's: that module loads _socket, not for us)
_CONNECT_TIMEOUT = 5.0


@contextlib.contextmanager
def reachable(path: str) -> Iterator[str]:
    """A name to connect to the unix socket at `path` by, while the block lasts: the path,
    or when it is too long for a socket address, the same through its folder's fd (the
    monitor binds it that way too: `attach_server.short_name`)."""
    if len(path.encode()) < SUN_PATH_MAX:
        yield path
        return
    fd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{os.path.basename(path)}"
    finally:
        os.close(fd)


def stdio_of(config: dict[str, Any], bundle: str) -> Stdio | None:
    """What the monitor of a container with `config` serves (None: no TTY, no stdin)."""
    tty, stdin = bool(config.get("Tty")), bool(config.get("OpenStdin"))
    if not (tty or stdin):
        return None
    return Stdio(terminal=tty, open_stdin=stdin,
                 attach_socket=os.path.join(bundle, ATTACH_SOCKET))


class AttachTarget(Record):
    """What an attach of one container goes by (its Config, and where its monitor is)."""

    id: str
    tty: bool
    open_stdin: bool
    stdin_once: bool
    detach_keys: str  # Config.DetachKeys ("": the daemon's default)
    socket: str  # the monitor's attach socket (there while a run of a -t/-i container lasts)
    status: str
    started_at: str
    running: bool


def attach_target(service: ContainerService, ref: str) -> AttachTarget:
    doc = service.inspect(ref)
    config, state = doc.get("Config") or {}, doc.get("State") or {}
    return AttachTarget(
        id=doc["Id"], tty=bool(config.get("Tty")), open_stdin=bool(config.get("OpenStdin")),
        stdin_once=bool(config.get("StdinOnce")),
        detach_keys=str(config.get("DetachKeys") or ""),
        socket=os.path.join(service.bundle_dir(doc["Id"]), ATTACH_SOCKET),
        status=str(state.get("Status") or ""), started_at=str(state.get("StartedAt") or ""),
        running=bool(state.get("Running")))


def emit(service: ContainerService, cid: str, action: str,
         more: dict[str, str] | None = None) -> None:
    """Docker's container event: the event's attributes, the labels over them, then the
    container's ``image`` and ``name`` (moby's LogContainerEventWithAttributes)."""
    doc = service.inspect(cid)
    config = doc.get("Config") or {}
    named = {"name": str(doc.get("Name") or "").lstrip("/")}
    if config.get("Image"):
        named["image"] = str(config["Image"])
    service.events.emit("container", action, doc["Id"],
                        actor_attributes(config.get("Labels"), more, **named))


def resize(service: ContainerService, ref: str, height: int, width: int) -> None:
    """``POST /containers/{id}/resize``: the TTY of a running container is now
    `height` x `width`; a ``resize`` event with both."""
    target = attach_target(service, ref)
    if not target.running:
        raise ContainerConflict(f"Container {target.id} is not running")
    if target.tty:
        frame = control.resize(height, width)  # ValueError past uint16: the API's 400
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(_CONNECT_TIMEOUT)
            with reachable(target.socket) as name:
                sock.connect(name)
            sock.sendall(frame)
        except OSError:
            # the run ended meanwhile: Docker's answer for a container that is not running
            raise ContainerConflict(f"Container {target.id} is not running") from None
        finally:
            sock.close()
    emit(service, target.id, "resize", {"height": str(height), "width": str(width)})
