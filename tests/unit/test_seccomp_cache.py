"""runtime.seccomp_cache: the first compile is exported to a root-only BPF file, the next
one is loaded from it (as a `Program`, no libseccomp) and confines exactly as the filter
did; a file others could have written, or a filter with flags, is not used."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from conftest import run_in_child

from skiff.kernel import seccomp, syscall
from skiff.kernel.seccomp import Filter, Program
from skiff.oci.runtime_spec import Seccomp, SeccompSyscall
from skiff.runtime.process import compile_seccomp

pytestmark = pytest.mark.skipif(not seccomp.available(), reason="libseccomp is not installed")

SPEC = Seccomp(default_action="SCMP_ACT_ALLOW",
               architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
               syscalls=(SeccompSyscall(names=("mkdirat", "mkdir"), action="SCMP_ACT_ERRNO",
                                        errno_ret=errno.EROFS),))


def mkdir_errno(filt: Filter | Program, where: Path) -> object:
    def child() -> object:
        syscall.set_no_new_privs()
        filt.load()
        try:
            os.mkdir(where / "d")
        except OSError as e:
            return e.errno
        return 0

    try:
        return run_in_child(child)
    finally:
        filt.release()


def test_second_compile_comes_from_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = compile_seccomp(SPEC, str(cache))
    assert isinstance(first, Filter)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".bpf"
    assert files[0].stat().st_mode & 0o777 == 0o600
    second = compile_seccomp(SPEC, str(cache))
    assert isinstance(second, Program) and second.bpf == files[0].read_bytes()
    assert mkdir_errno(first, tmp_path) == errno.EROFS
    assert mkdir_errno(second, tmp_path) == errno.EROFS
    other = Seccomp(default_action="SCMP_ACT_ALLOW", syscalls=SPEC.syscalls)
    assert isinstance(compile_seccomp(other, str(cache)), Filter)  # another key
    assert len(list(cache.iterdir())) == 2


def test_a_file_others_could_write_is_not_trusted(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    compile_seccomp(SPEC, str(cache))
    (path,) = cache.iterdir()
    path.chmod(0o666)
    assert isinstance(compile_seccomp(SPEC, str(cache)), Filter)
    path.write_bytes(b"123")  # not a BPF program: compiled again, and rewritten
    path.chmod(0o600)
    assert isinstance(compile_seccomp(SPEC, str(cache)), Filter)
    assert len(path.read_bytes()) % 8 == 0 and path.stat().st_mode & 0o777 == 0o600


def test_filters_with_flags_are_not_cached(tmp_path: Path) -> None:
    flagged = Seccomp(default_action=SPEC.default_action, architectures=SPEC.architectures,
                      flags=("SECCOMP_FILTER_FLAG_LOG",), syscalls=SPEC.syscalls)
    assert isinstance(compile_seccomp(flagged, str(tmp_path / "cache")), Filter)
    assert not (tmp_path / "cache").exists()
