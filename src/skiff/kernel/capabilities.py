"""Linux capabilities: names and bitmasks, the bounding and ambient sets, and capset(2).

A container's init process sheds privilege in runc's order, and the order matters:
(1) `drop_bounding` while it still holds CAP_SETPCAP; (2) `keep_caps_across_setuid(True)` so
the permitted set survives the uid change; (3) setgroups/setgid/setuid; (4)
`set_capabilities(effective, permitted, inheritable)`, since setuid away from 0 empties the
effective set; (5) `set_ambient`, last, because the kernel only lets a capability into the
ambient set while it is both permitted and inheritable. Masks are plain ints, bit N for
capability N. Unknown names are reported rather than refused, as runc warns and goes on.
"""

from __future__ import annotations

from skiff.errors import KernelError
from skiff.kernel import ffi
from skiff.kernel import syscall as _sys

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from collections.abc import Iterable

_libc = _sys.libc


CAPABILITIES: dict[str, int] = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
_NAMES = {bit: name for name, bit in CAPABILITIES.items()}

_PR_CAPBSET_READ = 23
_SYS_CAPSET = _sys.SYSCALL_NUMBERS["capset"]
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


class _CapHeader(ffi.Structure):
    _fields_ = [("version", ffi.c_uint32), ("pid", ffi.c_int)]


class _CapData(ffi.Structure):
    _fields_ = [("effective", ffi.c_uint32), ("permitted", ffi.c_uint32),
                ("inheritable", ffi.c_uint32)]


_last_cap: list[int] = []  # cached (functools costs start-up)


def last_cap() -> int:
    """The highest capability number this kernel knows.

    Read from /proc once and cached; where /proc is gone (after pivot_root) the bounding set
    is probed instead, since PR_CAPBSET_READ fails with EINVAL past the last capability.
    """
    if not _last_cap:
        _last_cap.append(_read_last_cap())
    return _last_cap[0]


def _read_last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        cap = 0
        while True:
            try:
                _sys.prctl(_PR_CAPBSET_READ, cap + 1)
            except KernelError:
                return cap
            cap += 1


def to_mask(names: Iterable[str]) -> tuple[int, list[str]]:
    """The bitmask of `names`, and the names that are unknown (to skiff or to this kernel)."""
    mask = 0
    unknown: list[str] = []
    top = last_cap()
    for name in names:
        bit = CAPABILITIES.get(name)
        if bit is None or bit > top:
            unknown.append(name)
        else:
            mask |= 1 << bit
    return mask, unknown


def names(mask: int) -> list[str]:
    """The names of the bits set in `mask`, lowest first; bits without a name are left out."""
    return [name for bit, name in sorted(_NAMES.items()) if mask >> bit & 1]


def _name(bit: int) -> str:
    return _NAMES.get(bit, f"capability {bit}")


def drop_bounding(keep: int) -> None:
    """Drop from the bounding set every capability not in `keep` (needs CAP_SETPCAP)."""
    for bit in range(last_cap() + 1):
        if keep >> bit & 1:
            continue
        try:
            _sys.prctl(_sys.PR_CAPBSET_DROP, bit)
        except KernelError as exc:
            raise KernelError("prctl(PR_CAPBSET_DROP)", exc.errno, detail=_name(bit)) from exc


def keep_caps_across_setuid(on: bool) -> None:
    """PR_SET_KEEPCAPS: keep the permitted set when setuid leaves uid 0."""
    try:
        _sys.prctl(_sys.PR_SET_KEEPCAPS, 1 if on else 0)
    except KernelError as exc:
        raise KernelError("prctl(PR_SET_KEEPCAPS)", exc.errno) from exc


def set_capabilities(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) of the calling thread's effective, permitted and inheritable sets."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.syscall(ffi.c_long(_SYS_CAPSET), ffi.byref(header), data) != 0:
        raise KernelError("capset", ffi.get_errno(),
                          detail=f"(effective {effective:#x}, permitted {permitted:#x}, "
                                 f"inheritable {inheritable:#x})")


def set_ambient(mask: int) -> None:
    """Make the ambient set exactly `mask`; each bit must be permitted and inheritable."""
    try:
        _sys.prctl(_sys.PR_CAP_AMBIENT, _sys.PR_CAP_AMBIENT_CLEAR_ALL)
    except KernelError as exc:
        raise KernelError("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", exc.errno) from exc
    for bit in range(mask.bit_length()):
        if not mask >> bit & 1:
            continue
        try:
            _sys.prctl(_sys.PR_CAP_AMBIENT, _sys.PR_CAP_AMBIENT_RAISE, bit)
        except KernelError as exc:
            raise KernelError("prctl(PR_CAP_AMBIENT_RAISE)", exc.errno,
                              detail=_name(bit)) from exc


def current(pid: int | str = "self") -> dict[str, int]:
    """The capability sets of `pid` from /proc/PID/status, keyed by the file's own names
    (CapInh, CapPrm, CapEff, CapBnd, CapAmb)."""
    path = f"/proc/{pid}/status"
    sets: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in _STATUS_FIELDS:
                    sets[key] = int(value.strip(), 16)
    except OSError as exc:
        raise KernelError.from_os("open", exc, path) from exc
    return sets
