"""`exec`: start one more process inside a created or running container.

The new process joins every namespace the container's init is in (through
/proc/<init>/ns/*, user namespace first) and its cgroup, then becomes its `process`
exactly as the init did (user, capabilities, no_new_privs, the container's seccomp filter)
and execs. Without `--process`, the process is the container's own with the command line's
changes, as runc builds it.
"""

from __future__ import annotations

import os
from skiff.record import Record, replace

from skiff.errors import RuntimeError_
from skiff.oci.runtime_spec import Capabilities, Process
from skiff.runtime import process
from skiff.runtime.channel import Channel, join_cgroup, wait_cgroup
from skiff.runtime.container import Container, open_container
from skiff.runtime.foreground import wait_for
from skiff.runtime.spawn import NamespacePlan, kill_and_reap, spawn
from skiff.runtime.state import StateStore, write_pid_file
from skiff.kernel import syscall as sc

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    import socket
    from typing import NoReturn


class ExecOptions(Record, mutable=True):
    args: tuple[str, ...] = ()
    process: Process | None = None  # from --process; replaces everything below
    tty: bool = False
    console_socket: str | None = None
    detach: bool = False
    pid_file: str | None = None
    cwd: str | None = None
    env: tuple[str, ...] = ()
    user: str | None = None
    additional_gids: tuple[int, ...] = ()
    caps: tuple[str, ...] = ()
    no_new_privs: bool = False
    apparmor: str | None = None
    process_label: str | None = None
    preserve_fds: int = 0


def _parse_user(text: str) -> tuple[int, int | None]:
    uid, _, gid = text.partition(":")
    try:
        return int(uid), (int(gid) if gid else None)
    except ValueError:
        raise RuntimeError_(f"--user {text!r}: give numeric UID[:GID]") from None


def build_process(base: Process, opts: ExecOptions) -> Process:
    if opts.process is not None:
        return opts.process
    if not opts.args:
        raise RuntimeError_("exec: give a command or --process")
    user = base.user
    if opts.user:  # runc: the container's gid unless one is given
        uid, gid = _parse_user(opts.user)
        user = replace(user, uid=uid, gid=gid if gid is not None else user.gid)
    if opts.additional_gids:  # runc: added to the container's
        user = replace(user, additional_gids=user.additional_gids + opts.additional_gids)
    capabilities = base.capabilities
    if opts.caps:
        c = capabilities or Capabilities()
        extra = tuple(n if n.startswith("CAP_") else f"CAP_{n.upper()}" for n in opts.caps)
        capabilities = Capabilities(bounding=c.bounding + extra, effective=c.effective + extra,
                                    inheritable=c.inheritable, permitted=c.permitted + extra,
                                    ambient=c.ambient)
    return replace(
        base, args=tuple(opts.args), terminal=opts.tty, cwd=opts.cwd or base.cwd,
        env=base.env + tuple(opts.env), user=user, capabilities=capabilities,
        no_new_privileges=base.no_new_privileges or opts.no_new_privs,
        apparmor_profile=opts.apparmor or base.apparmor_profile,
        selinux_label=opts.process_label or base.selinux_label, console_size=None)


def _plan(init_pid: int, namespaces: tuple[str, ...]) -> NamespacePlan:
    plan = NamespacePlan()
    for kind in sorted(namespaces, key=lambda k: k != "user"):
        plan.join.append((kind, f"/proc/{init_pid}/ns/{sc.NAMESPACE_FILES[kind]}"))
    return plan


def exec_process(store: StateStore, container_id: str, opts: ExecOptions) -> int:
    """skiff-runtime exec: start the process, then stay with it (its exit code) unless
    `detach`."""
    c = open_container(store, container_id)
    if opts.process is not None:  # (then the container's own process is not even decoded)
        proc = opts.process
    else:
        base = c.spec.process
        assert base is not None
        proc = build_process(base, opts)
    term: socket.socket | None = None
    ours: socket.socket | None = None
    if proc.terminal:  # socket and console cost ~4 ms of a ~20 ms exec: only for a terminal
        import socket

        from skiff.runtime import console
        if opts.console_socket:
            term = console.connect(opts.console_socket)
        elif opts.detach:
            raise RuntimeError_("exec -t -d needs --console-socket")
        else:
            ours, term = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = start_in(c, proc, term, opts.preserve_fds)
    if opts.pid_file:
        write_pid_file(opts.pid_file, pid)
    if opts.detach:
        return 0
    return wait_for(pid, ours)


def start_in(c: Container, proc: Process, term: socket.socket | None,
             preserve: int = 0) -> int:
    """Start `proc` in the running container `c` with our stdio (or, with a terminal, a
    pty whose master goes out on `term`, which is closed here); its host pid. We are its
    parent (the child subreaper of the forks between)."""
    c.require("exec")
    linux = c.linux
    filt = process.compile_seccomp(linux.seccomp, os.path.join(c.store.root, ".seccomp"))
    plan = _plan(c.state.pid, tuple(n.type for n in linux.namespaces))
    lsms = process.host_lsms()
    persona = process.persona_of(linux)
    if term is not None:  # now: the child cannot import once in the container's filesystem
        from skiff.runtime import console

    affinity = proc.exec_cpu_affinity

    def child(chan: Channel) -> NoReturn:
        process.seal_imports()  # we are in the container's mount namespace already
        if affinity is not None:
            # "CPUs ... to be run on initially, before the transition to container's
            # cgroup": set here, not in the caller (which may be skiffd itself)
            process.set_affinity(affinity.initial, "process.execCPUAffinity.initial")
        os.setsid()
        if term is not None:
            console.take_terminal(term, proc.console_size, console=False)
        env = process.environment(proc)
        path = process.find_executable(proc, env)
        # shed privilege while the parent moves us into the cgroup (about 1 ms each, done
        # at once on two CPUs), as the init does: none of it forks or execs, which must wait
        process.become(proc, filt, lsms, persona)
        wait_cgroup(chan)
        if affinity is not None:  # "after the transition to container's cgroup"
            process.set_affinity(affinity.final, "process.execCPUAffinity.final")
        process.preserve_fds(preserve, (chan.rfd, chan.wfd))
        chan.send("ready")
        chan.close()
        process.execute(proc, filt, path, env)
        raise AssertionError("unreachable")

    try:
        spawned = spawn(plan, child)
        chan = spawned.chan
        try:
            pid = spawned.pid()
        except BaseException:
            spawned.abort()  # (nothing left to undo once pid() has run, failed or not)
            chan.close()
            raise
        try:
            join_cgroup(chan, c.join_cgroup, pid)
            chan.recv("ready")
        except BaseException:
            kill_and_reap(pid)
            raise
        finally:
            chan.close()
    finally:
        if term is not None:
            term.close()
    return pid
