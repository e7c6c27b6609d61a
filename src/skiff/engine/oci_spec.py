"""A Docker container's settings compiled into an OCI runtime spec, as dockerd composes it.

`compose_spec` is moby's `createSpec` (daemon/oci_linux.go) for what skiff supports: Docker's
default Linux spec (its 14 capabilities, the /proc, /dev, /dev/pts, /sys, /sys/fs/cgroup,
/dev/mqueue and /dev/shm mounts, its masked and read-only paths, its device rules), then the
container's own settings on top — Path and Args, the environment (PATH and HOSTNAME first,
Config.Env over them), the working directory, the resolved user, the hostname, the
/etc/hostname, /etc/hosts and /etc/resolv.conf files bound in, namespaces (the network one
made by the engine, with its loopback up, or none of it for ``--network host``), the cgroup path under the engine's parent, resources
(memory, CPU shares, quota from ``--cpus``, cpusets, pids, blkio weight), rlimits,
sysctls (Docker's two harmless network ones when the container has a network of its own),
capabilities tweaked by CapAdd/CapDrop (``ALL`` included), ``--privileged`` (every
capability skiffd holds itself, every host device, nothing masked, /sys and cgroups
writable) and
``--read-only``. It is pure: what it needs from the host (the capabilities the kernel knows,
the host's devices, which sysctls exist) comes in as arguments with defaults that read the
host. `resolve_user` is runc's GetExecUser over the container's own /etc/passwd and
/etc/group, with Docker's additional groups; it reads the rootfs, so it runs at start, as in
Docker. Seccomp is skiff's default profile (`engine.seccomp_profile`) for the container's
capabilities, or the profile of ``--security-opt seccomp=<json>``, or none for
``seccomp=unconfined`` and ``--privileged``; ``--device`` nodes and ``--device-cgroup-rule``
rules come from `engine.container_devices`, ``--init`` from `engine.container_init`.
"""

from __future__ import annotations

import os

from skiff.engine.container_config import entrypoint_and_args
from skiff.engine.container_devices import spec_devices
from skiff.engine.container_init import INIT_PATH, init_binary, wants_init
from skiff.engine.seccomp_profile import oci_seccomp
from skiff.engine.security_opts import UNCONFINED, no_new_privileges, seccomp_profile
from skiff.engine.userns_remap import spec_mappings
from skiff.errors import InvalidArgument
from skiff.oci.codec import decode_object
from skiff.oci.runtime_spec import Spec
from skiff.record import Record
from skiff.runtime.cgroups import KEEP_PARENTS
from skiff.runtime.state import OCI_VERSION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

    from skiff.kernel.idmap import IdMaps

DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
                        "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP",
                        "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
                        "CAP_AUDIT_WRITE")
# Docker's default device rules: deny all, then null, zero, urandom, random, tty, console
# (the runtime adds its own always-allowed set after these); fuse stays denied
_DEVICE_RULES = ({"allow": False, "access": "rwm"},
                 *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
                   for major, minor in ((1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1))),
                 {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
# mounts a read-only rootfs leaves writable (Docker's list)
_WRITABLE_ON_READONLY = ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev")
_PRIVATE_NET_SYSCTLS = (("net.ipv4.ping_group_range", "0 2147483647"),
                        ("net.ipv4.ip_unprivileged_port_start", "0"))
CPU_PERIOD = 100000  # µs: what --cpus is a quota of


class ProcessUser(Record):
    """The container process's ids, as resolved in its own /etc/passwd and /etc/group."""

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()


class ContainerFiles(Record):
    """The host paths of the files bound over /etc/hostname, /etc/hosts, /etc/resolv.conf."""

    hostname: str
    hosts: str
    resolv_conf: str


# -- capabilities ---------------------------------------------------------------------------
def all_capabilities() -> list[str]:
    """Every capability this kernel knows (Docker's GetAllCapabilities), lowest first."""
    from skiff.kernel.capabilities import CAPABILITIES, last_cap

    top = last_cap()
    return [name for name, bit in sorted(CAPABILITIES.items(), key=lambda kv: kv[1])
            if bit <= top]


def own_bounding_set() -> int | None:
    """The capability bounding set of this process (a mask), None where /proc says none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def grantable(known: Sequence[str], bounding: int | None) -> list[str]:
    """What "every capability" gives (``--privileged``, ``--cap-add ALL``): those the
    kernel knows that skiffd holds itself — a capability outside its bounding set cannot be
    handed on (capset refuses it), as on hosts that run skiffd with some taken away."""
    if bounding is None:
        return list(known)
    from skiff.kernel.capabilities import CAPABILITIES

    return [c for c in known if CAPABILITIES.get(c) is None or bounding >> CAPABILITIES[c] & 1]


def normalize_capabilities(names: Iterable[str], known: Sequence[str]) -> list[str]:
    """moby's NormalizeLegacyCapabilities: ``sys_admin`` → ``CAP_SYS_ADMIN``, ``ALL`` kept;
    Docker's 400 for a capability the kernel does not have."""
    out: list[str] = []
    for name in names:
        upper = name.upper()
        if upper != "ALL":
            upper = upper if upper.startswith("CAP_") else "CAP_" + upper
            if upper not in known:
                raise InvalidArgument(f'unknown capability: "{upper}"')
        if upper not in out:
            out.append(upper)
    return out


def tweak_capabilities(basics: Sequence[str], adds: Sequence[str], drops: Sequence[str],
                       privileged: bool, known: Sequence[str],
                       every: Sequence[str] | None = None) -> list[str]:
    """moby's TweakCapabilities: every capability when privileged; else the basics less
    the dropped plus the added, where ``ALL`` in adds means all but the dropped and ``ALL``
    in drops means only the added. `every` is what "all" grants (default: `known`)."""
    every = known if every is None else every
    if privileged:
        return list(every)
    if not adds and not drops:
        return list(basics)
    drop = normalize_capabilities(drops, known)
    add = normalize_capabilities(adds, known)
    if "ALL" in add:
        return [c for c in every if c not in drop]
    if "ALL" in drop:
        return [c for c in add if c != "ALL"]
    caps = [c for c in basics if c not in drop]
    return caps + [c for c in add if c not in caps]


# -- the environment ------------------------------------------------------------------------
def replace_or_append_env(defaults: Sequence[str], overrides: Iterable[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: an override replaces the default of its key in
    place or is appended; a bare ``KEY`` (no ``=``) removes KEY."""
    out = list(defaults)
    for entry in overrides:
        key, eq, _ = entry.partition("=")
        index = next((i for i, e in enumerate(out) if e.partition("=")[0] == key), None)
        if not eq:
            if index is not None:
                del out[index]
            continue
        if index is None:
            out.append(entry)
        else:
            out[index] = entry
    return out


def container_env(config: dict[str, Any]) -> list[str]:
    """Docker's CreateDaemonEnvironment: PATH, HOSTNAME (TERM with a TTY), then Config.Env."""
    defaults = [f"PATH={DEFAULT_PATH_ENV}", f"HOSTNAME={config.get('Hostname') or ''}"]
    if config.get("Tty"):
        defaults.append("TERM=xterm")
    return replace_or_append_env(defaults, config.get("Env") or [])


# -- users ----------------------------------------------------------------------------------
def _read_rootfs_file(rootfs: str, path: str) -> bytes | None:
    from skiff.runtime.secure_path import secure_join

    try:
        with open(secure_join(rootfs, path), "rb") as f:
            return f.read()
    except OSError:
        return None


def _lines(data: bytes | None, fields: int) -> list[list[str]]:
    out = []
    for raw in (data or b"").splitlines():
        line = raw.decode("utf-8", "replace").strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        out.append(parts + [""] * (fields - len(parts)))
    return out


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def resolve_user(rootfs: str, user: str, group_add: Sequence[str] = ()) -> ProcessUser:
    """runc's GetExecUser over the rootfs's /etc/passwd and /etc/group, then Docker's
    additional groups: the primary gid first, the user's supplementary groups, GroupAdd."""
    passwd = _read_rootfs_file(rootfs, "/etc/passwd")
    group = _read_rootfs_file(rootfs, "/etc/group")
    return resolve_user_from(passwd, group, user, group_add)


def resolve_user_from(passwd: bytes | None, group: bytes | None, user: str,
                      group_add: Sequence[str] = ()) -> ProcessUser:
    user_arg, _, group_arg = user.partition(":")
    uid_arg, gid_arg = _int(user_arg), _int(group_arg)
    uid, gid, matched = 0, 0, ""
    users = [u for u in _lines(passwd, 7) if _int(u[2]) is not None and _int(u[3]) is not None]
    for entry in users:
        if (user_arg == "" and _int(entry[2]) == 0) or \
                (uid_arg is not None and _int(entry[2]) == uid_arg) or \
                (uid_arg is None and user_arg and entry[0] == user_arg):
            matched, uid, gid = entry[0], int(entry[2]), int(entry[3])
            break
    else:
        if user_arg and uid_arg is None:
            raise InvalidArgument(f"unable to find user {user_arg}: no matching entries in "
                                  f"passwd file")
        if uid_arg is not None:
            uid = uid_arg
    groups = [g for g in _lines(group, 4) if _int(g[2]) is not None]
    supplementary: list[int] = []
    if group_arg:
        found = next((g for g in groups if (gid_arg is not None and int(g[2]) == gid_arg)
                      or (gid_arg is None and g[0] == group_arg)), None)
        if found is not None:
            gid = int(found[2])
        elif gid_arg is None:
            raise InvalidArgument(f"unable to find group {group_arg}: no matching entries in "
                                  f"group file")
        else:
            gid = gid_arg
    elif matched:
        supplementary = [int(g[2]) for g in groups if matched in g[3].split(",")]
    extra: list[int] = []
    for name in group_add:
        number = _int(name)
        if number is None:
            found = next((g for g in groups if g[0] == name), None)
            if found is None:
                raise InvalidArgument(f"Unable to find group {name}: no matching entries in "
                                      f"group file")
            number = int(found[2])
        extra.append(number)
    if uid >= 1 << 31 or gid >= 1 << 31:
        raise InvalidArgument(f"user {user}: uids and gids must be below 2147483648")
    return ProcessUser(uid=uid, gid=gid, additional_gids=tuple([gid, *supplementary, *extra]))


# -- devices --------------------------------------------------------------------------------
_SKIPPED_DEV_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """The host's device nodes (what a privileged container gets), as spec devices."""
    import stat

    out: list[dict[str, Any]] = []

    def walk(folder: str) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in _SKIPPED_DEV_DIRS:
                    walk(entry.path)
                continue
            if entry.name == "console":
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode):
                kind = "c"
            elif stat.S_ISBLK(st.st_mode):
                kind = "b"
            else:
                continue
            out.append({"path": entry.path, "type": kind, "major": os.major(st.st_rdev),
                        "minor": os.minor(st.st_rdev), "fileMode": stat.S_IMODE(st.st_mode),
                        "uid": st.st_uid, "gid": st.st_gid})

    walk(root)
    return out


def _seccomp_available() -> bool:
    from skiff.kernel import seccomp

    return seccomp.available()


def _sysctl_exists(name: str) -> bool:
    return os.path.exists(os.path.join("/proc/sys", name.replace(".", "/")))


# -- the spec -------------------------------------------------------------------------------
def default_mounts(shm_size: int, ipc_none: bool) -> list[dict[str, Any]]:
    """Docker's default mounts, /dev/shm sized (and left out for IpcMode none)."""
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
    ]
    if not ipc_none:
        mounts.append({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                       "options": ["nosuid", "noexec", "nodev", "mode=1777",
                                   f"size={shm_size}"]})
    return mounts


def _network_mounts(files: ContainerFiles, readonly: bool) -> list[dict[str, Any]]:
    options = ["rbind", "ro", "rprivate"] if readonly else ["rbind", "rprivate"]
    return [{"destination": dest, "type": "bind", "source": src, "options": list(options)}
            for dest, src in (("/etc/hostname", files.hostname), ("/etc/hosts", files.hosts),
                              ("/etc/resolv.conf", files.resolv_conf))]


def _namespaces(host: dict[str, Any], netns: str | None) -> list[dict[str, str]]:
    kinds = ["mount"]
    if host["NetworkMode"] != "host" and netns is None:
        kinds.append("network")
    if host.get("UTSMode") != "host":
        kinds.append("uts")
    if host.get("PidMode") != "host":
        kinds.append("pid")
    if host.get("IpcMode") != "host":
        kinds.append("ipc")
    if host.get("CgroupnsMode") == "private":
        kinds.append("cgroup")
    out = [{"type": k} for k in kinds]
    if host["NetworkMode"] != "host" and netns is not None:
        out.insert(1, {"type": "network", "path": netns})
    return out


def _resources(host: dict[str, Any], privileged: bool) -> dict[str, Any]:
    """moby's WithResources and WithDevices, for the fields skiff supports."""
    res: dict[str, Any] = {"devices": [{"allow": True, "access": "rwm"}] if privileged
                           else [dict(r) for r in _DEVICE_RULES]}
    memory: dict[str, Any] = {}
    if host["Memory"] > 0:
        memory["limit"] = host["Memory"]
    if host["MemoryReservation"] > 0:
        memory["reservation"] = host["MemoryReservation"]
    if host["MemorySwap"] > 0:
        memory["swap"] = host["MemorySwap"]
    if host.get("MemorySwappiness") is not None and host["MemorySwappiness"] >= 0:
        memory["swappiness"] = host["MemorySwappiness"]
    if host.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if host["CpuShares"] > 0:
        cpu["shares"] = host["CpuShares"]
    if host["NanoCpus"] > 0:
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = host["NanoCpus"] * CPU_PERIOD // 10**9
    if host["CpuPeriod"] > 0:
        cpu["period"] = host["CpuPeriod"]
    if host["CpuQuota"] != 0:
        cpu["quota"] = host["CpuQuota"]
    if host["CpusetCpus"]:
        cpu["cpus"] = host["CpusetCpus"]
    if host["CpusetMems"]:
        cpu["mems"] = host["CpusetMems"]
    if cpu:
        res["cpu"] = cpu
    if host.get("PidsLimit"):
        res["pids"] = {"limit": host["PidsLimit"]}
    if host["BlkioWeight"] > 0:
        res["blockIO"] = {"weight": host["BlkioWeight"]}
    return res


def _rlimit(value: int) -> int:
    """Docker's -1 (unlimited) as the spec's uint64 RLIM_INFINITY."""
    return (1 << 64) - 1 if value < 0 else value


def cgroups_path(parent: str, container_id: str) -> str:
    """``<parent>/<id>``, always absolute (skiff never nests under a caller's cgroup)."""
    return "/" + "/".join(p for p in (*parent.split("/"), container_id) if p)


def compose_spec(container_id: str, config: dict[str, Any], host: dict[str, Any],
                 **options: Any) -> Spec:
    """The OCI runtime spec of a container (Config and HostConfig as `parse_create` left
    them), as a checked record: `compose_spec_json`'s document, with its options."""
    return decode_object(Spec, compose_spec_json(container_id, config, host, **options))


def compose_spec_json(container_id: str, config: dict[str, Any], host: dict[str, Any], *,
                      rootfs: str, user: ProcessUser = ProcessUser(),
                      files: ContainerFiles | None = None, cgroup_parent: str = "/skiff",
                      known_caps: Sequence[str] | None = None,
                      bounding: int | None = -1, netns: str | None = None,
                      devices: Callable[[], list[dict[str, Any]]] = host_devices,
                      sysctl_exists: Callable[[str], bool] = _sysctl_exists,
                      seccomp_available: Callable[[], bool] = _seccomp_available,
                      idmaps: IdMaps | None = None,
                      mounts: Sequence[dict[str, Any]] = (),
                      wiring_socket: str = "", userns: str | None = None) -> dict[str, Any]:
    """`compose_spec` as the config.json document. `bounding`: skiffd's own capability
    bounding set (-1: read it; None: no limit). `netns`: the network namespace made for
    the container to join (`engine.netns`); without one, the runtime makes a bare one.
    `idmaps`: the user namespace mappings of a remapped container (``--userns-remap``),
    whose network namespace, the runtime's, its createRuntime hook has the skiffd at
    `wiring_socket` wire (`engine.netns_wiring`; "": loopback only); `userns`: the user
    namespace it joins instead of a new one (another remapped container's, whose network
    namespace it shares).
    `mounts`: the container's own (volumes, binds, tmpfs, as `engine.mounts` makes them),
    which replace a default or network-file mount at the same destination and go, with
    the network files, in Docker's order of destination depth."""
    known = list(known_caps) if known_caps is not None else all_capabilities()
    every = grantable(known, own_bounding_set() if bounding == -1 else bounding)
    privileged = bool(host.get("Privileged"))
    readonly = bool(host.get("ReadonlyRootfs"))
    path, args = entrypoint_and_args(config.get("Entrypoint"), config.get("Cmd"))
    caps = tweak_capabilities(DEFAULT_CAPABILITIES, host.get("CapAdd") or (),
                              host.get("CapDrop") or (), privileged, known, every)
    capabilities: dict[str, list[str]] = {"bounding": caps}
    if user.uid == 0:  # as execve would: a non-root process starts with no capabilities
        capabilities.update(effective=list(caps), permitted=list(caps))
    process: dict[str, Any] = {
        "terminal": bool(config.get("Tty")),
        "user": {"uid": user.uid, "gid": user.gid,
                 "additionalGids": list(user.additional_gids)},
        "args": [INIT_PATH, "--", path, *args] if wants_init(host) else [path, *args],
        "env": container_env(config),
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": capabilities,
        "oomScoreAdj": host.get("OomScoreAdj", 0),
    }
    if no_new_privileges(host):
        process["noNewPrivileges"] = True
    size = host.get("ConsoleSize") or [0, 0]
    if config.get("Tty") and size[0] and size[1]:  # the client's terminal, from the start
        process["consoleSize"] = {"height": int(size[0]), "width": int(size[1])}
    rlimits = [{"type": "RLIMIT_" + u["Name"].upper(), "soft": _rlimit(u.get("Soft", 0)),
                "hard": _rlimit(u.get("Hard", 0))} for u in host.get("Ulimits") or []]
    if rlimits:
        process["rlimits"] = rlimits
    own = {m["destination"] for m in mounts}
    defaults = [m for m in default_mounts(host.get("ShmSize") or 0, host.get("IpcMode") == "none")
                if m["destination"] not in own]
    if readonly:
        for m in defaults:
            if m["destination"] not in _WRITABLE_ON_READONLY and "ro" not in m["options"]:
                m["options"].append("ro")
    if privileged:
        for m in defaults:
            if m["type"] in ("sysfs", "cgroup"):
                m["options"] = [o for o in m["options"] if o != "ro"]
    added = [dict(m) for m in mounts]
    if files is not None:
        added += [m for m in _network_mounts(files, readonly) if m["destination"] not in own]
    if wants_init(host):
        added.append({"destination": INIT_PATH, "type": "bind", "source": init_binary(),
                      "options": ["bind", "ro"]})
    from skiff.engine.mounts import by_depth

    all_mounts = defaults + by_depth(added)
    linux: dict[str, Any] = {
        "namespaces": _namespaces(host, netns),
        "cgroupsPath": cgroups_path(host.get("CgroupParent") or cgroup_parent, container_id),
        "resources": _resources(host, privileged),
        "maskedPaths": list(host.get("MaskedPaths") or []),
        "readonlyPaths": list(host.get("ReadonlyPaths") or []),
    }
    words = {o for m in added for o in m.get("options", ())}
    if words & {"shared", "rshared"}:  # moby: a shared mount needs a shared rootfs
        linux["rootfsPropagation"] = "rshared"
    hooks: dict[str, list[dict[str, Any]]] = {}
    if idmaps is not None:
        linux["namespaces"].insert(0, {"type": "user", **({"path": userns} if userns else {})})
        linux.update(spec_mappings(idmaps))
        mode = host["NetworkMode"]
        if mode != "host" and not mode.startswith("container:"):  # the runtime's, in its userns
            from skiff.engine.netns import loopback_hook_spec

            hooks["createRuntime"] = [loopback_hook_spec(wiring_socket, container_id)]
    sysctl: dict[str, str] = {}
    if host["NetworkMode"] != "host":
        sysctl.update((k, v) for k, v in _PRIVATE_NET_SYSCTLS if sysctl_exists(k))
        if idmaps is not None and "net.ipv4.ping_group_range" in sysctl:
            # the kernel takes only gids mapped in the container's user namespace
            top = sum(size for _, _, size in idmaps.gids) - 1
            sysctl["net.ipv4.ping_group_range"] = f"0 {top}"
    sysctl.update(host.get("Sysctls") or {})
    if sysctl:
        linux["sysctl"] = sysctl
    nodes, rules = spec_devices(host)
    if privileged or nodes:
        listed = devices() if privileged else []
        paths = {d["path"] for d in nodes}
        linux["devices"] = [d for d in listed if d["path"] not in paths] + nodes
    if rules and not privileged:
        linux["resources"]["devices"] += rules
    profile = seccomp_profile(host)
    if profile != UNCONFINED:
        if seccomp_available():
            linux["seccomp"] = oci_seccomp(profile, caps)
        elif profile is not None:
            raise InvalidArgument("seccomp is not enabled in your kernel, cannot run a custom "
                                  "seccomp profile.")
    doc: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": readonly},
        "mounts": all_mounts,
        "linux": linux,
    }
    if not host.get("CgroupParent"):
        # skiffd keeps its --cgroup-parent: a container's removal takes only its own cgroup
        doc["annotations"] = {KEEP_PARENTS: "true"}
    if hooks:
        doc["hooks"] = hooks
    if host.get("UTSMode") != "host":
        doc["hostname"] = config.get("Hostname") or container_id[:12]
        if config.get("Domainname"):
            doc["domainname"] = config["Domainname"]
    return doc
