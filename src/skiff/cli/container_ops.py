"""The container commands that look at or change a container in place: `export`, `diff`,
`commit`, `top`, `stats`, `pause`, `unpause`, `rename`, `update` and `port` (docker's
cli/command/container export.go, diff.go, commit.go, top.go, stats.go, …).

`stats` is docker's: one table of CPU %, MEM USAGE / LIMIT, MEM %, NET I/O, BLOCK I/O and
PIDS per container, computed from two samples as the CLI computes them (`StatsEntry`);
``--no-stream`` prints it once, otherwise it is redrawn every second until Ctrl-C.
`--format` takes docker's fields (``{{.Name}}``, ``{{.CPUPerc}}``, ``{{json .}}``, ``table
…``). `top` prints the daemon's ps table through a tab writer as docker does, `diff` one
``C|A|D path`` line a change, `commit` the new image's ID, `port` what inspect's
NetworkSettings.Ports publishes.
"""

from __future__ import annotations

import threading

from skiff.cli.containers import _each, _prog
from skiff.cli.flags import Command, Flag, flag, option, repeated
from skiff.cli.template import Row, render_rows
from skiff.errors import APIError, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.cli.main import Context

STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
_KINDS = {0: "C", 1: "A", 2: "D"}


# -- export, diff, commit ------------------------------------------------------------------
def export(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.cli.streams import copy_out, isatty

    prog = _prog(path)
    cmd = Command(path, "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar "
                  "archive", [option("output", "o", "Write to a file, instead of STDOUT")],
                  (1, 1), aliases=f"{prog} container export, {prog} export")
    opts = cmd.parse(argv)
    if not opts.output and isatty(ctx.out):
        raise SkiffError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    resp = ctx.client.open("GET", f"/containers/{opts.args[0]}/export")
    if not opts.output:
        copy_out(resp, ctx.out)
        return 0
    with open(opts.output, "wb") as f:
        for data in resp.iter_raw():
            f.write(data)
    return 0


def diff(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "CONTAINER", "Inspect changes to files or directories on a "
                  "container's filesystem", [], (1, 1),
                  aliases=f"{prog} container diff, {prog} diff")
    opts = cmd.parse(argv)
    for change in ctx.client.get(f"/containers/{opts.args[0]}/changes") or []:
        ctx.out.write(f"{_KINDS.get(change.get('Kind'), '?')} {change.get('Path')}\n")
    return 0


def commit(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
                  "Create a new image from a container's changes", [
                      option("author", "a", 'Author (e.g., "John Hannibal Smith '
                             '<hannibal@a-team.com>")'),
                      repeated("change", "c", "Apply Dockerfile instruction to the created "
                               "image"),
                      option("message", "m", "Commit message"),
                      flag("no-pause", "", "Disable pausing container during commit"),
                      Flag("pause", "p", "bool", "Pause container during commit (deprecated: "
                           "use --no-pause instead)", True, hidden=True),
                  ], (1, 2), aliases=f"{prog} container commit, {prog} commit")
    opts = cmd.parse(argv)
    name = opts.args[0]
    repo, tag = "", ""
    if len(opts.args) > 1:
        from skiff.reference import parse_reference

        ref = parse_reference(opts.args[1])
        repo, tag = ref.name, ref.tag or ""
    query = {"container": name, "repo": repo or None, "tag": tag or None,
             "comment": opts.message or None, "author": opts.author or None,
             "changes": list(opts.change or []) or None,
             "pause": opts.pause and not opts.no_pause}
    result = ctx.client.post("/commit", query) or {}
    ctx.out.write(f"{result.get('Id', '')}\n")
    return 0


# -- top, port -----------------------------------------------------------------------------
def top(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.cli.output import table

    prog = _prog(path)
    cmd = Command(path, "CONTAINER [ps OPTIONS]", "Display the running processes of a "
                  "container", [], (1, None), aliases=f"{prog} container top, {prog} top")
    opts = cmd.parse(argv, interspersed=False)
    query = {"ps_args": " ".join(opts.args[1:])} if len(opts.args) > 1 else None
    found = ctx.client.get(f"/containers/{opts.args[0]}/top", query) or {}
    rows = [list(found.get("Titles") or [])] + [list(p) for p in found.get("Processes") or []]
    ctx.out.write(table(rows, minwidth=20, padding=3))
    return 0


def port(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a "
                  "specific mapping for the container", [], (1, 2),
                  aliases=f"{prog} container port, {prog} port")
    opts = cmd.parse(argv)
    name = opts.args[0]
    doc = ctx.client.get(f"/containers/{name}/json") or {}
    ports = (doc.get("NetworkSettings") or {}).get("Ports") or {}
    lines = []
    if len(opts.args) > 1:
        wanted = opts.args[1]
        number, _, proto = wanted.partition("/")
        if not number.isdigit() or int(number) > 65535:
            raise SkiffError(f'Error: invalid port ({number}): strconv.ParseUint: parsing '
                             f'"{number}": invalid syntax')
        frontends = ports.get(f"{number}/{proto or 'tcp'}")
        if not frontends:
            raise SkiffError(f"Error: No public port '{wanted}' published for {name}")
        lines = [_host_port(f) for f in frontends]
    else:
        for private in sorted(ports):
            lines += [f"{private} -> {_host_port(f)}" for f in ports[private] or []]
    ctx.out.write("".join(line + "\n" for line in lines))
    return 0


def _host_port(frontend: dict[str, Any]) -> str:
    host, port_ = str(frontend.get("HostIp") or ""), str(frontend.get("HostPort") or "")
    return f"[{host}]:{port_}" if ":" in host else f"{host}:{port_}"


# -- pause, unpause, rename, update --------------------------------------------------------
def _simple(ctx: Context, path: str, argv: list[str], verb: str, short: str) -> int:
    prog = _prog(path)
    cmd = Command(path, "CONTAINER [CONTAINER...]", short, [], (1, None),
                  aliases=f"{prog} container {verb}, {prog} {verb}")
    opts = cmd.parse(argv)
    return _each(ctx, opts.args, lambda name: ctx.client.open(
        "POST", f"/containers/{name}/{verb}").read())


def pause(ctx: Context, path: str, argv: list[str]) -> int:
    return _simple(ctx, path, argv, "pause", "Pause all processes within one or more "
                   "containers")


def unpause(ctx: Context, path: str, argv: list[str]) -> int:
    return _simple(ctx, path, argv, "unpause", "Unpause all processes within one or more "
                   "containers")


def rename(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "CONTAINER NEW_NAME", "Rename a container", [], (2, 2),
                  aliases=f"{prog} container rename, {prog} rename")
    opts = cmd.parse(argv)
    old, new = (a.strip() for a in opts.args)
    if not old or not new:
        raise SkiffError("Error: Neither old nor new names may be empty")
    try:
        ctx.client.open("POST", f"/containers/{old}/rename", {"name": new}).read()
    except APIError as e:
        raise SkiffError(f"{e}\nError: failed to rename container named {old}") from None
    return 0


def _bytes_flag(value: str) -> int:
    from skiff.cli.run import ram_in_bytes

    if value == "-1":
        return -1
    return ram_in_bytes(value)


def update(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "[OPTIONS] CONTAINER [CONTAINER...]",
                  "Update configuration of one or more containers", [
                      Flag("blkio-weight", "", "int", "Block IO (relative weight), between 10 "
                           "and 1000, or 0 to disable (default 0)", 0, "uint16"),
                      Flag("cpu-period", "", "int", "Limit CPU CFS (Completely Fair Scheduler) "
                           "period", 0, "int"),
                      Flag("cpu-quota", "", "int", "Limit CPU CFS (Completely Fair Scheduler) "
                           "quota", 0, "int"),
                      Flag("cpu-shares", "c", "int", "CPU shares (relative weight)", 0, "int"),
                      option("cpus", "", "Number of CPUs", type_name="decimal"),
                      option("cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)"),
                      option("cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)"),
                      option("memory", "m", "Memory limit", type_name="bytes"),
                      option("memory-reservation", "", "Memory soft limit", type_name="bytes"),
                      option("memory-swap", "", "Swap limit equal to memory plus swap: -1 to "
                             "enable unlimited swap", type_name="bytes"),
                      Flag("pids-limit", "", "int", "Tune container pids limit (set -1 for "
                           "unlimited)", 0, "int"),
                      option("restart", "", "Restart policy to apply when a container exits"),
                  ], (1, None), aliases=f"{prog} container update, {prog} update")
    opts = cmd.parse(argv)
    body = _update_body(opts)
    if not body:
        raise SkiffError("you must provide one or more flags when using this command")

    def apply(name: str) -> None:
        answer = ctx.client.post(f"/containers/{name}/update", json=body) or {}
        for warning in answer.get("Warnings") or []:
            ctx.err.write(f"{warning}\n")
    return _each(ctx, opts.args, apply)


def _update_body(opts: Any) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, dest in (("BlkioWeight", "blkio_weight"), ("CpuPeriod", "cpu_period"),
                      ("CpuQuota", "cpu_quota"), ("CpuShares", "cpu_shares")):
        if opts.given(dest):
            body[key] = getattr(opts, dest)
    for key, dest in (("CpusetCpus", "cpuset_cpus"), ("CpusetMems", "cpuset_mems")):
        if opts.given(dest):
            body[key] = getattr(opts, dest)
    try:
        for key, dest in (("Memory", "memory"), ("MemoryReservation", "memory_reservation"),
                          ("MemorySwap", "memory_swap")):
            if opts.given(dest):
                body[key] = _bytes_flag(getattr(opts, dest))
        if opts.given("cpus"):
            body["NanoCpus"] = int(round(float(opts.cpus) * 1e9))
    except ValueError as e:
        raise SkiffError(f"invalid argument: {e}") from None
    if opts.given("pids_limit"):
        body["PidsLimit"] = opts.pids_limit
    if opts.given("restart"):
        name, _, count = opts.restart.partition(":")
        body["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}
    return body


# -- stats ---------------------------------------------------------------------------------
def cpu_percent(doc: dict[str, Any]) -> float:
    """The docker CLI's CPU % of one StatsJSON (calculateCPUPercentUnix): the container's
    share of the host's CPU time between the two samples, times the CPUs online."""
    cpu, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage")
                                           or ()) or 1
    if system_delta > 0 and cpu_delta > 0:
        return float(cpu_delta) / system_delta * online * 100.0
    return 0.0


class StatsEntry(Row):
    """docker's formatter.StatsEntry of one container, from its latest StatsJSON."""

    fields = ("BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name",
              "NetIO", "PIDs")
    headers = STATS_HEADERS
    type_name = "formatter.statsContext"

    def __init__(self, given: str, doc: dict[str, Any], trunc: bool = True) -> None:
        self.given, self.doc, self.trunc = given, doc, trunc

    def _memory(self) -> tuple[float, float]:
        mem = self.doc.get("memory_stats") or {}
        usage, raw = float(mem.get("usage") or 0), mem.get("stats") or {}
        inactive = raw.get("total_inactive_file", raw.get("inactive_file"))
        if inactive is not None and inactive < usage:
            usage -= inactive
        return usage, float(mem.get("limit") or 0)

    def Container(self) -> str:
        return self.given

    def ID(self) -> str:
        cid = str(self.doc.get("id") or "")
        return cid[:12] if self.trunc else cid

    def Name(self) -> str:
        name = str(self.doc.get("name") or "").removeprefix("/")
        return name or "--"

    def CPUPerc(self) -> str:
        return f"{cpu_percent(self.doc):.2f}%"

    def MemUsage(self) -> str:
        from skiff.units import bytes_size

        usage, limit = self._memory()
        return f"{bytes_size(usage)} / {bytes_size(limit)}"

    def MemPerc(self) -> str:
        usage, limit = self._memory()
        return f"{usage / limit * 100:.2f}%" if limit else "0.00%"

    def NetIO(self) -> str:
        from skiff.units import human_size

        rx = sum(n.get("rx_bytes", 0) for n in (self.doc.get("networks") or {}).values())
        tx = sum(n.get("tx_bytes", 0) for n in (self.doc.get("networks") or {}).values())
        return f"{human_size(rx, 3)} / {human_size(tx, 3)}"

    def BlockIO(self) -> str:
        from skiff.units import human_size

        read = write = 0
        entries = (self.doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
        for entry in entries:
            op = str(entry.get("op") or "")[:1].lower()
            if op == "r":
                read += int(entry.get("value") or 0)
            elif op == "w":
                write += int(entry.get("value") or 0)
        return f"{human_size(read, 3)} / {human_size(write, 3)}"

    def PIDs(self) -> str:
        return str((self.doc.get("pids_stats") or {}).get("current") or 0)


def _watch(ctx: Context, name: str, latest: dict[str, dict[str, Any]],
           errors: dict[str, str]) -> None:
    from skiff.client.api import json_messages

    try:
        for doc in json_messages(ctx.client.open("GET", f"/containers/{name}/stats",
                                                 {"stream": "1"})):
            latest[name] = doc
    except SkiffError as e:
        errors[name] = str(e)


def stats(ctx: Context, path: str, argv: list[str]) -> int:
    import time

    prog = _prog(path)
    cmd = Command(path, "[OPTIONS] [CONTAINER...]", "Display a live stream of container(s) "
                  "resource usage statistics", [
                      flag("all", "a", "Show all containers (default shows just running)"),
                      option("format", "", "Format output using a custom template"),
                      flag("no-stream", "", "Disable streaming stats and only pull the first "
                           "result"),
                      flag("no-trunc", "", "Do not truncate output"),
                  ], (0, None), aliases=f"{prog} container stats, {prog} stats")
    opts = cmd.parse(argv)
    names = list(opts.args)
    if not names:
        found = ctx.client.get("/containers/json", {"all": opts.all or None}) or []
        names = [c["Id"][:12] for c in found]
    source = opts.format or STATS_TABLE
    if source == "table":
        source = STATS_TABLE
    if opts.no_stream:
        rows, errors = [], []
        for name in names:
            try:
                doc = ctx.client.get(f"/containers/{name}/stats", {"stream": "0"})
            except APIError as e:
                errors.append(str(e))
                continue
            rows.append(StatsEntry(name, doc or {}, not opts.no_trunc))
        if errors:
            raise SkiffError("\n".join(errors))
        ctx.out.write(render_rows(source, list(rows), STATS_HEADERS))
        return 0
    latest: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    for name in names:
        threading.Thread(target=_watch, args=(ctx, name, latest, failed), daemon=True).start()
    try:
        while True:
            time.sleep(1.0)
            shown = [StatsEntry(n, latest[n], not opts.no_trunc) for n in names if n in latest]
            ctx.out.write("\033[2J\033[H" + render_rows(source, list(shown), STATS_HEADERS))
            ctx.out.flush()
            if failed and len(failed) == len(names):
                raise SkiffError("\n".join(failed.values()))
    except KeyboardInterrupt:
        return 0
