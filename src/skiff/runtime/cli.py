"""`skiff-runtime`: the OCI runtime as a command with runc's syntax, flags and output.

Argument shapes only: each verb is parsed here and handed to its module, imported when
that verb runs, so `skiff-runtime state` does not pay for what `create` needs. Errors
print as one line on stderr (and, with `--log`, as a log record, JSON with
`--log-format json`, which is where containerd looks) and exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable

VERSION = "0.1.0"
SPEC_VERSION = "1.2.0"


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
        raise argparse.ArgumentTypeError(f"invalid size {text!r}") from None


def _duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * units[suffix]
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skiff-runtime", description="skiff's OCI runtime (runc-compatible)")
    p.add_argument("-v", "--version", action="store_true", help="print the version")
    p.add_argument("--root", default=None, help="state directory (default $SKIFF_RUN/runtime)")
    p.add_argument("--log", default=None, help="log file (default stderr)")
    p.add_argument("--log-format", choices=("text", "json"), default="text")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="accepted; cgroupfs is used")
    p.add_argument("--rootless", default="auto", help="accepted")
    p.add_argument("--criu", default=None, help="accepted")
    sub = p.add_subparsers(dest="verb", metavar="COMMAND")

    def verb(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_)

    def create_flags(q: argparse.ArgumentParser) -> None:
        q.add_argument("-b", "--bundle", default=".")
        q.add_argument("--console-socket")
        q.add_argument("--pid-file")
        q.add_argument("--no-pivot", action="store_true")
        q.add_argument("--no-new-keyring", action="store_true")
        q.add_argument("--preserve-fds", type=int, default=0)
        q.add_argument("id")

    create_flags(verb("create", "create a container"))
    q = verb("run", "create and start a container")
    create_flags(q)
    q.add_argument("-d", "--detach", action="store_true")
    q.add_argument("--keep", action="store_true", help="do not delete the container after it exits")
    verb("start", "start a created container").add_argument("id")
    verb("state", "print a container's state").add_argument("id")
    q = verb("kill", "signal a container's init")
    q.add_argument("-a", "--all", action="store_true")
    q.add_argument("id")
    q.add_argument("signal", nargs="?", default="SIGTERM")
    q = verb("delete", "delete a container")
    q.add_argument("-f", "--force", action="store_true")
    q.add_argument("id")
    q = verb("exec", "run a process in a container")
    q.add_argument("-p", "--process")
    q.add_argument("-t", "--tty", action="store_true")
    q.add_argument("--console-socket")
    q.add_argument("-d", "--detach", action="store_true")
    q.add_argument("--pid-file")
    q.add_argument("--cwd")
    q.add_argument("-e", "--env", action="append", default=[])
    q.add_argument("-u", "--user")
    q.add_argument("-g", "--additional-gids", action="append", type=int, default=[])
    q.add_argument("-c", "--cap", action="append", default=[])
    q.add_argument("--no-new-privs", action="store_true")
    q.add_argument("--apparmor")
    q.add_argument("--process-label")
    q.add_argument("--preserve-fds", type=int, default=0)
    q.add_argument("id")
    q.add_argument("command", nargs=argparse.REMAINDER)
    verb("pause", "freeze a container").add_argument("id")
    verb("resume", "thaw a container").add_argument("id")
    q = verb("ps", "list a container's processes")
    q.add_argument("-f", "--format", choices=("table", "json"), default="table")
    q.add_argument("id")
    q.add_argument("ps_args", nargs=argparse.REMAINDER)
    q = verb("update", "change a container's resources")
    q.add_argument("-r", "--resources", help="a linux.resources JSON file, or - for stdin")
    q.add_argument("--memory", type=_bytes)
    q.add_argument("--memory-reservation", type=_bytes)
    q.add_argument("--memory-swap", type=_bytes)
    q.add_argument("--cpu-shares", type=int)
    q.add_argument("--cpu-quota", type=int)
    q.add_argument("--cpu-period", type=int)
    q.add_argument("--cpuset-cpus")
    q.add_argument("--cpuset-mems")
    q.add_argument("--pids-limit", type=int)
    q.add_argument("--blkio-weight", type=int)
    q.add_argument("id")
    q = verb("events", "print a container's resource use and OOM events")
    q.add_argument("--stats", action="store_true", help="print the stats once and exit")
    q.add_argument("--interval", type=_duration, default=5.0)
    q.add_argument("id")
    q = verb("list", "list containers")
    q.add_argument("-f", "--format", choices=("table", "json"), default="table")
    q.add_argument("-q", "--quiet", action="store_true")
    q = verb("spec", "write a default config.json")
    q.add_argument("-b", "--bundle", default=".")
    q.add_argument("--rootless", action="store_true")
    verb("features", "print what this runtime supports")
    return p


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def _table(rows: list[list[str]]) -> str:
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]))]
    return "".join("".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + r[-1] + "\n" for r in rows)


# -- verbs -------------------------------------------------------------------------------
def _create_opts(a: argparse.Namespace) -> Any:
    from skiff.runtime.create import CreateOptions
    return CreateOptions(bundle=a.bundle, pid_file=a.pid_file, console_socket=a.console_socket,
                         no_pivot=a.no_pivot, no_new_keyring=a.no_new_keyring,
                         preserve_fds=a.preserve_fds)


def do_create(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.create import create
    create(store, a.id, _create_opts(a))
    return 0


def do_run(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.run import run
    return run(store, a.id, _create_opts(a), detach=a.detach, keep=a.keep)


def do_start(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.start import start
    start(store, a.id)
    return 0


def do_state(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.container import open_container
    _print_json(open_container(store, a.id).oci_state())
    return 0


def do_kill(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.kill import kill, parse_signal
    kill(store, a.id, parse_signal(a.signal), a.all)
    return 0


def do_delete(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.delete import delete
    delete(store, a.id, a.force)
    return 0


def do_exec(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.exec import ExecOptions, exec_process
    proc = None
    if a.process:
        from skiff.oci.runtime_spec import parse_process
        with open(a.process, "rb") as f:
            proc = parse_process(f.read(), a.process)
    opts = ExecOptions(args=tuple(a.command), process=proc, tty=a.tty, console_socket=a.console_socket,
                       detach=a.detach, pid_file=a.pid_file, cwd=a.cwd, env=tuple(a.env), user=a.user,
                       additional_gids=tuple(a.additional_gids), caps=tuple(a.cap),
                       no_new_privs=a.no_new_privs, apparmor=a.apparmor, process_label=a.process_label)
    return exec_process(store, a.id, opts)


def do_pause(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.pause import pause
    pause(store, a.id)
    return 0


def do_resume(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.pause import resume
    resume(store, a.id)
    return 0


def do_ps(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.ps import container_pids, ps_table
    pids = container_pids(store, a.id)
    if a.format == "json":
        sys.stdout.write(json.dumps(pids) + "\n")
    else:
        sys.stdout.write(ps_table(pids, [x for x in a.ps_args if x != "--"]))
    return 0


def do_update(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.update import from_flags, merge, update
    change = from_flags(a.memory, a.memory_reservation, a.memory_swap, a.cpu_shares, a.cpu_quota,
                        a.cpu_period, a.cpuset_cpus, a.cpuset_mems, a.pids_limit, a.blkio_weight)
    if a.resources:
        from skiff.oci.runtime_spec import parse_resources
        text = sys.stdin.read() if a.resources == "-" else open(a.resources).read()
        change = merge(parse_resources(text, a.resources), change)
    update(store, a.id, change)
    return 0


def do_events(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.events import print_events, stats, stream
    if a.stats:
        print_events(iter([stats(store, a.id)]))
    else:
        print_events(stream(store, a.id, a.interval))
    return 0


def do_list(store: Any, a: argparse.Namespace) -> int:
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
        sys.stdout.write(json.dumps(states) + "\n")
    else:
        rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"] or "root"]
                 for s in states]
        sys.stdout.write(_table(rows))
    return 0


def do_spec(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.spec_default import default_spec
    path = os.path.join(a.bundle, "config.json")
    if os.path.exists(path):
        from skiff.errors import RuntimeError_
        raise RuntimeError_(f"File {path} exists. Remove it first")
    with open(path, "w") as f:
        json.dump(default_spec(a.rootless), f, indent="\t")
    return 0


def do_features(store: Any, a: argparse.Namespace) -> int:
    from skiff.runtime.features import features
    _print_json(features())
    return 0


VERBS: dict[str, Callable[[Any, argparse.Namespace], int]] = {
    "create": do_create, "run": do_run, "start": do_start, "state": do_state, "kill": do_kill,
    "delete": do_delete, "exec": do_exec, "pause": do_pause, "resume": do_resume, "ps": do_ps,
    "update": do_update, "events": do_events, "list": do_list, "spec": do_spec,
    "features": do_features,
}


def _setup_logging(a: argparse.Namespace) -> None:
    import logging
    level = logging.DEBUG if a.debug else logging.WARNING
    handler: logging.Handler
    handler = logging.FileHandler(a.log) if a.log else logging.StreamHandler(sys.stderr)
    if a.log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("skiff")
    root.setLevel(level)
    root.addHandler(handler)


class _JsonFormatter:
    def format(self, record: Any) -> str:
        import time
        t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))
        return json.dumps({"level": record.levelname.lower().replace("warning", "warn"),
                           "msg": record.getMessage(), "time": t})


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.version:
        sys.stdout.write(f"skiff-runtime version {VERSION}\nspec: {SPEC_VERSION}\n")
        return 0
    if not a.verb:
        _parser().print_help()
        return 0
    _setup_logging(a)
    from skiff.errors import SkiffError
    from skiff.runtime.state import StateStore
    store = StateStore(a.root or _default_root())
    try:
        return VERBS[a.verb](store, a)
    except SkiffError as e:
        if a.log:
            import logging
            logging.getLogger("skiff").error("%s", e)
        sys.stderr.write(f"skiff-runtime: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
