"""How containers look from outside: Docker's inspect and list shapes, status texts, filters.

`inspect_doc` is ContainerInspect (``GET /containers/{id}/json``) and `summary` a
ContainerSummary (``GET /containers/json``), both from a stored row; `status_text` is
Docker's ``Up 3 seconds`` / ``Exited (0) 2 seconds ago`` / ``Created`` (go-units'
HumanDuration); `ListFilter` is moby's list filtering (id and name as regular expressions,
label, status, exited, ancestor, before, since, network, expose, health, isolation,
is-task, volume, publish) over rows. The network settings are the network service's
(`network_endpoints.endpoint_settings`), given to the shapes by the caller.
"""

from __future__ import annotations

import re
import time

from skiff.engine.mounts import views as mount_views
from skiff.engine.filters import Filters
from skiff.engine.images import container_config
from skiff.engine.times import GO_ZERO_TIME, parse_time
from skiff.errors import InvalidArgument
from skiff.units import human_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from skiff.engine.state_db import ContainerRow

STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
LIST_FILTERS = ("ancestor", "before", "expose", "exited", "health", "id", "isolation",
                "is-task", "label", "name", "network", "publish", "since", "status", "volume")


# -- times ----------------------------------------------------------------------------------
def state_string(state: dict[str, Any]) -> str:
    """Docker's State.StateString: what ``State`` says in a list, and the status filter."""
    status = str(state.get("Status") or "created")
    if status == "running" and state.get("Paused"):
        return "paused"
    return status


def health_word(state: dict[str, Any]) -> str:
    """The health filter's value: the probe's status, ``none`` without a health check."""
    return str(state.get("HealthStatus") or "none")


def status_text(state: dict[str, Any], now: float | None = None) -> str:
    """Docker's State.String."""
    now = time.time() if now is None else now
    status = state.get("Status")
    if state.get("Running"):
        started = parse_time(state.get("StartedAt")) or now
        up = human_duration(now - started)
        if state.get("Paused"):
            return f"Up {up} (Paused)"
        if state.get("Restarting"):
            died = parse_time(state.get("FinishedAt")) or now
            return f"Restarting ({state.get('ExitCode', 0)}) {human_duration(now - died)} ago"
        health = state.get("HealthStatus")
        if health:
            return f"Up {up} ({'health: starting' if health == 'starting' else health})"
        return f"Up {up}"
    if status == "removing":
        return "Removal In Progress"
    if status == "dead" or state.get("Dead"):
        return "Dead"
    if parse_time(state.get("StartedAt")) is None:
        return "Created"
    finished = parse_time(state.get("FinishedAt"))
    if finished is None:
        return ""
    return f"Exited ({state.get('ExitCode', 0)}) {human_duration(now - finished)} ago"


# -- shapes ---------------------------------------------------------------------------------
def command_text(path: str, args: Iterable[str]) -> str:
    """The ``Command`` of a list row: Path and Args, an argument with a space quoted."""
    quoted = [f"'{a}'" if " " in a else a for a in args]
    return " ".join([path, *quoted]) if quoted else path


def network_settings(sandbox_key: str, networks: dict[str, Any],
                     ports: dict[str, Any] | None = None) -> dict[str, Any]:
    """Docker's NetworkSettings: `networks` (EndpointSettings by network name), and the
    default bridge's endpoint again at the top, as Docker shows it; `ports` its Ports."""
    top = networks.get("bridge") or {}
    return {
        "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0, "Ports": ports or {}, "SandboxKey": sandbox_key,
        "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": top.get("EndpointID", ""), "Gateway": top.get("Gateway", ""),
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": top.get("IPAddress", ""), "IPPrefixLen": top.get("IPPrefixLen", 0),
        "IPv6Gateway": "", "MacAddress": top.get("MacAddress", ""),
        "Networks": networks,
    }


def state_doc(state: dict[str, Any]) -> dict[str, Any]:
    """Docker's ContainerState from the stored state."""
    return {
        "Status": state.get("Status", "created"),
        "Running": bool(state.get("Running")),
        "Paused": bool(state.get("Paused")),
        "Restarting": bool(state.get("Restarting")),
        "OOMKilled": bool(state.get("OOMKilled")),
        "Dead": bool(state.get("Dead")),
        "Pid": int(state.get("Pid") or 0),
        "ExitCode": int(state.get("ExitCode") or 0),
        "Error": state.get("Error") or "",
        "StartedAt": state.get("StartedAt") or GO_ZERO_TIME,
        "FinishedAt": state.get("FinishedAt") or GO_ZERO_TIME,
    }


def inspect_doc(row: ContainerRow, paths: dict[str, str], graph: dict[str, str],
                networks: dict[str, Any], ports: dict[str, Any] | None = None) -> dict[str, Any]:
    """Docker's ContainerInspect. `paths`: ResolvConfPath, HostnamePath, HostsPath, LogPath
    (and SandboxKey); `graph`: the overlay's LowerDir, MergedDir, UpperDir, WorkDir;
    `networks`: its EndpointSettings by network name; `ports`: NetworkSettings.Ports."""
    doc = row.doc
    host = doc["HostConfig"]
    return {
        "Id": row.id,
        "Created": row.created,
        "Path": doc["Path"],
        "Args": list(doc["Args"]),
        "State": state_doc(row.state),
        "Image": row.image_id,
        "ResolvConfPath": paths["ResolvConfPath"],
        "HostnamePath": paths["HostnamePath"],
        "HostsPath": paths["HostsPath"],
        "LogPath": paths["LogPath"],
        "Name": "/" + row.name,
        "RestartCount": int(row.state.get("RestartCount") or 0),
        "Driver": "overlay2",
        "Platform": doc.get("Platform") or "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host,
        "GraphDriver": {"Data": graph, "Name": "overlay2"},
        "Mounts": mount_views(doc.get("MountPoints")),
        "Config": container_config(doc["Config"]),
        "NetworkSettings": network_settings(paths.get("SandboxKey", ""), networks, ports),
    }


def summary(row: ContainerRow, image: str, now: float | None = None,
            networks: dict[str, Any] | None = None,
            ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Docker's ContainerSummary; `image` is what the Image column shows (the name the user
    gave while it still names the same image, else the image ID); `networks` its
    EndpointSettings by network name; `ports` its Ports in the list's shape."""
    doc = row.doc
    mode = doc["HostConfig"]["NetworkMode"]
    return {
        "Id": row.id,
        "Names": ["/" + row.name],
        "Image": image,
        "ImageID": row.image_id,
        "Command": command_text(doc["Path"], doc["Args"]),
        "Created": int(parse_time(row.created) or 0),
        "Ports": ports or [],
        "Labels": dict(doc["Config"].get("Labels") or {}),
        "State": state_string(row.state),
        "Status": status_text(row.state, now),
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": networks or {}},
        "Mounts": mount_views(doc.get("MountPoints")),
    }


# -- filters --------------------------------------------------------------------------------
def _regex_match(pattern: str, text: str) -> bool:
    """filters.Args.Match: the value as given, or as a regular expression found in `text`."""
    if pattern == text:
        return True
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _port_range(text: str) -> list[str]:
    """A publish/expose filter value (``8080``, ``8000-8010/udp``) as its ports."""
    ports, _, proto = text.partition("/")
    low, _, high = ports.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise InvalidArgument(f"invalid filter: invalid port {text!r}") from None
    return [f"{p}/{proto or 'tcp'}" for p in range(first, last + 1)] if last - first < 65536 \
        else []


def _port_key(text: str) -> str:
    port, _, proto = text.partition("/")
    return f"{port}/{proto or 'tcp'}"


class ListFilter:
    """moby's list filtering, prepared once for a list call. `resolve` turns a before/since
    value (an ID, prefix or name) into its row; `image_ids` turns ancestor values into the
    image IDs they name; `networks_of` a container's ID into the names and IDs of the
    networks it is attached to (the network filter's; its NetworkMode without it);
    `published_of` a container's ID into its published host ports (``8080/tcp``)."""

    def __init__(self, filters: Filters, resolve: Callable[[str], ContainerRow],
                 image_ids: Callable[[list[str]], set[str]],
                 networks_of: Callable[[str], set[str]] | None = None,
                 published_of: Callable[[str], set[str]] | None = None) -> None:
        filters.validate(LIST_FILTERS)
        self.f = filters
        self.networks_of = networks_of
        self.published_of = published_of
        self.publish = {_port_key(p) for v in filters.get("publish") for p in _port_range(v)}
        for status in filters.get("status"):
            if status not in STATUSES:
                raise InvalidArgument(f"invalid filter 'status={status}'")
        self.exited: list[int] = []
        for value in filters.get("exited"):
            try:
                self.exited.append(int(value))
            except ValueError:
                raise InvalidArgument(f"invalid filter 'exited={value}'") from None
        for key in ("health",):
            for value in filters.get(key):
                if value not in ("starting", "healthy", "unhealthy", "none"):
                    raise InvalidArgument(f"Unrecognised filter value for health: {value}")
        for key in ("is-task",):
            for value in filters.get(key):
                if value not in ("true", "false"):
                    raise InvalidArgument(f"invalid filter 'is-task={value}'")
        self.before = self._bound("before", resolve)
        self.since = self._bound("since", resolve)
        self.ancestors = image_ids(filters.get("ancestor")) if filters.contains("ancestor") \
            else None

    def _bound(self, key: str, resolve: Callable[[str], ContainerRow]) -> int | None:
        found = None
        for value in self.f.get(key):
            found = resolve(value).seq
        return found

    @property
    def wants_all(self) -> bool:
        """A status filter lists every container, running or not (as `docker ps` does)."""
        return self.f.contains("status")

    def match(self, row: ContainerRow) -> bool:
        f, state = self.f, row.state
        config, host = row.doc["Config"], row.doc["HostConfig"]
        if f.contains("id") and not any(_regex_match(v, row.id) for v in f.get("id")):
            return False
        if f.contains("name") and not any(_regex_match(v, row.name) for v in f.get("name")):
            return False
        if not f.match_kv_list("label", config.get("Labels") or {}):
            return False
        if f.contains("status") and state_string(state) not in f.get("status"):
            return False
        if self.exited and not (not state.get("Running") and
                                parse_time(state.get("StartedAt")) is not None and
                                int(state.get("ExitCode") or 0) in self.exited):
            return False
        if self.before is not None and row.seq >= self.before:
            return False
        if self.since is not None and row.seq <= self.since:
            return False
        if self.ancestors is not None and row.image_id not in self.ancestors:
            return False
        if f.contains("network"):
            mode = host["NetworkMode"]
            joined = self.networks_of(row.id) if self.networks_of is not None else \
                {mode, "bridge" if mode == "default" else mode}
            if not joined & set(f.get("network")):
                return False
        if f.contains("expose"):
            exposed = {_port_key(p) for p in config.get("ExposedPorts") or {}}
            if not any(_port_key(v) in exposed for v in f.get("expose")):
                return False
        if f.contains("health") and health_word(row.state) not in f.get("health"):
            return False
        if f.contains("is-task") and "false" not in f.get("is-task"):
            return False
        if f.contains("isolation") and not (set(f.get("isolation")) & {"default", ""}):
            return False
        if f.contains("volume"):  # moby: a volume's name or a bind's source, or a target
            shown = mount_views(row.doc.get("MountPoints"))
            names = {m.get("Name") or m["Source"] for m in shown}
            names |= {m["Destination"] for m in shown}
            if not names & set(f.get("volume")):
                return False
        if f.contains("publish"):  # moby: the host ports published
            if self.published_of is None or not self.publish & self.published_of(row.id):
                return False
        return True
