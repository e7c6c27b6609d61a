"""Turn the calling process into the spec's `process` and exec it: shared by init and exec.

The order is runc's, because each step needs a privilege the next one gives up: rlimits, the
personality, the scheduler and I/O priority and the OOM score while still root; no_new_privs and the LSM exec labels;
seccomp *before* dropping capabilities when no_new_privs is off (loading a filter then needs
CAP_SYS_ADMIN); the bounding set; the user and groups (keeping capabilities across setuid);
the effective, permitted, inheritable and ambient sets; the working directory; and, when
no_new_privs is on, seccomp as late as possible, right before execve.
"""

from __future__ import annotations

import os
import stat
import sys

from skiff.errors import KernelError, RuntimeError_, SpecError
from skiff.kernel import capabilities as caps
from skiff.kernel import signals
from skiff.kernel import syscall as sc
from skiff.oci.runtime_spec import Linux, Process, Seccomp, cpu_list
from skiff.log import logger

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from skiff.kernel.seccomp import Filter, Program

log = logger("skiff.runtime")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def seal_imports() -> None:
    """Once we stand in the container's filesystem, no import may find anything: the
    paths Python would search now hold the image's files, and its code would run here
    with all our privileges. Builtin and frozen modules still load (they are in the
    interpreter itself); everything else fails loudly instead."""
    sys.path[:] = []
    sys.path_importer_cache.clear()


def preserve_fds(count: int, ours: tuple[int, ...]) -> set[int]:
    """Let fds 3..3+count-1 through to the program (LISTEN_FDS style, as runc's
    --preserve-fds) and make sure nothing else of ours is inherited by it."""
    keep = set(range(3, 3 + count)) - set(ours)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd <= 2:
            continue
        try:
            os.set_inheritable(fd, fd in keep)
        except OSError:
            pass  # the fd of the listdir itself, closed by now
    return keep


def compile_seccomp(seccomp: Seccomp | None,
                    cache_dir: str | None = None) -> Filter | Program | None:
    """Check and build the filter in the runtime, before anything is created; the forked
    container process inherits it and only has to load it. With `cache_dir`, a filter
    compiled before is taken from there as BPF (`runtime.seccomp_cache`)."""
    if seccomp is None:
        return None
    if seccomp.listener_path:
        raise SpecError("linux.seccomp.listenerPath", "seccomp user notification is not supported")
    if cache_dir is None:
        return _compile(seccomp)
    from skiff.runtime.seccomp_cache import cached_program

    return cached_program(seccomp, cache_dir, _compile)


def _compile(seccomp: Seccomp) -> Filter:
    # (imported here, in the runtime before it forks: a spec without a filter never loads it)
    from skiff.kernel.seccomp import ArgRule, Filter, SyscallRule

    rules = [SyscallRule(s.names, s.action, s.errno_ret,
                         tuple(ArgRule(a.index, a.op, a.value, a.value_two) for a in s.args))
             for s in seccomp.syscalls]
    filt = Filter.compile(seccomp.default_action, seccomp.default_errno_ret, seccomp.architectures,
                          seccomp.flags, rules)
    if filt.skipped:
        log.debug("seccomp: syscalls unknown to libseccomp skipped: %s", ", ".join(filt.skipped))
    return filt


def environment(process: Process) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in process.env:
        key, _, value = entry.partition("=")
        env[key] = value
    if "HOME" not in env:
        env["HOME"] = _home_of(process.user.uid)
    return env


def passwd_entry(uid: int) -> list[str] | None:
    """The fields of `uid`'s line in /etc/passwd (the container's, after the pivot), read
    as bytes — the file may hold anything — and without NSS, whose loading costs a ms."""
    try:
        with open("/etc/passwd", "rb") as f:
            for line in f:
                parts = line.rstrip(b"\n").split(b":")
                if len(parts) >= 6 and parts[2] == str(uid).encode():
                    return [p.decode("utf-8", "replace") for p in parts]
    except OSError:
        pass
    return None


def _home_of(uid: int) -> str:
    entry = passwd_entry(uid)
    return (entry[5] if entry else "") or "/"


def find_executable(process: Process, env: dict[str, str]) -> str:
    """args[0] the way execvp finds it, in the container's filesystem and PATH."""
    name = process.args[0]
    if "/" in name:
        path = name if name.startswith("/") else os.path.join(process.cwd, name)
        if not os.path.exists(path):
            raise RuntimeError_(f'exec: "{name}": no such file or directory')
        if not _runnable(path):  # as Go's exec.LookPath (runc): refused now, not by execve
            raise RuntimeError_(f'exec: "{name}": permission denied')
        refuse_runtime_binary(path)
        return path
    for d in env.get("PATH", DEFAULT_PATH).split(":"):
        path = os.path.join(d or ".", name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            refuse_runtime_binary(path)
            return path
    raise RuntimeError_(f'exec: "{name}": executable file not found in $PATH')


def _runnable(path: str) -> bool:
    """A regular file with an execute bit: what execve may run (for root, as here)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and bool(mode & 0o111)


def refuse_runtime_binary(path: str, depth: int = 0) -> None:
    """Refuse a program that is, or is interpreted by, this very process's executable —
    the host's Python, reachable through /proc/self/exe (a link, or `#!/proc/self/exe`).
    Run as container root it could open that file and rewrite it on the host: runc's
    CVE-2019-5736. The check follows #! lines as the kernel does (4 deep)."""
    try:
        ours = os.stat("/proc/self/exe")
        st = os.stat(path)
    except OSError:
        return
    if (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino):
        raise RuntimeError_(f'exec: "{path}" is the runtime\'s own executable: refused')
    if depth >= 4 or not stat.S_ISREG(st.st_mode):  # a fifo or device would block the read
        return
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return
    if head.startswith(b"#!"):
        words = head[2:].split(b"\n", 1)[0].split()
        if words:
            refuse_runtime_binary(os.fsdecode(words[0]), depth + 1)


def _rlim(value: int) -> int:
    """A spec limit (uint64) as setrlimit takes it: RLIM_INFINITY is 2**64-1 in the spec."""
    return sc.RLIM_INFINITY if value >= 1 << 63 or value < 0 else value


def apply_rlimits(process: Process) -> None:
    for r in process.rlimits:
        which = sc.RLIMITS.get(r.type)
        if which is None:
            raise SpecError("process.rlimits", f"unknown rlimit {r.type}")
        # (the kernel refuses a soft limit above the hard one: EINVAL)
        sc.setrlimit(which, _rlim(r.soft), _rlim(r.hard), f"{r.type} soft={r.soft} hard={r.hard}")


def _oom_score_adj(value: int) -> None:
    path = "/proc/self/oom_score_adj"
    try:
        with open(path) as f:
            if int(f.read()) == value:
                return  # nothing to change (and in a user namespace, maybe no right to)
    except (OSError, ValueError):
        pass
    try:
        _write_oom_score_adj(path, value)
    except PermissionError:
        # in a user namespace, a non-dumpable process's /proc files belong to the host's
        # root; dumpable again, they are its own (as runc's init makes itself) — for this
        # write only: dumpable, this process (the host's Python, holding host fds) would be
        # open to the container's processes through /proc/PID/exe and fd until its execve
        sc.prctl(sc.PR_SET_DUMPABLE, 1)
        try:
            _write_oom_score_adj(path, value)
        except OSError as e:
            raise KernelError.from_os("write oom_score_adj", e, path) from None
        finally:
            sc.prctl(sc.PR_SET_DUMPABLE, 0)
    except OSError as e:
        raise KernelError.from_os("write oom_score_adj", e, path) from None


def _write_oom_score_adj(path: str, value: int) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def host_lsms() -> frozenset[str]:
    """The security modules the host enforces, read in the runtime before any fork: the
    container's own /sys shows neither securityfs nor selinuxfs."""
    found = set()
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            if f.read().strip() == "Y":
                found.add("apparmor")
    except OSError:
        pass
    if os.path.exists("/sys/fs/selinux/enforce"):
        found.add("selinux")
    return frozenset(found)


def _lsm_labels(process: Process, lsms: frozenset[str]) -> None:
    """Set the exec labels the host can enforce; on a host without the module the label
    is noted and left, as runc does. One the host has but refuses fails the container."""
    for label, lsm in ((process.apparmor_profile, "apparmor"), (process.selinux_label, "selinux")):
        if not label:
            continue
        if lsm not in lsms:
            log.debug("%s is not enabled on this host: label %r not applied", lsm, label)
            continue
        path = f"/proc/self/attr/{lsm}/exec"
        if not os.path.exists(path):
            path = "/proc/self/attr/exec"
        value = f"exec {label}" if lsm == "apparmor" else label
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as e:
            raise KernelError.from_os(f"set {lsm} label {label}", e, path) from None


def _masks(process: Process) -> dict[str, int]:
    c = process.capabilities
    out: dict[str, int] = {}
    for name in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        mask, unknown = caps.to_mask(getattr(c, name) if c else ())
        if unknown:
            log.warning("unknown capabilities ignored in %s: %s", name, ", ".join(unknown))
        out[name] = mask
    return out


def _scheduling(process: Process) -> None:
    """process.scheduler and process.ioPriority, while still root (real-time classes and
    raised priorities need CAP_SYS_NICE / CAP_SYS_ADMIN, which the program may not keep);
    the program and every child of it inherit both."""
    sched = process.scheduler
    if sched is not None:
        flags = 0
        for name in sched.flags:
            flags |= sc.SCHED_FLAGS[name]
        sc.sched_setattr(sched.policy, flags, sched.nice, sched.priority, sched.runtime,
                         sched.deadline, sched.period)
    if process.io_priority is not None:
        sc.ioprio_set(process.io_priority.klass, process.io_priority.priority)


def set_affinity(cpus: str | None, where: str) -> None:
    """Run on the CPUs of a spec CPU list ("0-3,7"); nothing when there is none."""
    if cpus:
        try:
            os.sched_setaffinity(0, cpu_list(cpus, where))
        except OSError as e:
            raise KernelError.from_os("sched_setaffinity", e, cpus) from None


def persona_of(linux: Linux | None) -> int | None:
    """linux.personality as the personality(2) value to set, None when not asked for."""
    if linux is None or linux.personality is None:
        return None
    return sc.PER_LINUX32 if linux.personality.domain == "LINUX32" else sc.PER_LINUX


def become(process: Process, filt: Filter | Program | None,
           lsms: frozenset[str] = frozenset(), persona: int | None = None) -> None:
    """Every step up to (not including) the last-moment seccomp load and execve."""
    apply_rlimits(process)
    if persona is not None:  # before seccomp, which may limit personality(2)
        sc.personality(persona)
    _scheduling(process)
    if process.oom_score_adj is not None:
        _oom_score_adj(process.oom_score_adj)
    if process.no_new_privileges:
        sc.set_no_new_privs()
    _lsm_labels(process, lsms)
    if filt is not None and not process.no_new_privileges:
        filt.load()
    masks = _masks(process) if process.capabilities is not None else None
    if masks is not None:
        caps.drop_bounding(masks["bounding"])
    user = process.user
    try:
        os.chdir(process.cwd)
    except OSError:
        pass  # the user may be able to enter it where root (in a userns) cannot; retried below
    caps.keep_caps_across_setuid(True)
    try:
        os.setgroups(list(user.additional_gids))
    except PermissionError:
        if user.additional_gids:
            raise
    try:
        os.setresgid(user.gid, user.gid, user.gid)
        os.setresuid(user.uid, user.uid, user.uid)
    except OSError as e:
        raise KernelError.from_os("setuid/setgid", e, f"{user.uid}:{user.gid}") from None
    caps.keep_caps_across_setuid(False)
    if masks is not None:
        caps.set_capabilities(masks["effective"], masks["permitted"], masks["inheritable"])
        # the kernel raises an ambient cap only if it is permitted and inheritable; runc
        # silently leaves out the others (its default spec has ambient but no inheritable)
        ambient = masks["ambient"] & masks["permitted"] & masks["inheritable"]
        if ambient != masks["ambient"]:
            log.debug("ambient capabilities not inheritable, left out: %s",
                      ", ".join(caps.names(masks["ambient"] & ~ambient)))
        caps.set_ambient(ambient)
    try:
        os.chdir(process.cwd)
    except OSError as e:
        raise KernelError.from_os("chdir to cwd", e, process.cwd) from None
    _check_cwd_inside(process.cwd)
    os.umask(user.umask if user.umask is not None else 0o022)  # runc's default


def _check_cwd_inside(cwd: str) -> None:
    """Refuse a working directory outside the container's root. Until execve our fds are
    open, and a host directory among them (one the caller left open, say) is a folder on
    the host that /proc/self/fd/N leads to: the program would start there, outside the
    container (runc's CVE-2024-21626). The kernel tells: getcwd of a folder not below our
    root is "(unreachable)", which glibc answers with ENOENT."""
    try:
        os.getcwd()
    except FileNotFoundError:
        raise RuntimeError_(f"process.cwd {cwd!r} is outside the container's root: refused") from None


def execute(process: Process, filt: Filter | Program | None, path: str,
            env: dict[str, str]) -> None:
    signals.unignore_all()  # the program gets default dispositions, as from runc
    if filt is not None and process.no_new_privileges:
        filt.load()
    try:
        os.execve(path, list(process.args), env)
    except OSError as e:
        raise KernelError.from_os("execve", e, path) from None
