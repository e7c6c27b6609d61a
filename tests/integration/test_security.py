"""Privileges, from inside: capabilities, seccomp, no_new_privs, users and groups, user
namespaces, rlimits."""

from __future__ import annotations

import errno
import os
import pwd

import pytest
from conftest import in_user_namespace, join_netns

pytestmark = pytest.mark.root


def caps_of(names: list[str]) -> dict[str, list[str]]:
    return {k: list(names) for k in ("bounding", "effective", "permitted", "inheritable")}


def test_dropped_capability_is_gone(runtime, bundle):
    script = "ip link add probe0 type dummy 2>&1; echo rc=$?; grep CapEff /proc/self/status"
    bundle.config["process"]["capabilities"] = caps_of(["CAP_CHOWN", "CAP_KILL"])
    p = runtime.run(bundle.args("sh", "-c", script))
    assert "rc=2" in p.stdout or "rc=1" in p.stdout
    assert "Operation not permitted" in p.stdout
    assert p.stdout.split()[-1] == f"{(1 << 0) | (1 << 5):016x}"
    # and with CAP_NET_ADMIN the same command works (in the container's own netns)
    bundle.id += "b"
    bundle.config["process"]["capabilities"] = caps_of(["CAP_NET_ADMIN"])
    p = runtime.run(bundle.args("sh", "-c", "ip link add probe0 type veth peer name probe1 && echo made"))
    assert "made" in p.stdout, p.stderr


def test_ambient_capabilities_reach_a_non_root_user(runtime, bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    names = ["CAP_NET_BIND_SERVICE"]
    bundle.config["process"]["capabilities"] = dict(caps_of(names), ambient=names)
    p = runtime.run(bundle.args("sh", "-c", "id -u; grep -E 'CapEff|CapAmb' /proc/self/status"))
    assert p.stdout.split() == ["1000", "CapEff:", f"{1 << 10:016x}", "CapAmb:", f"{1 << 10:016x}"], p.stderr


def test_seccomp_rule_returns_the_configured_errno(runtime, bundle):
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSPC},
            {"names": ["nosuchcall_skiff"], "action": "SCMP_ACT_ERRNO"},
        ]}
    p = runtime.run(bundle.args("sh", "-c", "mkdir /tmp/d 2>&1; echo rc=$?; grep Seccomp: /proc/self/status"))
    assert "No space left on device" in p.stdout, p.stderr
    assert "Seccomp:\t2" in p.stdout
    assert not (bundle.rootfs / "tmp" / "d").exists()


def test_seccomp_without_no_new_privs(runtime, bundle):
    bundle.config["process"]["noNewPrivileges"] = False
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": errno.EACCES}]}
    p = runtime.run(bundle.args("sh", "-c", "mkdir /tmp/d 2>&1; grep NoNewPrivs /proc/self/status"))
    assert "Permission denied" in p.stdout and "NoNewPrivs:\t0" in p.stdout, p.stdout + p.stderr


def test_bad_seccomp_rule_is_named_and_leaves_nothing(runtime, bundle):
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}
    p = runtime.run(bundle)
    assert p.returncode == 1
    assert "linux.seccomp.syscalls[0].args[0].index" in p.stderr
    assert os.listdir(runtime.root) == [] if runtime.root.exists() else True


def test_no_new_privileges(runtime, bundle):
    p = runtime.run(bundle.args("grep", "NoNewPrivs", "/proc/self/status"))
    assert p.stdout.split() == ["NoNewPrivs:", "1"]


def test_user_groups_umask_cwd_env(runtime, bundle):
    bundle.config["process"]["user"] = {"uid": 1234, "gid": 2345, "additionalGids": [3456, 4567],
                                        "umask": 0o077}
    bundle.config["process"]["cwd"] = "/tmp"
    bundle.config["process"]["env"].append("GREETING=ahoy")
    p = runtime.run(bundle.args("sh", "-c", "id -u; id -g; id -G; umask; pwd; echo $GREETING; "
                                            "echo $HOME; touch f; stat -c %a f"))
    assert p.stdout.split() == ["1234", "2345", "2345", "3456", "4567", "0077", "/tmp", "ahoy",
                                "/", "600"], p.stderr


def test_rlimits(runtime, bundle):
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                           {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]
    p = runtime.run(bundle.args("sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"))
    assert p.stdout.split() == ["123", "456", "0"]


def test_oom_score_adj(runtime, bundle):
    bundle.config["process"]["oomScoreAdj"] = 500
    p = runtime.run(bundle.args("cat", "/proc/self/oom_score_adj"))
    assert p.stdout.strip() == "500"


def test_user_namespace_maps_root_to_the_configured_uid(runtime, bundle):
    host = 200000
    in_user_namespace(bundle, host)
    p = runtime.run(bundle.args("sh", "-c", "id -u; cat /proc/self/uid_map; touch /tmp/made-inside; "
                                            "sleep 0.2 & pid=$!; wait $pid; echo done"))
    assert p.returncode == 0, p.stderr
    out = p.stdout.split()
    assert out[0] == "0" and out[1:4] == ["0", str(host), "65536"]
    st = os.stat(bundle.rootfs / "tmp" / "made-inside")
    assert (st.st_uid, st.st_gid) == (host, host)  # container root is host uid 200000
    assert pwd.getpwuid(0).pw_name == "root"  # (the host's root is untouched)


def test_exec_joins_the_user_namespace(runtime, bundle):
    host = 210000
    in_user_namespace(bundle, host)
    runtime.create(bundle.args("sleep", "1000"))
    runtime("start", bundle.id)
    p = runtime("exec", bundle.id, "sh", "-c", "id -u; cat /proc/self/uid_map; touch /tmp/by-exec")
    assert p.stdout.split()[:4] == ["0", "0", str(host), "65536"]
    assert os.stat(bundle.rootfs / "tmp" / "by-exec").st_uid == host


@pytest.mark.parametrize("how", ["link", "script"])
def test_the_runtime_binary_cannot_be_the_program(runtime, bundle, how):
    # runc's CVE-2019-5736: the host binary, reached through /proc/self/exe, must never run
    # as the container's program (it could rewrite itself on the host)
    target = bundle.rootfs / "bin" / "evil"
    if how == "link":
        os.symlink("/proc/self/exe", target)
    else:
        target.write_text("#!/proc/self/exe\nprint('escaped')\n")
        target.chmod(0o755)
    p = runtime.run(bundle.args("/bin/evil"))
    assert p.returncode == 1 and "runtime's own executable: refused" in p.stderr, p.stderr


@pytest.mark.netns
def test_new_user_namespace_with_a_network_namespace_by_path(runtime, bundle, probe_netns):
    # runc's order: the netns (the host's user namespace owns it) is joined before the new
    # user namespace is made, or the join is refused
    in_user_namespace(bundle, 220000)
    join_netns(bundle, probe_netns)
    p = runtime.run(bundle.args("sh", "-c", "id -u; cat /proc/net/dev"))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[0] == "0" and "probe0" in p.stdout
