"""The OCI runtime specification (config.json) as frozen records, with its checks.

What a Linux runtime acts on is modelled; unknown keys are ignored, as the spec's
extensibility rule demands ("MUST otherwise ignore them"). Fields of the spec that skiff
does not act on are still read (as `Any`) so that the runtime can refuse them by name
rather than ignore them: the spec's "valid values" rule wants an error for an unsupported
value. `load_config` and `parse_config` are the way in; each type's `validate` adds the
rules the JSON schema cannot say by shape alone (absolute paths, known namespace types,
duplicate rlimits, …), and every message names the field. `to_json` is the way out.
"""

from __future__ import annotations


from skiff.errors import InvalidArgument, SpecError
from skiff.oci.codec import decode_object, encode
from skiff.record import Record, field
from skiff import jsonfast

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")


_UINT32 = 1 << 32


def _uint32(where: str, value: int | None) -> None:
    if value is not None and not 0 <= value < _UINT32:
        raise SpecError(where, f"must be 0..4294967295, got {value}")


def _absolute(where: str, path: str) -> None:
    if not path.startswith("/"):
        raise SpecError(where, f"must be an absolute path, got {path!r}")


class Root(Record):
    path: str
    readonly: bool = False

    def validate(self, where: str) -> None:
        if not self.path:
            raise SpecError(f"{where}.path", "must not be empty")


class User(Record):
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: tuple[int, ...] = ()
    username: str | None = None

    def validate(self, where: str) -> None:
        # -1 would reach setresuid as "leave unchanged" and keep the process root
        _uint32(f"{where}.uid", self.uid)
        _uint32(f"{where}.gid", self.gid)
        for i, gid in enumerate(self.additional_gids):
            _uint32(f"{where}.additionalGids[{i}]", gid)


class Capabilities(Record):
    bounding: tuple[str, ...] = ()
    effective: tuple[str, ...] = ()
    inheritable: tuple[str, ...] = ()
    permitted: tuple[str, ...] = ()
    ambient: tuple[str, ...] = ()


class Rlimit(Record):
    type: str
    hard: int
    soft: int

    def validate(self, where: str) -> None:
        if not self.type.startswith("RLIMIT_"):
            raise SpecError(f"{where}.type", f"unknown rlimit {self.type!r}")


class Scheduler(Record):
    policy: str = field(choices=("SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH",
                                 "SCHED_ISO", "SCHED_IDLE", "SCHED_DEADLINE"))
    nice: int = 0
    priority: int = 0
    flags: tuple[str, ...] = ()
    runtime: int = 0
    deadline: int = 0
    period: int = 0

    def validate(self, where: str) -> None:
        known = ("SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
                 "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN",
                 "SCHED_FLAG_UTIL_CLAMP_MAX")
        for i, flag in enumerate(self.flags):
            if flag not in known:
                raise SpecError(f"{where}.flags[{i}]", f"unknown scheduler flag {flag!r}")
        if not -20 <= self.nice <= 19:
            raise SpecError(f"{where}.nice", f"must be -20..19, got {self.nice}")


class IOPriority(Record):
    klass: str = field(json="class", choices=("IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE",
                                              "IOPRIO_CLASS_IDLE"))
    priority: int = field()

    def validate(self, where: str) -> None:
        if not 0 <= self.priority <= 7:
            raise SpecError(f"{where}.priority", f"must be 0 (highest) to 7, got {self.priority}")


class CPUAffinity(Record):
    initial: str | None = None
    final: str | None = None

    def validate(self, where: str) -> None:
        for key in ("initial", "final"):
            value = getattr(self, key)
            if value:
                cpu_list(value, f"{where}.{key}")


def cpu_list(text: str, where: str) -> set[int]:
    """A list of CPUs as the spec writes one ("0-3,7")."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise SpecError(where, f"{text!r} is not a list of CPUs such as 0-3,7") from None
        if first < 0 or last < first:
            raise SpecError(where, f"{text!r} is not a list of CPUs such as 0-3,7")
        cpus.update(range(first, last + 1))
    return cpus


class ConsoleSize(Record):
    height: int
    width: int


class Process(Record):
    cwd: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    terminal: bool = False
    console_size: ConsoleSize | None = None
    user: User = field(factory=User)
    capabilities: Capabilities | None = None
    rlimits: tuple[Rlimit, ...] = ()
    no_new_privileges: bool = False
    apparmor_profile: str | None = None
    selinux_label: str | None = None
    oom_score_adj: int | None = None
    scheduler: Scheduler | None = None
    io_priority: IOPriority | None = None
    exec_cpu_affinity: CPUAffinity | None = field(None, json="execCPUAffinity")  # exec only

    def validate(self, where: str) -> None:
        _absolute(f"{where}.cwd", self.cwd)
        seen: set[str] = set()
        for i, r in enumerate(self.rlimits):  # config.md: duplicated type -> MUST error
            if r.type in seen:
                raise SpecError(f"{where}.rlimits[{i}].type", f"{r.type} is given twice")
            seen.add(r.type)


class Mount(Record):
    destination: str
    type: str | None = None
    source: str | None = None
    options: tuple[str, ...] = ()
    uid_mappings: tuple[IdMapping, ...] | None = None  # an idmapped mount's mapping
    gid_mappings: tuple[IdMapping, ...] | None = None

    def validate(self, where: str) -> None:
        if not self.destination:
            raise SpecError(f"{where}.destination", "must not be empty")
        if (self.uid_mappings is None) != (self.gid_mappings is None):
            # config.md: each "MUST be specified along with" the other
            raise SpecError(f"{where}.uidMappings", "uidMappings and gidMappings go together")

    @property
    def idmapped(self) -> str | None:
        """"idmap" or "ridmap" when the mount is to have an id mapping (the option, or a
        mapping of its own, which config.md says SHOULD come with the option), else None."""
        for word in reversed(self.options):
            if word in ("idmap", "ridmap"):
                return word
        return "idmap" if self.uid_mappings is not None else None

    @property
    def target(self) -> str:
        """The destination as an absolute path: config.md lets a Linux destination be
        relative ("deprecated"), and then it "MUST be interpreted as relative to /"."""
        return self.destination if self.destination.startswith("/") else "/" + self.destination


class Hook(Record):
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    timeout: int | None = None

    def validate(self, where: str) -> None:
        _absolute(f"{where}.path", self.path)
        if self.timeout is not None and self.timeout <= 0:
            raise SpecError(f"{where}.timeout", "must be a positive number of seconds")


class Hooks(Record):
    prestart: tuple[Hook, ...] = ()
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()


class Namespace(Record):
    type: str
    path: str | None = None

    def validate(self, where: str) -> None:
        if self.type not in NAMESPACE_TYPES:
            raise SpecError(f"{where}.type", f"unknown namespace type {self.type!r}")
        if self.path:
            _absolute(f"{where}.path", self.path)


class IdMapping(Record):
    container_id: int = field(json="containerID")
    host_id: int = field(json="hostID")
    size: int

    def validate(self, where: str) -> None:
        _uint32(f"{where}.containerID", self.container_id)
        _uint32(f"{where}.hostID", self.host_id)
        if not 0 < self.size < _UINT32:
            raise SpecError(f"{where}.size", "must be positive")


class Device(Record):
    type: str = field(choices=("c", "b", "u", "p"))
    path: str = field()
    major: int | None = None
    minor: int | None = None
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    def validate(self, where: str) -> None:
        _absolute(f"{where}.path", self.path)
        if self.type != "p" and (self.major is None or self.minor is None):
            raise SpecError(where, "a character or block device needs major and minor")


class DeviceRule(Record):
    allow: bool
    type: str | None = None
    major: int | None = None
    minor: int | None = None
    access: str | None = None

    def validate(self, where: str) -> None:
        if self.type is not None and self.type not in ("a", "c", "b"):
            raise SpecError(f"{where}.type", f"must be a, c or b, got {self.type!r}")
        if self.access is not None and (not self.access or set(self.access) - set("rwm")):
            raise SpecError(f"{where}.access", f"must be letters of rwm, got {self.access!r}")


class Memory(Record):
    limit: int | None = None
    reservation: int | None = None
    swap: int | None = None
    kernel: int | None = None
    kernel_tcp: int | None = field(None, json="kernelTCP")
    swappiness: int | None = None
    disable_oom_killer: bool | None = field(None, json="disableOOMKiller")
    use_hierarchy: bool | None = None
    check_before_update: bool | None = None


class Cpu(Record):
    shares: int | None = None
    quota: int | None = None
    burst: int | None = None
    period: int | None = None
    realtime_runtime: int | None = None
    realtime_period: int | None = None
    cpus: str | None = None
    mems: str | None = None
    idle: int | None = None


class Pids(Record):
    limit: int


class TimeOffset(Record):
    secs: int = 0
    nanosecs: int = 0

    def validate(self, where: str) -> None:
        _uint32(f"{where}.nanosecs", self.nanosecs)


class Personality(Record):
    domain: str = field(choices=("LINUX", "LINUX32"))
    flags: tuple[str, ...] = ()

    def validate(self, where: str) -> None:
        if self.flags:  # config-linux.md: "Currently no flag values are supported"
            raise SpecError(f"{where}.flags", f"no personality flags are supported, got {list(self.flags)}")


class WeightDevice(Record):
    major: int
    minor: int
    weight: int | None = None
    leaf_weight: int | None = None

    def validate(self, where: str) -> None:
        if self.weight is None and self.leaf_weight is None:
            # config-linux.md: "You MUST specify at least one of weight or leafWeight"
            raise SpecError(where, "needs weight or leafWeight")


class ThrottleDevice(Record):
    major: int
    minor: int
    rate: int


class BlockIO(Record):
    weight: int | None = None
    leaf_weight: int | None = None
    weight_device: tuple[WeightDevice, ...] = ()
    throttle_read_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_write_bps_device: tuple[ThrottleDevice, ...] = ()
    throttle_read_iops_device: tuple[ThrottleDevice, ...] = field((), json="throttleReadIOPSDevice")
    throttle_write_iops_device: tuple[ThrottleDevice, ...] = field((), json="throttleWriteIOPSDevice")


class HugepageLimit(Record):
    page_size: str
    limit: int


class Resources(Record):
    devices: tuple[DeviceRule, ...] = ()
    memory: Memory | None = None
    cpu: Cpu | None = None
    pids: Pids | None = None
    block_io: BlockIO | None = field(None, json="blockIO")
    hugepage_limits: tuple[HugepageLimit, ...] = ()
    unified: dict[str, str] | None = None
    network: Any = None  # net_cls/net_prio and rdma: read only to be refused by name
    rdma: Any = None


class SeccompArg(Record):
    index: int
    value: int
    op: str = field(choices=("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
                             "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"))
    value_two: int = 0

    def validate(self, where: str) -> None:
        if not 0 <= self.index <= 5:
            raise SpecError(f"{where}.index", f"must be 0..5, got {self.index}")


SECCOMP_ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                   "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",
                   "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")


class SeccompSyscall(Record):
    names: tuple[str, ...]
    action: str = field(choices=SECCOMP_ACTIONS)
    errno_ret: int | None = None
    args: tuple[SeccompArg, ...] = ()

    def validate(self, where: str) -> None:
        if not self.names:
            raise SpecError(f"{where}.names", "must name at least one syscall")


class Seccomp(Record):
    default_action: str = field(choices=SECCOMP_ACTIONS)
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    listener_path: str | None = None
    listener_metadata: str | None = None
    syscalls: tuple[SeccompSyscall, ...] = ()

    def validate(self, where: str) -> None:
        if self.listener_metadata is not None and not self.listener_path:
            # config-linux.md: "This field MUST NOT be set if listenerPath is not set"
            raise SpecError(f"{where}.listenerMetadata", "is set without listenerPath")


class Linux(Record):
    namespaces: tuple[Namespace, ...] = ()
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()
    devices: tuple[Device, ...] = ()
    cgroups_path: str | None = None
    resources: Resources | None = None
    rootfs_propagation: str | None = None
    seccomp: Seccomp | None = None
    sysctl: dict[str, str] = field(factory=dict)
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    mount_label: str | None = None
    personality: Personality | None = None
    time_offsets: dict[str, TimeOffset] = field(factory=dict)
    # read only to be refused by name (see `unsupported_fields`)
    intel_rdt: Any = None
    memory_policy: Any = None
    net_devices: Any = None

    def validate(self, where: str) -> None:
        for key in ("masked_paths", "readonly_paths"):  # config-linux.md: MUST be absolute
            name = "maskedPaths" if key == "masked_paths" else "readonlyPaths"
            for i, path in enumerate(getattr(self, key)):
                _absolute(f"{where}.{name}[{i}]", path)
        for clock in self.time_offsets:
            if clock not in ("monotonic", "boottime"):  # the clocks time_namespaces(7) offsets
                raise SpecError(f"{where}.timeOffsets.{clock}",
                                "only monotonic and boottime clocks can be offset")
        seen: set[str] = set()
        for i, ns in enumerate(self.namespaces):
            if ns.type in seen:
                raise SpecError(f"{where}.namespaces[{i}]", f"namespace {ns.type} given twice")
            seen.add(ns.type)
        if (self.uid_mappings or self.gid_mappings) and "user" not in seen:
            raise SpecError(f"{where}.uidMappings", "id mappings need a user namespace")
        if "user" in seen and not any(n.path for n in self.namespaces if n.type == "user"):
            if not self.uid_mappings or not self.gid_mappings:
                raise SpecError(f"{where}.uidMappings",
                                "a new user namespace needs uidMappings and gidMappings")
        if self.rootfs_propagation not in (None, "", "private", "rprivate", "slave", "rslave",
                                           "shared", "rshared", "unbindable", "runbindable"):
            raise SpecError(f"{where}.rootfsPropagation",
                            f"unknown propagation {self.rootfs_propagation!r}")

    def namespace(self, kind: str) -> Namespace | None:
        return next((n for n in self.namespaces if n.type == kind), None)


class Spec(Record):
    oci_version: str
    root: Root | None = None
    process: Process | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: tuple[Mount, ...] = ()
    hooks: Hooks | None = None
    annotations: dict[str, str] = field(factory=dict)
    linux: Linux | None = None

    def validate(self, where: str) -> None:
        # config.md: "MUST be in SemVer v2.0.0 format"; the spec keeps compatibility within
        # a major version only, so a 2.x document is not one this runtime can read (0.x
        # drafts are, as runc reads them: the spec's own examples still say 0.5.0-dev)
        from skiff import semver  # (only for a whole document: exec reads parts of one)
        try:
            version = semver.Version.parse(self.oci_version)
        except InvalidArgument:
            raise SpecError("ociVersion", f"{self.oci_version!r} is not a SemVer 2.0.0 version") from None
        if version.major > 1:
            raise SpecError("ociVersion", f"{self.oci_version}: only 1.x documents are supported")
        for key in ("hostname", "domainname"):
            if getattr(self, key) and self.linux and self.linux.namespace("uts") is None:
                raise SpecError(key, f"setting a {key} needs a uts namespace")
        for key in self.annotations:
            if not key:  # config.md: "Keys MUST NOT be an empty string"
                raise SpecError("annotations", "a key must not be empty")

    def require_runnable(self) -> None:
        """What `create` needs beyond a well-formed document."""
        if self.root is None:
            raise SpecError("root", "is required")
        if self.process is None:
            raise SpecError("process", "is required")
        if not self.process.args:
            raise SpecError("process.args", "must name the program to run")
        if self.linux is None:
            raise SpecError("linux", "is required on Linux")


def _document(text: str | bytes, source: str) -> Any:
    try:
        return jsonfast.loads(text)
    except ValueError as e:
        raise SpecError("", f"{source} is not valid JSON: {e}") from e


def parse_config(text: str | bytes, source: str = "config.json") -> Spec:
    return decode_object(Spec, _document(text, source))


def load_config(path: str) -> Spec:
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        raise SpecError("", f"{path} not found: is the bundle right?") from None
    return parse_config(text, path)


def parse_process(text: str | bytes, source: str = "process.json") -> Process:
    return decode_object(Process, _document(text, source), "process")


def parse_resources(text: str | bytes, source: str = "resources") -> Resources:
    return decode_object(Resources, _document(text, source), "resources")


def to_json(value: Any) -> dict[str, Any]:
    return encode(value)
