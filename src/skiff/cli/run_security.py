"""The security, device, limit and namespace flags of `run` and `create`, as the docker CLI
parses them (cli/command/container/opts.go): ``--security-opt`` (a seccomp profile file is
read here and its JSON sent, as docker does; ``systempaths=unconfined`` clears the masked
and read-only paths), ``--ulimit name=soft[:hard]``, ``--device src[:dst][:rwm]``,
``--device-cgroup-rule``, ``--group-add``, ``--sysctl``, ``--shm-size``, ``--init``,
``--oom-kill-disable``, ``--oom-score-adj``, ``--cgroupns``, ``--ipc``, ``--pid``, ``--uts``
and ``--userns``. `apply_flags` fills them into the HostConfig of the create body; a value
docker would refuse is a ValueError or InvalidArgument with docker's words.
"""

from __future__ import annotations

from skiff.cli.flags import Flag, flag, option, repeated
from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.cli.flags import Namespace

_ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
            "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as")
_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                      "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                      "kernel.shm_rmid_forced"})
# (`re` and `json` load only when a run has such flags: together ~5 ms of every start)
_CGROUP_RULE = r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$"


def parse_ulimit(text: str) -> dict[str, Any]:
    """go-units ParseUlimit: ``nofile=1024`` or ``nofile=1024:2048``."""
    name, eq, values = text.partition("=")
    if not eq:
        raise ValueError(f"invalid ulimit argument: {text}")
    if name not in _ULIMITS:
        raise ValueError(f"invalid ulimit type: {name}")
    soft_text, colon, hard_text = values.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if colon else soft
    except ValueError:
        bad = hard_text if colon and soft_text.lstrip("-").isdigit() else soft_text
        raise ValueError(f'strconv.ParseInt: parsing "{bad}": invalid syntax') from None
    if soft > hard:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: "
                         f"{soft} > {hard}")
    return {"Name": name, "Hard": hard, "Soft": soft}


def _device_mode(mode: str) -> bool:
    return bool(mode) and len(mode) <= 3 and all(c in "rwm" for c in mode) \
        and len(set(mode)) == len(mode)


def parse_device(text: str) -> dict[str, str]:
    """opts.ParseDevice: ``/dev/x``, ``/dev/x:/dev/y``, ``/dev/x:rw``, ``/dev/x:/dev/y:rwm``."""
    parts = text.split(":")
    src, dst, mode = parts[0], "", "rwm"
    if len(parts) == 3:
        dst, mode = parts[1], parts[2]
        if not _device_mode(mode):
            raise ValueError(f"invalid device mode: {mode}")
    elif len(parts) == 2:
        if _device_mode(parts[1]):
            mode = parts[1]
        else:
            dst = parts[1]
    elif len(parts) != 1:
        raise ValueError(f"bad format for path: {text}")
    for path in (src, dst):
        if path and not path.startswith("/"):
            raise ValueError(f"bad format for path: {path}")
    return {"PathOnHost": src, "PathInContainer": dst or src, "CgroupPermissions": mode}


def check_cgroup_rule(text: str) -> None:
    import re

    if not re.match(_CGROUP_RULE, text):
        raise ValueError(f"invalid device cgroup format '{text}'")


def check_sysctl(text: str) -> None:
    key, eq, _ = text.partition("=")
    if not eq or not (key in _SYSCTLS or key.startswith(("net.", "fs.mqueue."))):
        raise ValueError(f"sysctl '{text}' is not allowed")


def security_flags() -> list[Flag]:
    from skiff.cli.run import integer, ram_in_bytes

    return [
        option("cgroupns", "", "Cgroup namespace to use (host|private)"),
        repeated("device", "", "Add a host device to the container", check=parse_device),
        repeated("device-cgroup-rule", "", "Add a rule to the cgroup allowed devices list",
                 check=check_cgroup_rule),
        repeated("group-add", "", "Add additional groups to join"),
        flag("init", "", "Run an init inside the container that forwards signals and reaps "
             "processes"),
        option("ipc", "", "IPC mode to use"),
        flag("oom-kill-disable", "", "Disable OOM Killer"),
        integer("oom-score-adj", "", "Tune host's OOM preferences (-1000 to 1000)"),
        option("pid", "", "PID namespace to use"),
        repeated("security-opt", "", "Security Options"),
        Flag("shm-size", "", "string", "Size of /dev/shm", type_name="bytes",
             check=ram_in_bytes),
        repeated("sysctl", "", "Sysctl options", type_name="map", check=check_sysctl),
        repeated("ulimit", "", "Ulimit options", type_name="ulimit", check=parse_ulimit),
        option("userns", "", "User namespace to use"),
        option("uts", "", "UTS namespace to use"),
    ]


def security_opts(given: list[str]) -> tuple[list[str], bool]:
    """docker's parseSecurityOpts and parseSystemPaths: a seccomp profile file's JSON in
    place of its name; whether ``systempaths=unconfined`` was asked for (and dropped)."""
    out: list[str] = []
    unconfined_paths = False
    for opt in given:
        key, eq, value = opt.partition("=")
        if not eq and key != "no-new-privileges":
            key, eq, value = opt.partition(":")
        if (not eq or not value) and key != "no-new-privileges":
            raise InvalidArgument(f'Invalid --security-opt: "{opt}"')
        if key == "systempaths" and value == "unconfined":
            unconfined_paths = True
            continue
        if key == "seccomp" and value not in ("builtin", "unconfined"):
            try:
                with open(value, "rb") as f:
                    raw = f.read()
            except OSError as e:
                raise InvalidArgument(f"opening seccomp profile ({value}) failed: open "
                                      f"{value}: {(e.strerror or str(e)).lower()}") from None
            import json

            try:
                compact = json.dumps(json.loads(raw), separators=(",", ":"))
            except ValueError as e:
                raise InvalidArgument(f"compacting json for seccomp profile ({value}) "
                                      f"failed: {e}") from None
            opt = f"seccomp={compact}"
        out.append(opt)
    return out, unconfined_paths


def apply_flags(opts: Namespace, host: dict[str, Any]) -> None:
    """Fill the HostConfig of a create body with these flags."""
    from skiff.cli.run import ram_in_bytes

    sec, unconfined_paths = security_opts(list(opts.security_opt))
    host["SecurityOpt"] = sec or None
    if unconfined_paths:
        host["MaskedPaths"], host["ReadonlyPaths"] = [], []
    host["Ulimits"] = [parse_ulimit(u) for u in opts.ulimit]
    host["Devices"] = [parse_device(d) for d in opts.device]
    host["DeviceCgroupRules"] = list(opts.device_cgroup_rule) or None
    host["GroupAdd"] = list(opts.group_add) or None
    if opts.sysctl:  # omitted when empty, as docker's omitempty
        host["Sysctls"] = dict(s.partition("=")[::2] for s in opts.sysctl)
    host["ShmSize"] = ram_in_bytes(opts.shm_size) if opts.shm_size else 0
    if opts.init:
        host["Init"] = True
    host["OomKillDisable"] = opts.oom_kill_disable
    host["OomScoreAdj"] = opts.oom_score_adj
    host["CgroupnsMode"] = opts.cgroupns
    host["IpcMode"], host["PidMode"] = opts.ipc, opts.pid
    host["UTSMode"], host["UsernsMode"] = opts.uts, opts.userns
