"""Seccomp filters, compiled by libseccomp (through `kernel.ffi`) and loaded into the calling process.

`Filter.compile` turns plain rules (`SyscallRule`, `ArgRule`: kernel-level types, not the OCI
records; the runtime converts) into a libseccomp context, checking everything that can be
wrong: actions, operators, architectures, flags. The runtime compiles in the parent before it
forks, so a bad profile fails before anything is created; the child inherits the context's
memory through fork and only calls `load()`, late, after pivot_root. libseccomp is opened at
the first compile, in the runtime, while the host's filesystem (and the library file) is still
there. Like runc, the filter leaves no_new_privs to the caller (SCMP_FLTATR_CTL_NNP is off),
skips syscall names this libseccomp does not know (listed in `Filter.skipped`) and rules whose
action is the default one, and turns several conditions on one argument into separate rules
(an OR), since libseccomp refuses two comparisons of one argument in a rule. A compiled
filter can be kept as BPF (`Filter.export_bpf`) and loaded later as a `Program`, straight
through prctl(PR_SET_SECCOMP) without libseccomp: libseccomp's rule adding and BPF
generation cost a start tens of milliseconds that a cached program does not.
"""

from __future__ import annotations

import errno as _errno
import os
from skiff.record import Record

from skiff.errors import KernelError, SpecError
from skiff.kernel import ffi

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

_SONAME = "libseccomp.so.2"
_lib: ffi.Library | None = None


class _ArgCmp(ffi.Structure):
    """struct scmp_arg_cmp"""

    _fields_ = [("arg", ffi.c_uint), ("op", ffi.c_int),
                ("datum_a", ffi.c_uint64), ("datum_b", ffi.c_uint64)]


class _Version(ffi.Structure):
    """struct scmp_version"""

    _fields_ = [("major", ffi.c_uint), ("minor", ffi.c_uint), ("micro", ffi.c_uint)]


# enum scmp_filter_attr
_ATTR_CTL_NNP = 3
_ATTR_CTL_TSYNC = 4
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7
_ATTR_API_SYSRAWRC = 9

_NR_SCMP_ERROR = -1
_MAX_ARGS = 6

_ACT_KILL_THREAD = 0x00000000
_ACT_KILL_PROCESS = 0x80000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000

# OCI action names whose value takes no errno
_PLAIN_ACTIONS = {
    "SCMP_ACT_KILL": _ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": _ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": _ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": _ACT_TRAP,
    "SCMP_ACT_LOG": _ACT_LOG,
    "SCMP_ACT_ALLOW": _ACT_ALLOW,
}
# the action names this module accepts, for a runtime's `features` answer
ACTIONS: tuple[str, ...] = (*_PLAIN_ACTIONS, "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

# enum scmp_compare
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# OCI filter flags and the libseccomp attribute each one sets
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": _ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": _ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _ATTR_CTL_SSB,
}

_ARCH_PREFIX = "SCMP_ARCH_"
_U64 = (1 << 64) - 1


class ArgRule(Record):
    """One comparison of syscall argument `index`; for SCMP_CMP_MASKED_EQ, `value` is the mask
    and `value_two` the datum the masked argument must equal (libseccomp's and OCI's order)."""

    index: int
    op: str
    value: int
    value_two: int = 0


class SyscallRule(Record):
    """`action` (an OCI SCMP_ACT_* name) for the syscalls `names` when all `args` match;
    `errno` is the return code of SCMP_ACT_ERRNO and SCMP_ACT_TRACE (EPERM when None)."""

    names: tuple[str, ...]
    action: str
    errno: int | None = None
    args: tuple[ArgRule, ...] = ()


def available() -> bool:
    """Whether libseccomp can be opened."""
    try:
        _library()
    except KernelError:
        return False
    return True


def version() -> tuple[int, int, int]:
    """The version of the libseccomp in use, as (major, minor, micro)."""
    v = _library().seccomp_version().contents
    return (v.major, v.minor, v.micro)


def _library() -> ffi.Library:
    """libseccomp, opened at first use. The runtime compiles its filter before it forks,
    so the library is open before any pivot_root takes the host's filesystem away."""
    global _lib
    if _lib is None:
        try:
            lib = ffi.Library(_SONAME)
        except OSError:
            raise KernelError("dlopen", _errno.ENOENT, _SONAME) from None
        _declare(lib)
        _lib = lib
    return _lib


def _declare(_lib: ffi.Library) -> None:
    _lib.seccomp_version.argtypes = ()
    _lib.seccomp_version.restype = ffi.POINTER(_Version)
    _lib.seccomp_init.argtypes = (ffi.c_uint32,)
    _lib.seccomp_init.restype = ffi.c_void_p
    _lib.seccomp_release.argtypes = (ffi.c_void_p,)
    _lib.seccomp_release.restype = None
    _lib.seccomp_load.argtypes = (ffi.c_void_p,)
    _lib.seccomp_load.restype = ffi.c_int
    _lib.seccomp_attr_set.argtypes = (ffi.c_void_p, ffi.c_int, ffi.c_uint32)
    _lib.seccomp_attr_set.restype = ffi.c_int
    _lib.seccomp_arch_resolve_name.argtypes = (ffi.c_char_p,)
    _lib.seccomp_arch_resolve_name.restype = ffi.c_uint32
    _lib.seccomp_arch_add.argtypes = (ffi.c_void_p, ffi.c_uint32)
    _lib.seccomp_arch_add.restype = ffi.c_int
    _lib.seccomp_syscall_resolve_name.argtypes = (ffi.c_char_p,)
    _lib.seccomp_syscall_resolve_name.restype = ffi.c_int
    _lib.seccomp_rule_add_array.argtypes = (ffi.c_void_p, ffi.c_uint32, ffi.c_int,
                                            ffi.c_uint, ffi.POINTER(_ArgCmp))
    _lib.seccomp_rule_add_array.restype = ffi.c_int
    _lib.seccomp_export_bpf.argtypes = (ffi.c_void_p, ffi.c_int)
    _lib.seccomp_export_bpf.restype = ffi.c_int


def _errno_text(rc: int) -> str:
    err = -rc
    return f"{_errno.errorcode.get(err, str(err))} ({os.strerror(err)})"


def _action(name: str, errno: int | None, field: str, errno_field: str) -> int:
    if name in _PLAIN_ACTIONS:
        if errno is not None:  # config-linux.md: "the runtime MUST print and error and fail"
            raise SpecError(errno_field, f"{name} takes no errno")
        return _PLAIN_ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        ret = _errno.EPERM if errno is None else errno
        if not 0 <= ret <= 0xFFFF:
            raise SpecError(errno_field, f"{ret} is not an errno (0..65535)")
        return (_ACT_ERRNO if name == "SCMP_ACT_ERRNO" else _ACT_TRACE) | ret
    if name == "SCMP_ACT_NOTIFY":
        raise SpecError(field, "SCMP_ACT_NOTIFY: seccomp notify (listenerPath) is not supported")
    raise SpecError(field, f"unknown seccomp action {name!r}")


def _comparison(arg: ArgRule, field: str) -> _ArgCmp:
    if not 0 <= arg.index < _MAX_ARGS:
        raise SpecError(f"{field}.index", f"{arg.index} is not a syscall argument (0..5)")
    op = OPERATORS.get(arg.op)
    if op is None:
        raise SpecError(f"{field}.op", f"unknown comparison {arg.op!r}")
    for key, value in (("value", arg.value), ("valueTwo", arg.value_two)):
        if not 0 <= value <= _U64:
            raise SpecError(f"{field}.{key}", f"{value} is not a 64-bit unsigned value")
    return _ArgCmp(arg.index, op, arg.value, arg.value_two)


def _condition_sets(cmps: list[_ArgCmp]) -> list[list[_ArgCmp]]:
    """The rules to add for one syscall: all comparisons in one rule (AND), unless an argument
    is compared twice, which libseccomp refuses; then one rule per comparison (OR), as runc."""
    indexes = [c.arg for c in cmps]
    if len(set(indexes)) < len(indexes):
        return [[c] for c in cmps]
    return [cmps]


class Filter:
    """A compiled libseccomp context: make one with `Filter.compile`, `load()` it in the
    process to confine (typically a forked child), `release()` it (or use `with`) in the one
    that compiled it."""

    def __init__(self, ctx: int, default_action: int) -> None:
        self._ctx: int | None = ctx
        self.default_action = default_action
        # syscall names this libseccomp does not know, skipped as runc skips them
        self.skipped: list[str] = []

    @classmethod
    def compile(cls, default_action: str, default_errno: int | None,
                architectures: Sequence[str], flags: Sequence[str],
                rules: Sequence[SyscallRule], where: str = "linux.seccomp") -> Filter:
        """Build a filter; every error is a `SpecError` naming the field under `where`
        (rules[i] is reported as `where.syscalls[i]`)."""
        lib = _library()
        default = _action(default_action, default_errno, f"{where}.defaultAction",
                          f"{where}.defaultErrnoRet")
        ctx = lib.seccomp_init(default)
        if not ctx:
            raise SpecError(f"{where}.defaultAction", f"seccomp_init({default_action}) failed")
        filt = cls(ctx, default)
        try:
            filt._set_attr(_ATTR_CTL_NNP, 0, "SCMP_FLTATR_CTL_NNP")
            # real kernel errnos from seccomp_load instead of a blanket ECANCELED; older
            # libseccomp lacks the attribute and has no blanket code either
            lib.seccomp_attr_set(ctx, _ATTR_API_SYSRAWRC, 1)
            filt._add_architectures(architectures, f"{where}.architectures")
            filt._set_flags(flags, f"{where}.flags")
            filt._add_rules(rules, f"{where}.syscalls")
        except BaseException:
            filt.release()
            raise
        return filt

    def _context(self) -> int:
        if self._ctx is None:
            raise ValueError("seccomp filter already released")
        return self._ctx

    def _set_attr(self, attr: int, value: int, name: str) -> None:
        rc = _library().seccomp_attr_set(self._context(), attr, value)
        if rc < 0:
            raise KernelError("seccomp_attr_set", -rc, detail=f"({name}={value})")

    def _add_architectures(self, architectures: Sequence[str], field: str) -> None:
        lib = _library()
        for i, arch in enumerate(architectures):
            token = 0
            if arch.startswith(_ARCH_PREFIX):
                token = lib.seccomp_arch_resolve_name(
                    arch[len(_ARCH_PREFIX):].lower().encode())
            if token == 0:
                raise SpecError(f"{field}[{i}]", f"unknown seccomp architecture {arch!r}")
            rc = lib.seccomp_arch_add(self._context(), token)
            if rc < 0 and rc != -_errno.EEXIST:
                raise SpecError(f"{field}[{i}]", f"{arch}: seccomp_arch_add: {_errno_text(rc)}")

    def _set_flags(self, flags: Sequence[str], field: str) -> None:
        lib = _library()
        for i, flag in enumerate(flags):
            attr = FLAGS.get(flag)
            if attr is None:
                raise SpecError(f"{field}[{i}]", f"unknown seccomp flag {flag!r}")
            rc = lib.seccomp_attr_set(self._context(), attr, 1)
            if rc < 0:
                raise SpecError(f"{field}[{i}]", f"{flag}: seccomp_attr_set: {_errno_text(rc)}")

    def _add_rules(self, rules: Sequence[SyscallRule], field: str) -> None:
        lib = _library()
        for i, rule in enumerate(rules):
            here = f"{field}[{i}]"
            action = _action(rule.action, rule.errno, f"{here}.action", f"{here}.errnoRet")
            cmps = [_comparison(arg, f"{here}.args[{j}]") for j, arg in enumerate(rule.args)]
            if not rule.names:
                raise SpecError(f"{here}.names", "no syscall names")
            numbers: list[tuple[str, int]] = []
            for name in rule.names:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == _NR_SCMP_ERROR:
                    if name not in self.skipped:
                        self.skipped.append(name)
                else:
                    numbers.append((name, nr))
            if action == self.default_action:
                continue  # libseccomp refuses it, and it changes nothing
            for name, nr in numbers:
                for group in _condition_sets(cmps):
                    array = (_ArgCmp * len(group))(*group) if group else None
                    rc = lib.seccomp_rule_add_array(self._context(), action, nr, len(group),
                                                    array)
                    if rc < 0:
                        raise SpecError(here, f"{name}: seccomp_rule_add: {_errno_text(rc)}")

    def load(self) -> None:
        """Install the filter in the calling process (needs no_new_privs or CAP_SYS_ADMIN)."""
        rc = _library().seccomp_load(self._context())
        if rc < 0:
            raise KernelError("seccomp_load", -rc)

    def export_bpf(self) -> bytes:
        """The filter as the kernel will see it: an array of 8-byte struct sock_filter."""
        fd = os.memfd_create("skiff-seccomp-bpf", os.MFD_CLOEXEC)
        try:
            rc = _library().seccomp_export_bpf(self._context(), fd)
            if rc < 0:
                raise KernelError("seccomp_export_bpf", -rc)
            size = os.fstat(fd).st_size
            chunks: list[bytes] = []
            offset = 0
            while offset < size:
                chunk = os.pread(fd, size - offset, offset)
                if not chunk:
                    break
                chunks.append(chunk)
                offset += len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def release(self) -> None:
        """Free the libseccomp context; safe to call twice."""
        ctx, self._ctx = getattr(self, "_ctx", None), None
        if ctx is not None and _lib is not None:
            _lib.seccomp_release(ctx)

    def __enter__(self) -> Filter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SOCK_FILTER_SIZE = 8  # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k


class _SockFprog(ffi.Structure):
    """struct sock_fprog"""

    _fields_ = [("len", ffi.c_ushort), ("filter", ffi.c_void_p)]


class Program:
    """A seccomp filter as BPF, loaded with prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER): a
    filter libseccomp compiled and exported before, with no filter flags (those need
    seccomp(2) and are left to `Filter`)."""

    def __init__(self, bpf: bytes) -> None:
        if not bpf or len(bpf) % _SOCK_FILTER_SIZE or len(bpf) // _SOCK_FILTER_SIZE > 0xFFFF:
            raise ValueError(f"not a BPF program: {len(bpf)} bytes")
        self.bpf = bpf
        # kept alive here: the child that loads it inherits this memory through fork
        self._buffer = (ffi.c_ubyte * len(bpf)).from_buffer_copy(bpf)

    def load(self) -> None:
        """Install the filter in the calling process (needs no_new_privs or CAP_SYS_ADMIN)."""
        from skiff.kernel import syscall

        prog = _SockFprog(len(self.bpf) // _SOCK_FILTER_SIZE,
                          ffi.addressof(self._buffer))
        if syscall.libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ffi.addressof(prog),
                              0, 0) != 0:
            raise KernelError("prctl(PR_SET_SECCOMP)", ffi.get_errno())

    def release(self) -> None:
        """Nothing to free (a `Filter`'s counterpart)."""
