"""`skiff-runtime`: the OCI runtime as a command with runc's syntax, flags and output.

Argument shapes only: each verb is parsed here and handed to its module, imported when
that verb runs, so `skiff-runtime state` does not pay for what `create` needs. Errors
print as one line on stderr (and, with `--log`, as a log record, JSON with
`--log-format json`, which is where containerd looks) and exit 1; a malformed command
line exits 2.
"""

from __future__ import annotations

import os
import sys

from skiff.runtime.cli_args import Opt, flag, parse, usage
from skiff import jsonfast

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from skiff.runtime.cli_args import Namespace
    from typing import Any, Callable



def _default_root() -> str:
    return os.path.join(os.environ.get("SKIFF_RUN", "/run/skiff"), "runtime")


def _bytes(text: str) -> int:
    units = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("b") or "0"
    if t == "-1":
        return -1
    mult = units.get(t[-1], 1) if not t[-1].isdigit() else 1
    num = t[:-1] if not t[-1].isdigit() else t
    try:
        return int(float(num) * mult)
    except ValueError:
        raise ValueError(f"invalid size {text!r}") from None


def _duration(text: str) -> float:
    """A Go duration, as runc's --interval takes it: `5s`, `200ms`, `1m30s`, `1.5h`."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    total, rest = 0.0, text
    while rest:
        n = 0
        while n < len(rest) and (rest[n].isdigit() or rest[n] == "."):
            n += 1
        u = n
        while u < len(rest) and not (rest[u].isdigit() or rest[u] == "."):
            u += 1
        number, unit = rest[:n], rest[n:u]
        if not number or unit not in units:
            raise ValueError(f"invalid duration {text!r} (say 5s, 200ms, 1m30s)")
        total += float(number) * units[unit]
        rest = rest[u:]
    if not text:
        raise ValueError("invalid duration ''")
    return total


GLOBAL_OPTS = [
    flag("v,version", "print the version"),
    Opt("root", "state directory (default $SKIFF_RUN/runtime)"),
    Opt("log", "log file (default stderr)"),
    Opt("log-format", "log format", default="text", choices=("text", "json")),
    flag("debug", "log debug messages"),
    flag("systemd-cgroup", "refused by create and run (no systemd driver); taken elsewhere"),
    Opt("rootless", "accepted", default="auto"),
    Opt("criu", "accepted"),
]
_CREATE = [
    Opt("b,bundle", "bundle directory", default="."),
    Opt("console-socket", "unix socket that receives the pty master"),
    Opt("pid-file", "file to write the init's pid to"),
    flag("no-pivot", "chroot instead of pivot_root"),
    flag("no-new-keyring", "keep the caller's session keyring"),
    Opt("preserve-fds", "pass fds 3..3+N-1 to the container", default=0, convert=int),
]
VERB_GRAMMAR: dict[str, tuple[str, list[Opt], tuple[str, ...]]] = {
    "create": ("create a container", _CREATE, ("id",)),
    "run": ("create and start a container", _CREATE + [
        flag("d,detach", "do not wait for the container"),
        flag("keep", "keep the container after it exits")], ("id",)),
    "start": ("start a created container", [], ("id",)),
    "state": ("print a container's state", [], ("id",)),
    "kill": ("signal a container's init", [flag("a,all", "signal every process")], ("id", "signal?")),
    "delete": ("delete a container", [flag("f,force", "kill it first if running")], ("id",)),
    "exec": ("run a process in a container", [
        Opt("p,process", "process.json to run"), flag("t,tty", "allocate a terminal"),
        Opt("console-socket", "unix socket that receives the pty master"),
        flag("d,detach", "do not wait"), Opt("pid-file", "file to write the pid to"),
        Opt("cwd", "working directory"), Opt("e,env", "K=V", kind="append"),
        Opt("u,user", "UID[:GID]"), Opt("g,additional-gids", "GID", kind="append", convert=int),
        Opt("c,cap", "add a capability", kind="append"), flag("no-new-privs", "set no_new_privs"),
        Opt("apparmor", "AppArmor profile"), Opt("process-label", "SELinux label"),
        Opt("preserve-fds", "pass fds 3..3+N-1", default=0, convert=int)], ("id", "command*")),
    "pause": ("freeze a container", [], ("id",)),
    "resume": ("thaw a container", [], ("id",)),
    "ps": ("list a container's processes", [
        Opt("f,format", "output format", default="table", choices=("table", "json"))],
        ("id", "ps_args*")),
    "update": ("change a container's resources", [
        Opt("r,resources", "linux.resources JSON file, or - for stdin"),
        Opt("memory", "memory limit (bytes, k/m/g)", convert=_bytes),
        Opt("memory-reservation", "soft limit", convert=_bytes),
        Opt("memory-swap", "memory+swap limit", convert=_bytes),
        Opt("cpu-shares", "", convert=int), Opt("cpu-quota", "", convert=int),
        Opt("cpu-period", "", convert=int), Opt("cpuset-cpus", ""), Opt("cpuset-mems", ""),
        Opt("pids-limit", "", convert=int), Opt("blkio-weight", "", convert=int)], ("id",)),
    "events": ("print resource use and OOM events", [
        flag("stats", "print the stats once and exit"),
        Opt("interval", "time between stats", default=5.0, convert=_duration)], ("id",)),
    "list": ("list containers", [
        Opt("f,format", "output format", default="table", choices=("table", "json")),
        flag("q,quiet", "ids only")], ()),
    "spec": ("write a default config.json", [
        Opt("b,bundle", "bundle directory", default="."),
        flag("rootless", "for a user namespace")], ()),
    "features": ("print what this runtime supports", [], ()),
}


def _print_json(doc: Any) -> None:
    sys.stdout.write(jsonfast.dumps(doc, indent=2) + "\n")


def _table(rows: list[list[str]]) -> str:
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]))]
    return "".join("".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + r[-1] + "\n" for r in rows)


# -- verbs -------------------------------------------------------------------------------
def _create_opts(a: Namespace) -> Any:
    from skiff.runtime.create import CreateOptions
    return CreateOptions(bundle=a.bundle, pid_file=a.pid_file, console_socket=a.console_socket,
                         no_pivot=a.no_pivot, no_new_keyring=a.no_new_keyring,
                         preserve_fds=a.preserve_fds)


def do_create(store: Any, a: Namespace) -> int:
    from skiff.runtime.create import create
    create(store, a.id, _create_opts(a))
    return 0


def do_run(store: Any, a: Namespace) -> int:
    from skiff.runtime.run import run
    return run(store, a.id, _create_opts(a), detach=a.detach, keep=a.keep)


def do_start(store: Any, a: Namespace) -> int:
    from skiff.runtime.start import start
    start(store, a.id)
    return 0


def do_state(store: Any, a: Namespace) -> int:
    from skiff.runtime.container import open_container
    _print_json(open_container(store, a.id).oci_state())
    return 0


def do_kill(store: Any, a: Namespace) -> int:
    from skiff.runtime.kill import kill, parse_signal
    kill(store, a.id, parse_signal(a.signal or "SIGTERM"), a.all)
    return 0


def do_delete(store: Any, a: Namespace) -> int:
    from skiff.runtime.delete import delete
    delete(store, a.id, a.force)
    return 0


def do_exec(store: Any, a: Namespace) -> int:
    from skiff.runtime.exec import ExecOptions, exec_process
    proc = None
    if a.process:
        from skiff.oci.runtime_spec import parse_process
        with open(a.process, "rb") as f:
            proc = parse_process(f.read(), a.process)
    opts = ExecOptions(args=tuple(a.command), process=proc, tty=a.tty, console_socket=a.console_socket,
                       detach=a.detach, pid_file=a.pid_file, cwd=a.cwd, env=tuple(a.env), user=a.user,
                       additional_gids=tuple(a.additional_gids), caps=tuple(a.cap),
                       no_new_privs=a.no_new_privs, apparmor=a.apparmor, process_label=a.process_label,
                       preserve_fds=a.preserve_fds)
    return exec_process(store, a.id, opts)


def do_pause(store: Any, a: Namespace) -> int:
    from skiff.runtime.pause import pause
    pause(store, a.id)
    return 0


def do_resume(store: Any, a: Namespace) -> int:
    from skiff.runtime.pause import resume
    resume(store, a.id)
    return 0


def do_ps(store: Any, a: Namespace) -> int:
    from skiff.runtime.ps import container_pids, ps_table
    pids = container_pids(store, a.id)
    if a.format == "json":
        sys.stdout.write(jsonfast.dumps(pids) + "\n")
    else:
        sys.stdout.write(ps_table(pids, [x for x in a.ps_args if x != "--"]))
    return 0


def do_update(store: Any, a: Namespace) -> int:
    from skiff.runtime.update import from_flags, merge, update
    change = from_flags(a.memory, a.memory_reservation, a.memory_swap, a.cpu_shares, a.cpu_quota,
                        a.cpu_period, a.cpuset_cpus, a.cpuset_mems, a.pids_limit, a.blkio_weight)
    if a.resources:
        from skiff.oci.runtime_spec import parse_resources
        if a.resources == "-":
            text = sys.stdin.read()
        else:
            with open(a.resources) as f:
                text = f.read()
        change = merge(parse_resources(text, a.resources), change)
    update(store, a.id, change)
    return 0


def do_events(store: Any, a: Namespace) -> int:
    from skiff.runtime.events import print_events, stats, stream
    if a.stats:
        print_events(iter([stats(store, a.id)]))
    else:
        import gc
        gc.enable()  # (off for the short commands: see entry)
        print_events(stream(store, a.id, a.interval))
    return 0


def do_list(store: Any, a: Namespace) -> int:
    from skiff.errors import ContainerNotFound
    from skiff.runtime.container import open_container
    states = []
    for cid in store.ids():
        try:
            states.append(open_container(store, cid).oci_state())
        except ContainerNotFound:
            continue  # deleted while we listed
    if a.quiet:
        sys.stdout.write("".join(s["id"] + "\n" for s in states))
    elif a.format == "json":
        sys.stdout.write(jsonfast.dumps(states) + "\n")
    else:
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        # (a state from before the owner was recorded has none: root made it)
        rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"],
                  s["owner"] or "root"] for s in states]
        sys.stdout.write(_table(rows))
    return 0


def do_spec(store: Any, a: Namespace) -> int:
    from skiff.runtime.spec_default import default_spec
    path = os.path.join(a.bundle, "config.json")
    if os.path.exists(path):
        from skiff.errors import RuntimeError_
        raise RuntimeError_(f"File {path} exists. Remove it first")
    with open(path, "w") as f:
        f.write(jsonfast.dumps(default_spec(a.rootless), indent="\t"))
    return 0


def do_features(store: Any, a: Namespace) -> int:
    from skiff.runtime.features import features
    _print_json(features())
    return 0


VERBS: dict[str, Callable[[Any, Namespace], int]] = {
    "create": do_create, "run": do_run, "start": do_start, "state": do_state, "kill": do_kill,
    "delete": do_delete, "exec": do_exec, "pause": do_pause, "resume": do_resume, "ps": do_ps,
    "update": do_update, "events": do_events, "list": do_list, "spec": do_spec,
    "features": do_features,
}


def main(argv: list[str] | None = None) -> int:
    from skiff.errors import SkiffError, UsageError
    args = sys.argv[1:] if argv is None else argv
    commands = "commands:\n" + "".join(f"  {v:<12}{about}\n" for v, (about, _, _)
                                       in VERB_GRAMMAR.items())
    try:
        g = parse("skiff-runtime", GLOBAL_OPTS, ("verb?", "args*"), args,
                  about="skiff's OCI runtime, a drop-in for runc\n" + commands.rstrip())
        if g.version:
            from skiff import __version__
            from skiff.runtime.state import OCI_VERSION
            sys.stdout.write(f"skiff-runtime version {__version__}\nspec: {OCI_VERSION}\n")
            return 0
        if g.verb is None:
            sys.stdout.write(usage("skiff-runtime", GLOBAL_OPTS, ("command", "args*")) + commands)
            return 0
        if g.verb not in VERB_GRAMMAR:
            raise UsageError(f"skiff-runtime: unknown command {g.verb!r}")
        about, opts, positionals = VERB_GRAMMAR[g.verb]
        a = parse(f"skiff-runtime {g.verb}", opts, positionals, g.args, about)
    except UsageError as e:
        (sys.stdout if e.help else sys.stderr).write(str(e).rstrip("\n") + "\n")
        return 0 if e.help else 2
    from skiff import log
    try:
        log.configure(log.DEBUG if g.debug else log.WARNING, g.log, g.log_format == "json")
    except OSError as e:
        sys.stderr.write(f"skiff-runtime: --log {g.log}: {e.strerror}\n")
        return 1
    from skiff.runtime.state import StateStore
    store = StateStore(g.root or _default_root())
    try:
        if g.systemd_cgroup:
            from skiff.runtime.cgroups_path import refuse_systemd_driver
            refuse_systemd_driver(g.verb, g.systemd_cgroup)
        return VERBS[g.verb](store, a)
    except (SkiffError, OSError) as e:
        # an OSError here is about a file the command line named (--process, --resources,
        # --pid-file, the bundle): say which, as a KernelError would
        msg = str(e) if isinstance(e, SkiffError) else f"{e.filename or ''}: {e.strerror}"
        if g.log:
            log.logger("skiff").error("%s", msg)
        sys.stderr.write(f"skiff-runtime: {msg}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    """Run, flush, and leave without the interpreter's teardown (which costs ~9 ms of a
    ~40 ms `run` and has nothing to clean up here). The console script is
    `runtime.launcher.entry`, which starts the cgroup warm-up before it calls this."""
    import gc
    # a command lives for milliseconds: the collections its imports set off (7 in an exec,
    # ~1 ms) free nothing worth it, and in the children it forks they would copy every page
    # they walk; `events`, the one verb that may stream for hours, turns them back on
    gc.disable()
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    entry()
