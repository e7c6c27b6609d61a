"""skiff.kernel.seccomp: compile-time checks in this process, real filters in forked children.

A filter is loaded only in a child made with os.fork (after no_new_privs, so no root is
needed); the child reports through a pipe and leaves with os._exit, and the test process
stays unconfined.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from conftest import run_in_child
from skiff.errors import KernelError, SpecError
from skiff.kernel import capabilities, seccomp, syscall
from skiff.kernel.seccomp import ArgRule, Filter, SyscallRule

pytestmark = pytest.mark.skipif(not seccomp.available(), reason="libseccomp is not installed")

ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]


def compile_(rules: Sequence[SyscallRule], default: str = "SCMP_ACT_ALLOW",
             default_errno: int | None = None, arches: Sequence[str] = ARCHES,
             flags: Sequence[str] = ()) -> Filter:
    return Filter.compile(default, default_errno, arches, flags, rules)


def confined(filt: Filter, probe: Callable[[], object]) -> object:
    """In a child: no_new_privs, load `filt`, return what `probe` returns."""
    def child() -> object:
        syscall.set_no_new_privs()
        filt.load()
        return probe()

    try:
        return run_in_child(child)
    finally:
        filt.release()


def errno_of(call: Callable[[], object]) -> int:
    try:
        call()
    except OSError as exc:
        return exc.errno or -1
    return 0


def open_socket(family: int, kind: int = socket.SOCK_DGRAM) -> None:
    socket.socket(family, kind).close()


# --- real filters -------------------------------------------------------------------------


def test_errno_rule_makes_mkdir_fail(tmp_path: Path) -> None:
    target = tmp_path / "made"
    filt = compile_([SyscallRule(("mkdir", "mkdirat"), "SCMP_ACT_ERRNO", errno.ENOSYS)])

    def probe() -> list[int]:
        return [errno_of(lambda: os.mkdir(target)), errno_of(lambda: os.rmdir(tmp_path / "x"))]

    assert confined(filt, probe) == [errno.ENOSYS, errno.ENOENT]
    assert not target.exists()
    os.mkdir(target)  # the parent is not confined


def test_errno_defaults_to_eperm_and_arg_conditions_select() -> None:
    filt = compile_([SyscallRule(("socket",), "SCMP_ACT_ERRNO",
                                 args=(ArgRule(0, "SCMP_CMP_EQ", socket.AF_NETLINK),))])

    def probe() -> dict[str, int]:
        return {"netlink": errno_of(lambda: open_socket(socket.AF_NETLINK)),
                "unix": errno_of(lambda: open_socket(socket.AF_UNIX))}

    assert confined(filt, probe) == {"netlink": errno.EPERM, "unix": 0}


def test_conditions_on_different_args_are_anded() -> None:
    # Python ORs SOCK_CLOEXEC into the type, hence the mask
    filt = compile_([SyscallRule(("socket",), "SCMP_ACT_ERRNO", errno.EXFULL, args=(
        ArgRule(0, "SCMP_CMP_EQ", socket.AF_UNIX),
        ArgRule(1, "SCMP_CMP_MASKED_EQ", 0xF, socket.SOCK_DGRAM)))])

    def probe() -> dict[str, int]:
        return {"unix_dgram": errno_of(lambda: open_socket(socket.AF_UNIX, socket.SOCK_DGRAM)),
                "unix_stream": errno_of(lambda: open_socket(socket.AF_UNIX, socket.SOCK_STREAM)),
                "inet_dgram": errno_of(lambda: open_socket(socket.AF_INET, socket.SOCK_DGRAM))}

    assert confined(filt, probe) == {"unix_dgram": errno.EXFULL, "unix_stream": 0,
                                     "inet_dgram": 0}


def test_conditions_on_one_arg_are_ored() -> None:
    filt = compile_([SyscallRule(("socket",), "SCMP_ACT_ERRNO", errno.EXFULL, args=(
        ArgRule(0, "SCMP_CMP_EQ", socket.AF_NETLINK),
        ArgRule(0, "SCMP_CMP_EQ", socket.AF_INET)))])

    def probe() -> dict[str, int]:
        return {"netlink": errno_of(lambda: open_socket(socket.AF_NETLINK)),
                "inet": errno_of(lambda: open_socket(socket.AF_INET)),
                "unix": errno_of(lambda: open_socket(socket.AF_UNIX))}

    assert confined(filt, probe) == {"netlink": errno.EXFULL, "inet": errno.EXFULL, "unix": 0}


def test_personality_rule_with_a_64_bit_value() -> None:
    # Docker's default profile allows personality(0xffffffff) (a query) by value
    filt = compile_([SyscallRule(("personality",), "SCMP_ACT_ERRNO", errno.EXFULL,
                                 args=(ArgRule(0, "SCMP_CMP_EQ", 0xFFFFFFFF),))])

    def probe() -> list[int]:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.personality.argtypes = (ctypes.c_ulong,)
        ret = libc.personality(0xFFFFFFFF)
        return [ret, ctypes.get_errno()]

    ret, err = confined(filt, probe)  # type: ignore[misc]
    assert ret == -1 and err == errno.EXFULL


def test_default_errno_denies_what_is_not_allowed(tmp_path: Path) -> None:
    # only what this probe and the trip back through the pipe need is allowed
    allowed = ("write", "exit_group", "exit", "brk", "mmap", "munmap", "mremap", "madvise",
               "futex", "rt_sigreturn", "rt_sigprocmask", "close", "getpid", "gettid")
    filt = compile_([SyscallRule(allowed, "SCMP_ACT_ALLOW")], default="SCMP_ACT_ERRNO",
                    flags=["SECCOMP_FILTER_FLAG_LOG"])
    target = tmp_path / "denied"

    def probe() -> int:
        return errno_of(lambda: os.mkdir(target))

    assert confined(filt, probe) == errno.EPERM
    assert not target.exists()


def test_load_without_nnp_or_cap_sys_admin_is_a_kernel_error() -> None:
    sys_admin = 1 << capabilities.CAPABILITIES["CAP_SYS_ADMIN"]
    filt = compile_([SyscallRule(("mkdir",), "SCMP_ACT_ERRNO")])

    def child() -> list[object]:
        now = capabilities.current()
        if now["CapEff"] & sys_admin:
            capabilities.set_capabilities(now["CapEff"] & ~sys_admin, now["CapPrm"],
                                          now["CapInh"])
        try:
            filt.load()
        except KernelError as exc:
            return [exc.call, exc.errno]
        return ["loaded", 0]

    try:
        assert run_in_child(child) == ["seccomp_load", errno.EACCES]
    finally:
        filt.release()


# --- compile-time checks ------------------------------------------------------------------


def test_unknown_syscall_names_are_skipped() -> None:
    with compile_([SyscallRule(("mkdir", "no_such_syscall", "also_not"), "SCMP_ACT_ERRNO"),
                   SyscallRule(("no_such_syscall",), "SCMP_ACT_TRAP")]) as filt:
        assert filt.skipped == ["no_such_syscall", "also_not"]
        with compile_([SyscallRule(("mkdir",), "SCMP_ACT_ERRNO")]) as plain:
            assert filt.export_bpf() == plain.export_bpf()


def test_a_rule_with_the_default_action_is_skipped() -> None:
    with compile_([SyscallRule(("read", "write"), "SCMP_ACT_ALLOW"),
                   SyscallRule(("mkdir",), "SCMP_ACT_KILL_PROCESS")]) as filt, \
         compile_([SyscallRule(("mkdir",), "SCMP_ACT_KILL_PROCESS")]) as plain:
        assert filt.export_bpf() == plain.export_bpf()
    # the same errno as the default errno is the same action too
    with compile_([SyscallRule(("mkdir",), "SCMP_ACT_ERRNO", errno.EPERM)],
                  default="SCMP_ACT_ERRNO"):
        pass


def test_default_errno_defaults_to_eperm() -> None:
    rules = [SyscallRule(("read",), "SCMP_ACT_ALLOW")]
    with compile_(rules, "SCMP_ACT_ERRNO", None) as implicit, \
         compile_(rules, "SCMP_ACT_ERRNO", errno.EPERM) as explicit, \
         compile_(rules, "SCMP_ACT_ERRNO", errno.ENOENT) as other:
        assert implicit.export_bpf() == explicit.export_bpf() != other.export_bpf()
        assert implicit.default_action == 0x00050000 | errno.EPERM


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
                                    "SCMP_ACT_TRACE", "SCMP_ACT_LOG"])
def test_every_oci_action_compiles(action: str) -> None:
    ret = errno.EACCES if action in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE") else None
    with compile_([SyscallRule(("mkdir",), action, ret)]) as filt:
        bpf = filt.export_bpf()
        assert bpf and len(bpf) % 8 == 0


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"])
def test_an_errno_on_an_action_without_one_is_refused(action: str) -> None:
    # config-linux.md errnoRet: "When the action doesn't support an errno, the runtime MUST
    # print and error and fail"
    with pytest.raises(SpecError, match="takes no errno"):
        with compile_([SyscallRule(("mkdir",), action, errno.EACCES)]):
            pass


@pytest.mark.parametrize("flag", sorted(seccomp.FLAGS))
def test_every_flag_compiles(flag: str) -> None:
    with compile_([], flags=[flag]):
        pass


def test_native_architecture_twice_is_fine() -> None:
    with compile_([], arches=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]):
        pass


def test_version_is_libseccomp_2() -> None:
    assert seccomp.version()[0] == 2


def spec_error(rules: Sequence[SyscallRule] = (), **kwargs: object) -> SpecError:
    with pytest.raises(SpecError) as info:
        compile_(rules, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_bad_operator_names_the_field() -> None:
    err = spec_error([SyscallRule(("read",), "SCMP_ACT_ERRNO"),
                      SyscallRule(("socket",), "SCMP_ACT_ERRNO",
                                  args=(ArgRule(0, "SCMP_CMP_EQ", 1), ArgRule(1, "EQ", 1)))])
    assert err.field == "linux.seccomp.syscalls[1].args[1].op"
    assert "'EQ'" in str(err)


def test_bad_argument_index_and_value_name_the_field() -> None:
    err = spec_error([SyscallRule(("read",), "SCMP_ACT_ERRNO",
                                  args=(ArgRule(6, "SCMP_CMP_EQ", 1),))])
    assert err.field == "linux.seccomp.syscalls[0].args[0].index"
    err = spec_error([SyscallRule(("read",), "SCMP_ACT_ERRNO",
                                  args=(ArgRule(0, "SCMP_CMP_MASKED_EQ", 1, 1 << 64),))])
    assert err.field == "linux.seccomp.syscalls[0].args[0].valueTwo"


def test_bad_architecture_names_the_field() -> None:
    assert spec_error(arches=["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]).field \
        == "linux.seccomp.architectures[1]"
    assert spec_error(arches=["x86_64"]).field == "linux.seccomp.architectures[0]"


def test_bad_flag_names_the_field() -> None:
    err = spec_error(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_BOGUS"])
    assert err.field == "linux.seccomp.flags[1]"


def test_notify_is_refused() -> None:
    err = spec_error([SyscallRule(("mkdir",), "SCMP_ACT_NOTIFY")])
    assert err.field == "linux.seccomp.syscalls[0].action"
    assert "notify" in str(err) and "listenerPath" in str(err)
    assert spec_error(default="SCMP_ACT_NOTIFY").field == "linux.seccomp.defaultAction"


def test_unknown_action_bad_errno_and_empty_names_name_the_field() -> None:
    assert spec_error(default="SCMP_ACT_MAYBE").field == "linux.seccomp.defaultAction"
    assert spec_error(default="SCMP_ACT_ERRNO", default_errno=-1).field \
        == "linux.seccomp.defaultErrnoRet"
    assert spec_error([SyscallRule(("read",), "SCMP_ACT_ERRNO", 1 << 16)]).field \
        == "linux.seccomp.syscalls[0].errnoRet"
    assert spec_error([SyscallRule((), "SCMP_ACT_ERRNO")]).field \
        == "linux.seccomp.syscalls[0].names"


def test_where_prefixes_every_field() -> None:
    with pytest.raises(SpecError) as info:
        Filter.compile("SCMP_ACT_ALLOW", None, [], ["nope"], [], where="process.seccomp")
    assert info.value.field == "process.seccomp.flags[0]"


def test_libseccomp_failure_names_the_rule_and_syscall(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = seccomp._lib
    assert lib is not None

    def refuse(*args: object) -> int:
        return -errno.EINVAL

    monkeypatch.setattr(lib, "seccomp_rule_add_array", refuse)
    err = spec_error([SyscallRule(("read",), "SCMP_ACT_ALLOW"),
                      SyscallRule(("mkdir",), "SCMP_ACT_ERRNO")])
    assert err.field == "linux.seccomp.syscalls[1]"
    assert "mkdir" in str(err) and "EINVAL" in str(err)


def test_release_is_idempotent_and_final() -> None:
    filt = compile_([])
    filt.release()
    filt.release()
    with pytest.raises(ValueError):
        filt.export_bpf()
    with pytest.raises(ValueError):
        filt.load()
