"""Docker's security defaults and the remaining run options, through skiffd with the real
docker CLI, docker-py and skiff's own CLI, each seen from inside a real container: the
default seccomp profile (Seccomp: 2; unshare and mount refused with EPERM for root without
CAP_SYS_ADMIN; unconfined, --privileged and a profile file of one's own), no-new-privileges,
--ulimit (and the clear error for a hard limit above the host's), --sysctl, --shm-size,
--oom-kill-disable, --oom-score-adj, --group-add, --device and --device-cgroup-rule,
--init (tini as PID 1), the namespace modes, /info's SecurityOptions, and Docker's 400s."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures_daemon import Skiffd, docker_py_client, module_daemon, remove_all, run_client
from test_cli_images import SKIFF
from test_docker_cli import DOCKER, docker

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI")]


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Skiffd]:
    with module_daemon(tmp_root, "security") as d:
        yield d


def run(d: Skiffd, *args: str, check: bool = True) -> str:
    """`docker run --rm <args>`: its stdout."""
    return docker(d, "run", "--rm", *args, check=check).stdout


def status_field(text: str, key: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines()
                if line.startswith(key + ":"))


# -- seccomp ----------------------------------------------------------------------------------
PROBE = ("grep Seccomp: /proc/self/status; unshare -U true 2>/dev/null; echo unshare=$?; "
         "mount -t tmpfs x /tmp 2>&1; echo mount=$?")


def test_default_seccomp_profile_is_on_and_refuses_namespace_calls(daemon: Skiffd) -> None:
    out = run(daemon, "busybox", "sh", "-c", PROBE)
    assert status_field(out, "Seccomp") == "2"
    assert "unshare=1" in out  # EPERM from the filter (unshare says so and exits 1)
    assert "Operation not permitted" in out or "permission denied" in out
    assert "mount=255" in out or "mount=1" in out
    info = daemon.json("GET", "/info")[1]
    assert "name=seccomp,profile=builtin" in info["SecurityOptions"]


def test_unconfined_and_privileged_have_no_filter(daemon: Skiffd) -> None:
    out = run(daemon, "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c", PROBE)
    assert status_field(out, "Seccomp") == "0"
    # unshare -U now works: a user namespace needs no capability; mount still needs
    # CAP_SYS_ADMIN, which the default set lacks (EPERM from the kernel, not the filter)
    assert "unshare=0" in out
    out = run(daemon, "--privileged", "busybox", "grep", "Seccomp:", "/proc/self/status")
    assert status_field(out, "Seccomp") == "0"


def test_cap_sys_admin_unlocks_mount_in_the_profile(daemon: Skiffd) -> None:
    out = run(daemon, "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
              "grep Seccomp: /proc/self/status; mount -t tmpfs x /tmp && echo mounted")
    assert status_field(out, "Seccomp") == "2" and "mounted" in out


def test_a_profile_file_is_read_by_the_cli_and_applied(daemon: Skiffd, tmp_path: Path) -> None:
    profile = {"defaultAction": "SCMP_ACT_ALLOW",
               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                             "errnoRet": 13}]}
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile, indent=2))
    out = run(daemon, "--security-opt", f"seccomp={path}", "busybox", "sh", "-c",
              "grep Seccomp: /proc/self/status; mkdir /tmp/x 2>&1; echo rc=$?")
    assert status_field(out, "Seccomp") == "2"
    assert "Permission denied" in out and "rc=1" in out
    # skiff's CLI reads the file as docker's does
    p = run_client(daemon, [SKIFF, "run", "--rm", "--security-opt", f"seccomp={path}",
                            "busybox", "sh", "-c", "mkdir /tmp/y 2>&1; echo rc=$?"])
    assert "Permission denied" in p.stdout


def test_bad_security_options_get_dockers_400(daemon: Skiffd) -> None:
    def create(opts: list[str]) -> tuple[int, str]:
        status, doc = daemon.json("POST", "/containers/create",
                                  {"Image": "busybox", "Cmd": ["true"],
                                   "HostConfig": {"SecurityOpt": opts}})
        return status, doc.get("message", "")

    assert create(["seccomp={nope"])[0] == 400
    assert "Decoding seccomp profile failed" in create(["seccomp={nope"])[1]
    assert create(["bogus"]) == (400, "invalid --security-opt 1: 'bogus'")
    assert create(["foo=bar"]) == (400, "invalid --security-opt 2: 'foo=bar'")
    assert create(["no-new-privileges=maybe"])[0] == 400
    both = json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
                       "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]})
    assert "use either 'architectures' or 'archMap'" in create([f"seccomp={both}"])[1]
    p = docker(daemon, "run", "--rm", "--security-opt", "seccomp=/no/such.json", "busybox",
               "true", check=False)
    assert p.returncode == 125 and "opening seccomp profile (/no/such.json) failed" in p.stderr
    assert docker(daemon, "ps", "-aq").stdout == ""  # nothing was made


def test_no_new_privileges(daemon: Skiffd) -> None:
    out = run(daemon, "--security-opt", "no-new-privileges", "busybox",
              "grep", "NoNewPrivs", "/proc/self/status")
    assert status_field(out, "NoNewPrivs") == "1"
    out = run(daemon, "busybox", "grep", "NoNewPrivs", "/proc/self/status")
    assert status_field(out, "NoNewPrivs") == "0"


# -- limits -----------------------------------------------------------------------------------
def test_ulimit_and_a_hard_limit_above_the_hosts(daemon: Skiffd) -> None:
    out = run(daemon, "--ulimit", "nofile=100:200", "--ulimit", "nproc=50", "busybox", "sh",
              "-c", "ulimit -n; ulimit -Hn; ulimit -u")
    assert out.split() == ["100", "200", "50"]
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    p = docker(daemon, "run", "--rm", "--ulimit", f"nofile=10:{hard * 10}", "busybox", "true",
               check=False)
    own = Path("/proc/self/status").read_text()
    if not int(status_field(own, "CapEff"), 16) >> 24 & 1:  # no CAP_SYS_RESOURCE here
        assert p.returncode == 125
        assert f"ulimit nofile: the hard limit {hard * 10} is above this host's {hard}" \
            in p.stderr and "CAP_SYS_RESOURCE" in p.stderr
    p = docker(daemon, "run", "--rm", "--ulimit", "nofiles=1", "busybox", "true", check=False)
    assert p.returncode == 125 and "invalid ulimit type: nofiles" in p.stderr


def test_shm_size_sysctl_oom_score_adj_and_oom_kill_disable(daemon: Skiffd) -> None:
    out = run(daemon, "--shm-size", "2m", "--sysctl", "net.ipv4.ip_forward=1",
              "--oom-score-adj", "321", "busybox", "sh", "-c",
              "df -k /dev/shm | tail -1; cat /proc/sys/net/ipv4/ip_forward "
              "/proc/self/oom_score_adj")
    words = out.split()
    assert words[1] == "2048" and words[-2:] == ["1", "321"]
    v1 = os.path.exists("/sys/fs/cgroup/memory/memory.oom_control")
    p = docker(daemon, "run", "--rm", "--oom-kill-disable", "-m", "32m", "busybox", "sh", "-c",
               "cat /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null | head -1; true")
    if v1:
        assert p.stdout.split()[:2] == ["oom_kill_disable", "1"]
    status, doc = daemon.json("POST", "/containers/create",
                              {"Image": "busybox", "Cmd": ["true"],
                               "HostConfig": {"OomKillDisable": True}})
    assert status == 201 and any("OOM killer is disabled" in w or "OomKillDisable" in w
                                 for w in doc["Warnings"])
    daemon.request("DELETE", f"/containers/{doc['Id']}")
    if not int(status_field(Path("/proc/self/status").read_text(), "CapEff"), 16) >> 24 & 1:
        p = docker(daemon, "run", "--rm", "--oom-score-adj", "-5", "busybox", "true",
                   check=False)
        assert p.returncode == 125 and "lacks CAP_SYS_RESOURCE to lower it" in p.stderr
    for bad, words in ((["--oom-score-adj", "2000"], "range for oom score adj"),
                       (["--sysctl", "kernel.domainname=x"], "is not allowed"),
                       (["--shm-size", "-1"], "invalid size")):
        p = docker(daemon, "run", "--rm", *bad, "busybox", "true", check=False)
        assert p.returncode == 125 and words in p.stderr, p.stderr


# -- users, devices, init ---------------------------------------------------------------------
def test_group_add_by_number_and_by_name_in_the_images_group_file(daemon: Skiffd) -> None:
    assert sorted(run(daemon, "--group-add", "1234", "--group-add", "tty", "busybox",
                      "id", "-G").split()) == ["0", "1234", "5"]
    p = docker(daemon, "run", "--rm", "--group-add", "nosuchgroup", "busybox", "true",
               check=False)
    assert p.returncode != 0 and "Unable to find group nosuchgroup" in p.stderr


def test_device_node_and_cgroup_rule(daemon: Skiffd) -> None:
    out = run(daemon, "--device", "/dev/null:/dev/mynull:rw", "busybox", "sh", "-c",
              "ls -l /dev/mynull; echo x > /dev/mynull && echo wrote")
    assert out.startswith("crw") and "1,   3" in out and "wrote" in out
    # mknod is always allowed, using the node is not: loop0 (b 7:0) needs a cgroup rule
    probe = "mknod /dev/k b 7 0 && head -c0 /dev/k 2>&1 && echo opened"
    denied = run(daemon, "busybox", "sh", "-c", probe, check=False)
    assert "opened" not in denied and "Operation not permitted" in denied
    allowed = run(daemon, "--device-cgroup-rule", "b 7:0 r", "busybox", "sh", "-c", probe)
    assert "opened" in allowed
    p = docker(daemon, "run", "--rm", "--device", "/dev/nope", "busybox", "true", check=False)
    assert "error gathering device information while adding custom device \"/dev/nope\": " \
           "no such file or directory" in p.stderr
    status, doc = daemon.json("POST", "/containers/create",
                              {"Image": "busybox", "Cmd": ["true"],
                               "HostConfig": {"DeviceCgroupRules": ["c 1:3 xyz"]}})
    assert (status, doc["message"]) == (400, "invalid device cgroup rule format: 'c 1:3 xyz'")
    assert docker(daemon, "ps", "-aq").stdout == ""


def test_init_runs_tini_as_pid_1(daemon: Skiffd) -> None:
    if not (shutil.which("tini-static") or shutil.which("docker-init")):
        pytest.skip("tini is not installed")
    out = run(daemon, "--init", "busybox", "ps", "-o", "pid,args")
    first = out.splitlines()[1].split()
    assert first[0] == "1" and first[1] == "/sbin/docker-init" and first[2:] == ["--", "ps",
                                                                                  "-o",
                                                                                  "pid,args"]
    doc = json.loads(docker(daemon, "create", "--init", "busybox", "true").stdout and
                     docker(daemon, "inspect", docker(daemon, "ps", "-aq").stdout.strip()
                            ).stdout)[0]
    assert doc["HostConfig"]["Init"] is True
    remove_all(daemon)


# -- namespaces -------------------------------------------------------------------------------
def test_namespace_modes(daemon: Skiffd) -> None:
    own = {k: os.readlink(f"/proc/self/ns/{k}") for k in ("pid", "uts", "ipc", "cgroup")}
    out = run(daemon, "--pid", "host", "--uts", "host", "--ipc", "host", "--cgroupns", "host",
              "busybox", "sh", "-c", "for n in pid uts ipc cgroup; do readlink /proc/self/ns/$n; "
              "done")
    assert out.split() == [own["pid"], own["uts"], own["ipc"], own["cgroup"]]
    out = run(daemon, "--cgroupns", "private", "busybox", "readlink", "/proc/self/ns/cgroup")
    assert out.strip() != own["cgroup"]
    p = docker(daemon, "run", "--rm", "--pid", "weird", "busybox", "true", check=False)
    assert p.returncode == 125


# -- docker-py --------------------------------------------------------------------------------
def test_docker_py_sets_them_all(daemon: Skiffd) -> None:
    with docker_py_client(daemon.url) as client:
        out = client.containers.run(
            "busybox", ["sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; "
                        "ulimit -n; id -G; cat /proc/self/oom_score_adj"],
            remove=True, security_opt=["no-new-privileges"], group_add=["77"],
            ulimits=[{"Name": "nofile", "Soft": 64, "Hard": 64}], oom_score_adj=5,
            devices=["/dev/zero:/dev/z:r"]).decode()
        assert "Seccomp:\t2" in out and "NoNewPrivs:\t1" in out
        assert out.split()[-4:] == ["64", "0", "77", "5"]
        c = client.containers.create("busybox", "true", security_opt=["seccomp=unconfined"],
                                     init=True, shm_size="8m")
        try:
            host = c.attrs["HostConfig"]
            assert host["SecurityOpt"] == ["seccomp=unconfined"] and host["Init"] is True
            assert host["ShmSize"] == 8 * 1024 * 1024
        finally:
            c.remove(force=True)


def test_exec_runs_under_the_containers_filter(daemon: Skiffd) -> None:
    docker(daemon, "run", "-d", "--name", "sec-exec", "busybox", "sleep", "60")
    try:
        out = docker(daemon, "exec", "sec-exec", "sh", "-c",
                     "grep Seccomp: /proc/self/status; unshare -U true; echo rc=$?").stdout
        assert "Seccomp:\t2" in out and "rc=1" in out
    finally:
        docker(daemon, "rm", "-f", "sec-exec")
