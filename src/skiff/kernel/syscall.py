"""The Linux calls Python's os module lacks, through libc, each raising `KernelError`.

This is the one seam between skiff and the kernel for namespaces, mounts and process
attributes: mount/umount, pivot_root, unshare/setns, sethostname/setdomainname, prctl,
keyctl, openat2 (a path resolved as if its directory were the root), and the new mount
API's open_tree, mount_setattr and move_mount (a mount made detached, then placed). Each wrapper names
the call and the path in its error, so a caller never has to.
Everything here must already be loaded before a container's pivot_root, which is why the
library handle is opened at import. libc is reached through `kernel.ffi` (`_ctypes` alone:
the `ctypes` package costs a command ~1 ms more).
"""

from __future__ import annotations

import os

from skiff.errors import KernelError
from skiff.kernel import ffi

libc = ffi.Library("libc.so.6")
_libc = libc

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000
MNT_DETACH = 0x2

# clone/unshare flags
CLONE_NEWTIME = 0x80
CLONE_FS = 0x200  # a thread's own root, cwd and umask (what chroot changes)
CLONE_NEWNS = 0x20000
CLONE_NEWCGROUP = 0x2000000
CLONE_NEWUTS = 0x4000000
CLONE_NEWIPC = 0x8000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "user": CLONE_NEWUSER,
    "pid": CLONE_NEWPID, "network": CLONE_NEWNET, "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
# the names under /proc/PID/ns/
NAMESPACE_FILES = {
    "mount": "mnt", "uts": "uts", "ipc": "ipc", "user": "user", "pid": "pid",
    "network": "net", "cgroup": "cgroup", "time": "time",
}

# prctl options
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# the calls glibc has no wrapper for, by number: they differ between architectures
SYSCALL_NUMBERS = {
    "x86_64": {"pivot_root": 155, "keyctl": 250, "capset": 126, "rt_sigaction": 13,
               "openat2": 437, "open_tree": 428, "move_mount": 429, "mount_setattr": 442,
               "ioprio_set": 251, "sched_setattr": 314},
    "aarch64": {"pivot_root": 41, "keyctl": 219, "capset": 91, "rt_sigaction": 134,
                "openat2": 437, "open_tree": 428, "move_mount": 429, "mount_setattr": 442,
                "ioprio_set": 30, "sched_setattr": 274},
}[os.uname().machine]
_SYS_PIVOT_ROOT = SYSCALL_NUMBERS["pivot_root"]
_SYS_KEYCTL = SYSCALL_NUMBERS["keyctl"]
_KEYCTL_JOIN_SESSION_KEYRING = 1
_SYS_OPENAT2 = SYSCALL_NUMBERS["openat2"]
# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
_SYS_OPEN_TREE = SYSCALL_NUMBERS["open_tree"]
_SYS_MOVE_MOUNT = SYSCALL_NUMBERS["move_mount"]
_SYS_MOUNT_SETATTR = SYSCALL_NUMBERS["mount_setattr"]
# the new mount API (Linux 5.2+; mount_setattr 5.12+)
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70  # the atime mode's bits: cleared whenever one mode is set
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
MOUNT_ATTR_IDMAP = 0x100000
# statx(2): the mount a path is on, which tells a mount point from a plain directory
STATX_MNT_ID = 0x1000


class _OpenHow(ffi.Structure):
    _fields_ = (("flags", ffi.c_uint64), ("mode", ffi.c_uint64),
                ("resolve", ffi.c_uint64))



class _MountAttr(ffi.Structure):
    _fields_ = (("attr_set", ffi.c_uint64), ("attr_clr", ffi.c_uint64),
                ("propagation", ffi.c_uint64), ("userns_fd", ffi.c_uint64))


class _SchedAttr(ffi.Structure):  # struct sched_attr (SCHED_ATTR_SIZE_VER1, 56 bytes)
    _fields_ = (("size", ffi.c_uint32), ("sched_policy", ffi.c_uint32),
                ("sched_flags", ffi.c_uint64), ("sched_nice", ffi.c_int32),
                ("sched_priority", ffi.c_uint32), ("sched_runtime", ffi.c_uint64),
                ("sched_deadline", ffi.c_uint64), ("sched_period", ffi.c_uint64),
                ("sched_util_min", ffi.c_uint32), ("sched_util_max", ffi.c_uint32))


class _Statx(ffi.Structure):  # struct statx, up to stx_mnt_id and padded to its 256 bytes
    _fields_ = (("stx_mask", ffi.c_uint32), ("stx_blksize", ffi.c_uint32),
                ("stx_attributes", ffi.c_uint64), ("stx_nlink", ffi.c_uint32),
                ("stx_uid", ffi.c_uint32), ("stx_gid", ffi.c_uint32),
                ("stx_mode", ffi.c_uint16), ("_spare0", ffi.c_uint16),
                ("stx_ino", ffi.c_uint64), ("stx_size", ffi.c_uint64),
                ("stx_blocks", ffi.c_uint64), ("stx_attributes_mask", ffi.c_uint64),
                ("_times", ffi.c_uint8 * 64), ("stx_rdev_major", ffi.c_uint32),
                ("stx_rdev_minor", ffi.c_uint32), ("stx_dev_major", ffi.c_uint32),
                ("stx_dev_minor", ffi.c_uint32), ("stx_mnt_id", ffi.c_uint64),
                ("_spare", ffi.c_uint8 * 104))


_libc.mount.argtypes = (ffi.c_char_p, ffi.c_char_p, ffi.c_char_p, ffi.c_ulong,
                        ffi.c_char_p)
_libc.umount2.argtypes = (ffi.c_char_p, ffi.c_int)
_libc.prctl.argtypes = (ffi.c_int, ffi.c_ulong, ffi.c_ulong, ffi.c_ulong,
                        ffi.c_ulong)
_libc.syscall.restype = ffi.c_long


def _fail(call: str, path: str | None = None, detail: str = "") -> KernelError:
    return KernelError(call, ffi.get_errno(), path, detail)


def _b(s: str | None) -> bytes | None:
    return os.fsencode(s) if s is not None else None


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) != 0:
        what = f"mount {fstype or source or ''}".rstrip()
        raise _fail(what, target, f"(flags {flags:#x}{', ' + data if data else ''})")


def umount(target: str, flags: int = 0) -> None:
    if _libc.umount2(_b(target), flags) != 0:
        raise _fail("umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    if _libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)) != 0:
        raise _fail("pivot_root", new_root)


def unshare(flags: int) -> None:
    if _libc.unshare(ffi.c_int(flags)) != 0:
        raise _fail("unshare", detail=f"(flags {flags:#x})")


def setns(fd: int, nstype: int = 0, path: str | None = None) -> None:
    if _libc.setns(ffi.c_int(fd), ffi.c_int(nstype)) != 0:
        raise _fail("setns", path)


def sethostname(name: str) -> None:
    raw = name.encode()
    if _libc.sethostname(raw, ffi.c_size_t(len(raw))) != 0:
        raise _fail("sethostname", detail=name)


def setdomainname(name: str) -> None:
    raw = name.encode()
    if _libc.setdomainname(raw, ffi.c_size_t(len(raw))) != 0:
        raise _fail("setdomainname", detail=name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret = _libc.prctl(option, arg2, arg3, arg4, arg5)
    if ret < 0:
        raise _fail("prctl", detail=f"(option {option})")
    return ret


IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_CLASS_SHIFT = 13


def ioprio_set(klass: str, priority: int) -> None:
    """The calling process's I/O scheduling class and priority (its children inherit them)."""
    value = (IOPRIO_CLASSES[klass] << _IOPRIO_CLASS_SHIFT) | priority
    if _libc.syscall(SYSCALL_NUMBERS["ioprio_set"], ffi.c_int(_IOPRIO_WHO_PROCESS),
                     ffi.c_int(0), ffi.c_int(value)) != 0:
        raise _fail("ioprio_set", detail=f"({klass}, {priority})")


SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x1, "SCHED_FLAG_RECLAIM": 0x2,
               "SCHED_FLAG_DL_OVERRUN": 0x4, "SCHED_FLAG_KEEP_POLICY": 0x8,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}


def sched_setattr(policy: str, flags: int = 0, nice: int = 0, priority: int = 0,
                  runtime: int = 0, deadline: int = 0, period: int = 0) -> None:
    """The calling thread's scheduling policy and its parameters (sched_setattr(2))."""
    attr = _SchedAttr(ffi.sizeof(_SchedAttr), SCHED_POLICIES[policy], flags, nice, priority,
                      runtime, deadline, period, 0, 0)
    if _libc.syscall(SYSCALL_NUMBERS["sched_setattr"], ffi.c_int(0), ffi.byref(attr),
                     ffi.c_uint(0)) != 0:
        raise _fail("sched_setattr", detail=f"({policy})")


# getrlimit(2)'s resources, runc's names for them (asm-generic: one numbering on x86_64
# and aarch64); through libc rather than the `resource` module, one shared library less
# to load for a command that sets a limit or two
RLIMITS = {"RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3,
           "RLIMIT_CORE": 4, "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7,
           "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11,
           "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15}
RLIM_INFINITY = (1 << 64) - 1


class _Rlimit(ffi.Structure):
    _fields_ = (("rlim_cur", ffi.c_uint64), ("rlim_max", ffi.c_uint64))


def setrlimit(which: int, soft: int, hard: int, what: str = "") -> None:
    """The calling process's limit `which` (an `RLIMITS` value); `what` names it in errors."""
    if _libc.setrlimit(which, ffi.byref(_Rlimit(soft, hard))) != 0:
        raise _fail("setrlimit", detail=what)


PER_LINUX = 0x0000
PER_LINUX32 = 0x0008
_PERSONALITY_QUERY = 0xFFFFFFFF


def personality(persona: int) -> None:
    """Set the execution domain (personality(2)); the flags bits above it are kept."""
    current = _libc.personality(ffi.c_ulong(_PERSONALITY_QUERY))
    if current == -1 or _libc.personality(ffi.c_ulong((current & ~0xFF) | persona)) == -1:
        raise _fail("personality", detail=f"({persona:#x})")


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_child_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def join_session_keyring(name: str) -> None:
    """A fresh session keyring, so the container cannot see the caller's keys."""
    if _libc.syscall(_SYS_KEYCTL, _KEYCTL_JOIN_SESSION_KEYRING, _b(name)) < 0:
        err = ffi.get_errno()
        if err != 38:  # ENOSYS: kernel without keys; runc ignores that too
            raise KernelError("keyctl(JOIN_SESSION_KEYRING)", err, detail=name)


def openat2(dir_fd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """An fd on `path` below `dir_fd`, resolved by the kernel under `resolve`
    (`RESOLVE_IN_ROOT`: symlinks and ``..`` as if `dir_fd` were ``/``, Linux 5.6+)."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _libc.syscall(_SYS_OPENAT2, ffi.c_int(dir_fd), _b(path), ffi.byref(how),
                       ffi.c_size_t(ffi.sizeof(how)))
    if fd < 0:
        raise _fail("openat2", path)
    return int(fd)


def open_tree(path: str, flags: int, dir_fd: int = AT_FDCWD) -> int:
    """An fd on `path`'s mount; with OPEN_TREE_CLONE a detached copy of it (a bind mount
    attached nowhere yet, which goes away with its last fd)."""
    fd = _libc.syscall(_SYS_OPEN_TREE, ffi.c_int(dir_fd), _b(path), ffi.c_uint(flags))
    if fd < 0:
        raise _fail("open_tree", path, f"(flags {flags:#x})")
    return int(fd)


def mount_setattr(fd: int, attr_set: int, attr_clr: int = 0, propagation: int = 0,
                  flags: int = AT_EMPTY_PATH, path: str = "", what: str | None = None,
                  userns_fd: int = 0) -> None:
    """Set and clear MOUNT_ATTR_* on the mount `fd` is (or, with AT_RECURSIVE, the tree),
    and change its propagation (MS_PRIVATE, …) in the same call; with MOUNT_ATTR_IDMAP,
    `userns_fd` is the user namespace whose mapping the mount takes; `what` names it in
    errors."""
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    if _libc.syscall(_SYS_MOUNT_SETATTR, ffi.c_int(fd), _b(path), ffi.c_uint(flags),
                     ffi.byref(attr), ffi.c_size_t(ffi.sizeof(attr))) != 0:
        raise _fail("mount_setattr", what or path, f"(set {attr_set:#x})")


def move_mount(from_fd: int, to_fd: int, what: str | None = None, from_path: str = "",
               to_path: str = "",
               flags: int = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) -> None:
    """Attach the mount `from_fd` (a detached one from open_tree) onto `to_fd`, which must
    be in the caller's mount namespace; `what` names the target in errors."""
    if _libc.syscall(_SYS_MOVE_MOUNT, ffi.c_int(from_fd), _b(from_path), ffi.c_int(to_fd),
                     _b(to_path), ffi.c_uint(flags)) != 0:
        raise _fail("move_mount", what or to_path)


def mount_id(fd: int, what: str | None = None) -> int:
    """The ID of the mount the file `fd` is on (statx's stx_mnt_id); a mount point's differs
    from its parent directory's. Needs no /proc, so it works in another mount namespace."""
    buf = _Statx()
    if _libc.statx(ffi.c_int(fd), b"", ffi.c_int(AT_EMPTY_PATH), ffi.c_uint(STATX_MNT_ID),
                   ffi.byref(buf)) != 0:
        raise _fail("statx", what)
    return int(buf.stx_mnt_id)
