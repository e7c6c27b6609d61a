"""Docker's container create request, checked and completed the way dockerd does it.

`parse_create(body, image_config)` takes the body of ``POST /containers/create`` (Config at
the top, HostConfig and NetworkingConfig inside) and the image's own config, and gives the
`CreateRequest` the engine stores: the user's Config merged with the image's (moby's
`merge`: the image's Env entries the user did not set, its Labels, ExposedPorts, Volumes,
WorkingDir, User, StopSignal, and its Cmd/Entrypoint by Docker's rules), the HostConfig with
Docker's defaults filled in (NetworkMode ``default``, ``json-file`` logs, restart policy
``no``, a 64 MiB /dev/shm, the default masked and read-only /proc paths…), the process's
Path and Args, and the warnings Docker would give. Everything malformed or out of range is
an `InvalidArgument` with Docker's own words (``Minimum memory limit allowed is 6MB``).

The mounts (Binds, Mounts, Tmpfs and the image's Volumes) are read by `engine.mounts`
into the request's mount points. What skiff does not do yet is refused here by name rather
than quietly dropped: links, and the rest listed in `_UNSUPPORTED`. A field Docker does
not know is ignored, as Docker's JSON decoder ignores it (newer clients send fields of newer
API versions).
"""

from __future__ import annotations

import os

from skiff.engine.security_opts import check_security_opts
from skiff.engine.supervision import check_healthcheck, check_restart_policy
from skiff.errors import InvalidArgument
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

MIN_MEMORY = 6 * 1024 * 1024  # moby's linuxMinMemory
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
DEFAULT_STOP_TIMEOUT = 10
NOT_YET = ": not supported by skiff yet"
DEFAULT_MASKED_PATHS = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                        "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                        "/sys/devices/virtual/powercap")
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger")
RUNTIMES = ("", "runc", "skiff-runtime")
RUNTIME_NAME = "skiff-runtime"
ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
           "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as")

# Go's type names, for Docker's "cannot unmarshal" texts
_STR, _BOOL, _INT, _LIST, _MAP, _OBJ, _STRS = ("string", "bool", "int64", "[]string",
                                                "map[string]string", "object", "strslice")

# Docker's container.Config, in its field order, with the Go type of each field
CONFIG_FIELDS: tuple[tuple[str, str], ...] = (
    ("Hostname", _STR), ("Domainname", _STR), ("User", _STR), ("AttachStdin", _BOOL),
    ("AttachStdout", _BOOL), ("AttachStderr", _BOOL), ("ExposedPorts", _OBJ), ("Tty", _BOOL),
    ("OpenStdin", _BOOL), ("StdinOnce", _BOOL), ("Env", _LIST), ("Cmd", _STRS),
    ("Healthcheck", _OBJ), ("ArgsEscaped", _BOOL), ("Image", _STR), ("Volumes", _OBJ),
    ("WorkingDir", _STR), ("Entrypoint", _STRS), ("NetworkDisabled", _BOOL),
    ("MacAddress", _STR), ("OnBuild", _LIST), ("Labels", _MAP), ("StopSignal", _STR),
    ("StopTimeout", _INT), ("Shell", _LIST),
)

# Docker's container.HostConfig as `docker inspect` shows it: field, Go type, the value a
# container has when the request does not set it (None is Go's nil)
HOST_CONFIG_FIELDS: tuple[tuple[str, str, Any], ...] = (
    ("Binds", _LIST, None), ("ContainerIDFile", _STR, ""),
    ("LogConfig", _OBJ, {"Type": "json-file", "Config": {}}), ("NetworkMode", _STR, "default"),
    ("PortBindings", _OBJ, {}), ("RestartPolicy", _OBJ, {"Name": "no", "MaximumRetryCount": 0}),
    ("AutoRemove", _BOOL, False), ("VolumeDriver", _STR, ""), ("VolumesFrom", _LIST, None),
    ("ConsoleSize", "[2]uint", [0, 0]), ("CapAdd", _STRS, None), ("CapDrop", _STRS, None),
    ("CgroupnsMode", _STR, ""), ("Dns", _LIST, []), ("DnsOptions", _LIST, []),
    ("DnsSearch", _LIST, []), ("ExtraHosts", _LIST, None), ("GroupAdd", _LIST, None),
    ("IpcMode", _STR, "private"), ("Cgroup", _STR, ""), ("Links", _LIST, None),
    ("OomScoreAdj", _INT, 0), ("PidMode", _STR, ""), ("Privileged", _BOOL, False),
    ("PublishAllPorts", _BOOL, False), ("ReadonlyRootfs", _BOOL, False),
    ("SecurityOpt", _LIST, None), ("StorageOpt", _MAP, None), ("Tmpfs", _MAP, None),
    ("UTSMode", _STR, ""), ("UsernsMode", _STR, ""), ("ShmSize", _INT, DEFAULT_SHM_SIZE),
    ("Sysctls", _MAP, None), ("Runtime", _STR, RUNTIME_NAME), ("Isolation", _STR, ""),
    ("CpuShares", _INT, 0), ("Memory", _INT, 0), ("NanoCpus", _INT, 0),
    ("CgroupParent", _STR, ""), ("BlkioWeight", _INT, 0),
    ("BlkioWeightDevice", "[]WeightDevice", []), ("BlkioDeviceReadBps", "[]ThrottleDevice", []),
    ("BlkioDeviceWriteBps", "[]ThrottleDevice", []),
    ("BlkioDeviceReadIOps", "[]ThrottleDevice", []),
    ("BlkioDeviceWriteIOps", "[]ThrottleDevice", []), ("CpuPeriod", _INT, 0),
    ("CpuQuota", _INT, 0), ("CpuRealtimePeriod", _INT, 0), ("CpuRealtimeRuntime", _INT, 0),
    ("CpusetCpus", _STR, ""), ("CpusetMems", _STR, ""), ("Devices", "[]DeviceMapping", []),
    ("DeviceCgroupRules", _LIST, None), ("DeviceRequests", "[]DeviceRequest", None),
    ("KernelMemory", _INT, 0), ("KernelMemoryTCP", _INT, 0), ("MemoryReservation", _INT, 0),
    ("MemorySwap", _INT, 0), ("MemorySwappiness", _INT, None), ("OomKillDisable", _BOOL, False),
    ("PidsLimit", _INT, None), ("Ulimits", "[]Ulimit", None), ("CpuCount", _INT, 0),
    ("CpuPercent", _INT, 0), ("IOMaximumIOps", _INT, 0), ("IOMaximumBandwidth", _INT, 0),
    ("Mounts", "[]Mount", None), ("MaskedPaths", _LIST, None), ("ReadonlyPaths", _LIST, None),
    ("Init", _BOOL, None),
)

# What is refused until skiff does it: (section, field, the option as a user knows it)
_UNSUPPORTED: tuple[tuple[str, str, str], ...] = (
    ("HostConfig", "Links", "links (--link)"),
    ("HostConfig", "DeviceRequests", "device requests (--gpus)"),
    ("HostConfig", "StorageOpt", "storage options (--storage-opt)"),
    ("HostConfig", "Cgroup", "joining another container's cgroup (--cgroup)"),
    ("HostConfig", "BlkioWeightDevice", "--blkio-weight-device"),
    ("HostConfig", "BlkioDeviceReadBps", "--device-read-bps"),
    ("HostConfig", "BlkioDeviceWriteBps", "--device-write-bps"),
    ("HostConfig", "BlkioDeviceReadIOps", "--device-read-iops"),
    ("HostConfig", "BlkioDeviceWriteIOps", "--device-write-iops"),
    ("HostConfig", "CpuRealtimePeriod", "--cpu-rt-period"),
    ("HostConfig", "CpuRealtimeRuntime", "--cpu-rt-runtime"),
    ("HostConfig", "KernelMemory", "a kernel memory limit (--kernel-memory)"),
    ("HostConfig", "KernelMemoryTCP", "a kernel TCP memory limit"),
    ("HostConfig", "CpuCount", "CpuCount (Windows only)"),
    ("HostConfig", "CpuPercent", "CpuPercent (Windows only)"),
    ("HostConfig", "IOMaximumIOps", "IOMaximumIOps (Windows only)"),
    ("HostConfig", "IOMaximumBandwidth", "IOMaximumBandwidth (Windows only)"),
)

class CreateRequest(Record):
    """A checked create request: what the engine stores and composes the spec from."""

    config: dict[str, Any]        # Docker's Config, merged with the image's
    host_config: dict[str, Any]   # Docker's HostConfig, every field, defaults filled in
    path: str                     # the program (Docker's Path)
    args: tuple[str, ...]         # its arguments (Docker's Args)
    warnings: tuple[str, ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()  # `engine.mounts` points, volumes not made yet

    @property
    def network_mode(self) -> str:
        """``default``, ``none`` or ``host``: the only modes a create gets through with."""
        return str(self.host_config["NetworkMode"])


def _go_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(struct: str, key: str, gotype: str, value: Any) -> InvalidArgument:
    return InvalidArgument(f"json: cannot unmarshal {_go_kind(value)} into Go struct field "
                           f"{struct}.{key} of type {gotype}")


def _check_type(struct: str, key: str, gotype: str, value: Any) -> Any:
    """The value of a field as Go would decode it (a strslice may be one string)."""
    if value is None:
        return None
    ok: bool
    if gotype == _STR:
        ok = isinstance(value, str)
    elif gotype == _BOOL:
        ok = isinstance(value, bool)
    elif gotype == _INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, float) and value.is_integer():
            value, ok = int(value), True
    elif gotype == _STRS:
        if isinstance(value, str):
            return [value]
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif gotype == _LIST:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif gotype == _MAP:
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    elif gotype.startswith("[]") or gotype.startswith("[2]"):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, dict)
    if not ok:
        raise _type_error(struct, key, gotype, value)
    return value


def _zero(value: Any) -> bool:
    return value in (None, "", 0, False, [], {})


def parse_create(body: Any, image_config: dict[str, Any] | None, *,
                 ncpu: int | None = None, swap_limit: bool = True,
                 host_hostname: Callable[[], str] | None = None,
                 known_caps: Sequence[str] | None = None,
                 cgroup_v2: bool | None = None,
                 mounts_of: Callable[[str], list[dict[str, Any]]] | None = None
                 ) -> CreateRequest:
    """Check and complete `body` (Docker's ContainerCreate JSON) against the image's config
    (the ``config`` object of its image config JSON, or None). The host's facts — CPUs,
    swap accounting, hostname, the capabilities its kernel knows, whether it is a pure
    cgroup v2 host — are read unless given. `mounts_of(ref)`: the mount points of another
    container, for VolumesFrom."""
    if not isinstance(body, dict) or not body:
        raise InvalidArgument("config cannot be empty in order to create a container")
    config: dict[str, Any] = {}
    for key, gotype in CONFIG_FIELDS:
        if key in body:
            value = _check_type("Config", key, gotype, body[key])
            if value is not None:
                config[key] = value
    raw_host = body.get("HostConfig")
    if raw_host is not None and not isinstance(raw_host, dict):
        raise _type_error("ContainerConfigWrapper", "HostConfig", "container.HostConfig",
                          raw_host)
    given: dict[str, Any] = {}
    for key, gotype, _ in HOST_CONFIG_FIELDS:
        if raw_host and key in raw_host:
            value = _check_type("HostConfig", key, gotype, raw_host[key])
            if value is not None:
                given[key] = value
    _refuse_unsupported(config, given)
    check_healthcheck(config.get("Healthcheck"))
    if not config.get("Image"):
        raise InvalidArgument("No image specified: Config.Image is empty")
    warnings: list[str] = []
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers") if cgroup_v2 is None \
        else cgroup_v2
    host = _host_config(given, warnings, ncpu or os.cpu_count() or 1, swap_limit, v2)
    _normalize_capabilities(host, known_caps)
    if not host["CgroupnsMode"]:
        # Docker's default: a cgroup namespace of its own where cgroups are v2 only
        host["CgroupnsMode"] = "private" if v2 else "host"
    _check_networking(host["NetworkMode"], body.get("NetworkingConfig"))
    from skiff.engine.network_ports import check_ports

    check_ports(config, host, warnings)
    if host["NetworkMode"].startswith("container:"):
        for key, what in (("Hostname", "hostname"), ("MacAddress", "mac-address")):
            if config.get(key):
                raise InvalidArgument(f"conflicting options: {what} and the network mode")
    merged = merge_image_config(config, image_config or {})
    _check_config(merged)
    if not merged.get("Hostname") and host["NetworkMode"] == "host":
        merged["Hostname"] = (host_hostname or _uname_node)()
    path, args = entrypoint_and_args(merged.get("Entrypoint"), merged.get("Cmd"))
    from skiff.engine.mounts import mount_points

    return CreateRequest(config=merged, host_config=host, path=path, args=tuple(args),
                         warnings=tuple(warnings),
                         mounts=tuple(mount_points(host, merged, mounts_of=mounts_of)))


def _uname_node() -> str:
    return os.uname().nodename


def _refuse_unsupported(config: dict[str, Any], host: dict[str, Any]) -> None:
    for section, key, what in _UNSUPPORTED:
        value = (config if section == "Config" else host).get(key)
        if not _zero(value):
            raise InvalidArgument(f"{what}{NOT_YET} ({section}.{key})")
    check_security_opts(host.get("SecurityOpt"))
    for key, kinds in (("UsernsMode", ("", "host")), ("PidMode", ("", "host")),
                       ("UTSMode", ("", "host")),
                       ("IpcMode", ("", "private", "shareable", "none", "host")),
                       ("CgroupnsMode", ("", "host", "private")), ("Isolation", ("", "default"))):
        value = host.get(key, "")
        if value not in kinds:
            if value.startswith("container:") or key == "UsernsMode":
                raise InvalidArgument(f"{key} {value!r}{NOT_YET} (HostConfig.{key})")
            raise InvalidArgument(f"invalid {_MODE_WORDS[key]} mode: {value}")


_MODE_WORDS = {"PidMode": "PID", "UTSMode": "UTS", "IpcMode": "IPC",
               "CgroupnsMode": "cgroup namespace", "Isolation": "isolation",
               "UsernsMode": "user namespace"}


def _host_config(given: dict[str, Any], warnings: list[str], ncpu: int,
                 swap_limit: bool, v2: bool) -> dict[str, Any]:
    host: dict[str, Any] = {}
    for key, _, default in HOST_CONFIG_FIELDS:
        value = given.get(key)
        host[key] = value if value is not None else _copy(default)
    mode = host["NetworkMode"] or "default"
    if mode.startswith("container:"):
        if not mode.partition(":")[2]:
            raise InvalidArgument("invalid container format container:<name|id>")
        for key, what in (("Dns", "dns"), ("ExtraHosts", "add-host"),
                          ("DnsSearch", "dns-search"), ("DnsOptions", "dns-opt")):
            if host.get(key):
                raise InvalidArgument(f"conflicting options: {what} and the network mode")
    host["NetworkMode"] = mode
    host["IpcMode"] = host["IpcMode"] or "private"
    host["LogConfig"] = _log_config(given.get("LogConfig"))
    host["RestartPolicy"] = check_restart_policy(given.get("RestartPolicy"),
                                                 bool(host["AutoRemove"]))
    if host["Runtime"] not in RUNTIMES:
        raise InvalidArgument(f"unknown or invalid runtime name: {host['Runtime']}")
    host["Runtime"] = RUNTIME_NAME
    _check_resources(host, warnings, ncpu, swap_limit)
    if host["ShmSize"] < 0:
        raise InvalidArgument("SHM size can not be less than 0")
    if host["ShmSize"] == 0:
        host["ShmSize"] = DEFAULT_SHM_SIZE
    if not -1000 <= host["OomScoreAdj"] <= 1000:
        raise InvalidArgument(f"Invalid value {host['OomScoreAdj']}, range for oom score adj "
                              f"is [-1000, 1000]")
    _check_oom_score_adj(host["OomScoreAdj"])
    for ulimit in host["Ulimits"] or []:
        _check_ulimit(ulimit)
    if host["OomKillDisable"]:
        _check_oom_kill_disable(host, warnings, v2)
    for entry in host["ExtraHosts"] or []:
        name, sep, address = entry.partition(":")
        if not sep or not name or not address:
            raise InvalidArgument(f"invalid extra host entry: {entry!r} (name:address)")
    for key in host["Sysctls"] or {}:
        _check_sysctl(key, host)
    if host["CgroupParent"] and ".." in host["CgroupParent"].split("/"):
        raise InvalidArgument(f"invalid cgroup parent {host['CgroupParent']!r}")
    if host["Privileged"]:
        host["MaskedPaths"] = None
        host["ReadonlyPaths"] = None
    else:
        if given.get("MaskedPaths") is None:
            host["MaskedPaths"] = list(DEFAULT_MASKED_PATHS)
        if given.get("ReadonlyPaths") is None:
            host["ReadonlyPaths"] = list(DEFAULT_READONLY_PATHS)
    return host


def _check_oom_kill_disable(host: dict[str, Any], warnings: list[str], v2: bool) -> None:
    """moby's verifyPlatformContainerResources for OomKillDisable: cgroup v2 has no such
    knob (the option is dropped with a warning); without a memory limit, a warning."""
    if v2:
        warnings.append("Your kernel does not support OomKillDisable. OomKillDisable "
                        "discarded.")
        host["OomKillDisable"] = False
    elif host["Memory"] == 0:
        warnings.append("OOM killer is disabled for the container, but no memory limit is "
                        "set, this can result in the system running out of resources.")


def _normalize_capabilities(host: dict[str, Any], known: Sequence[str] | None) -> None:
    from skiff.engine.oci_spec import all_capabilities, normalize_capabilities

    for key in ("CapAdd", "CapDrop"):
        if host[key]:
            host[key] = normalize_capabilities(host[key], known or all_capabilities())
        else:
            host[key] = None


def _check_sysctl(key: str, host: dict[str, Any]) -> None:
    """runc's rules: a sysctl must belong to a namespace the container has of its own."""
    from skiff.runtime.create import _IPC_SYSCTLS

    if key.startswith("net."):
        if host["NetworkMode"] == "host":
            raise InvalidArgument(f'sysctl "{key}" not allowed in host network namespace')
    elif key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        if host["IpcMode"] == "host":
            raise InvalidArgument(f'sysctl "{key}" not allowed with host IPC namespace')
    elif key in ("kernel.hostname", "kernel.domainname"):
        raise InvalidArgument(f'sysctl "{key}" is not allowed as it conflicts with the OCI '
                              f'"{key.split(".")[1]}" field')
    else:
        raise InvalidArgument(f'sysctl "{key}" is not in a separate kernel namespace')


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _log_config(raw: Any) -> dict[str, Any]:
    raw = raw or {}
    kind = raw.get("Type") or "json-file"
    if not isinstance(kind, str):
        raise _type_error("LogConfig", "Type", _STR, kind)
    if kind != "json-file":
        raise InvalidArgument(f"the logging driver {kind!r}{NOT_YET}, only json-file "
                              f"(HostConfig.LogConfig)")
    opts = raw.get("Config") or {}
    if not isinstance(opts, dict) or not all(isinstance(v, str) for v in opts.values()):
        raise _type_error("LogConfig", "Config", _MAP, opts)
    for key, value in opts.items():
        if key == "max-size":
            if value != "-1":
                ram_in_bytes(value)
        elif key == "max-file":
            try:
                count = int(value)
            except ValueError:
                raise InvalidArgument(f"strconv.Atoi: parsing {value!r}: invalid syntax") from None
            if count < 1:
                raise InvalidArgument("max-file cannot be less than 1")
        elif key == "compress":
            if value not in ("false", "0", "False", "FALSE"):
                raise InvalidArgument(f"compressed log files{NOT_YET} (log-opt compress)")
        elif key in ("labels", "labels-regex", "env", "env-regex", "tag"):
            raise InvalidArgument(f"the log option {key!r}{NOT_YET}")
        else:
            raise InvalidArgument(f"unknown log opt '{key}' for json-file log driver")
    return {"Type": "json-file", "Config": dict(opts)}


def log_limits(host_config: dict[str, Any]) -> tuple[int, int]:
    """(max size in bytes or -1, max files) of a container's json-file log."""
    opts = host_config.get("LogConfig", {}).get("Config") or {}
    size = opts.get("max-size", "-1")
    return (-1 if size == "-1" else ram_in_bytes(size)), int(opts.get("max-file", "1"))


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """go-units' RAMInBytes: ``10m``, ``1.5g``, ``512kb``, ``100`` (binary multiples)."""
    import re

    found = re.fullmatch(r"(\d+(?:\.\d+)*) ?([kmgtp])?i?b?", text, re.IGNORECASE)
    if found is None:
        raise InvalidArgument(f"invalid size: '{text}'")
    number, unit = found.groups()
    try:
        value = float(number)
    except ValueError:
        raise InvalidArgument(f"invalid size: '{text}'") from None
    return int(value * _UNITS[(unit or "").lower()])


def _check_ulimit(ulimit: Any) -> None:
    if not isinstance(ulimit, dict):
        raise _type_error("HostConfig", "Ulimits", "[]*units.Ulimit", ulimit)
    name = ulimit.get("Name")
    if name not in ULIMITS:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    soft, hard = ulimit.get("Soft", 0), ulimit.get("Hard", 0)
    if not isinstance(soft, int) or not isinstance(hard, int):
        raise InvalidArgument(f"invalid ulimit {name}: Soft and Hard must be numbers")
    if hard != -1 and (soft == -1 or soft > hard):  # -1: unlimited
        raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: "
                              f"{soft} > {hard}")
    _check_raisable(name, hard)


def _holds_sys_resource() -> bool:
    from skiff.kernel.capabilities import CAPABILITIES

    try:
        with open("/proc/self/status") as f:
            eff = next((int(line.split()[1], 16) for line in f if line.startswith("CapEff:")), 0)
    except OSError:
        eff = 0
    return bool(eff >> CAPABILITIES["CAP_SYS_RESOURCE"] & 1)


def _check_oom_score_adj(value: int) -> None:
    """Below skiffd's own score needs CAP_SYS_RESOURCE too (the kernel answers EACCES)."""
    try:
        with open("/proc/self/oom_score_adj") as f:
            own = int(f.read())
    except (OSError, ValueError):
        return
    if value < own and not _holds_sys_resource():
        raise InvalidArgument(f"oom score adj {value}: below skiffd's own {own}, and skiffd "
                              f"lacks CAP_SYS_RESOURCE to lower it")


def _check_raisable(name: str, hard: int) -> None:
    """A hard limit above skiffd's own needs CAP_SYS_RESOURCE, which hosts (this one among
    them) may withhold even from root: say so now rather than fail the start with EPERM."""
    import resource

    which = getattr(resource, "RLIMIT_" + name.upper(), None)
    if which is None:
        return
    own = resource.getrlimit(which)[1]
    if own == resource.RLIM_INFINITY or (hard != -1 and hard <= own) or _holds_sys_resource():
        return
    wanted = "unlimited" if hard == -1 else str(hard)
    raise InvalidArgument(f"ulimit {name}: the hard limit {wanted} is above this host's "
                          f"{own}, and skiffd lacks CAP_SYS_RESOURCE to raise it")


def _check_resources(host: dict[str, Any], warnings: list[str], ncpu: int,
                     swap_limit: bool) -> None:
    """moby's verifyPlatformContainerResources, for the resources skiff sets."""
    memory, swap, reservation = host["Memory"], host["MemorySwap"], host["MemoryReservation"]
    if memory != 0 and memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap == 0:
        swap = host["MemorySwap"] = memory * 2  # Docker's default: as much swap as memory
    if memory > 0 and swap > 0 and not swap_limit:
        warnings.append("Your kernel does not support swap limit capabilities or the cgroup "
                        "is not mounted. Memory limited without swap.")
        swap = host["MemorySwap"] = -1
    if swap > 0 and memory == 0:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap "
                              "limit, see usage")
    if memory > 0 and swap > 0 and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                              "see usage")
    if reservation != 0 and reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation "
                              "limit, see usage")
    swappiness = host["MemorySwappiness"]
    if swappiness is not None and not -1 <= swappiness <= 100:
        raise InvalidArgument(f"Invalid value: {swappiness}, valid memory swappiness range "
                              f"is 0-100")
    nano, period, quota = host["NanoCpus"], host["CpuPeriod"], host["CpuQuota"]
    if nano > 0 and period > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano < 0 or nano > ncpu * 10**9:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only "
                              f"{ncpu} CPUs available")
    if period != 0 and not 1000 <= period <= 1000000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
                              "than 1s (i.e. 1000000)")
    if quota != 0 and quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if host["CpuShares"] < 0:
        raise InvalidArgument(f"invalid CPU shares {host['CpuShares']}: shares must not be "
                              f"negative")
    weight = host["BlkioWeight"]
    if weight != 0 and not 10 <= weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    if host["PidsLimit"] is not None and host["PidsLimit"] <= 0:
        host["PidsLimit"] = None  # 0 and -1 both mean no limit (Docker stores none)


def _check_networking(mode: str, networking: Any) -> None:
    """The shape of NetworkingConfig (what it asks of each network is the network
    service's to check, at create: `network_endpoints.plan`)."""
    if networking is None:
        return
    if not isinstance(networking, dict):
        raise _type_error("ContainerConfigWrapper", "NetworkingConfig",
                          "network.NetworkingConfig", networking)
    endpoints = networking.get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict):
        raise _type_error("NetworkingConfig", "EndpointsConfig",
                          "map[string]*network.EndpointSettings", endpoints)
    if mode.startswith("container:") and endpoints:
        raise InvalidArgument("conflicting options: container type network can't be used "
                              "with other networks")


def merge_image_config(user: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """moby's merge(userConf, imageConf), then its reset of an Entrypoint of [""]."""
    out = dict(user)
    for key in ("User", "WorkingDir", "StopSignal"):
        if not out.get(key) and image.get(key):
            out[key] = image[key]
    for key in ("ExposedPorts", "Volumes"):  # the image's, with the user's over them
        if image.get(key):
            out[key] = {**image[key], **(out.get(key) or {})}
    out["Labels"] = {**(image.get("Labels") or {}), **(out.get("Labels") or {})}
    env = list(out.get("Env") or [])
    if not env:
        env = list(image.get("Env") or [])
    else:
        keys = {e.partition("=")[0] for e in env}
        env += [e for e in image.get("Env") or [] if e.partition("=")[0] not in keys]
    out["Env"] = env or None
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = image.get("Cmd")
            if image.get("ArgsEscaped") is not None:
                out["ArgsEscaped"] = image["ArgsEscaped"]
        if out.get("Entrypoint") is None and image.get("Entrypoint"):
            out["Entrypoint"] = image["Entrypoint"]
    if out.get("OnBuild") is None and image.get("OnBuild"):
        out["OnBuild"] = image["OnBuild"]
    if isinstance(image.get("Healthcheck"), dict):  # the user's fields over the image's
        mine = out.get("Healthcheck") or {}
        out["Healthcheck"] = {**image["Healthcheck"],
                              **{k: v for k, v in mine.items() if not _zero(v)}}
    if out.get("Entrypoint") == [""]:
        out["Entrypoint"] = None
    return out


def _check_config(config: dict[str, Any]) -> None:
    if not config.get("Entrypoint") and not config.get("Cmd"):
        raise InvalidArgument("No command specified")
    workdir = config.get("WorkingDir")
    if workdir:
        if not workdir.startswith("/"):
            raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to "
                                  f"be an absolute path")
        config["WorkingDir"] = os.path.normpath(workdir).replace("//", "/")
    signal = config.get("StopSignal")
    if signal:
        parse_signal(signal)
    hostname = config.get("Hostname") or ""
    if len(hostname) > 63:
        raise InvalidArgument(f"invalid hostname format: {hostname} (at most 63 characters)")
    for entry in config.get("Env") or []:
        if entry.startswith("="):
            raise InvalidArgument(f"invalid environment variable: {entry}")


def parse_signal(text: str) -> int:
    """A signal as Docker takes it (``KILL``, ``SIGKILL``, ``9``); Docker's 400 otherwise."""
    from skiff.kernel import signals

    try:
        return signals.parse(text)
    except ValueError:
        raise InvalidArgument(f"Invalid signal: {text}") from None


def entrypoint_and_args(entrypoint: list[str] | None,
                        cmd: list[str] | None) -> tuple[str, list[str]]:
    """Docker's getEntrypointAndArgs: the program and its arguments."""
    if entrypoint:
        return entrypoint[0], [*entrypoint[1:], *(cmd or [])]
    cmd = cmd or []
    return (cmd[0] if cmd else ""), list(cmd[1:])
