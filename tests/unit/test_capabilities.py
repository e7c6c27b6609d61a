"""skiff.kernel.capabilities: name/mask arithmetic anywhere, the real sets in forked children.

Every change of capabilities happens in a child made with os.fork, which reports through a
pipe and leaves with os._exit, so the test process keeps all it had.
"""

from __future__ import annotations

import errno
import os
import socket

import pytest

from conftest import run_in_child
from skiff.errors import KernelError
from skiff.kernel import capabilities, syscall
from skiff.kernel.capabilities import CAPABILITIES

NET_RAW = 1 << CAPABILITIES["CAP_NET_RAW"]
NET_BIND_SERVICE = 1 << CAPABILITIES["CAP_NET_BIND_SERVICE"]

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="changing capabilities needs root")


def raw_socket_errno() -> int:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    except OSError as exc:
        return exc.errno or -1
    return 0


def test_capabilities_table_is_complete() -> None:
    assert sorted(CAPABILITIES.values()) == list(range(41))
    assert CAPABILITIES["CAP_CHOWN"] == 0
    assert CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40


def test_last_cap_matches_proc() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert capabilities.last_cap() == int(f.read())


def test_last_cap_probes_without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_proc(*args: object, **kwargs: object) -> object:
        raise FileNotFoundError(errno.ENOENT, "no /proc", args[0])

    expected = capabilities.last_cap()
    monkeypatch.setattr(capabilities, "open", no_proc, raising=False)
    assert capabilities._read_last_cap() == expected


def test_to_mask_and_names_round_trip() -> None:
    wanted = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_SYS_ADMIN"]
    mask, unknown = capabilities.to_mask(wanted)
    assert unknown == []
    assert mask == 1 << 0 | 1 << 10 | 1 << 5 | 1 << 21
    assert capabilities.names(mask) == ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE",
                                        "CAP_SYS_ADMIN"]
    assert capabilities.to_mask(capabilities.names(mask)) == (mask, [])


def test_to_mask_reports_unknown_names() -> None:
    mask, unknown = capabilities.to_mask(["CAP_CHOWN", "CAP_NO_SUCH", "chown", "CAP_CHOWN"])
    assert mask == 1
    assert unknown == ["CAP_NO_SUCH", "chown"]


def test_to_mask_counts_caps_past_the_kernel_as_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capabilities, "last_cap", lambda: 38)
    mask, unknown = capabilities.to_mask(["CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"])
    assert mask == 1 << 38
    assert unknown == ["CAP_BPF", "CAP_CHECKPOINT_RESTORE"]


def test_names_leaves_out_nameless_bits() -> None:
    assert capabilities.names(0) == []
    assert capabilities.names(1 << 13 | 1 << 55) == ["CAP_NET_RAW"]


def test_current_reads_proc_status() -> None:
    sets = capabilities.current()
    assert set(sets) == {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}
    assert capabilities.current(os.getpid())["CapBnd"] == sets["CapBnd"]


def test_current_of_a_missing_process_is_a_kernel_error() -> None:
    with pytest.raises(KernelError) as info:
        capabilities.current(2**22 + 12345)
    assert info.value.errno == errno.ENOENT
    assert "/status" in str(info.value)


def test_keep_caps_across_setuid_sets_the_flag() -> None:
    def child() -> list[int]:
        pr_get_keepcaps = 7
        capabilities.keep_caps_across_setuid(True)
        on = syscall.prctl(pr_get_keepcaps)
        capabilities.keep_caps_across_setuid(False)
        return [on, syscall.prctl(pr_get_keepcaps)]

    assert run_in_child(child) == [1, 0]


@pytest.mark.root
@root_only
def test_dropping_net_raw_forbids_raw_sockets() -> None:
    def child() -> dict[str, int]:
        before = capabilities.current()
        if not before["CapEff"] & NET_RAW:
            raise AssertionError("the test process lacks CAP_NET_RAW")
        control = raw_socket_errno()
        capabilities.drop_bounding(before["CapBnd"] & ~NET_RAW)
        capabilities.set_capabilities(before["CapEff"] & ~NET_RAW, before["CapPrm"] & ~NET_RAW,
                                      0)
        after = capabilities.current()
        return {"control": control, "bnd": after["CapBnd"], "eff": after["CapEff"],
                "prm": after["CapPrm"], "raw": raw_socket_errno(),
                "expected_bnd": before["CapBnd"] & ~NET_RAW}

    got = run_in_child(child)
    assert isinstance(got, dict)
    assert got["control"] == 0
    assert got["bnd"] == got["expected_bnd"]
    assert not got["bnd"] & NET_RAW
    assert not got["eff"] & NET_RAW
    assert not got["prm"] & NET_RAW
    assert got["raw"] == errno.EPERM
    assert capabilities.current()["CapEff"] & NET_RAW  # the parent kept it


@pytest.mark.root
@root_only
def test_runc_order_keeps_chosen_caps_for_a_non_root_user() -> None:
    nobody = 65534

    def child() -> dict[str, int]:
        keep = NET_BIND_SERVICE
        capabilities.drop_bounding(keep)
        capabilities.keep_caps_across_setuid(True)
        os.setgroups([])
        os.setgid(nobody)
        os.setuid(nobody)
        after_setuid = capabilities.current()
        capabilities.set_capabilities(keep, keep, keep)
        capabilities.set_ambient(keep)
        final = capabilities.current()
        bound = -1
        for port in range(700, 720):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        continue
                    bound = exc.errno or -1
                else:
                    bound = 0
                break
        return {"uid": os.getuid(), "eff_after_setuid": after_setuid["CapEff"],
                "prm_after_setuid": after_setuid["CapPrm"], "bnd": final["CapBnd"],
                "eff": final["CapEff"], "inh": final["CapInh"], "amb": final["CapAmb"],
                "bind": bound}

    got = run_in_child(child)
    # the bounding set does not trim the permitted set, so all of it survives setuid
    permitted = capabilities.current()["CapPrm"]
    assert got == {"uid": nobody, "eff_after_setuid": 0, "prm_after_setuid": permitted,
                   "bnd": NET_BIND_SERVICE, "eff": NET_BIND_SERVICE, "inh": NET_BIND_SERVICE,
                   "amb": NET_BIND_SERVICE, "bind": 0}


@pytest.mark.root
@root_only
def test_failures_name_the_call_and_the_capability() -> None:
    def child() -> list[str]:
        out = []
        capabilities.set_capabilities(0, 0, 0)  # no CAP_SETPCAP left to drop bounding caps
        try:
            capabilities.drop_bounding(0)
        except KernelError as exc:
            out.append(str(exc))
        try:
            capabilities.set_capabilities(NET_RAW, NET_RAW, 0)  # cannot regain permitted caps
        except KernelError as exc:
            out.append(str(exc))
        try:
            capabilities.set_ambient(NET_RAW)  # not permitted, not inheritable
        except KernelError as exc:
            out.append(str(exc))
        return out

    drop, capset, ambient = run_in_child(child)  # type: ignore[misc]
    assert drop.startswith("prctl(PR_CAPBSET_DROP) CAP_CHOWN: EPERM")
    assert capset.startswith("capset (effective 0x2000") and "EPERM" in capset
    assert ambient.startswith("prctl(PR_CAP_AMBIENT_RAISE) CAP_NET_RAW: EPERM")
