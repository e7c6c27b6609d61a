"""Fork a process into a set of namespaces: joined by path, made new, or both.

A process cannot move itself into a new pid namespace, only its children, so every
container process is born from two forks, as runc's nsexec does. The runtime (parent)
forks a *stage-1* child that joins the user namespace (or makes one, and waits while the
parent writes its id maps), joins the other namespaces given by path, unshares the new
ones (writing a new time namespace's clock offsets, which only an empty one takes), and
forks the real process, whose host pid it reports before it exits. The parent
is the child subreaper, so that process becomes the parent's own child and `run` can wait
for it. The caller puts the real process into its cgroup (`join_cgroup`) while it already
works: the kernel's first cgroup migration after a while waits out an RCU grace period
(~10 ms here), time the container's init spends building its filesystem meanwhile.
"""

from __future__ import annotations

import os
from skiff.record import Record, field

from skiff.errors import KernelError
from skiff.kernel import signals
from skiff.kernel import syscall as sc
from skiff.oci.runtime_spec import IdMapping
from skiff.runtime.channel import Channel, child_failed

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import Callable, NoReturn


class NamespacePlan(Record, mutable=True):
    join: list[tuple[str, str]] = field(factory=list)  # (type, path); user first
    unshare: int = 0  # CLONE_NEW* flags of namespaces to make, other than user
    new_user: bool = False
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()
    time_offsets: str = ""  # /proc/self/timens_offsets lines for a new time namespace

    @property
    def in_userns(self) -> bool:
        return self.new_user or any(kind == "user" for kind, _ in self.join)


def _write_map(pid: int, name: str, mappings: tuple[IdMapping, ...]) -> None:
    text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)
    path = f"/proc/{pid}/{name}"
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise KernelError.from_os(f"write {name}", e, path) from None


def _write_offsets(text: str) -> None:
    path = "/proc/self/timens_offsets"
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as e:
        raise KernelError.from_os("write timens_offsets", e, path) from None


class Spawned:
    """A spawn under way: the stage-1 child runs; `pid()` finishes it (answering a user
    namespace's request for id maps) and gives the real process's host pid. What the
    caller does in between — making the cgroup, say — overlaps the children's work."""

    def __init__(self, plan: NamespacePlan, stage1: int, chan: Channel) -> None:
        self.plan = plan
        self.stage1 = stage1
        self.chan = chan
        self.done = False

    def pid(self) -> int:
        try:
            if self.plan.new_user:
                self.chan.recv("userns")
                _write_map(self.stage1, "uid_map", self.plan.uid_mappings)
                _write_map(self.stage1, "gid_map", self.plan.gid_mappings)
                self.chan.send("mapped")
            return int(self.chan.recv("pid")["pid"])
        except BaseException:
            _kill(self.stage1)  # it may wait for us (its id maps): it must not hang the reap
            raise
        finally:
            _reap(self.stage1)
            self.done = True

    def abort(self) -> None:
        """Undo a spawn that `pid()` did not finish: the stage-1 child dies, and so does
        the real process if stage 1 got to report it (one it forked but could not report
        reads the end of the channel when the caller closes it, and exits)."""
        if self.done:
            return
        _kill(self.stage1)
        _reap(self.stage1)
        self.done = True
        msg = self.chan.poll(0.2)
        if msg is not None and msg.get("type") == "pid":
            kill_and_reap(int(msg["pid"]))


def spawn(plan: NamespacePlan, child_main: Callable[[Channel], NoReturn]) -> Spawned:
    """Start `child_main` in the planned namespaces (see `Spawned`)."""
    parent, child = Channel.pair()
    sc.set_child_subreaper()
    stage1 = os.fork()
    if stage1 == 0:
        parent.close()
        try:
            _stage1(plan, child, child_main)
        except BaseException as e:  # noqa: BLE001 - anything must reach the parent
            child_failed(child, e)
    child.close()
    return Spawned(plan, stage1, parent)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signals.SIGKILL)
    except ProcessLookupError:
        pass


def kill_and_reap(pid: int) -> None:
    """End a child of ours (we are the subreaper of the container processes) at once."""
    _kill(pid)
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _join(fds: list[tuple[str, str, int]]) -> None:
    for kind, path, fd in fds:
        if kind != "user":
            sc.setns(fd, sc.NAMESPACE_FLAGS[kind], path)


def _stage1(plan: NamespacePlan, chan: Channel, child_main: Callable[[Channel], NoReturn]) -> NoReturn:
    # non-dumpable, as runc's nsexec: a process of the container must not be able to open
    # our /proc/PID/ files (exe, mem, fds), which would reach into the host (execve of the
    # program resets this)
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    fds = [(kind, path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)) for kind, path in plan.join]
    # runc's order: a user namespace given by path first (the others are its own); when
    # the user namespace is new, the given ones first (they belong to the one we are in
    # now, where we still have the capabilities to join them), then the new user one
    for kind, path, fd in fds:
        if kind == "user":
            sc.setns(fd, sc.CLONE_NEWUSER, path)
    if plan.new_user:
        _join(fds)
        sc.unshare(sc.CLONE_NEWUSER)
        chan.send("userns")
        chan.recv("mapped")
    if plan.in_userns:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    if not plan.new_user:
        _join(fds)
    for _, _, fd in fds:
        os.close(fd)
    if plan.unshare:
        sc.unshare(plan.unshare)
    if plan.time_offsets:
        # a new time namespace takes its offsets only before its first process enters it:
        # ours stays outside (unshare moves only the children), the fork below is the first
        _write_offsets(plan.time_offsets)
    pid = os.fork()
    if pid == 0:
        try:
            child_main(chan)
        except BaseException as e:  # noqa: BLE001
            child_failed(chan, e)
    chan.send("pid", pid=pid)
    os._exit(0)
