"""``skiff volume create|ls|inspect|rm|prune``, with the docker CLI's flags and output.

Rows are docker's volume formatter context (cli/command/formatter/volume.go): ``{{.Name}}``,
``{{.Driver}}``, ``{{.Scope}}``, ``{{.Mountpoint}}``, ``{{.Labels}}``, ``{{.Links}}`` and
``{{.Size}}`` (the last two ``N/A`` outside ``system df``); the default table is DRIVER and
VOLUME NAME. The daemon's errors are shown as the docker CLI shows them (``Error response
from daemon: get NAME: no such volume``), collected so that the other names are still
done, and the command exits 1.
"""

from __future__ import annotations

from skiff.cli.flags import (FORMAT_HELP, INSPECT_FORMAT_HELP, Command, filter_flag, flag,
                             option, repeated)
from skiff.cli.images import confirm
from skiff.cli.object_verbs import inspect_each, print_pruned, remove_each
from skiff.cli.template import Row, json_filters, render_rows
from skiff.errors import InvalidArgument
from skiff.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.cli.main import Context

VOLUME_TABLE = "table {{.Driver}}\t{{.Name}}"
VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                  "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS",
                  "Size": "SIZE"}
PRUNE_WARNING = ("WARNING! This will remove all local volumes not used by at least one "
                 "container.")


class VolumeRow(Row):
    fields = ("Driver", "Labels", "Links", "Mountpoint", "Name", "Scope", "Size")
    headers = VOLUME_HEADERS
    type_name = "*formatter.volumeContext"

    def __init__(self, volume: dict[str, Any]) -> None:
        self.volume = volume

    def Name(self) -> str:
        return str(self.volume.get("Name") or "")

    def Driver(self) -> str:
        return str(self.volume.get("Driver") or "")

    def Scope(self) -> str:
        return str(self.volume.get("Scope") or "")

    def Mountpoint(self) -> str:
        return str(self.volume.get("Mountpoint") or "")

    def Labels(self) -> str:
        labels = self.volume.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in labels.items())

    def Links(self) -> str:
        usage = self.volume.get("UsageData")
        return str(usage["RefCount"]) if usage else "N/A"

    def Size(self) -> str:
        usage = self.volume.get("UsageData")
        return human_size(usage["Size"]) if usage and usage.get("Size", -1) >= 0 else "N/A"


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, eq, rest = value.partition("=")
        if what == "opt" and not eq:
            raise InvalidArgument(f'invalid argument "{value}" for "-o, --opt" flag: invalid '
                                  f'key value pair format in driver options')
        out[key] = rest
    return out


def create(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] [VOLUME]", "Create a volume", [
        option("driver", "d", "Specify volume driver name", "local"),
        repeated("label", "", "Set metadata for a volume"),
        option("name", "", "Specify volume name"),
        repeated("opt", "o", "Set driver specific options", type_name="map"),
    ], (0, 1))
    opts = cmd.parse(argv)
    if opts.args and opts.name:
        raise InvalidArgument("conflicting options: either specify --name or provide "
                              "positional arg, not both")
    body = {"Name": opts.args[0] if opts.args else opts.name, "Driver": opts.driver,
            "DriverOpts": _pairs(opts.opt, "opt"), "Labels": _pairs(opts.label, "label")}
    volume = ctx.client.post("/volumes/create", json=body) or {}
    ctx.out.write(f"{volume.get('Name', '')}\n")
    return 0


def ls(ctx: Context, path: str, argv: list[str]) -> int:
    prog = path.split(" ", 1)[0]
    cmd = Command(path, "[OPTIONS]", "List volumes", [
        filter_flag("f", "Provide filter values (e.g. 'dangling=true')"),
        option("format", "", FORMAT_HELP),
        flag("quiet", "q", "Only display volume names"),
    ], (0, 0), aliases=f"{prog} volume ls, {prog} volume list")
    opts = cmd.parse(argv)
    found = ctx.client.get("/volumes", {"filters": json_filters(list(opts.filter))}) or {}
    volumes = sorted(found.get("Volumes") or [], key=lambda v: v.get("Name") or "")
    source = opts.format or "table"
    if source == "table":
        source = "{{.Name}}" if opts.quiet else VOLUME_TABLE
    ctx.out.write(render_rows(source, [VolumeRow(v) for v in volumes], VOLUME_HEADERS))
    return 0


def inspect(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] VOLUME [VOLUME...]",
                  "Display detailed information on one or more volumes",
                  [option("format", "f", INSPECT_FORMAT_HELP)], (1, None))
    opts = cmd.parse(argv)
    return inspect_each(ctx, opts.args, lambda n: f"/volumes/{n}", opts.format)


def rm(ctx: Context, path: str, argv: list[str]) -> int:
    prog = path.split(" ", 1)[0]
    cmd = Command(path, "[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes", [
        flag("force", "f", "Force the removal of one or more volumes"),
    ], (1, None), aliases=f"{prog} volume rm, {prog} volume remove")
    opts = cmd.parse(argv)
    return remove_each(ctx, opts.args, lambda n: f"/volumes/{n}", {"force": opts.force})


def prune(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS]", "Remove unused local volumes", [
        flag("all", "a", "Remove all unused volumes, not just anonymous ones"),
        filter_flag("", "Provide filter values (e.g. 'label=<label>')"),
        flag("force", "f", "Do not prompt for confirmation"),
    ], (0, 0))
    opts = cmd.parse(argv)
    if not opts.force and not confirm(ctx, PRUNE_WARNING):
        return 0
    filters = list(opts.filter) + (["all=true"] if opts.all else [])
    report = ctx.client.post("/volumes/prune", {"filters": json_filters(filters)}) or {}
    return print_pruned(ctx, "Volumes", report.get("VolumesDeleted") or [],
                        int(report.get("SpaceReclaimed") or 0))
