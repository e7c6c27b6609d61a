"""``skiff network create|ls|inspect|rm|prune|connect|disconnect``, with the docker CLI's
flags and output.

Rows are docker's network formatter context (cli/command/formatter/network.go):
``{{.ID}}`` (12 digits unless ``--no-trunc``), ``{{.Name}}``, ``{{.Driver}}``,
``{{.Scope}}``, ``{{.IPv6}}``, ``{{.Internal}}``, ``{{.Labels}}`` and ``{{.CreatedAt}}``;
the default table is NETWORK ID, NAME, DRIVER and SCOPE, sorted by name. ``create`` sends
one IPAM pool from ``--subnet``/``--gateway``/``--ip-range`` and prints the new ID;
``connect`` takes ``--ip`` and ``--alias``; ``rm`` collects each name's error and exits 1
when there was any, as the docker CLI does.
"""

from __future__ import annotations

from skiff.cli.flags import (FORMAT_HELP, INSPECT_FORMAT_HELP, Command, filter_flag, flag,
                             option, repeated)
from skiff.cli.images import confirm
from skiff.cli.object_verbs import inspect_each, remove_each
from skiff.cli.template import Row, json_filters, render_rows
from skiff.cli.volumes import _pairs
from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.cli.main import Context

NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
                   "CreatedAt": "CREATED AT"}
PRUNE_WARNING = ("WARNING! This will remove all custom networks not used by at least one "
                 "container.")


class NetworkRow(Row):
    fields = ("CreatedAt", "Driver", "ID", "IPv6", "Internal", "Labels", "Name", "Scope")
    headers = NETWORK_HEADERS
    type_name = "*formatter.networkContext"

    def __init__(self, network: dict[str, Any], trunc: bool = True) -> None:
        self.network = network
        self.trunc = trunc

    def ID(self) -> str:
        nid = str(self.network.get("Id") or "")
        return nid[:12] if self.trunc else nid

    def Name(self) -> str:
        return str(self.network.get("Name") or "")

    def Driver(self) -> str:
        return str(self.network.get("Driver") or "")

    def Scope(self) -> str:
        return str(self.network.get("Scope") or "")

    def IPv6(self) -> str:
        return "true" if self.network.get("EnableIPv6") else "false"

    def Internal(self) -> str:
        return "true" if self.network.get("Internal") else "false"

    def Labels(self) -> str:
        labels = self.network.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in labels.items())

    def CreatedAt(self) -> str:
        return str(self.network.get("Created") or "")


def create(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] NETWORK", "Create a network", [
        flag("attachable", "", "Enable manual container attachment"),
        option("driver", "d", "Driver to manage the Network", "bridge"),
        repeated("gateway", "", "IPv4 or IPv6 Gateway for the master subnet"),
        flag("internal", "", "Restrict external access to the network"),
        repeated("ip-range", "", "Allocate container ip from a sub-range"),
        option("ipam-driver", "", "IP Address Management Driver", "default"),
        repeated("ipam-opt", "", "Set IPAM driver specific options", type_name="map"),
        flag("ipv6", "", "Enable IPv6 networking"),
        repeated("label", "", "Set metadata on a network"),
        repeated("opt", "o", "Set driver specific options", type_name="map"),
        repeated("subnet", "", "Subnet in CIDR format that represents a network segment"),
    ], (1, 1))
    opts = cmd.parse(argv)
    body = {"Name": opts.args[0], "CheckDuplicate": True, "Driver": opts.driver,
            "Internal": opts.internal, "Attachable": opts.attachable,
            "EnableIPv6": opts.ipv6, "Options": _pairs(opts.opt, "opt"),
            "Labels": _pairs(opts.label, "label"),
            "IPAM": {"Driver": opts.ipam_driver, "Options": _pairs(opts.ipam_opt, "opt"),
                     "Config": _ipam_config(opts.subnet, opts.ip_range, opts.gateway)}}
    made = ctx.client.post("/networks/create", json=body) or {}
    ctx.out.write(f"{made.get('Id', '')}\n")
    return 0


def _ipam_config(subnets: list[str], ranges: list[str],
                 gateways: list[str]) -> list[dict[str, str]]:
    """The docker CLI's consolidateIpam, for one pool per subnet (its own refusals)."""
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    out = [{"Subnet": s} for s in subnets]
    for key, values in (("IPRange", ranges), ("Gateway", gateways)):
        for i, value in enumerate(values):
            out[i][key] = value
    return out


def ls(ctx: Context, path: str, argv: list[str]) -> int:
    prog = path.split(" ", 1)[0]
    cmd = Command(path, "[OPTIONS]", "List networks", [
        filter_flag("f", "Provide filter values (e.g. 'driver=bridge')"),
        option("format", "", FORMAT_HELP),
        flag("no-trunc", "", "Do not truncate the output"),
        flag("quiet", "q", "Only display network IDs"),
    ], (0, 0), aliases=f"{prog} network ls, {prog} network list")
    opts = cmd.parse(argv)
    found = ctx.client.get("/networks", {"filters": json_filters(list(opts.filter))}) or []
    networks = sorted(found, key=lambda n: n.get("Name") or "")
    source = opts.format or "table"
    if source == "table":
        source = "{{.ID}}" if opts.quiet else NETWORK_TABLE
    ctx.out.write(render_rows(source, [NetworkRow(n, not opts.no_trunc) for n in networks],
                              NETWORK_HEADERS))
    return 0


def inspect(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] NETWORK [NETWORK...]",
                  "Display detailed information on one or more networks", [
                      option("format", "f", INSPECT_FORMAT_HELP),
                      flag("verbose", "v", "Verbose output for diagnostics")], (1, None))
    opts = cmd.parse(argv)
    return inspect_each(ctx, opts.args, lambda n: f"/networks/{n}", opts.format)


def rm(ctx: Context, path: str, argv: list[str]) -> int:
    prog = path.split(" ", 1)[0]
    cmd = Command(path, "NETWORK [NETWORK...]", "Remove one or more networks", [
        flag("force", "f", "Do not error if the network does not exist"),
    ], (1, None), aliases=f"{prog} network rm, {prog} network remove")
    opts = cmd.parse(argv)
    if opts.force:
        from skiff.errors import NotFound

        names = []
        for name in opts.args:
            try:
                ctx.client.get(f"/networks/{name}")
                names.append(name)
            except NotFound:
                continue
        return remove_each(ctx, names, lambda n: f"/networks/{n}", {})
    return remove_each(ctx, opts.args, lambda n: f"/networks/{n}", {})


def prune(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS]", "Remove all unused networks", [
        filter_flag("", "Provide filter values (e.g. 'until=<timestamp>')"),
        flag("force", "f", "Do not prompt for confirmation"),
    ], (0, 0))
    opts = cmd.parse(argv)
    if not opts.force and not confirm(ctx, PRUNE_WARNING):
        return 0
    report = ctx.client.post("/networks/prune", {"filters": json_filters(list(opts.filter))}) \
        or {}
    deleted = report.get("NetworksDeleted") or []
    if deleted:
        ctx.out.write("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted))
    return 0


def connect(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] NETWORK CONTAINER", "Connect a container to a network", [
        repeated("alias", "", "Add network-scoped alias for the container"),
        repeated("driver-opt", "", "driver options for the network"),
        option("ip", "", "IPv4 address (e.g., \"172.30.100.104\")"),
        option("ip6", "", "IPv6 address (e.g., \"2001:db8::33\")"),
        repeated("link", "", "Add link to another container"),
    ], (2, 2))
    opts = cmd.parse(argv)
    settings: dict[str, Any] = {"Aliases": list(opts.alias) or None,
                                "DriverOpts": _pairs(opts.driver_opt, "opt") or None,
                                "Links": list(opts.link) or None}
    if opts.ip or opts.ip6:
        settings["IPAMConfig"] = {"IPv4Address": opts.ip, "IPv6Address": opts.ip6}
    ctx.client.post(f"/networks/{opts.args[0]}/connect",
                    json={"Container": opts.args[1], "EndpointConfig": settings})
    return 0


def disconnect(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] NETWORK CONTAINER",
                  "Disconnect a container from a network", [
                      flag("force", "f", "Force the container to disconnect from a network")],
                  (2, 2))
    opts = cmd.parse(argv)
    ctx.client.post(f"/networks/{opts.args[0]}/disconnect",
                    json={"Container": opts.args[1], "Force": opts.force})
    return 0
