"""What a container sees of the machine, asked from inside it: its own pid 1, mounts,
hostname, IPC, devices and filesystem, and nothing of the host's."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import join_netns

pytestmark = pytest.mark.root


def inside(runtime, bundle, script: str) -> subprocess.CompletedProcess[str]:
    p = runtime.run(bundle.args("sh", "-c", script))
    bundle.id += "x"  # a fresh id for a second run in the same test
    return p


def test_pid_1_and_only_its_own_processes(runtime, bundle):
    p = inside(runtime, bundle, "echo $$; ls /proc | grep -E '^[0-9]+$' | wc -l")
    pid, count = p.stdout.split()
    assert pid == "1"
    assert int(count) <= 4  # sh and the pipeline's ls, grep, wc, never the host's hundreds


def test_hostname_and_domainname(runtime, bundle):
    bundle.config["hostname"] = "boat"
    bundle.config["domainname"] = "harbour"
    p = inside(runtime, bundle, "hostname; cat /proc/sys/kernel/domainname")
    assert p.stdout.split() == ["boat", "harbour"]
    assert socket.gethostname() != "boat"


def test_own_mounts_and_no_host_filesystem(runtime, bundle, work):
    secret = work / "host-secret"
    secret.write_text("host only")
    p = inside(runtime, bundle, f"cat /proc/self/mounts; echo ---; ls {secret} 2>&1; ls /..")
    table = p.stdout.split("---")[0]
    mounts = [line.split()[1] for line in table.splitlines()]
    assert "/" in mounts and "/proc" in mounts and "/dev/pts" in mounts
    assert not any(str(work) in m for m in mounts)
    assert "No such file" in p.stdout
    assert "bin" in p.stdout and str(work) not in p.stdout.split("\n")[-2]
    # and the host never sees the container's mounts
    assert str(bundle.rootfs) not in Path("/proc/self/mounts").read_text()


def test_own_ipc_namespace(runtime, bundle):
    host_ipc = os.readlink("/proc/self/ns/ipc")
    p = inside(runtime, bundle, "readlink /proc/self/ns/ipc; readlink /proc/self/ns/net; "
                                "readlink /proc/self/ns/uts; ls /sys/class/net")
    ipc, net, uts, *links = p.stdout.split()
    assert ipc != host_ipc
    assert net != os.readlink("/proc/self/ns/net") and uts != os.readlink("/proc/self/ns/uts")
    assert links == ["lo"]


@pytest.mark.netns
def test_join_a_network_namespace_by_path(runtime, bundle, probe_netns):
    join_netns(bundle, probe_netns)
    p = inside(runtime, bundle, "ls /sys/class/net")
    assert "probe0" in p.stdout.split()


def test_default_devices_and_links(runtime, bundle):
    p = inside(runtime, bundle, "ls -l /dev; echo x > /dev/null && head -c 4 /dev/zero | wc -c")
    for dev in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "fd", "stdin",
                "stdout", "stderr", "pts", "shm", "mqueue"):
        assert f" {dev}" in p.stdout, dev
    assert p.stdout.split()[-1] == "4"


def test_linux_devices(runtime, bundle):
    bundle.config["linux"]["devices"] = [
        {"path": "/dev/fuse-like", "type": "c", "major": 1, "minor": 7, "fileMode": 0o620,
         "uid": 5, "gid": 6}]
    p = inside(runtime, bundle, "stat -c '%F %t:%T %a %u %g' /dev/fuse-like")
    assert p.stdout.strip() == "character special file 1:7 620 5 6"


def test_readonly_rootfs_refuses_writes(runtime, bundle):
    bundle.config["root"]["readonly"] = True
    p = inside(runtime, bundle, "touch /newfile 2>&1; echo rc=$?; touch /dev/shm/ok && echo tmpfs-ok")
    assert "Read-only file system" in p.stdout and "rc=1" in p.stdout
    assert "tmpfs-ok" in p.stdout
    assert not (bundle.rootfs / "newfile").exists()


def test_masked_and_readonly_paths(runtime, bundle):
    bundle.config["linux"]["maskedPaths"] += ["/etc/passwd"]
    p = inside(runtime, bundle, "wc -c < /proc/timer_list; wc -c < /etc/passwd; ls /sys/firmware | wc -l;"
                                "echo 1 > /proc/sys/kernel/ns_last_pid 2>&1; echo rc=$?")
    timers, passwd, firmware = p.stdout.split()[:3]
    assert (timers, passwd, firmware) == ("0", "0", "0")
    assert "rc=1" in p.stdout  # /proc/sys is read-only


def test_sysctl(runtime, bundle):
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}
    bundle.config["linux"]["readonlyPaths"] = []
    p = inside(runtime, bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni")
    assert p.stdout.split() == ["1", "1234"]


def test_bind_mounts_with_options(runtime, bundle, work):
    shared = work / "shared"
    shared.mkdir()
    (shared / "f").write_text("from host")
    bundle.config["mounts"] += [
        {"destination": "/data/ro", "type": "bind", "source": str(shared), "options": ["rbind", "ro"]},
        {"destination": "/data/rw", "type": "bind", "source": str(shared), "options": ["bind", "rw"]},
        {"destination": "/etc/hostfile", "type": "bind", "source": str(shared / "f"),
         "options": ["bind", "ro", "nosuid", "nodev"]},
    ]
    p = inside(runtime, bundle, "cat /data/ro/f /etc/hostfile; touch /data/ro/x 2>&1; "
                                "echo new > /data/rw/made; grep /data/ro /proc/self/mounts")
    assert p.stdout.startswith("from hostfrom host")
    assert "Read-only file system" in p.stdout
    assert (shared / "made").read_text() == "new\n"
    assert " ro," in p.stdout


def test_mount_target_symlink_cannot_escape(runtime, bundle, work):
    outside = work / "outside"
    outside.mkdir()
    src = work / "src"
    src.mkdir()
    (src / "marker").write_text("m")
    os.symlink(str(outside), bundle.rootfs / "escape")  # absolute link pointing out
    bundle.config["mounts"].append(
        {"destination": "/escape/inner", "type": "bind", "source": str(src), "options": ["bind"]})
    p = inside(runtime, bundle, "ls /escape/inner")
    assert p.stdout.strip() == "marker"
    assert list(outside.iterdir()) == []  # nothing was made or mounted outside
    assert (bundle.rootfs / str(outside).lstrip("/") / "inner").is_dir()


def test_no_pivot(runtime, bundle):
    p = runtime.run(bundle.args("sh", "-c", "echo $$; ls /"), "--no-pivot")
    assert p.stdout.split()[0] == "1" and "bin" in p.stdout


def test_cgroup_mount_shows_own_cgroup(runtime, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    p = inside(runtime, bundle, "cat /proc/self/cgroup; ls /sys/fs/cgroup; "
                                "cat /sys/fs/cgroup/pids/cgroup.procs")
    assert "memory:/\n" in p.stdout  # the cgroup namespace is rooted at the container's
    assert "memory" in p.stdout.split() and "pids" in p.stdout.split()
    assert p.stdout.split()[-1] == "1" or "1" in p.stdout.split()


@pytest.mark.parametrize("propagation", ["private", "shared", "rslave", "rprivate"])
def test_rootfs_propagation_never_leaks_mounts_to_the_host(runtime, bundle, propagation):
    bundle.config["linux"]["rootfsPropagation"] = propagation
    p = runtime.run(bundle.args("sh", "-c", "grep -c . /proc/self/mounts"))
    assert p.returncode == 0, p.stderr
    assert str(bundle.rootfs) not in Path("/proc/self/mounts").read_text()
