"""`version` and `info`: the client's and the daemon's own account of themselves, in the
layout the docker CLI prints (cli/command/system/version.go and info.go), or through
`--format`.

The client section is printed before the daemon is asked, so it shows even when no daemon
answers (the command then fails with docker's message, exit 1). The client is skiff's: its
version, the API version it speaks (``(downgraded from 1.41)`` against an older server),
the Python it runs on.
"""

from __future__ import annotations

import os
import sys

from skiff import __version__
from skiff.cli.flags import INSPECT_FORMAT_HELP, Command, option
from skiff.cli.output import ansic, go_json
from skiff.units import bytes_size
from skiff.errors import SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.cli.main import Context

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def _client_info(api_version: str) -> dict[str, Any]:
    from skiff.client.api import MAX_API_VERSION
    machine = os.uname().machine
    return {"Version": __version__, "ApiVersion": api_version,
            "DefaultAPIVersion": MAX_API_VERSION, "GitCommit": "",
            "GoVersion": "python" + _python(), "Os": sys.platform,
            "Arch": _ARCH.get(machine, machine), "BuildTime": "", "Context": "default"}


def _python() -> str:
    return "%d.%d.%d" % sys.version_info[:3]


def _render(ctx: Context, source: str, data: Any) -> None:
    from skiff.cli.template import parse
    if source == "json":
        ctx.out.write(go_json(data) + "\n")
    else:
        ctx.out.write(parse(source.replace("\\t", "\t").replace("\\n", "\n")).execute(data) + "\n")


def version(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.client.api import MAX_API_VERSION

    cmd = Command(path, "[OPTIONS]", "Show the skiff version information",
                  [option("format", "f", INSPECT_FORMAT_HELP)], (0, 0))
    opts = cmd.parse(argv)
    server: dict[str, Any] | None = None
    failure: SkiffError | None = None
    api_version = MAX_API_VERSION
    try:
        client = ctx.client
        api_version = client.api_version
        server = client.get("/version")
    except SkiffError as exc:
        failure = exc
    info = _client_info(api_version)
    if opts.format:
        _render(ctx, opts.format, {"Client": info, "Server": server})
    else:
        downgraded = (f" (downgraded from {MAX_API_VERSION})"
                      if api_version != MAX_API_VERSION else "")
        lines = ["Client:",
                 f" Version:           {info['Version']}",
                 f" API version:       {api_version}{downgraded}",
                 f" Python version:    {_python()}",
                 f" OS/Arch:           {info['Os']}/{info['Arch']}",
                 f" Context:           {info['Context']}"]
        if server is not None:
            lines += [""] + _server_lines(server)
        ctx.out.write("\n".join(lines) + "\n")
    if failure is not None:
        raise failure
    return 0


def _server_lines(server: dict[str, Any]) -> list[str]:
    name = (server.get("Platform") or {}).get("Name") or ""
    lines = ["Server:" + (f" {name}" if name else "")]
    components = server.get("Components") or [{
        "Name": "Engine", "Version": server.get("Version", ""), "Details": {
            k: str(server.get(k, "")) for k in ("ApiVersion", "MinAPIVersion", "GoVersion",
                                                  "GitCommit", "BuildTime", "Os", "Arch",
                                                  "Experimental")}}]
    for component in components:
        details = component.get("Details") or {}
        lines.append(f" {component.get('Name', '')}:")
        if component.get("Name") == "Engine":
            lines += [
                f"  Version:          {component.get('Version', '')}",
                f"  API version:      {details.get('ApiVersion', '')} "
                f"(minimum version {details.get('MinAPIVersion', '')})",
                f"  Go version:       {details.get('GoVersion', '')}",
                f"  Git commit:       {details.get('GitCommit', '')}",
                f"  Built:            {ansic(str(details.get('BuildTime', '')))}",
                f"  OS/Arch:          {details.get('Os', '')}/{details.get('Arch', '')}",
                f"  Experimental:     {details.get('Experimental', '')}",
            ]
        else:
            lines.append(f"  Version:          {component.get('Version', '')}")
            for key in sorted(details):
                lines.append(f"  {key}:{' ' * max(1, 17 - len(key))}{details[key]}")
    return lines


def info(ctx: Context, path: str, argv: list[str]) -> int:
    prog = path.split(" ", 1)[0]
    cmd = Command(path, "[OPTIONS]", "Display system-wide information",
                  [option("format", "f", INSPECT_FORMAT_HELP)], (0, 0),
                  aliases=f"{prog} system info, {prog} info")
    opts = cmd.parse(argv)
    client_info = {"Version": __version__, "Context": "default", "Debug": ctx.debug}
    server: dict[str, Any] | None = None
    failure: SkiffError | None = None
    try:
        server = ctx.client.get("/info")
    except SkiffError as exc:
        failure = exc
    if opts.format:
        if failure is not None:
            raise failure
        data = dict(server or {})
        data["ClientInfo"] = client_info
        _render(ctx, opts.format, data)
        return 0
    out = ["Client:", f" Version:    {__version__}", " Context:    default",
           f" Debug Mode: {'true' if ctx.debug else 'false'}", "", "Server:"]
    if server is not None:
        out += _server_info(server)
    ctx.out.write("\n".join(out) + "\n")
    if failure is not None:
        ctx.out.flush()
        raise SkiffError(f"ERROR: {failure}\nerrors pretty printing info")
    for warning in (server or {}).get("Warnings") or []:
        ctx.warn(warning)
    return 0


def _server_info(s: dict[str, Any]) -> list[str]:
    """info.go's prettyPrintServerInfo, for the fields an engine reports."""
    def b(value: Any) -> str:
        return "true" if value else "false"

    lines = [f" Containers: {s.get('Containers', 0)}",
             f"  Running: {s.get('ContainersRunning', 0)}",
             f"  Paused: {s.get('ContainersPaused', 0)}",
             f"  Stopped: {s.get('ContainersStopped', 0)}",
             f" Images: {s.get('Images', 0)}",
             f" Server Version: {s.get('ServerVersion', '')}",
             f" Storage Driver: {s.get('Driver', '')}"]
    lines += [f"  {k}: {v}" for k, v in s.get("DriverStatus") or []]
    lines += [f"  {k}: {v}" for k, v in s.get("SystemStatus") or []]
    lines.append(f" Logging Driver: {s.get('LoggingDriver', '')}")
    lines.append(f" Cgroup Driver: {s.get('CgroupDriver', '')}")
    if s.get("CgroupVersion"):
        lines.append(f" Cgroup Version: {s['CgroupVersion']}")
    plugins = s.get("Plugins") or {}
    lines.append(" Plugins:")
    for kind in ("Volume", "Network", "Authorization", "Log"):
        if kind != "Authorization" or plugins.get(kind):
            lines.append(f"  {kind}: {' '.join(plugins.get(kind) or [])}")
    swarm = (s.get("Swarm") or {}).get("LocalNodeState") or "inactive"
    lines.append(f" Swarm: {swarm}")
    runtimes = s.get("Runtimes") or {}
    if runtimes:
        lines.append(f" Runtimes: {' '.join(sorted(runtimes))}")
        lines.append(f" Default Runtime: {s.get('DefaultRuntime', '')}")
    if s.get("OSType") == "linux":
        lines.append(f" Init Binary: {s.get('InitBinary', '')}")
        for label, key in (("containerd version", "ContainerdCommit"),
                           ("runc version", "RuncCommit"), ("init version", "InitCommit")):
            lines.append(f" {label}: {(s.get(key) or {}).get('ID', '')}")
    security = s.get("SecurityOptions") or []
    if security:
        lines.append(" Security Options:")
        for option_text in security:
            fields = dict(kv.split("=", 1) for kv in option_text.split(",") if "=" in kv)
            lines.append(f"  {fields.get('name', option_text)}")
            for key, value in fields.items():
                if key != "name":
                    lines.append(f"   {key.capitalize()}: {value}")
    lines += [f" Kernel Version: {s.get('KernelVersion', '')}",
              f" Operating System: {s.get('OperatingSystem', '')}",
              f" OSType: {s.get('OSType', '')}",
              f" Architecture: {s.get('Architecture', '')}",
              f" CPUs: {s.get('NCPU', 0)}",
              f" Total Memory: {bytes_size(s.get('MemTotal') or 0)}",
              f" Name: {s.get('Name', '')}",
              f" ID: {s.get('ID', '')}",
              f" Docker Root Dir: {s.get('DockerRootDir', '')}",
              f" Debug Mode: {b(s.get('Debug'))}"]
    if s.get("Debug"):
        lines += [f"  File Descriptors: {s.get('NFd', 0)}",
                  f"  Goroutines: {s.get('NGoroutines', 0)}",
                  f"  System Time: {s.get('SystemTime', '')}",
                  f"  EventsListeners: {s.get('NEventsListener', 0)}"]
    for label, key in (("HTTP Proxy", "HttpProxy"), ("HTTPS Proxy", "HttpsProxy"),
                       ("No Proxy", "NoProxy")):
        if s.get(key):
            lines.append(f" {label}: {s[key]}")
    if s.get("Labels"):
        lines.append(" Labels:")
        lines += [f"  {label}" for label in s["Labels"]]
    lines.append(f" Experimental: {b(s.get('ExperimentalBuild'))}")
    registry = s.get("RegistryConfig") or {}
    insecure = registry.get("InsecureRegistryCIDRs") or []
    insecure += [name for name, index in (registry.get("IndexConfigs") or {}).items()
                 if not (index or {}).get("Secure", True) and name not in insecure]
    if insecure:
        lines.append(" Insecure Registries:")
        lines += [f"  {r}" for r in insecure]
    mirrors = registry.get("Mirrors") or []
    if mirrors:
        lines.append(" Registry Mirrors:")
        lines += [f"  {m}" for m in mirrors]
    lines.append(f" Live Restore Enabled: {b(s.get('LiveRestoreEnabled'))}")
    lines.append("")
    return lines
