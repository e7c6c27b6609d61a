"""Exec instances: Docker's ``docker exec`` model over the runtime's exec.

`ExecService.create` checks a ``POST /containers/{id}/exec`` body against a running
container and keeps the instance in memory under a new 64-hex ID, as dockerd keeps them (an
exec does not outlive the daemon's memory of it; exited ones go after `KEEP_EXITED`
seconds, or with their container). `start` composes the process as moby's exec does — the
container's spec process with the exec's command, the container's environment (TERM from
the exec's own TTY) with the exec's Env over it, its user and working folder unless the exec
names them, every capability skiffd holds with ``Privileged`` — and starts it under an exec
parent (`exec_process`), its output on pipes (or a pty) whose ends go to the caller. A
program that cannot be started fails the start with Docker's words and sets the exec's exit
code: 127 when it is not found, 126 otherwise (moby's translateContainerdStartErr), as
any other failed start does (a user not in the container's passwd, a container gone). The
exit arrives from the reaper's thread; `when_exited` hands it on. Events: ``exec_create:
CMD``, ``exec_start: CMD`` (attribute execID), ``exec_die`` (execID, exitCode) and
``exec_detach`` (execID: the client left a TTY exec with the detach keys), with the
container's image, name and labels, as moby logs them.
"""

from __future__ import annotations

import os
import threading
import time

from skiff.engine.names import new_id
from skiff.errors import (
    ContainerConflict,
    ContainerStartError,
    InvalidArgument,
    NoSuchContainer,
    NoSuchExec,
    RuntimeError_,
    SkiffError,
)
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any

    from skiff.engine.containers import ContainerService
    from skiff.engine.exec_process import Launched
    from skiff.oci.runtime_spec import Process
    from skiff.runtime.container import Container

    Launch = Callable[[Container, Process, tuple[int, int, int], socket.socket | None],
                      Launched]

_log = logger("skiff.engine.exec")
RESIZE_WAIT = 10.0  # seconds a resize waits for its exec to start, as moby's
KEEP_EXITED = 600.0  # seconds an exited exec stays inspectable (moby's GC: 5 to 10 min)


def _strings(body: dict[str, Any], name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str) and name == "Cmd":  # strslice: one string is one argument
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"json: cannot unmarshal {name}: want an array of strings")
    return value


def _console_size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and
            all(isinstance(v, int) and v >= 0 for v in value)):
        raise InvalidArgument("ConsoleSize: want [height, width]")
    return (value[0], value[1]) if value[0] and value[1] else None


class ExecInstance:
    """One exec: what was asked, and how its run went."""

    __slots__ = ("id", "container_id", "cmd", "env", "user", "working_dir", "privileged",
                 "tty", "stdin", "stdout", "stderr", "detach_keys", "console_size",
                 "running", "exit_code", "pid", "parent", "exited_at", "terminal",
                 "waiters", "started")

    def __init__(self, exec_id: str, container_id: str, body: dict[str, Any],
                 detach_keys: bytes = b"") -> None:
        self.id = exec_id
        self.container_id = container_id
        self.cmd = _strings(body, "Cmd")
        self.env = _strings(body, "Env")
        self.user = str(body.get("User") or "")
        self.working_dir = str(body.get("WorkingDir") or "")
        self.privileged = bool(body.get("Privileged"))
        self.tty = bool(body.get("Tty"))
        self.stdin = bool(body.get("AttachStdin"))
        self.stdout = bool(body.get("AttachStdout"))
        self.stderr = bool(body.get("AttachStderr"))
        self.detach_keys = detach_keys  # DetachKeys as bytes (the API reads the notation)
        self.console_size = _console_size(body.get("ConsoleSize"))
        self.running = False
        self.exit_code: int | None = None
        self.pid = 0
        self.parent = 0
        self.exited_at = 0.0
        self.terminal = -1  # our dup of the pty master, for resize
        self.waiters: list[Callable[[int], None]] = []
        self.started = threading.Event()  # set once a start has run or failed

    def inspect(self) -> dict[str, Any]:
        import base64

        process: dict[str, Any] = {"tty": self.tty, "entrypoint": self.cmd[0],
                                   "arguments": self.cmd[1:], "privileged": self.privileged}
        if self.user:
            process["user"] = self.user
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": process, "OpenStdin": self.stdin,
                "OpenStderr": self.stderr, "OpenStdout": self.stdout, "CanRemove": False,
                "ContainerID": self.container_id,
                # a Go []byte: base64 in JSON
                "DetachKeys": base64.b64encode(self.detach_keys).decode(),
                "Pid": self.pid}


class ExecStreams:
    """The caller's ends of a started exec's stdio (-1 where there is none): `stdin` to
    write, `stdout` and `stderr` to read — or, with a TTY, `terminal` (the pty's master)
    for both. The caller closes them."""

    __slots__ = ("stdin", "stdout", "stderr", "terminal")

    def __init__(self) -> None:
        self.stdin = self.stdout = self.stderr = self.terminal = -1

    def close(self) -> None:
        for name in self.__slots__:
            fd = getattr(self, name)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, -1)


def start_failure(message: str, command: str) -> ContainerStartError:
    """moby's exec start error: runc's words, 127 for a program not there, 126 else."""
    from skiff.engine.monitor.startup import start_error

    code, text = start_error(message, command, operation="exec")
    return ContainerStartError(text, 127 if code == 127 else 126)


def _command_text(cmd: list[str]) -> str:
    """The command in an exec event's action, as moby writes it: its entrypoint, a
    space, then its arguments (so ``sh`` alone is ``sh ``)."""
    return cmd[0] + " " + " ".join(cmd[1:])


class ExecService:
    """The exec instances of the containers of `containers`."""

    def __init__(self, containers: ContainerService, launch: Launch | None = None) -> None:
        from skiff.engine.exec_process import ExitReaper, launch_exec

        self.containers = containers
        self.launch: Launch = launch or launch_exec
        self._warm = launch is not None  # a stand-in launcher needs no runtime loaded
        self._lock = threading.Lock()
        self._execs: dict[str, ExecInstance] = {}
        self._by_parent: dict[int, ExecInstance] = {}
        self._reaper = ExitReaper(self._exited)

    def close(self) -> None:
        self._reaper.close()

    @property
    def events(self) -> Any:
        return self.containers.events

    # -- create -----------------------------------------------------------------------------
    def _active(self, ref: str) -> tuple[str, dict[str, Any]]:
        """moby's getActiveContainer: the container, running, not paused or restarting."""
        cid = self.containers.resolve(ref)
        row = self.containers.db.get(cid)
        if row is None:
            raise NoSuchContainer(ref)
        state = row.state
        if not state.get("Running"):
            raise ContainerConflict(f"Container {cid} is not running")
        if state.get("Paused"):
            raise ContainerConflict(f"Container {ref} is paused, unpause the container "
                                    f"before exec")
        if state.get("Restarting"):
            raise ContainerConflict(f"Container {cid} is restarting, wait until the "
                                    f"container is running")
        return cid, {"image": str(row.doc["Config"].get("Image") or ""), "name": row.name,
                     **(row.doc["Config"].get("Labels") or {})}

    def create(self, ref: str, body: dict[str, Any],
               detach_keys: bytes = b"") -> dict[str, str]:
        """``POST /containers/{id}/exec``: ``{"Id": …}``. `detach_keys`: the body's
        DetachKeys as bytes ("" for the daemon's default)."""
        if not isinstance(body, dict):
            raise InvalidArgument("invalid JSON: the request body must be an ExecConfig "
                                  "object")
        cid, attributes = self._active(ref)
        from skiff.runtime import cgroup_warmup

        # the kernel's cgroup-migration toll (an RCU grace period, 10-20 ms), paid now
        # while the client sends the start: the exec's own move into the cgroup then passes
        cgroup_warmup.start()
        instance = ExecInstance(new_id(), cid, body, detach_keys)
        if not instance.cmd:
            raise InvalidArgument("No exec command specified")
        if not self._warm:
            from skiff.engine.exec_process import warm_up

            warm_up()
            self._warm = True
        self._sweep()
        with self._lock:
            self._execs[instance.id] = instance
        self._event(instance, "exec_create: " + _command_text(instance.cmd), attributes)
        return {"Id": instance.id}

    def _event(self, instance: ExecInstance, action: str,
               attributes: dict[str, str] | None = None, **more: str) -> None:
        if attributes is None:
            row = self.containers.db.get(instance.container_id)
            attributes = {} if row is None else {
                "image": str(row.doc["Config"].get("Image") or ""), "name": row.name,
                **(row.doc["Config"].get("Labels") or {})}
        self.events.emit("container", action, instance.container_id,
                         {**attributes, "execID": instance.id, **more})

    def _sweep(self) -> None:
        """Forget exited execs kept long enough, and those of containers gone."""
        now = time.monotonic()
        with self._lock:
            done = [e for e in self._execs.values() if e.exit_code is not None and not
                    e.running]
        for instance in done:
            if now - instance.exited_at > KEEP_EXITED or \
                    self.containers.db.get(instance.container_id) is None:
                with self._lock:
                    self._execs.pop(instance.id, None)

    def get(self, exec_id: str) -> ExecInstance:
        with self._lock:
            instance = self._execs.get(exec_id)
        if instance is None:
            raise NoSuchExec(exec_id)
        if not instance.running and self.containers.db.get(instance.container_id) is None:
            with self._lock:  # its container was removed: so is the exec
                self._execs.pop(exec_id, None)
            # moby's getExecConfig words it so: the exec was found, its container was not
            raise NoSuchContainer(exec_id)
        return instance

    def inspect(self, exec_id: str) -> dict[str, Any]:
        """``GET /exec/{id}/json``: Docker's ExecInspect."""
        instance = self.get(exec_id)
        with self._lock:
            return instance.inspect()

    # -- start ------------------------------------------------------------------------------
    def start(self, exec_id: str, *, detach: bool = False,
              console_size: tuple[int, int] | None = None) -> ExecStreams:
        """``POST /exec/{id}/start``: the process runs; its stdio's far ends (all -1 when
        `detach`: a detached exec's stdio is /dev/null)."""
        instance = self.get(exec_id)
        with self._lock:
            if instance.exit_code is not None:
                raise ContainerConflict(f"Error: Exec command {exec_id} has already run")
            if instance.running:
                raise ContainerConflict(f"Error: Exec command {exec_id} is already running")
            instance.running = True
        self._event(instance, "exec_start: " + _command_text(instance.cmd))
        streams = ExecStreams()
        try:
            container = self._runtime_container(instance)
            process = self._process(instance, container, console_size)
            return self._launch(instance, container, process, streams, detach)
        except BaseException:
            streams.close()
            self._failed(instance, 126)  # moby's code for any start that went wrong
            raise

    def _failed(self, instance: ExecInstance, code: int) -> None:
        """A start that did not get the process running: the exec is over, with `code`."""
        with self._lock:
            if instance.exit_code is not None or instance.parent:
                return
            instance.running = False
            instance.exit_code = code
            instance.exited_at = time.monotonic()
            waiters, instance.waiters = instance.waiters, []
        instance.started.set()
        for waiter in waiters:
            waiter(code)

    def _runtime_container(self, instance: ExecInstance) -> Container:
        from skiff.runtime.container import open_container
        from skiff.runtime.state import StateStore

        cid = instance.container_id
        self._active(cid)
        try:
            return open_container(StateStore(self.containers.runtime_root), cid)
        except RuntimeError_:
            raise ContainerConflict(f"Container {cid} is not running") from None

    def _process(self, instance: ExecInstance, container: Container,
                 console_size: tuple[int, int] | None) -> Process:
        """moby's exec process: the container's, with the exec's changes."""
        from skiff.engine.oci_spec import (all_capabilities, container_env, grantable,
                                           own_bounding_set, replace_or_append_env,
                                           resolve_user)
        from skiff.oci.runtime_spec import Capabilities, ConsoleSize, User
        from skiff.record import replace

        row = self.containers.db.get(instance.container_id)
        if row is None:
            raise NoSuchContainer(instance.container_id)
        config, host = row.doc["Config"], row.doc["HostConfig"]
        spec = container.spec
        base = spec.process
        assert base is not None and spec.root is not None
        rootfs = os.path.join(container.state.bundle, spec.root.path)
        who = resolve_user(rootfs, instance.user or config.get("User") or "",
                           host.get("GroupAdd") or ())
        env = replace_or_append_env(container_env({**config, "Tty": instance.tty}),
                                    instance.env)
        bounding = base.capabilities.bounding if base.capabilities else ()
        if instance.privileged:
            bounding = tuple(grantable(all_capabilities(), own_bounding_set()))
        held = bounding if who.uid == 0 else ()
        size = console_size or instance.console_size
        return replace(
            base, args=tuple(instance.cmd), env=tuple(env), terminal=instance.tty,
            cwd=instance.working_dir or config.get("WorkingDir") or base.cwd,
            user=User(uid=who.uid, gid=who.gid, additional_gids=who.additional_gids),
            capabilities=Capabilities(bounding=bounding, effective=held, permitted=held,
                                      ambient=()),
            console_size=ConsoleSize(height=size[0], width=size[1]) if size else None)

    def _launch(self, instance: ExecInstance, container: Container, process: Process,
                streams: ExecStreams, detach: bool) -> ExecStreams:
        import socket

        theirs: list[int] = []  # the process's ends: ours to close once it has them
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        theirs.append(null)
        stdio = [null, null, null]
        ours = term = None
        try:
            if not detach and instance.tty:
                ours, term = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            elif not detach:
                if instance.stdin:
                    r, streams.stdin = os.pipe2(os.O_CLOEXEC)
                    theirs.append(r)
                    stdio[0] = r
                for i, wanted in ((1, instance.stdout), (2, instance.stderr)):
                    if wanted:
                        r, w = os.pipe2(os.O_CLOEXEC)
                        theirs.append(w)
                        stdio[i] = w
                        setattr(streams, "stdout" if i == 1 else "stderr", r)
            try:
                launched = self.launch(container, process, (stdio[0], stdio[1], stdio[2]),
                                       term)
            except RuntimeError_ as e:
                failure = start_failure(str(e), instance.cmd[0])
                self._failed(instance, failure.exit_code)
                raise failure from None
            if ours is not None:
                from skiff.runtime.console import receive_master

                streams.terminal = receive_master(ours)
            with self._lock:
                instance.pid, instance.parent = launched.pid, launched.parent
                if streams.terminal >= 0:
                    instance.terminal = os.dup(streams.terminal)
                self._by_parent[launched.parent] = instance
            instance.started.set()
            self._reaper.watch(launched.parent)
            return streams
        finally:
            for fd in theirs:
                os.close(fd)
            for sock in (ours, term):
                if sock is not None:
                    sock.close()

    def _exited(self, parent: int, code: int) -> None:
        """The reaper's news: an exec parent ended, with its process's exit code."""
        with self._lock:
            instance = self._by_parent.pop(parent, None)
            if instance is None:
                return
            instance.running = False
            instance.exit_code = code
            instance.exited_at = time.monotonic()
            if instance.terminal >= 0:
                os.close(instance.terminal)
                instance.terminal = -1
            waiters, instance.waiters = instance.waiters, []
        _log.debug("exec %s in %s exited %d", instance.id[:12], instance.container_id[:12],
                   code)
        self._event(instance, "exec_die", exitCode=str(code))
        for waiter in waiters:
            waiter(code)

    def detached(self, exec_id: str) -> None:
        """The client of the exec left with the detach keys (the process goes on)."""
        self._event(self.get(exec_id), "exec_detach")

    def when_exited(self, exec_id: str, callback: Callable[[int], None]) -> None:
        """Call `callback(exit_code)` once the exec has exited (at once if it has; from
        the reaper's thread otherwise)."""
        with self._lock:
            instance = self._execs.get(exec_id)
            if instance is None:
                raise NoSuchExec(exec_id)
            if instance.exit_code is None:
                instance.waiters.append(callback)
                return
            code = instance.exit_code
        callback(code)

    # -- resize -----------------------------------------------------------------------------
    def resize(self, exec_id: str, height: int, width: int) -> None:
        """``POST /exec/{id}/resize``: the pty's size, once the exec has started (a client
        resizes as soon as it is attached, which is before the process runs: moby waits
        up to 10 s for it too). Nothing to do for an exec without a TTY, or one over."""
        from skiff.runtime.console import set_size

        instance = self.get(exec_id)
        if not instance.started.wait(RESIZE_WAIT):
            raise SkiffError("timeout waiting for exec session ready")
        with self._lock:
            if instance.terminal >= 0:
                set_size(instance.terminal, height, width)
