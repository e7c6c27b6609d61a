"""The container commands that are one or a few API calls: `ps` (`container ls`), `start`,
`stop`, `restart`, `kill`, `rm`, `logs`, `wait`, `container inspect` and `container prune`
(docker's cli/command/container list.go, start.go, stop.go, … and formatter/container.go).

`ps` rows are docker's ContainerContext: IDs cut to 12, the command quoted as Go's
strconv.Quote does after being cut to 20 columns, the image as its familiar name (or the
short ID when it was run by ID), ``CREATED`` as "2 hours ago", the first name, ports
grouped as DisplayablePorts groups them; the same fields for ``--format``
(``{{.Names}}``, ``{{json .}}``, ``table …``, ``raw``), and the size asked of the daemon
only when shown. Commands acting on several containers print each name as given once it
succeeded and gather the errors (exit 1), as docker does; ``rm -f`` only reports them.
"""

from __future__ import annotations

from skiff.cli.flags import FORMAT_HELP, INSPECT_FORMAT_HELP, Command, Flag, filter_flag, flag, option
from skiff.cli.output import ellipsis, go_time_string, since, truncate_id
from skiff.units import go_duration_seconds, human_size
from skiff.cli.template import Row, json_filters, render_rows
from skiff.errors import APIError, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

    from skiff.cli.main import Context

PS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
            "{{.Ports}}\t{{.Names}}")
PS_RAW = ("container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\n"
          "created_at: {{.CreatedAt}}\nstate: {{- pad .State 1 0}}\n"
          "status: {{- pad .Status 1 0}}\nnames: {{.Names}}\nlabels: {{- pad .Labels 1 0}}\n"
          "ports: {{- pad .Ports 1 0}}\n")
PS_HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS",
              "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
              "Platform": "PLATFORM"}
PRUNE_WARNING = "WARNING! This will remove all stopped containers."


def _prog(path: str) -> str:
    return path.split(" ", 1)[0]


def go_quote(text: str) -> str:
    """Go's strconv.Quote: ``"…"`` with Go's escapes, printable characters kept."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        elif c in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(c)])
        elif ord(c) < 0x80:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    out.append('"')
    return "".join(out)


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """formatter.DisplayablePorts: ``0.0.0.0:80->80/tcp, 9000-9001/tcp``."""
    def key(p: dict[str, Any]) -> tuple[Any, ...]:
        return (p.get("PrivatePort") or 0, p.get("IP") or "", p.get("PublicPort") or 0,
                p.get("Type") or "")

    groups: dict[str, list[int]] = {}
    result: list[str] = []
    mappings: list[str] = []

    def group(port_key: str, first: int, last: int) -> str:
        ip, _, kind = port_key.rpartition("/")
        text = str(first) if first == last else f"{first}-{last}"
        if ip:
            host = f"[{ip}]" if ":" in ip else ip
            text = f"{host}:{text}->{text}"
        return f"{text}/{kind}"

    for port in sorted(ports, key=key):
        current = port.get("PrivatePort") or 0
        port_key = port.get("Type") or ""
        ip = port.get("IP") or ""
        if ip:
            public = port.get("PublicPort") or 0
            if public != current:
                host = f"[{ip}]" if ":" in ip else ip
                mappings.append(f"{host}:{public}->{current}/{port_key}")
                continue
            port_key = f"{ip}/{port_key}"
        span = groups.get(port_key)
        if span is None:
            groups[port_key] = [current, current]
        elif current == span[1] + 1:
            span[1] = current
        else:
            result.append(group(port_key, *span))
            groups[port_key] = [current, current]
    result += [group(k, *span) for k, span in groups.items()]
    return ", ".join(result + mappings)


class ContainerRow(Row):
    fields = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
              "Names", "Networks", "Platform", "Ports", "RunningFor", "Size", "State", "Status")
    headers = PS_HEADERS
    type_name = "*formatter.ContainerContext"

    def __init__(self, c: dict[str, Any], trunc: bool) -> None:
        self.c, self.trunc = c, trunc
        self.size_used = False

    def ID(self) -> str:
        cid = self.c.get("Id") or ""
        return truncate_id(cid) if self.trunc else cid

    def Names(self) -> str:
        names = [n.removeprefix("/") for n in self.c.get("Names") or []]
        if self.trunc:
            # one name: the first that is not a legacy link ("/other/alias")
            return next((n for n in names if "/" not in n), "")
        return ",".join(names)

    def Image(self) -> str:
        from skiff.reference import familiar_parts

        image = self.c.get("Image") or ""
        if not image:
            return "<no image>"
        if not self.trunc:
            return image
        short = truncate_id(self.c.get("ImageID") or "")
        if short == truncate_id(image):
            return short
        name, tag, _ = familiar_parts(image)  # the digest goes, the tag stays
        return f"{name}:{tag}" if tag else name

    def Command(self) -> str:
        command = self.c.get("Command") or ""
        return go_quote(ellipsis(command, 20) if self.trunc else command)

    def CreatedAt(self) -> str:
        return go_time_string(int(self.c.get("Created") or 0))

    def RunningFor(self) -> str:
        return since(int(self.c.get("Created") or 0))

    def Ports(self) -> str:
        return displayable_ports(self.c.get("Ports") or [])

    def State(self) -> str:
        return str(self.c.get("State") or "")

    def Status(self) -> str:
        return str(self.c.get("Status") or "")

    def Size(self) -> str:
        self.size_used = True
        rw = human_size(self.c.get("SizeRw") or 0, 3)
        rootfs = self.c.get("SizeRootFs") or 0
        return f"{rw} (virtual {human_size(rootfs, 3)})" if rootfs > 0 else rw

    def Labels(self) -> str:
        labels = self.c.get("Labels") or {}
        return ",".join(sorted(f"{k}={v}" for k, v in labels.items()))

    def Mounts(self) -> str:
        names = []
        for m in self.c.get("Mounts") or []:
            name = m.get("Name") or m.get("Source") or ""
            names.append(ellipsis(name, 15) if self.trunc else name)
        return ",".join(names)

    def LocalVolumes(self) -> str:
        return str(sum(1 for m in self.c.get("Mounts") or [] if m.get("Driver") == "local"))

    def Networks(self) -> str:
        return ",".join((self.c.get("NetworkSettings") or {}).get("Networks") or {})

    def Platform(self) -> Any:
        descriptor = self.c.get("ImageManifestDescriptor") or {}
        platform = descriptor.get("platform")
        if not platform:
            return None
        parts = [platform.get("os", ""), platform.get("architecture", "")]
        if platform.get("variant"):
            parts.append(platform["variant"])
        return "/".join(parts)


def _uses_size(source: str) -> bool:
    """Whether a --format template shows .Size (docker runs it once on an empty context to
    see): then the daemon is asked for sizes."""
    from skiff.cli.template import parse

    text = source.removeprefix("table") if source.startswith("table") else source
    if source == "json":
        text = "{{json .}}"
    probe = ContainerRow({}, True)
    try:
        parse(text.replace("\\t", "\t").replace("\\n", "\n")).execute(probe)
    except SkiffError:
        return False
    return probe.size_used


def ps(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "[OPTIONS]", "List containers", [
        flag("all", "a", "Show all containers (default shows just running)"),
        filter_flag(),
        option("format", "", FORMAT_HELP),
        Flag("last", "n", "int", "Show n last created containers (includes all states)", -1,
             "int"),
        flag("latest", "l", "Show the latest created container (includes all states)"),
        flag("no-trunc", "", "Don't truncate output"),
        flag("quiet", "q", "Only display container IDs"),
        flag("size", "s", "Display total file sizes"),
    ], (0, 0), aliases=f"{prog} container ls, {prog} container list, {prog} container ps, "
                       f"{prog} ps")
    opts = cmd.parse(argv)
    source = opts.format
    if not source:
        from skiff.cli.images import _config_format

        source = _config_format(ctx, "psFormat")
    if opts.format and opts.quiet:
        ctx.err.write("WARNING: Ignoring custom format, because both --format and --quiet "
                      "are set.\n")
    limit = opts.last
    if opts.latest and limit == -1:
        limit = 1
    size = opts.size
    if source and source not in ("table", "raw") and not opts.quiet and not size \
            and not opts.given("size"):
        size = _uses_size(source)
    found = ctx.client.get("/containers/json", {
        "all": opts.all, "limit": limit if limit != -1 else None, "size": size,
        "filters": json_filters(opts.filter)}) or []
    if opts.quiet:
        source = "{{.ID}}"
    elif source in ("", "table"):
        source = PS_TABLE + ("\t{{.Size}}" if size else "")
    elif source == "raw":
        source = PS_RAW + ("size: {{.Size}}\\n" if size else "")
    rows = [ContainerRow(c, not opts.no_trunc) for c in found]
    ctx.out.write(render_rows(source, list(rows), PS_HEADERS))
    return 0


# -- one call per container -------------------------------------------------------------------
def _each(ctx: Context, names: list[str], act: Callable[[str], object],
          report_only: bool = False) -> int:
    """`act` on each name; the names that worked printed, the errors gathered (docker's
    parallelOperation, in order)."""
    errors = []
    for name in names:
        try:
            act(name)
        except APIError as exc:
            errors.append(str(exc))
            continue
        ctx.out.write(name + "\n")
    if errors:
        ctx.out.flush()
        if report_only:
            ctx.err.write("\n".join(errors) + "\n")
            return 0
        raise SkiffError("\n".join(errors))
    return 0


def _call(ctx: Context, method: str, path: str, query: dict[str, Any] | None = None) -> None:
    ctx.client.open(method, path, query).read()


def _check_names(names: list[str]) -> None:
    if any(not name.strip("/") for name in names):
        raise SkiffError("container name cannot be empty")


def stop(ctx: Context, path: str, argv: list[str], verb: str = "stop") -> int:
    prog = _prog(path)
    short = ("Stop one or more running containers" if verb == "stop"
             else "Restart one or more containers")
    cmd = Command(path, "[OPTIONS] CONTAINER [CONTAINER...]", short, [
        option("signal", "s", "Signal to send to the container"),
        Flag("time", "t", "int", "Seconds to wait before killing the container", 0, "int"),
        Flag("timeout", "", "int", "Seconds to wait before killing the container", 0, "int",
             dest="time", hidden=True),
    ], (1, None), aliases=f"{prog} container {verb}, {prog} {verb}")
    opts = cmd.parse(argv)
    _check_names(opts.args)
    query = {"t": opts.time if opts.given("time") else None, "signal": opts.signal or None}
    return _each(ctx, opts.args,
                 lambda name: _call(ctx, "POST", f"/containers/{name}/{verb}", query))


def restart(ctx: Context, path: str, argv: list[str]) -> int:
    return stop(ctx, path, argv, "restart")


def kill(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "[OPTIONS] CONTAINER [CONTAINER...]",
                  "Kill one or more running containers",
                  [option("signal", "s", "Signal to send to the container")], (1, None),
                  aliases=f"{prog} container kill, {prog} kill")
    opts = cmd.parse(argv)
    query = {"signal": opts.signal or None}
    return _each(ctx, opts.args,
                 lambda name: _call(ctx, "POST", f"/containers/{name}/kill", query))


def rm(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", [
        flag("force", "f", "Force the removal of a running container (uses SIGKILL)"),
        flag("link", "l", "Remove the specified link"),
        flag("volumes", "v", "Remove anonymous volumes associated with the container"),
    ], (1, None), aliases=f"{prog} container rm, {prog} container remove, {prog} rm")
    opts = cmd.parse(argv)
    query = {"force": opts.force, "v": opts.volumes, "link": opts.link}

    def remove(name: str) -> None:
        name = name.strip("/")
        if not name:
            raise APIError("Container name cannot be empty")
        _call(ctx, "DELETE", f"/containers/{name}", query)

    return _each(ctx, opts.args, remove, report_only=opts.force)


def start(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "[OPTIONS] CONTAINER [CONTAINER...]",
                  "Start one or more stopped containers", [
                      flag("attach", "a", "Attach STDOUT/STDERR and forward signals"),
                      option("detach-keys", "",
                             "Override the key sequence for detaching a container"),
                      flag("interactive", "i", "Attach container's STDIN"),
                  ], (1, None), aliases=f"{prog} container start, {prog} start")
    opts = cmd.parse(argv)
    if opts.attach or opts.interactive:
        if len(opts.args) > 1:
            raise SkiffError("you cannot start and attach multiple containers at once")
        from skiff.cli.run import attached_start

        c = ctx.client.get(f"/containers/{opts.args[0]}/json")
        config = c.get("Config") or {}
        auto_remove = bool((c.get("HostConfig") or {}).get("AutoRemove"))
        tty = bool(config.get("Tty"))
        return attached_start(ctx, "start", c["Id"], auto_remove, not tty,
                              stdin=bool(opts.interactive and config.get("OpenStdin")),
                              tty=tty, detach_keys=opts.detach_keys or "")
    failed = []
    for name in opts.args:
        try:
            _call(ctx, "POST", f"/containers/{name}/start")
        except APIError as exc:
            ctx.err.write(f"{exc}\n")
            failed.append(name)
            continue
        ctx.out.write(name + "\n")
    if failed:
        ctx.out.flush()
        raise SkiffError(f"Error: failed to start containers: {', '.join(failed)}")
    return 0


def attach(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "[OPTIONS] CONTAINER",
                  "Attach local standard input, output, and error streams to a running "
                  "container", [
                      option("detach-keys", "",
                             "Override the key sequence for detaching a container"),
                      flag("no-stdin", "", "Do not attach STDIN"),
                      Flag("sig-proxy", "", "bool", "Proxy all received signals to the process",
                           True),
                  ], (1, 1), aliases=f"{prog} container attach, {prog} attach")
    opts = cmd.parse(argv)
    from skiff.cli.run import Attachment

    c = ctx.client.get(f"/containers/{opts.args[0]}/json")
    state, config = c.get("State") or {}, c.get("Config") or {}
    if not state.get("Running"):
        raise SkiffError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise SkiffError("You cannot attach to a paused container, unpause it first")
    tty = bool(config.get("Tty"))
    with Attachment(ctx, c["Id"], "not-running", tty=tty,
                    stdin=bool(config.get("OpenStdin")) and not opts.no_stdin,
                    detach_keys=opts.detach_keys or "",
                    sig_proxy=opts.sig_proxy and not tty, wait_first=True) as attached:
        if attached.copy():
            raise SkiffError("read escape sequence")  # the docker CLI's words and status
        return attached.exit_status()


def wait(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "CONTAINER [CONTAINER...]",
                  "Block until one or more containers stop, then print their exit codes", [],
                  (1, None), aliases=f"{prog} container wait, {prog} wait")
    opts = cmd.parse(argv)
    errors = []
    for name in opts.args:
        try:
            answer = ctx.client.post(f"/containers/{name}/wait") or {}
        except APIError as exc:
            errors.append(str(exc))
            continue
        ctx.out.write(f"{answer.get('StatusCode', -1)}\n")
        ctx.out.flush()
    if errors:
        raise SkiffError("\n".join(errors))
    return 0


# -- logs ----------------------------------------------------------------------------------------
def api_timestamp(value: str, now: float | None = None) -> str:
    """The docker client's GetTimestamp: a duration ago (``10m``), an RFC 3339 time or date
    (local time when it names no zone), or Unix seconds, as ``seconds.nanoseconds``."""
    import time
    from datetime import datetime

    from skiff.errors import InvalidArgument

    reference = time.time() if now is None else now
    duration = go_duration_seconds(value)
    if value != "0" and duration is not None:
        return str(int(reference - duration))
    text = value.replace("z", "Z")
    candidate = text[:-1] + "+00:00" if text.endswith("Z") else text
    head, dot, fraction = candidate.partition(".")
    nanos = 0
    if dot:
        digits = len(fraction) - len(fraction.lstrip("0123456789"))
        nanos = int((fraction[:digits] + "000000000")[:9]) if digits else 0
        candidate = head + fraction[digits:]
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        moment = None
    if moment is not None and "-" in value:
        if moment.tzinfo is None:
            moment = moment.astimezone()  # docker reads a time without zone as local
        return f"{int(moment.timestamp())}.{nanos:09d}"
    if "-" in value:
        raise InvalidArgument(f'parsing time "{value}": cannot parse as a time')
    seconds, _, fraction = value.partition(".")
    if not seconds.lstrip("-").isdigit() or (fraction and not fraction.isdigit()):
        raise InvalidArgument(f'failed to parse value as time or duration: "{value}"')
    return value


def logs(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.cli.streams import binary
    from skiff.client import stdcopy

    prog = _prog(path)
    cmd = Command(path, "[OPTIONS] CONTAINER", "Fetch the logs of a container", [
        flag("details", "", "Show extra details provided to logs"),
        flag("follow", "f", "Follow log output"),
        option("since", "", 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or '
               'relative (e.g. "42m" for 42 minutes)'),
        option("tail", "n", "Number of lines to show from the end of the logs", "all"),
        flag("timestamps", "t", "Show timestamps"),
        option("until", "", 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or '
               'relative (e.g. "42m" for 42 minutes)'),
    ], (1, 1), aliases=f"{prog} container logs, {prog} logs")
    opts = cmd.parse(argv)
    c = ctx.client.get(f"/containers/{opts.args[0]}/json")
    query = {"stdout": True, "stderr": True, "follow": opts.follow,
             "timestamps": opts.timestamps, "details": opts.details, "tail": opts.tail,
             "since": api_timestamp(opts.since) if opts.since else None,
             "until": api_timestamp(opts.until) if opts.until else None}
    resp = ctx.client.open("GET", f"/containers/{c['Id']}/logs", query)
    chunks = resp.iter_raw()
    if (c.get("Config") or {}).get("Tty"):
        out = binary(ctx.out)
        for chunk in chunks:
            out.write(chunk)
            out.flush()
    else:
        stdcopy.copy(chunks, binary(ctx.out), binary(ctx.err))
    return 0


# -- inspect, prune ------------------------------------------------------------------------------
def container_inspect(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.cli.images import print_inspected

    cmd = Command(path, "[OPTIONS] CONTAINER [CONTAINER...]",
                  "Display detailed information on one or more containers", [
                      option("format", "f", INSPECT_FORMAT_HELP),
                      flag("size", "s", "Display total file sizes"),
                  ], (1, None))
    opts = cmd.parse(argv)
    found, errors = [], []
    for name in opts.args:
        try:
            found.append(ctx.client.open("GET", f"/containers/{name}/json",
                                         {"size": opts.size}).read().decode().strip())
        except APIError as exc:
            errors.append(str(exc))
    return print_inspected(ctx, found, errors, opts.format)


def prune(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.cli.images import confirm

    cmd = Command(path, "[OPTIONS]", "Remove all stopped containers", [
        filter_flag("", 'Provide filter values (e.g. "until=<timestamp>")'),
        flag("force", "f", "Do not prompt for confirmation"),
    ], (0, 0))
    opts = cmd.parse(argv)
    if not opts.force and not confirm(ctx, PRUNE_WARNING):
        return 0  # cancelled: docker says nothing more and exits 0
    report = ctx.client.post("/containers/prune", {"filters": json_filters(opts.filter)}) or {}
    text, reclaimed = prune_output(report)
    if text:
        ctx.out.write(text + "\n")
    ctx.out.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0


def prune_output(report: dict[str, Any]) -> tuple[str, int]:
    """container.RunPrune's output and the space it counts (none when nothing went)."""
    deleted = report.get("ContainersDeleted") or []
    if not deleted:
        return "", 0
    return ("Deleted Containers:\n" + "".join(f"{cid}\n" for cid in deleted),
            int(report.get("SpaceReclaimed") or 0))
