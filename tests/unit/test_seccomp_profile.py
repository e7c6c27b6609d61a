"""skiff's default seccomp profile and moby's setupSeccomp conversion of Docker-format
profiles: the conditional parts by capability, architecture and kernel, the clone filter,
the arch map, Docker's errors; and the profile really compiled by libseccomp."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skiff.engine import seccomp_profile as sp
from skiff.engine.oci_spec import DEFAULT_CAPABILITIES
from skiff.engine.security_opts import parse_security_opts, seccomp_profile
from skiff.errors import InvalidArgument
from skiff.kernel import seccomp


def allowed(doc: dict[str, Any]) -> set[str]:
    return {n for s in doc["syscalls"] if s["action"] == "SCMP_ACT_ALLOW" and not s["args"]
            for n in s["names"]}


def rules_for(doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [s for s in doc["syscalls"] if name in s["names"]]


def test_default_profile_denies_with_eperm_and_covers_the_native_arches() -> None:
    doc = sp.convert(sp.DEFAULT_PROFILE, DEFAULT_CAPABILITIES, machine="x86_64",
                     release="6.1.0-18-amd64")
    assert doc["defaultAction"] == "SCMP_ACT_ERRNO" and doc["defaultErrnoRet"] == 1
    assert doc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(doc)
    assert {"read", "execve", "fork", "arch_prctl", "modify_ldt",
            "ptrace", "chroot"} <= names  # CAP_SYS_CHROOT is in Docker's default set
    assert not names & {"mount", "umount2", "unshare", "setns", "reboot", "kexec_load",
                        "init_module", "keyctl", "add_key", "bpf", "open_by_handle_at",
                        "cacheflush", "s390_runtime_instr"}
    clone = rules_for(doc, "clone")
    assert clone == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": sp.CLONE_NAMESPACE_FLAGS,
                                "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert rules_for(doc, "clone3") == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO",
                                         "args": [], "errnoRet": 38}]
    personas = sorted(s["args"][0]["value"] for s in rules_for(doc, "personality"))
    assert personas == sorted(sp.PERSONAS)
    socket = rules_for(doc, "socket")[0]["args"]
    assert socket == [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]


def test_capabilities_unlock_their_calls() -> None:
    caps = [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_TIME"]
    doc = sp.convert(sp.DEFAULT_PROFILE, caps, machine="x86_64", release="6.1")
    names = allowed(doc)
    assert {"mount", "umount2", "unshare", "setns", "clone", "clone3", "kcmp",
            "clock_settime"} <= names
    # with CAP_SYS_ADMIN the clone filter and the clone3 ENOSYS are gone
    assert all(not s["args"] for s in rules_for(doc, "clone"))
    assert all(s["action"] == "SCMP_ACT_ALLOW" for s in rules_for(doc, "clone3"))


def test_arch_and_kernel_conditions() -> None:
    arm = sp.convert(sp.DEFAULT_PROFILE, DEFAULT_CAPABILITIES, machine="aarch64",
                     release="6.1")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "cacheflush" in allowed(arm) and "arch_prctl" not in allowed(arm)
    old = sp.convert(sp.DEFAULT_PROFILE, DEFAULT_CAPABILITIES, machine="x86_64",
                     release="4.4.0")
    assert "ptrace" not in allowed(old)  # before 4.8 ptrace could bypass seccomp


def test_docker_format_errors() -> None:
    with pytest.raises(InvalidArgument, match="use either 'architectures' or 'archMap'"):
        sp.convert({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
                    "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}, ())
    with pytest.raises(InvalidArgument, match="use either 'name' or 'names'"):
        sp.convert({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"name": "read", "names": ["write"], "action": "x"}]}, ())
    with pytest.raises(InvalidArgument, match="Decoding seccomp profile failed"):
        sp.decode_profile("{nope")
    with pytest.raises(InvalidArgument, match="Decoding seccomp profile failed"):
        sp.decode_profile("[1]")
    one = sp.convert({"defaultAction": "SCMP_ACT_ALLOW",
                      "syscalls": [{"name": "mkdir", "action": "SCMP_ACT_ERRNO"}]}, ())
    assert one["syscalls"] == [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "args": []}]


def test_security_opt_choices() -> None:
    assert seccomp_profile({"SecurityOpt": None}) is None
    assert seccomp_profile({"SecurityOpt": ["seccomp=builtin"]}) is None
    assert seccomp_profile({"SecurityOpt": ["seccomp:unconfined"]}) == "unconfined"
    assert seccomp_profile({"SecurityOpt": None, "Privileged": True}) == "unconfined"
    assert seccomp_profile({"SecurityOpt": ['seccomp={"a":1}']}) == '{"a":1}'
    assert parse_security_opts(["no-new-privileges=false", "no-new-privileges"]) \
        .no_new_privileges
    assert not parse_security_opts(["no-new-privileges=false"]).no_new_privileges
    for bad, words in (("x", "invalid --security-opt 1"), ("x=y", "invalid --security-opt 2"),
                       ("no-new-privileges=maybe", "invalid --security-opt 2"),
                       ("apparmor=mine", "not supported")):
        with pytest.raises(InvalidArgument, match=words):
            parse_security_opts([bad])


def test_conversion_is_cached_per_profile_and_capabilities() -> None:
    sp._converted.cache_clear()
    first = sp.oci_seccomp(None, DEFAULT_CAPABILITIES)
    again = sp.oci_seccomp(None, list(reversed(DEFAULT_CAPABILITIES)))
    assert first == again and sp._converted.cache_info().hits == 1
    first["syscalls"].clear()  # each caller gets its own copy
    assert sp.oci_seccomp(None, DEFAULT_CAPABILITIES)["syscalls"]


@pytest.mark.skipif(not seccomp.available(), reason="libseccomp is not installed")
def test_the_default_profile_compiles() -> None:
    from skiff.oci.codec import decode_object
    from skiff.oci.runtime_spec import Seccomp
    from skiff.runtime.process import compile_seccomp

    doc = sp.oci_seccomp(None, DEFAULT_CAPABILITIES)
    filt = compile_seccomp(decode_object(Seccomp, json.loads(json.dumps(doc))))
    assert filt is not None
    try:
        assert len(filt.export_bpf()) > 8 * 100
    finally:
        filt.release()
