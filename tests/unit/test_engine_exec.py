"""Exec instances (`engine.exec`) over stand-ins: a container service of plain rows, and a
launcher that forks a real child exiting with the code asked (so the reaper, `exec_process.
ExitReaper`, reaps real processes). The state machine (404, the 409s), Docker's inspect
shape, the events, 126/127 for a start that failed, the exec's process as moby composes it,
and the reaper on its own."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from skiff.engine.events import EventLog
from skiff.engine.exec import ExecService
from skiff.engine.exec_process import ExitReaper, Launched
from skiff.errors import (ContainerConflict, ContainerStartError, InvalidArgument,
                          NoSuchContainer, NoSuchExec, RuntimeError_, SkiffError)

CID = "c" * 64


class Row:
    def __init__(self, state: dict[str, Any], config: dict[str, Any] | None = None) -> None:
        self.id = CID
        self.name = "box"
        self.state = state
        self.doc = {"Config": config or {"Image": "busybox", "Labels": {"team": "a"}},
                    "HostConfig": {}}


class Containers:
    """What ExecService asks of the container service."""

    def __init__(self) -> None:
        self.rows = {CID: Row({"Running": True})}
        self.events = EventLog()
        self.runtime_root = "/nonexistent"
        self.db = self

    def get(self, cid: str) -> Row | None:
        return self.rows.get(cid)

    def resolve(self, ref: str) -> str:
        if ref in (CID, "box") and CID in self.rows:
            return CID
        raise NoSuchContainer(ref)


class Launcher:
    """Forks a child that exits with `code` once `release` is set (at once by default);
    or fails as the runtime would with `error`."""

    def __init__(self) -> None:
        self.code = 0
        self.error: str | None = None
        self.hold = False
        self.gates: list[int] = []
        self.calls: list[Any] = []

    def __call__(self, container: Any, process: Any, stdio: tuple[int, int, int],
                 terminal: Any) -> Launched:
        self.calls.append((container, process, stdio, terminal))
        if self.error is not None:
            raise RuntimeError_(self.error)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(w)
            if self.hold:
                os.read(r, 1)
            os._exit(self.code)
        os.close(r)
        self.gates.append(w)
        return Launched(pid, pid)

    def release(self) -> None:
        for w in self.gates:
            os.close(w)
        self.gates.clear()


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ExecService, Containers, Launcher]]:
    containers = Containers()
    launcher = Launcher()
    service = ExecService(containers, launch=launcher)  # type: ignore[arg-type]
    monkeypatch.setattr(service, "_runtime_container", lambda instance: "the container")
    monkeypatch.setattr(service, "_process", lambda instance, c, size: ("process", instance.cmd))
    try:
        yield service, containers, launcher
    finally:
        launcher.release()
        service.close()


def exited(service: ExecService, exec_id: str, timeout: float = 5) -> int:
    got: list[int] = []
    done = threading.Event()

    def told(code: int) -> None:
        got.append(code)
        done.set()

    service.when_exited(exec_id, told)
    assert done.wait(timeout), "no exit told"
    return got[0]


def test_create_refuses_what_docker_refuses(setup: Any) -> None:
    service, containers, _ = setup
    with pytest.raises(NoSuchContainer):
        service.create("other", {"Cmd": ["true"]})
    with pytest.raises(InvalidArgument, match="No exec command specified"):
        service.create("box", {"Cmd": []})
    with pytest.raises(InvalidArgument):
        service.create("box", {"Cmd": [1]})
    for state, words in (({"Running": False}, f"Container {CID} is not running"),
                         ({"Running": True, "Paused": True},
                          "Container box is paused, unpause the container before exec"),
                         ({"Running": True, "Restarting": True},
                          f"Container {CID} is restarting, wait until the container is "
                          f"running")):
        containers.rows[CID].state = state
        with pytest.raises(ContainerConflict) as refused:
            service.create("box", {"Cmd": ["true"]})
        assert str(refused.value) == words
    assert containers.events.since() == []  # nothing was made


def test_inspect_has_dockers_shape_before_and_after(setup: Any) -> None:
    service, containers, launcher = setup
    launcher.code = 3
    eid = service.create("box", {"Cmd": ["sh", "-c", "exit 3"], "User": "nobody",
                                 "AttachStdout": True}, b"\x10\x11")["Id"]
    assert len(eid) == 64
    doc = service.inspect(eid)
    assert doc == {"ID": eid, "Running": False, "ExitCode": None,
                   "ProcessConfig": {"tty": False, "entrypoint": "sh",
                                     "arguments": ["-c", "exit 3"], "privileged": False,
                                     "user": "nobody"},
                   "OpenStdin": False, "OpenStderr": False, "OpenStdout": True,
                   "CanRemove": False, "ContainerID": CID, "DetachKeys": "EBE=", "Pid": 0}
    streams = service.start(eid, detach=True)
    assert (streams.stdin, streams.stdout, streams.stderr, streams.terminal) == (-1,) * 4
    assert exited(service, eid) == 3
    doc = service.inspect(eid)
    assert (doc["Running"], doc["ExitCode"]) == (False, 3) and doc["Pid"] > 0


def test_the_states_and_events(setup: Any) -> None:
    service, containers, launcher = setup
    launcher.hold = True
    eid = service.create("box", {"Cmd": ["sh", "-c", "x"], "AttachStdout": True,
                                 "AttachStderr": True})["Id"]
    streams = service.start(eid)
    try:
        assert streams.stdout >= 0 and streams.stderr >= 0 and streams.stdin == -1
        assert service.inspect(eid)["Running"] is True
        with pytest.raises(ContainerConflict, match=f"Error: Exec command {eid} is already "
                                                     f"running"):
            service.start(eid)
        launcher.release()
        assert exited(service, eid) == 0
    finally:
        streams.close()
    with pytest.raises(ContainerConflict, match=f"Error: Exec command {eid} has already run"):
        service.start(eid)
    with pytest.raises(NoSuchExec, match="No such exec instance: nope"):
        service.inspect("nope")
    events = [(e.action, e.actor_id, e.attributes) for e in containers.events.since()]
    common = {"image": "busybox", "name": "box", "team": "a", "execID": eid}
    assert events == [("exec_create: sh -c x", CID, common),
                      ("exec_start: sh -c x", CID, common),
                      ("exec_die", CID, {**common, "exitCode": "0"})]


def test_a_start_that_fails_sets_dockers_code(setup: Any) -> None:
    service, containers, launcher = setup
    for error, code in (('exec: "nope": executable file not found in $PATH', 127),
                        ('exec: "/etc": permission denied', 126),
                        ("chdir to cwd: no such file or directory", 126)):
        launcher.error = error
        eid = service.create("box", {"Cmd": [error.split('"')[1] if '"' in error else "x"]}
                             )["Id"]
        with pytest.raises(ContainerStartError) as failed:
            service.start(eid)
        assert failed.value.exit_code == code
        assert str(failed.value) == (f"OCI runtime exec failed: exec failed: unable to "
                                     f"start container process: {error}: unknown")
        assert service.inspect(eid)["ExitCode"] == code
        assert exited(service, eid) == code
    assert "exec_die" not in [e.action for e in containers.events.since()]


def test_any_other_failed_start_is_126(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    service, _, launcher = setup

    def no_user(instance: Any, container: Any, size: Any) -> Any:
        raise InvalidArgument("unable to find user x: no matching entries in passwd file")

    monkeypatch.setattr(service, "_process", no_user)
    eid = service.create("box", {"Cmd": ["true"], "User": "x"})["Id"]
    with pytest.raises(InvalidArgument):
        service.start(eid)
    assert service.inspect(eid)["ExitCode"] == 126 and launcher.calls == []
    assert exited(service, eid) == 126


def test_execs_go_with_their_container(setup: Any) -> None:
    service, containers, launcher = setup
    eid = service.create("box", {"Cmd": ["true"]})["Id"]
    service.start(eid, detach=True)
    exited(service, eid)
    del containers.rows[CID]
    with pytest.raises(NoSuchContainer, match=f"No such container: {eid}"):
        service.inspect(eid)  # moby's answer for an exec found whose container is gone
    with pytest.raises(NoSuchExec):
        service.inspect(eid)  # and then it is forgotten


def test_exited_execs_are_forgotten_after_a_while(setup: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.engine.exec as module

    service, containers, launcher = setup
    old = service.create("box", {"Cmd": ["true"]})["Id"]
    service.start(old, detach=True)
    exited(service, old)
    monkeypatch.setattr(module, "KEEP_EXITED", 0.0)
    time.sleep(0.01)
    service.create("box", {"Cmd": ["true"]})
    with pytest.raises(NoSuchExec):
        service.inspect(old)


def test_resize_waits_for_the_start_and_ignores_no_tty(setup: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.engine.exec as module

    service, _, _ = setup
    eid = service.create("box", {"Cmd": ["true"]})["Id"]
    monkeypatch.setattr(module, "RESIZE_WAIT", 0.05)
    with pytest.raises(SkiffError, match="timeout waiting for exec session ready"):
        service.resize(eid, 10, 10)
    service.start(eid, detach=True)
    service.resize(eid, 10, 10)  # no TTY: nothing to do


def test_the_process_is_the_containers_with_the_execs_changes(tmp_path: Path) -> None:
    from skiff.oci.codec import decode_object
    from skiff.oci.runtime_spec import Spec
    from skiff.runtime.container import Container
    from skiff.runtime.state import ContainerState

    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n"
                                           "app:x:1000:1000::/home/app:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:50:app\n")
    spec = decode_object(Spec, {
        "ociVersion": "1.0.2", "root": {"path": "rootfs"},
        "process": {"args": ["sleep", "1"], "cwd": "/srv", "env": ["PATH=/bin", "A=run"],
                    "user": {"uid": 1000, "gid": 1000},
                    "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"]},
                    "noNewPrivileges": True},
        "linux": {}})
    state = ContainerState(id=CID, bundle=str(tmp_path), rootfs=str(rootfs), pid=1,
                           pid_start=1, created="", cgroup_path="/x", config={})
    container = Container(None, state, _spec=spec)  # type: ignore[arg-type]
    containers = Containers()
    containers.rows[CID].doc = {"Config": {"Image": "busybox", "Env": ["A=run"],
                                           "User": "app", "WorkingDir": "/srv",
                                           "Hostname": "h"},
                                "HostConfig": {"GroupAdd": ["50"]}}
    service = ExecService(containers, launch=Launcher())  # type: ignore[arg-type]
    try:
        eid = service.create("box", {"Cmd": ["id"], "Env": ["B=exec", "A=exec"]})["Id"]
        instance = service.get(eid)
        p = service._process(instance, container, None)
        assert p.args == ("id",) and p.cwd == "/srv" and not p.terminal
        assert p.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                         "HOSTNAME=h", "A=exec", "B=exec")
        assert (p.user.uid, p.user.gid, p.user.additional_gids) == (1000, 1000,
                                                                    (1000, 50, 50))
        assert p.capabilities is not None and p.capabilities.effective == ()
        assert p.no_new_privileges
        eid = service.create("box", {"Cmd": ["id"], "User": "root", "WorkingDir": "/tmp",
                                     "Tty": True, "Privileged": True,
                                     "ConsoleSize": [20, 70]})["Id"]
        p = service._process(service.get(eid), container, None)
        assert p.user.uid == 0 and p.cwd == "/tmp" and p.terminal
        assert "TERM=xterm" in p.env
        assert p.console_size is not None and (p.console_size.height,
                                               p.console_size.width) == (20, 70)
        assert p.capabilities is not None
        assert len(p.capabilities.bounding) > 2
        assert p.capabilities.effective == p.capabilities.bounding
    finally:
        service.close()


def test_the_reaper_reaps_every_parent_with_its_code() -> None:
    told: dict[int, int] = {}
    done = threading.Event()
    expected = {}

    def on_exit(pid: int, code: int) -> None:
        told[pid] = code
        if len(told) == 5:
            done.set()

    reaper = ExitReaper(on_exit)
    try:
        for code in (0, 1, 7, 127):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                os._exit(code)
            expected[pid] = code
            reaper.watch(pid)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            time.sleep(30)
            os._exit(0)
        expected[pid] = 128 + signal.SIGKILL
        reaper.watch(pid)
        os.kill(pid, signal.SIGKILL)
        assert done.wait(5), told
        assert told == expected
    finally:
        reaper.close()
    with pytest.raises(RuntimeError_):
        reaper.watch(os.getpid())
