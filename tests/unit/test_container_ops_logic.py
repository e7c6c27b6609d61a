"""The pure logic of the container verbs: Go FileMode bits, path resolution inside a rootfs,
moby's overlay changes of an upper dir, the commit layer's whiteouts, ps parsing, the stats
arithmetic (dockerd's document, the CLI's CPU % and memory), docker cp's copy rules, and
docker update's merge."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from skiff.cli.container_copy import prepare_copy, split_cp_arg, split_dir_entry
from skiff.cli.container_ops import StatsEntry, cpu_percent
from skiff.engine import container_archive as ca
from skiff.engine.commit import write_layer
from skiff.engine.container_control import merge_update, parse_update
from skiff.engine.container_stats import parse_ps, stats_doc, system_cpu_usage, zero_stats
from skiff.errors import ContainerConflict, InvalidArgument, PathNotFound, SkiffError

ROOT = os.geteuid() == 0


# -- Go FileMode ---------------------------------------------------------------------------
@pytest.mark.parametrize("st_mode, expected", [
    (stat.S_IFREG | 0o644, 0o644),
    (stat.S_IFDIR | 0o755, (1 << 31) | 0o755),
    (stat.S_IFLNK | 0o777, (1 << 27) | 0o777),
    (stat.S_IFCHR | 0o600, (1 << 26) | (1 << 21) | 0o600),
    (stat.S_IFBLK | 0o600, (1 << 26) | 0o600),
    (stat.S_IFIFO | 0o644, (1 << 25) | 0o644),
    (stat.S_IFSOCK | 0o755, (1 << 24) | 0o755),
    (stat.S_IFREG | stat.S_ISUID | 0o755, (1 << 23) | 0o755),
    (stat.S_IFREG | stat.S_ISGID | 0o755, (1 << 22) | 0o755),
    (stat.S_IFDIR | stat.S_ISVTX | 0o777, (1 << 31) | (1 << 20) | 0o777),
])
def test_go_file_mode(st_mode: int, expected: int) -> None:
    assert ca.go_file_mode(st_mode) == expected


# -- paths -----------------------------------------------------------------------------------
def test_abs_path_keeps_a_trailing_slash_or_dot() -> None:
    assert ca.abs_path("etc") == "/etc"
    assert ca.abs_path("/etc/") == "/etc/"
    assert ca.abs_path("/etc/.") == "/etc/."
    assert ca.abs_path("/a/../b") == "/b"
    assert ca.abs_path("/") == "/"


def test_stat_describes_a_link_and_resolves_it_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.symlink("../../../../etc/passwd", tmp_path / "up")
    os.symlink("/", tmp_path / "top")
    doc = ca.path_stat(str(tmp_path), "/up", "c")
    assert doc["name"] == "up" and doc["linkTarget"] == "/etc/passwd"
    assert doc["mode"] & (1 << 27)
    followed = ca.path_stat(str(tmp_path), "/top/etc/passwd", "c")  # inner links followed
    assert followed["size"] == len("root:x:0:0::/root:/bin/sh\n")
    assert ca.path_stat(str(tmp_path), "/etc/", "c")["name"] == "etc"
    assert ca.path_stat(str(tmp_path), "/etc/.", "c")["name"] == "."
    with pytest.raises(PathNotFound, match="Could not find the file /nope in container c"):
        ca.path_stat(str(tmp_path), "/nope", "c")


def test_write_path_renames_the_top_entry(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    for asked, names in (("/d", ["d", "d/f"]), ("/d/.", [".", "./f"]), ("/d/f", ["f"])):
        out = io.BytesIO()
        ca.write_path(str(tmp_path), asked, {}, out)
        with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
            assert tar.getnames() == names, asked


def test_upload_checks_no_overwrite_dir_non_dir_before_writing(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    spool = io.BytesIO()
    with tarfile.open(fileobj=spool, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("new"))
        tar.addfile(tarfile.TarInfo("d"))  # a file where a directory is
    spool.seek(0)
    with pytest.raises(SkiffError, match='cannot overwrite directory "/d" with non-directory'):
        ca.extract(str(tmp_path), "/", spool, "c", no_overwrite_dir_non_dir=True)
    assert not (tmp_path / "new").exists()  # nothing written
    whiteout = io.BytesIO()  # moby's Untar outside a layer: a plain file of that name
    with tarfile.open(fileobj=whiteout, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("d/.wh.x"))
    whiteout.seek(0)
    ca.extract(str(tmp_path), "/", whiteout, "c")
    assert (tmp_path / "d" / ".wh.x").is_file()
    escape = io.BytesIO()
    with tarfile.open(fileobj=escape, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("new"))
        link = tarfile.TarInfo("up")
        link.type, link.linkname = tarfile.SYMTYPE, "../x"  # out of /d, the target
        tar.addfile(link)
    escape.seek(0)
    with pytest.raises(SkiffError, match='invalid symlink "/d/up" -> "../x"'):
        ca.extract(str(tmp_path), "/d", escape, "c")
    assert not (tmp_path / "d" / "new").exists()  # refused whole, before any write
    (tmp_path / "f").write_text("")
    with pytest.raises(InvalidArgument, match="extraction point is not a directory"):
        ca.extract(str(tmp_path), "/f", io.BytesIO(), "c")


# -- changes ---------------------------------------------------------------------------------
def _tree(base: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = base / name.lstrip("/")
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)


def _same_times(lower: Path, upper: Path, *dirs: str) -> None:
    for d in dirs:
        st = os.stat(lower / d.lstrip("/"))
        os.utime(upper / d.lstrip("/"), ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.skipif(not ROOT, reason="whiteouts are character devices: mknod needs root")
def test_changes_of_an_upper_dir(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _tree(lower, {"/bin/ls": "", "/bin/sh": "", "/etc/passwd": "root", "/etc/group": "",
                  "/tmp/": "", "/var/old/x": ""})
    _tree(upper, {"/bin/": "", "/etc/passwd": "root\ny", "/etc/hostname": "",
                  "/tmp/new": "", "/root/d/": "", "/var/": ""})
    os.mknod(upper / "bin" / "ls", stat.S_IFCHR | 0o600, os.makedev(0, 0))  # rm /bin/ls
    (upper / "var" / "old").mkdir()
    os.setxattr(upper / "var" / "old", ca.OPAQUE_XATTR, b"y")  # rm -r /var/old; mkdir
    _same_times(lower, upper, "/etc", "/var")
    found = [(c["Kind"], c["Path"]) for c in ca.changes(str(upper), [str(lower)])]
    assert found == [(0, "/bin"), (2, "/bin/ls"), (0, "/etc/passwd"), (1, "/root"),
                     (1, "/root/d"), (0, "/tmp"), (1, "/tmp/new"), (0, "/var"),
                     (2, "/var/old")]

    layer = io.BytesIO()
    write_layer(str(upper), [str(lower)], layer)
    with tarfile.open(fileobj=io.BytesIO(layer.getvalue())) as tar:
        names = tar.getnames()
    assert "bin/.wh.ls" in names and "var/old/.wh..wh..opq" in names
    assert "etc/hostname" not in names and "etc" in names and "tmp/new" in names


def test_changes_hide_the_init_layers_paths(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _tree(lower, {"/etc/passwd": "", "/dev/": ""})
    _tree(upper, {"/etc/hostname": "", "/etc/hosts": "", "/etc/resolv.conf": "",
                  "/dev/console": "", "/proc/": "", "/sys/": "", "/.dockerenv": ""})
    assert ca.changes(str(upper), [str(lower)]) == []


# -- top -------------------------------------------------------------------------------------
def test_parse_ps_keeps_the_containers_pids_and_joins_the_command() -> None:
    out = ("UID PID PPID C STIME TTY TIME CMD\n"
           "root 1 0 0 01:00 ? 00:00:01 /sbin/init splash\n"
           "root 42 7 0 01:00 ? 00:00:00 sh -c sleep 1; echo done\n")
    doc = parse_ps(out, [42])
    assert doc["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert doc["Processes"] == [["root", "42", "7", "0", "01:00", "?", "00:00:00",
                                 "sh -c sleep 1; echo done"]]
    with pytest.raises(SkiffError, match="Couldn't find PID field"):
        parse_ps("USER CMD\n", [1])


# -- stats -----------------------------------------------------------------------------------
RAW_V1 = {"cpu": {"usage": {"total": 3_000_000_000, "percpu": [1_000_000_000, 2_000_000_000],
                            "user": 2_000_000_000, "kernel": 1_000_000_000},
                  "throttling": {"periods": 4, "throttledPeriods": 1, "throttledTime": 9}},
          "memory": {"usage": {"usage": 10 << 20, "max": 12 << 20, "limit": 9223372036854771712,
                               "failcnt": 0},
                     "raw": {"total_inactive_file": 2 << 20, "cache": 3 << 20}},
          "pids": {"current": 3},
          "blkio": {"ioServiceBytesRecursive": [{"major": 8, "minor": 0, "op": "Read",
                                                 "value": 4096},
                                                {"major": 8, "minor": 0, "op": "Write",
                                                 "value": 8192}]}}


def test_system_cpu_usage_adds_the_first_seven_fields() -> None:
    text = "cpu  100 5 50 1000 10 1 2 99 0 0\ncpu0 1 1 1 1 1 1 1\n"
    assert system_cpu_usage(text, 100) == (100 + 5 + 50 + 1000 + 10 + 1 + 2) * 10**7


def test_stats_doc_is_dockers_shape() -> None:
    doc = stats_doc(RAW_V1, name="web", cid="c" * 64, read="2026-01-01T00:00:00Z",
                    system_usage=10**12, online_cpus=2, host_memory=1 << 30, cgroup_v1=True)
    assert doc["name"] == "/web" and doc["id"] == "c" * 64
    usage = doc["cpu_stats"]["cpu_usage"]
    assert usage == {"total_usage": 3_000_000_000, "usage_in_kernelmode": 1_000_000_000,
                     "usage_in_usermode": 2_000_000_000,
                     "percpu_usage": [1_000_000_000, 2_000_000_000]}
    assert doc["cpu_stats"]["throttling_data"] == {"periods": 4, "throttled_periods": 1,
                                                   "throttled_time": 9}
    assert doc["memory_stats"]["limit"] == 1 << 30  # no limit: the machine's memory
    assert doc["memory_stats"]["max_usage"] == 12 << 20
    assert doc["pids_stats"] == {"current": 3}
    assert doc["blkio_stats"]["io_service_bytes_recursive"][1]["op"] == "Write"
    assert doc["blkio_stats"]["io_serviced_recursive"] is None
    assert zero_stats("web", "c" * 64)["read"] == "0001-01-01T00:00:00Z"


def test_stats_doc_of_a_v2_cgroup() -> None:
    raw = {"cpu": {"usage": {"total": 5000, "user": 3000, "kernel": 2000},
                   "throttling": {}},
           "memory": {"usage": {"usage": 4 << 20, "limit": 64 << 20, "failcnt": 0},
                      "raw": {"inactive_file": 1 << 20, "file": 2 << 20}},
           "pids": {"current": 2, "limit": 100}}
    doc = stats_doc(raw, name="v2", cid="d" * 64, read="", system_usage=1, online_cpus=4,
                    host_memory=1 << 30, cgroup_v1=False)
    assert "percpu_usage" not in doc["cpu_stats"]["cpu_usage"]
    assert doc["cpu_stats"]["online_cpus"] == 4
    assert doc["memory_stats"] == {"usage": 4 << 20, "limit": 64 << 20,
                                   "stats": {"inactive_file": 1 << 20, "file": 2 << 20}}
    assert doc["pids_stats"] == {"current": 2, "limit": 100}
    assert StatsEntry("v2", doc).MemUsage() == "3MiB / 64MiB"


def test_the_clis_numbers() -> None:
    doc = stats_doc(RAW_V1, name="web", cid="c" * 64, read="", system_usage=10**12,
                    online_cpus=2, host_memory=1 << 30, cgroup_v1=True)
    doc["precpu_stats"] = {"cpu_usage": {"total_usage": 2_000_000_000},
                           "system_cpu_usage": 10**12 - 4 * 10**9}
    assert cpu_percent(doc) == pytest.approx(1e9 / 4e9 * 2 * 100)  # 50.00%
    entry = StatsEntry("web", doc)
    assert entry.CPUPerc() == "50.00%"
    assert entry.MemUsage() == "8MiB / 1GiB"  # usage less the inactive file pages
    assert entry.MemPerc() == "0.78%"
    assert entry.BlockIO() == "4.1kB / 8.19kB"
    assert entry.PIDs() == "3" and entry.Name() == "web" and entry.ID() == "c" * 12
    assert cpu_percent(zero_stats("web", "c" * 64)) == 0.0


# -- docker cp's rules ---------------------------------------------------------------------
def test_split_cp_arg() -> None:
    assert split_cp_arg("c1:/etc") == ("c1", "/etc")
    assert split_cp_arg("/abs:path") == ("", "/abs:path")
    assert split_cp_arg("./rel:x") == ("", "./rel:x")
    assert split_cp_arg("a/b:c") == ("", "a/b:c")
    assert split_cp_arg("file") == ("", "file")


def test_split_dir_entry() -> None:
    assert split_dir_entry("/etc/") == ("/", "etc")
    assert split_dir_entry("/etc/.") == ("/etc", ".")
    assert split_dir_entry("a/b") == ("a", "b")


def test_prepare_copy() -> None:
    # into an existing directory: as it is
    assert prepare_copy("/etc", True, "/tmp", True, True) == ("/tmp", "etc", "etc")
    # to a new name: the parent, renamed
    assert prepare_copy("/etc", True, "/tmp/x", False, False) == ("/tmp", "etc", "x")
    assert prepare_copy("/etc/.", True, "/tmp/x", False, False) == ("/tmp", ".", "x")
    # a file over a file: renamed to it
    assert prepare_copy("/a/f", False, "/b/g", True, False) == ("/b", "f", "g")
    with pytest.raises(SkiffError, match="cannot copy directory"):
        prepare_copy("/etc", True, "/b/g", True, False)
    with pytest.raises(SkiffError, match="no such directory"):
        prepare_copy("/a/f", False, "/b/new/", False, False)


# -- docker update --------------------------------------------------------------------------
HOST = {"Memory": 0, "MemorySwap": 0, "MemoryReservation": 0, "MemorySwappiness": None,
        "NanoCpus": 0, "CpuPeriod": 0, "CpuQuota": 0, "CpuShares": 0, "BlkioWeight": 0,
        "PidsLimit": None, "CpusetCpus": "", "CpusetMems": "", "AutoRemove": False,
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}}


def test_update_merges_as_moby_does() -> None:
    given, policy = parse_update({"Memory": 64 << 20, "MemorySwap": 128 << 20,
                                  "CpuShares": 0, "KernelMemory": 0, "Devices": None,
                                  "PidsLimit": 20})
    assert given == {"Memory": 64 << 20, "MemorySwap": 128 << 20, "PidsLimit": 20}
    host, warnings = merge_update("c", HOST, given, policy, ncpu=2, swap_limit=True)
    assert (host["Memory"], host["MemorySwap"], host["PidsLimit"]) == (64 << 20, 128 << 20, 20)
    assert HOST["Memory"] == 0 and warnings == []  # the stored one is not touched
    with pytest.raises(ContainerConflict, match="update the memoryswap at the same time"):
        merge_update("c", HOST, {"Memory": 64 << 20}, None, ncpu=2, swap_limit=True)
    with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
        merge_update("c", HOST, {"Memory": 1, "MemorySwap": 2}, None, ncpu=2,
                     swap_limit=True)
    with pytest.raises(InvalidArgument, match="Range of CPUs is from 0.01 to 2.00"):
        merge_update("c", HOST, {"NanoCpus": 3 * 10**9}, None, ncpu=2, swap_limit=True)
    unlimited, _ = merge_update("c", dict(HOST, PidsLimit=5), {"PidsLimit": -1}, None,
                                ncpu=2, swap_limit=True)
    assert unlimited["PidsLimit"] is None
    with pytest.raises(InvalidArgument, match="cannot unmarshal"):
        parse_update({"Memory": "lots"})
    with pytest.raises(InvalidArgument, match="updating KernelMemory is not supported"):
        parse_update({"KernelMemory": 1})
