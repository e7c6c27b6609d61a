"""skiff's default seccomp profile, and Docker-format profiles turned into the OCI one.

The default profile follows Docker's (moby profiles/seccomp/default.json is the reference
for what it allows): a call not listed fails with EPERM; the calls any program needs are
allowed on every architecture; the calls a capability guards (mount, unshare, setns and the
new mount API with CAP_SYS_ADMIN, ptrace with CAP_SYS_PTRACE, reboot with CAP_SYS_BOOT…)
only when the container holds that capability; without CAP_SYS_ADMIN, clone may make no
namespace (its flags are filtered) and clone3 — whose flags sit in memory a filter cannot
read — fails with ENOSYS so that libc falls back to clone; socket may open anything but
AF_VSOCK; personality only takes the harmless personas. The profile is kept in Docker's
own format (names, action, args, includes/excludes by capability, arch and kernel) so that
one converter, moby's setupSeccomp, serves it and the files users pass with
``--security-opt seccomp=<file>`` alike. `oci_seccomp` gives the OCI ``linux.seccomp``
document for a container's capabilities on this host's architecture; the result is cached
per (profile, capabilities), which is all a start pays after the first.
"""

from __future__ import annotations

import functools
import json
import os
import platform

from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any

EPERM, ENOSYS = 1, 38
AF_VSOCK = 40
# clone flags that make a namespace: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER |
# NEWPID | NEWNET; without CAP_SYS_ADMIN none of them may be set
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 \
    | 0x20000000 | 0x40000000
# personality(2) values a program may ask for: PER_LINUX, UNAME26, PER_LINUX32, both, and
# 0xffffffff (the query)
PERSONAS = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)

# the syscalls every container may make, by what they are for
_BASE_CALLS = """
    read write readv writev pread64 pwrite64 preadv preadv2 pwritev pwritev2 lseek _llseek
    open openat openat2 creat close close_range dup dup2 dup3 fcntl fcntl64 flock
    stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64
    fstatfs fstatfs64 access faccessat faccessat2 readlink readlinkat getcwd chdir fchdir
    mkdir mkdirat mknod mknodat rmdir unlink unlinkat rename renameat renameat2 link linkat
    symlink symlinkat truncate truncate64 ftruncate ftruncate64 fallocate fadvise64
    fadvise64_64 readahead sync syncfs fsync fdatasync sync_file_range copy_file_range
    sendfile sendfile64 splice tee vmsplice getdents getdents64 umask name_to_handle_at
    chmod fchmod fchmodat chown chown32 fchown fchown32 fchownat lchown lchown32
    utime utimes utimensat utimensat_time64 futimesat
    getxattr lgetxattr fgetxattr setxattr lsetxattr fsetxattr listxattr llistxattr
    flistxattr removexattr lremovexattr fremovexattr
    inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
    io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64
    io_uring_setup io_uring_enter io_uring_register ioctl ioprio_get ioprio_set
    brk mmap mmap2 munmap mremap mprotect madvise mincore msync mlock mlock2 mlockall
    munlock munlockall remap_file_pages membarrier memfd_create memfd_secret pkey_alloc
    pkey_free pkey_mprotect
    execve execveat exit exit_group fork vfork wait4 waitid waitpid getpid getppid gettid
    getpgid setpgid getpgrp getsid setsid set_tid_address set_robust_list get_robust_list
    rseq futex futex_time64 futex_waitv get_thread_area set_thread_area prctl
    capget capset seccomp landlock_create_ruleset landlock_add_rule landlock_restrict_self
    getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid
    getresuid32 getresgid getresgid32 getgroups getgroups32 setuid setuid32 setgid setgid32
    setreuid setreuid32 setregid setregid32 setresuid setresuid32 setresgid setresgid32
    setfsuid setfsuid32 setfsgid setfsgid32 setgroups setgroups32
    getrlimit ugetrlimit setrlimit prlimit64 getrusage getpriority setpriority times sysinfo
    uname getcpu getrandom process_mrelease pidfd_open pidfd_send_signal
    sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr
    sched_getparam sched_setparam sched_getscheduler sched_setscheduler
    sched_get_priority_max sched_get_priority_min sched_rr_get_interval
    sched_rr_get_interval_time64
    kill tkill tgkill rt_sigaction rt_sigprocmask rt_sigpending rt_sigqueueinfo
    rt_tgsigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
    sigaltstack sigprocmask sigreturn signalfd signalfd4 pause restart_syscall alarm
    time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64
    clock_nanosleep clock_nanosleep_time64 nanosleep clock_adjtime clock_adjtime64 adjtimex
    getitimer setitimer timer_create timer_delete timer_getoverrun timer_gettime
    timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
    timerfd_gettime64 timerfd_settime timerfd_settime64
    poll ppoll ppoll_time64 select _newselect pselect6 pselect6_time64 epoll_create
    epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait epoll_pwait2
    eventfd eventfd2 pipe pipe2
    socketcall socketpair bind connect listen accept accept4 getsockname getpeername
    getsockopt setsockopt shutdown send sendto sendmsg sendmmsg recv recvfrom recvmsg
    recvmmsg recvmmsg_time64
    ipc msgget msgctl msgsnd msgrcv semget semctl semop semtimedop semtimedop_time64
    shmget shmctl shmat shmdt mq_open mq_unlink mq_getsetattr mq_notify mq_timedsend
    mq_timedsend_time64 mq_timedreceive mq_timedreceive_time64
"""

# calls a capability guards: allowed only when the container holds it
_BY_CAPABILITY: tuple[tuple[str, str], ...] = (
    ("CAP_SYS_ADMIN", "mount umount umount2 mount_setattr move_mount open_tree fsopen "
                      "fsconfig fsmount fspick unshare setns clone clone3 bpf perf_event_open "
                      "fanotify_init lookup_dcookie quotactl quotactl_fd sethostname "
                      "setdomainname syslog"),
    ("CAP_SYS_PTRACE", "ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd "
                       "process_madvise"),
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "init_module finit_module delete_module"),
    ("CAP_SYS_PACCT", "acct"),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    ("CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    ("CAP_SYS_NICE", "mbind get_mempolicy set_mempolicy set_mempolicy_home_node"),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
)

# calls that exist on some architectures only (Go's GOARCH names, as Docker's profile uses)
_BY_ARCH: tuple[tuple[tuple[str, ...], str], ...] = (
    (("amd64", "x32"), "arch_prctl"),
    (("amd64", "x32", "386"), "modify_ldt"),
    (("arm", "arm64"), "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint "
                       "cacheflush set_tls"),
    (("ppc64le",), "sync_file_range2 swapcontext"),
    (("s390", "s390x"), "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    (("riscv64",), "riscv_flush_icache"),
)

# the native architecture and the others its kernel runs (what a filter must cover)
_ARCH_MAP: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32")),
    ("SCMP_ARCH_AARCH64", ("SCMP_ARCH_ARM",)),
    ("SCMP_ARCH_MIPS64", ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32")),
    ("SCMP_ARCH_MIPS64N32", ("SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64")),
    ("SCMP_ARCH_MIPSEL64", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32")),
    ("SCMP_ARCH_MIPSEL64N32", ("SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64")),
    ("SCMP_ARCH_S390X", ("SCMP_ARCH_S390",)),
    ("SCMP_ARCH_RISCV64", ()),
)

# uname -m → (Go's GOARCH, libseccomp's architecture)
_MACHINES = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
             "armv7l": ("arm", "SCMP_ARCH_ARM"), "i686": ("386", "SCMP_ARCH_X86"),
             "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"), "s390x": ("s390x", "SCMP_ARCH_S390X"),
             "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
             "mips64": ("mips64", "SCMP_ARCH_MIPS64")}


def _allow(names: str, **more: Any) -> dict[str, Any]:
    return {"names": names.split(), "action": "SCMP_ACT_ALLOW", **more}


def _default_profile() -> dict[str, Any]:
    syscalls: list[dict[str, Any]] = [_allow(_BASE_CALLS)]
    syscalls.append(_allow("socket", args=[{"index": 0, "value": AF_VSOCK,
                                            "op": "SCMP_CMP_NE"}]))
    syscalls += [_allow("personality", args=[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}])
                 for v in PERSONAS]
    # ptrace is safe from kernel 4.8 on (seccomp is rechecked after a tracer's changes)
    syscalls.append(_allow("ptrace process_vm_readv process_vm_writev",
                           includes={"minKernel": "4.8"}))
    syscalls += [_allow(names, includes={"arches": list(arches)}) for arches, names in _BY_ARCH]
    syscalls += [_allow(names, includes={"caps": [cap]}) for cap, names in _BY_CAPABILITY]
    # without CAP_SYS_ADMIN: clone without namespace flags (its flags are argument 1 on
    # s390), and clone3 answered ENOSYS so that glibc falls back to clone
    masked = {"value": CLONE_NAMESPACE_FLAGS, "op": "SCMP_CMP_MASKED_EQ"}
    syscalls.append(_allow("clone", args=[{"index": 0, **masked}],
                           excludes={"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}))
    syscalls.append(_allow("clone", args=[{"index": 1, **masked}],
                           includes={"arches": ["s390", "s390x"]},
                           excludes={"caps": ["CAP_SYS_ADMIN"]}))
    syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS,
                     "excludes": {"caps": ["CAP_SYS_ADMIN"]}})
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": EPERM,
            "archMap": [{"architecture": a, "subArchitectures": list(s)} for a, s in _ARCH_MAP],
            "syscalls": syscalls}


DEFAULT_PROFILE: dict[str, Any] = _default_profile()
DEFAULT_PROFILE_JSON = json.dumps(DEFAULT_PROFILE, separators=(",", ":"))


# -- Docker's format to OCI ------------------------------------------------------------------
def native_arch(machine: str | None = None) -> tuple[str, str]:
    """(Go's GOARCH, libseccomp's SCMP_ARCH_*) of this host."""
    machine = machine or platform.machine()
    return _MACHINES.get(machine, (machine, "SCMP_ARCH_" + machine.upper()))


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of the running kernel (``6.1.0-18-amd64`` → (6, 1))."""
    release = release or os.uname().release
    parts = (release.split("-")[0].split(".") + ["0", "0"])[:2]
    return int("".join(c for c in parts[0] if c.isdigit()) or 0), \
        int("".join(c for c in parts[1] if c.isdigit()) or 0)


def _version(text: str) -> tuple[int, int]:
    try:
        major, _, minor = text.partition(".")
        return int(major), int(minor.partition(".")[0] or 0)
    except ValueError:
        raise InvalidArgument(f"invalid kernel version {text!r} in the seccomp profile") \
            from None


def decode_profile(text: str) -> dict[str, Any]:
    """A Docker-format profile from its JSON; Docker's 400 when it is not one."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"Decoding seccomp profile failed: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument("Decoding seccomp profile failed: json: cannot unmarshal "
                              f"{type(doc).__name__} into Go value of type seccomp.Seccomp")
    return doc


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"Decoding seccomp profile failed: {what} must be a list of "
                              f"strings")
    return value


def _selected(rule: dict[str, Any], caps: frozenset[str], arch: str,
              kernel: tuple[int, int]) -> bool:
    """moby's filter of a rule by its excludes and includes."""
    ex, inc = rule.get("excludes") or {}, rule.get("includes") or {}
    if arch in _strings(ex.get("arches"), "excludes.arches"):
        return False
    if any(c in caps for c in _strings(ex.get("caps"), "excludes.caps")):
        return False
    if ex.get("minKernel") and kernel >= _version(ex["minKernel"]):
        return False
    arches = _strings(inc.get("arches"), "includes.arches")
    if arches and arch not in arches:
        return False
    if not all(c in caps for c in _strings(inc.get("caps"), "includes.caps")):
        return False
    if inc.get("minKernel") and kernel < _version(inc["minKernel"]):
        return False
    return True


def _architectures(profile: dict[str, Any], native: str) -> list[str]:
    listed = _strings(profile.get("architectures"), "architectures")
    arch_map = profile.get("archMap") or []
    if listed and arch_map:
        raise InvalidArgument("the seccomp profile is invalid: use either 'architectures' or "
                              "'archMap'")
    if listed:
        return listed
    out: list[str] = []
    for entry in arch_map:
        if isinstance(entry, dict) and entry.get("architecture") == native:
            out += [native, *_strings(entry.get("subArchitectures"), "subArchitectures")]
    return out


def _oci_args(args: Any) -> list[dict[str, Any]]:
    out = []
    for arg in args or []:
        if not isinstance(arg, dict):
            raise InvalidArgument("Decoding seccomp profile failed: args must be objects")
        entry = {"index": arg.get("index", 0), "value": arg.get("value", 0),
                 "op": arg.get("op", "")}
        if arg.get("valueTwo"):
            entry["valueTwo"] = arg["valueTwo"]
        out.append(entry)
    return out


def convert(profile: dict[str, Any], caps: Iterable[str], machine: str | None = None,
            release: str | None = None) -> dict[str, Any]:
    """moby's setupSeccomp: the OCI LinuxSeccomp of a Docker-format `profile` for a
    container holding `caps` (its bounding set), on this host's architecture and kernel."""
    held = frozenset(caps)
    goarch, native = native_arch(machine)
    kernel = kernel_version(release)
    if not isinstance(profile.get("defaultAction", ""), str) or not profile.get("defaultAction"):
        raise InvalidArgument("the seccomp profile is invalid: it has no defaultAction")
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"],
                           "architectures": _architectures(profile, native)}
    for key in ("defaultErrnoRet", "listenerPath", "listenerMetadata"):
        if profile.get(key) not in (None, ""):
            out[key] = profile[key]
    flags = _strings(profile.get("flags"), "flags")
    if flags:
        out["flags"] = flags
    syscalls: list[dict[str, Any]] = []
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict):
            raise InvalidArgument("Decoding seccomp profile failed: syscalls must be objects")
        name, names = rule.get("name"), _strings(rule.get("names"), "names")
        if name and names:
            raise InvalidArgument("the seccomp profile is invalid: use either 'name' or "
                                  "'names'")
        if not _selected(rule, held, goarch, kernel):
            continue
        entry: dict[str, Any] = {"names": names or [name], "action": rule.get("action", ""),
                                 "args": _oci_args(rule.get("args"))}
        if rule.get("errnoRet") is not None:
            entry["errnoRet"] = rule["errnoRet"]
        syscalls.append(entry)
    out["syscalls"] = syscalls
    return out


@functools.lru_cache(maxsize=64)
def _converted(profile_json: str, caps: tuple[str, ...]) -> str:
    profile = DEFAULT_PROFILE if profile_json == DEFAULT_PROFILE_JSON \
        else decode_profile(profile_json)
    return json.dumps(convert(profile, caps))


def oci_seccomp(profile_json: str | None, caps: Sequence[str]) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` for `profile_json` (Docker's format; None: the default
    profile) and the container's capabilities, converted once per pair."""
    key = tuple(sorted(set(caps)))
    return json.loads(_converted(profile_json or DEFAULT_PROFILE_JSON, key))  # type: ignore[no-any-return]
