"""`create`: make a container from a bundle and leave its init waiting to be started.

The spec is checked first (its fields, sysctls against namespaces, namespace paths, the
seccomp filter). Then each resource is made with its undo registered at once — state
folder (locked until the state is saved), exec fifo, the children, cgroup, the init —
so a failure at any later step (a cgroup limit the kernel refuses, a bad mount, a missing
binary, a failing hook) leaves nothing behind and reports what failed. The cgroup is made
while the children already unshare and fork, which is where the kernel is slowest.
"""

from __future__ import annotations

import os
import time

from skiff.errors import HookFailed, RuntimeError_, SpecError
from skiff.kernel import syscall as sc
from skiff.oci.runtime_spec import Resources, Spec, load_config, to_json
from skiff.record import Record, replace
from skiff.runtime.cgroups import open_cgroup
from skiff.runtime.cgroups_path import cgroup_path
from skiff.runtime.channel import join_cgroup
from skiff.runtime.devices import cgroup_rules
from skiff.runtime.init import InitJob, container_init, needs_rendezvous
from skiff.runtime.process import compile_seccomp, host_lsms, passwd_entry
from skiff.runtime.rollback import Rollback
from skiff.runtime.rootfs import RootfsBuilder, idmapped_trees
from skiff.runtime.spawn import NamespacePlan, kill_and_reap, spawn
from skiff.runtime.unsupported import refuse_unsupported
from skiff.runtime.state import (OCI_VERSION, ContainerState, StateStore, Status, process_start_time,
                                 write_pid_file)

_IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"}


class CreateOptions(Record, mutable=True):
    bundle: str
    pid_file: str | None = None
    console_socket: str | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    preserve_fds: int = 0
    start_at_once: bool = False  # run: no exec fifo; init goes on, create returns once it execs
    relay_terminal: bool = False  # run in the foreground: a terminal is relayed by us
    terminal: object | None = None  # out: our end of that terminal's socket, if one was made


def namespace_plan(spec: Spec) -> NamespacePlan:
    assert spec.linux is not None
    plan = NamespacePlan(uid_mappings=spec.linux.uid_mappings, gid_mappings=spec.linux.gid_mappings,
                         time_offsets="".join(f"{clock} {o.secs} {o.nanosecs}\n" for clock, o
                                              in spec.linux.time_offsets.items()))
    for ns in sorted(spec.linux.namespaces, key=lambda n: n.type != "user"):
        if ns.path:
            plan.join.append((ns.type, ns.path))
        elif ns.type == "user":
            plan.new_user = True
        elif ns.type != "cgroup":  # a new cgroup namespace is made by init (see init.py)
            plan.unshare |= sc.NAMESPACE_FLAGS[ns.type]
    return plan


def preflight(spec: Spec, opts: CreateOptions) -> None:
    spec.require_runnable()
    assert spec.linux is not None and spec.process is not None
    refuse_unsupported(spec)
    lx = spec.linux
    if lx.namespace("mount") is None:
        raise SpecError("linux.namespaces", "skiff-runtime needs a mount namespace")
    for i, ns in enumerate(lx.namespaces):
        if ns.path and not os.path.exists(ns.path):
            raise SpecError(f"linux.namespaces[{i}].path", f"{ns.path} does not exist")
    for key in lx.sysctl:
        if key.startswith("net."):
            need = "network"
        elif key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            need = "ipc"
        elif key in ("kernel.hostname", "kernel.domainname"):
            need = "uts"
        else:
            raise SpecError(f"linux.sysctl.{key}", "is not in a separate kernel namespace")
        if lx.namespace(need) is None:
            raise SpecError(f"linux.sysctl.{key}", f"needs a {need} namespace of its own")
    if spec.process.terminal and not opts.console_socket and not opts.relay_terminal:
        raise RuntimeError_("process.terminal is set: pass --console-socket (or run in the foreground)")


def create(store: StateStore, container_id: str, opts: CreateOptions) -> ContainerState:
    bundle = os.path.abspath(opts.bundle)
    spec = load_config(os.path.join(bundle, "config.json"))
    preflight(spec, opts)
    assert spec.root is not None and spec.linux is not None and spec.process is not None
    filt = compile_seccomp(spec.linux.seccomp, os.path.join(store.root, ".seccomp"))
    plan = namespace_plan(spec)
    theirs = None  # the socket init sends its pty master on
    if spec.process.terminal and opts.console_socket:
        # connected here, not by init: in a user namespace, init's root may not reach it
        from skiff.runtime.console import connect
        theirs = connect(opts.console_socket)
    elif spec.process.terminal and opts.relay_terminal:
        import socket  # only for terminals: the container gets one end of a pair
        opts.terminal, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with Rollback() as undo:
        if theirs is not None:
            undo.push(theirs.close)
        if opts.terminal is not None:
            undo.push(opts.terminal.close)  # type: ignore[attr-defined]
        store.make_dir(container_id)
        if spec.hooks and spec.hooks.poststop:  # runs last: after everything else is undone
            undo.push(_poststop_after_failure, spec, container_id, bundle)
        undo.push(store.remove_dir, container_id)
        lock = store.locked(container_id)  # held until the state is saved: see delete --force
        lock.acquire(wait=True)
        undo.push(lock.__exit__)
        fifo = None
        if not opts.start_at_once:
            fifo = store.fifo(container_id)
            os.mkfifo(fifo, 0o622)
            os.chmod(fifo, 0o622)  # the umask must not keep a non-root init from writing
        # SKIFF_CGROUP_ROOT: where the cgroup hierarchies are (e.g. only the cgroup2 at
        # /sys/fs/cgroup/unified of a hybrid host, to run on the v2 driver)
        cgroup_root = os.environ.get("SKIFF_CGROUP_ROOT", "/sys/fs/cgroup")
        cg = open_cgroup(cgroup_path(spec.linux.cgroups_path, container_id), root=cgroup_root)
        idmaps = idmapped_trees(spec, bundle) if any(m.idmapped for m in spec.mounts) else {}
        for fd in idmaps.values():
            undo.push(os.close, fd)
        builder = RootfsBuilder(spec, bundle, cg.mounts(), userns=plan.in_userns,
                                cgroupns=spec.linux.namespace("cgroup") is not None,
                                idmap_trees=idmaps)
        job = InitJob(spec, builder, container_id, fifo, filt, console_sock=theirs,
                      no_pivot=opts.no_pivot, no_new_keyring=opts.no_new_keyring,
                      preserve_fds=opts.preserve_fds,
                      uts=spec.linux.namespace("uts") is not None,
                      new_cgroupns=_new_namespace(spec, "cgroup"), lsms=host_lsms())
        spawned = spawn(plan, lambda ch: container_init(job, ch))
        chan = spawned.chan
        undo.push(chan.close)
        undo.push(spawned.abort)
        # while the children unshare and fork: the cgroup (its directories are the
        # kernel's slowest part here; init waits for them before it mounts them)
        undo.push(cg.destroy)
        cg.create()
        resources = spec.linux.resources or Resources()
        cg.set(replace(resources, devices=cgroup_rules(spec)))
        pid = spawned.pid()
        undo.push(kill_and_reap, pid)
        join_cgroup(chan, cg.add, pid)
        st = ContainerState(
            id=container_id, bundle=bundle, rootfs=builder.rootfs, pid=pid,
            pid_start=process_start_time(pid) or 0,
            created=rfc3339_now(),
            cgroup_path=cg.path, cgroup_root=cgroup_root, config=to_json(spec), owner=_owner(),
            annotations=dict(spec.annotations),
            freezer=_listed(cg.freezer_probe()), cgroup_procs=cg.procs_files())
        if needs_rendezvous(spec):
            assert spec.hooks is not None
            chan.recv("prestart")
            from skiff.runtime.hooks import run_hooks  # subprocess costs start-up: only when used
            state_doc = st.oci(Status.CREATING)
            run_hooks("prestart", spec.hooks.prestart, state_doc)
            run_hooks("createRuntime", spec.hooks.create_runtime, state_doc)
            chan.send("hooks-done", state=state_doc)  # createContainer: still "creating"
        chan.recv("ready")
        if opts.start_at_once:
            # until init's execve (see `container_init`): the program runs; what came
            # meanwhile is a startContainer hook's failure
            failure = chan.wait_closed()
            if failure:
                raise HookFailed(failure.decode(errors="replace"))
        store.save(st)
        if opts.pid_file:
            write_pid_file(opts.pid_file, pid)
        undo.commit()
    lock.__exit__()
    for fd in idmaps.values():  # the init holds its copies (until its execve)
        os.close(fd)
    chan.close()
    if theirs is not None:
        theirs.close()
    return st


def _poststop_after_failure(spec: Spec, container_id: str, bundle: str) -> None:
    """A failed create ends as a delete does (runtime.md: a failing prestart, createRuntime
    or createContainer hook "continue[s] the lifecycle at step 12"): the poststop hooks run
    once all it made is gone, and their own failure is only a warning."""
    from skiff.runtime.hooks import run_hooks_warning  # (subprocess: only when used)

    assert spec.hooks is not None
    doc: dict = {"ociVersion": OCI_VERSION, "id": container_id, "status": Status.STOPPED,
                 "pid": 0, "bundle": bundle}
    if spec.annotations:
        doc["annotations"] = dict(spec.annotations)
    run_hooks_warning("poststop", spec.hooks.poststop, doc)


def _owner() -> str:
    """The user that owns the container, by name, as runc reports it."""
    entry = passwd_entry(os.geteuid())
    return entry[0] if entry else str(os.geteuid())


def _listed(probe: tuple[str, str] | None) -> list[str] | None:
    return list(probe) if probe else None


def _new_namespace(spec: Spec, kind: str) -> bool:
    assert spec.linux is not None
    ns = spec.linux.namespace(kind)
    return ns is not None and not ns.path


def rfc3339_now() -> str:
    """Now in UTC as runc writes `created` (nanoseconds, Z); `datetime` costs start-up."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"
