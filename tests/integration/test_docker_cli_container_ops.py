"""The real docker CLI and docker-py on the container verbs that look at or change a
container in place, through skiffd: cp both ways (a file, a directory, a tar on stdin and
stdout, a missing path; into and out of the container's volumes, binds and tmpfs, running
or stopped, read-only mounts refused, links in a volume kept inside), export (without the
volumes), diff, commit (then run the new image: its added file is there, its deleted one
is not), top, stats (--no-stream and docker-py's), pause/unpause (a paused counter stops
counting; stop of a paused container works), rename, update (the memory limit read back
from the cgroup file), port; and skiff's own commands for the same. One skiffd serves the
module; every test removes its containers."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures_daemon import Skiffd, docker_py_client, module_daemon, remove_all, run_client
from test_docker_cli import DOCKER, docker

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI")]
COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/c.new; mv /tmp/c.new /tmp/c; " \
          "sleep 0.05; done"


@pytest.fixture(scope="module")
def module_skiffd(tmp_root: Path) -> Iterator[Skiffd]:
    with module_daemon(tmp_root, "ops") as d:
        try:
            yield d
        finally:
            remove_all(d)  # the images the containers were committed to can go then
            for image in ("ops-commit:v1", "ops-commit:v2"):
                d.request("DELETE", f"/images/{image}?force=1")


@pytest.fixture
def local(tmp_root: Path) -> Iterator[Path]:
    folder = tmp_root / f"ops-local-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def skiff(d: Skiffd, *args: str, check: bool = True,
          input: bytes | None = b"") -> subprocess.CompletedProcess[str]:
    import sys

    launcher = str(Path(sys.executable).parent / "skiff")
    return run_client(d, [launcher, "-H", d.url, *args], check=check, input=input)


def read_in(d: Skiffd, name: str, path: str) -> str:
    """A file of the container, read with ``docker cp … -``."""
    return _tar_file(subprocess.run([DOCKER, "cp", f"{name}:{path}", "-"], env=d.env,
                                    capture_output=True, check=True).stdout)


def _tar_file(data: bytes) -> str:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = next(m for m in tar.getmembers() if m.isfile())
        f = tar.extractfile(member)
        assert f is not None
        return f.read().decode()


def cgroup_file(d: Skiffd, name: str, controller: str, file: str) -> str:
    cid = docker(d, "inspect", "-f", "{{.Id}}", name).stdout.strip()
    return Path(f"/sys/fs/cgroup/{controller}/skiff/{cid}/{file}").read_text().strip()


# -- cp ---------------------------------------------------------------------------------------
def test_cp_a_file_and_a_directory_both_ways(daemon: Skiffd, local: Path) -> None:
    docker(daemon, "create", "--name", "cp1", "busybox", "sleep", "60")  # stopped: works too
    (local / "f.txt").write_text("hello\n")
    (local / "d" / "sub").mkdir(parents=True)
    (local / "d" / "sub" / "a").write_text("in a dir\n")
    docker(daemon, "cp", str(local / "f.txt"), "cp1:/tmp/")
    docker(daemon, "cp", str(local / "d"), "cp1:/root/d2")  # a new name: the dir takes it
    docker(daemon, "cp", "cp1:/tmp/f.txt", str(local / "back.txt"))
    assert (local / "back.txt").read_text() == "hello\n"
    docker(daemon, "cp", "cp1:/root/d2", str(local / "dback"))
    assert (local / "dback" / "sub" / "a").read_text() == "in a dir\n"
    docker(daemon, "cp", "cp1:/root/d2/.", str(local / "d"))  # contents into an existing dir
    assert sorted(p.name for p in (local / "d").iterdir()) == ["sub"]
    docker(daemon, "start", "cp1")
    docker(daemon, "cp", "cp1:/etc", str(local))  # running: into an existing dir, as etc/
    assert (local / "etc" / "passwd").read_text().startswith("root:")


def test_cp_with_tar_streams_and_errors(daemon: Skiffd, local: Path) -> None:
    docker(daemon, "run", "-d", "--name", "cp2", "busybox", "sleep", "60")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("streamed.txt")
        data = b"from stdin\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    docker(daemon, "cp", "-", "cp2:/tmp", input=buffer.getvalue())
    out = subprocess.run([DOCKER, "cp", "cp2:/tmp/streamed.txt", "-"], env=daemon.env,
                         capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        assert tar.getnames() == ["streamed.txt"]
        f = tar.extractfile("streamed.txt")
        assert f is not None and f.read() == b"from stdin\n"
    p = docker(daemon, "cp", "cp2:/nope", str(local), check=False)
    assert p.returncode == 1
    assert "Could not find the file /nope in container cp2" in p.stderr
    p = docker(daemon, "cp", "-", "cp2:/etc/passwd", input=buffer.getvalue(), check=False)
    assert p.returncode == 1 and "must be a directory" in p.stderr
    (local / "dir").mkdir()
    p = docker(daemon, "cp", str(local / "dir"), "cp2:/etc/passwd", check=False)
    assert p.returncode == 1 and "cannot copy directory" in p.stderr


def test_cp_archive_mode_gives_the_files_to_the_containers_user(daemon: Skiffd,
                                                                 local: Path) -> None:
    docker(daemon, "create", "--name", "cpa", "-u", "1234:5678", "busybox", "true")
    (local / "f").write_text("x")
    docker(daemon, "cp", "-a", str(local / "f"), "cpa:/tmp/owned")
    docker(daemon, "cp", str(local / "f"), "cpa:/tmp/plain")
    for name, owner in (("owned", (1234, 5678)), ("plain", (os.getuid(), os.getgid()))):
        data = subprocess.run([DOCKER, "cp", f"cpa:/tmp/{name}", "-"], env=daemon.env,
                              capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.getmember(name)
            assert (member.uid, member.gid) == owner, name


def test_cp_stays_inside_the_container_root(daemon: Skiffd, local: Path) -> None:
    docker(daemon, "run", "--name", "cp3", "busybox", "sh", "-c",
           "ln -s / /tmp/root; ln -s ../../../../../etc/shadow /tmp/up; echo in > /etc/shadow; "
           "ln -s /etc/passwd /tmp/abs")
    docker(daemon, "cp", "cp3:/tmp/root/etc/passwd", str(local / "p"))
    assert (local / "p").read_text() != Path("/etc/passwd").read_text()  # the container's
    docker(daemon, "cp", "cp3:/tmp/abs", str(local / "link"))
    assert (local / "link").is_symlink()  # without -L: the link itself
    docker(daemon, "cp", "-L", "cp3:/tmp/up", str(local / "up"))
    assert (local / "up").read_text() == "in\n"  # the container's /etc/shadow, not the host's


def _tar(*entries: tuple[str, str, str]) -> bytes:
    """A tar of (name, kind, data): kind "f" a file holding data, "l" a symlink to it,
    "h" a hard link to it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "f":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data.encode()))
                continue
            info.type = tarfile.SYMTYPE if kind == "l" else tarfile.LNKTYPE
            info.linkname = data
            tar.addfile(info)
    return buffer.getvalue()


def test_cp_into_a_container_is_moby_untar(daemon: Skiffd) -> None:
    """``.wh.`` names are plain files (never overlay whiteouts); links on an entry's way
    are followed inside the container's root; moby's breakouts are refused, whole."""
    script = ("ln -s / /tmp/root 2>/dev/null; head -c5 /etc/passwd; cat /etc/.wh.passwd "
              "/etc/sub/.wh.x /etc/planted /root/deep/file; ls /etc/.wh..wh..opq /etc/group; "
              "ls /tmp")
    docker(daemon, "run", "--name", "cpw", "busybox", "sh", "-c", script, check=False)
    docker(daemon, "cp", "-", "cpw:/etc", input=_tar(
        (".wh.passwd", "f", "plain\n"), (".wh..wh..opq", "f", ""),
        ("sub/.wh.x", "f", "y\n")))
    # through an absolute link the tar makes, and through the container's own link
    docker(daemon, "cp", "-", "cpw:/tmp", input=_tar(
        ("abs", "l", "/etc"), ("abs/planted", "f", "in the container\n"),
        ("root/root/deep/file", "f", "made\n")))
    assert not Path("/etc/planted").exists() and not Path("/root/deep").exists()
    for tar, words in ((_tar(("ok", "f", "x"), ("../out", "f", "x")),
                        '"../out" is outside of "/tmp"'),
                       (_tar(("ok", "f", "x"), ("up", "l", "../../etc")),
                        'invalid symlink "/tmp/up" -> "../../etc"'),
                       (_tar(("ok", "f", "x"), ("hard", "h", "../etc/passwd")),
                        'invalid hardlink "/etc/passwd" -> "../etc/passwd"')):
        p = docker(daemon, "cp", "-", "cpw:/tmp", input=tar, check=False)
        assert p.returncode == 1 and words in p.stderr, p.stderr
    out = docker(daemon, "start", "-a", "cpw").stdout
    assert out == ("root:plain\ny\nin the container\nmade\n/etc/.wh..wh..opq\n/etc/group\n"
                   "abs\nroot\n")


# -- cp and the container's mounts ------------------------------------------------------------
@pytest.fixture
def with_volumes(daemon: Skiffd) -> Iterator[Skiffd]:
    """The module's skiffd; the test's containers, then every volume, removed after it."""
    yield daemon
    remove_all(daemon, volumes=True)


def _upper(d: Skiffd, name: str) -> Path:
    cid = docker(d, "inspect", "-f", "{{.Id}}", name).stdout.strip()
    return d.root / "snapshots" / cid / "upper"


def test_cp_goes_into_the_containers_volumes_and_binds(with_volumes: Skiffd,
                                                       local: Path) -> None:
    """Running or stopped, a cp to or from a path under a named volume or a bind mount is
    the mount's, not the image layer's beneath it (moby mounts them for the copy)."""
    d = with_volumes
    bound = local / "bound"
    bound.mkdir()
    (bound / "host.txt").write_text("from the host\n")
    (local / "in.txt").write_text("copied in\n")
    docker(d, "volume", "create", "cpv")
    data = d.root / "volumes" / "cpv" / "_data"
    (data / "vol.txt").write_text("in the volume\n")
    for state in ("running", "stopped"):
        name = f"cpv-{state}"
        mounts = ["-v", "cpv:/data", "-v", f"{bound}:/bound"]
        if state == "running":
            docker(d, "run", "-d", "--name", name, *mounts, "busybox", "sleep", "60")
        else:
            docker(d, "create", "--name", name, *mounts, "busybox", "sleep", "60")
        docker(d, "cp", str(local / "in.txt"), f"{name}:/data/{state}.txt")
        docker(d, "cp", str(local / "in.txt"), f"{name}:/bound/")
        assert (data / f"{state}.txt").read_text() == "copied in\n"
        assert (bound / "in.txt").read_text() == "copied in\n"
        (bound / "in.txt").unlink()
        assert read_in(d, name, "/data/vol.txt") == "in the volume\n"
        assert read_in(d, name, "/bound/host.txt") == "from the host\n"
        docker(d, "cp", f"{name}:/data", str(local / f"back-{state}"))  # a whole tree
        assert sorted(p.name for p in (local / f"back-{state}").iterdir())[-1] == "vol.txt"
        upper = _upper(d, name)
        assert not (upper / "data" / f"{state}.txt").exists()
        assert not (upper / "bound" / "in.txt").exists()
        # the copy's mounts were the copy's own: on the host, the snapshot has its rootfs
        assert [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
                if line.split()[1].startswith(str(upper.parent))] == \
            [str(upper.parent / "rootfs")]
    assert docker(d, "exec", "cpv-running", "cat", "/data/stopped.txt").stdout == \
        "copied in\n"


def test_cp_of_a_running_container_sees_its_tmpfs(with_volumes: Skiffd, local: Path) -> None:
    d = with_volumes
    docker(d, "run", "-d", "--name", "cpt", "--tmpfs", "/scratch", "busybox", "sh", "-c",
           "echo made inside > /scratch/t; sleep 60")
    for _ in range(100):
        if docker(d, "exec", "cpt", "test", "-f", "/scratch/t", check=False).returncode == 0:
            break
        time.sleep(0.05)
    assert read_in(d, "cpt", "/scratch/t") == "made inside\n"
    docker(d, "pause", "cpt")  # frozen: its root is there all the same
    assert read_in(d, "cpt", "/scratch/t") == "made inside\n"
    docker(d, "unpause", "cpt")
    (local / "in.txt").write_text("copied in\n")
    docker(d, "cp", str(local / "in.txt"), "cpt:/scratch/")
    assert docker(d, "exec", "cpt", "cat", "/scratch/in.txt").stdout == "copied in\n"
    assert not (_upper(d, "cpt") / "scratch" / "in.txt").exists()
    docker(d, "stop", "-t", "0", "cpt")  # stopped: its tmpfs has nothing, as in moby
    p = docker(d, "cp", "cpt:/scratch/t", str(local), check=False)
    assert p.returncode == 1 and "Could not find the file /scratch/t" in p.stderr


def test_cp_into_a_read_only_mount_is_refused(with_volumes: Skiffd, local: Path) -> None:
    d = with_volumes
    (local / "in.txt").write_text("x\n")
    docker(d, "volume", "create", "cpro")
    data = d.root / "volumes" / "cpro" / "_data"
    docker(d, "create", "--name", "ro-stopped", "-v", "cpro:/data:ro", "busybox", "true")
    docker(d, "run", "-d", "--name", "ro-running", "-v", "cpro:/data:ro", "busybox",
           "sleep", "60")
    for name in ("ro-stopped", "ro-running"):
        p = docker(d, "cp", str(local / "in.txt"), f"{name}:/data/", check=False)
        assert p.returncode == 1 and "mounted volume is marked read-only" in p.stderr, p.stderr
    assert list(data.iterdir()) == []
    # a read-only rootfs: its volume takes a copy, the rootfs does not (moby's order)
    docker(d, "create", "--name", "ro-root", "--read-only", "-v", "cpro:/data", "busybox",
           "true")
    docker(d, "cp", str(local / "in.txt"), "ro-root:/data/")
    assert (data / "in.txt").read_text() == "x\n"
    p = docker(d, "cp", str(local / "in.txt"), "ro-root:/tmp/", check=False)
    assert p.returncode == 1 and "container rootfs is marked read-only" in p.stderr


def test_cp_through_links_in_a_volume_stays_in_the_container(with_volumes: Skiffd,
                                                             local: Path) -> None:
    """A volume's links lead into the container's root, never the host's: absolute ones
    and ``..`` stop at its top, running or stopped, out of it and into it."""
    d = with_volumes
    docker(d, "volume", "create", "cpln")
    data = d.root / "volumes" / "cpln" / "_data"
    os.symlink("/etc", data / "abs")
    os.symlink("../../../../../../../../etc", data / "up")
    os.symlink("/", data / "top")
    (local / "in.txt").write_text("copied in\n")
    host_passwd = Path("/etc/passwd").read_text()
    docker(d, "create", "--name", "ln-stopped", "-v", "cpln:/data", "busybox", "true")
    docker(d, "run", "-d", "--name", "ln-running", "-v", "cpln:/data", "busybox",
           "sleep", "60")
    for name in ("ln-stopped", "ln-running"):
        for path in ("/data/abs/passwd", "/data/up/passwd", "/data/top/etc/passwd"):
            seen = read_in(d, name, path)
            assert seen.startswith("root:") and seen != host_passwd, (name, path)
        docker(d, "cp", "-L", f"{name}:/data/up", str(local / f"{name}-etc"))
        assert (local / f"{name}-etc" / "passwd").read_text() != host_passwd
        docker(d, "cp", str(local / "in.txt"), f"{name}:/data/abs/{name}.txt")
        docker(d, "cp", str(local / "in.txt"), f"{name}:/data/top/root/")
        assert not Path(f"/etc/{name}.txt").exists()
    assert not Path("/root/in.txt").exists()
    assert docker(d, "exec", "ln-running", "cat", "/etc/ln-running.txt",
                  "/root/in.txt").stdout == "copied in\n" * 2
    assert (_upper(d, "ln-stopped") / "etc" / "ln-stopped.txt").read_text() == "copied in\n"


# -- export, diff, commit ---------------------------------------------------------------------
def test_export_is_a_tar_of_the_whole_rootfs(with_volumes: Skiffd) -> None:
    """The rootfs without the container's volumes (moby's export does not include them),
    running or stopped."""
    d = with_volumes
    docker(d, "run", "--name", "ex1", "-v", "exvol:/data", "busybox", "sh", "-c",
           "echo x > /exported; echo v > /data/in-volume")
    docker(d, "run", "-d", "--name", "ex2", "-v", "exvol:/data", "busybox", "sleep", "60")
    for name in ("ex1", "ex2"):
        data = subprocess.run([DOCKER, "export", name], env=d.env, capture_output=True,
                              check=True).stdout
        names = subprocess.run(["tar", "t"], input=data, capture_output=True,
                               check=True).stdout
        listed = names.decode().split()
        assert "bin/sh" in listed and "etc/passwd" in listed and "data/" in listed
        assert ("exported" in listed) == (name == "ex1")
        assert "data/in-volume" not in listed


def test_diff_shows_added_changed_and_deleted_files(daemon: Skiffd) -> None:
    docker(daemon, "run", "--name", "df1", "busybox", "sh", "-c",
           "touch /tmp/new; rm /bin/ls; mkdir /root/d; echo y >> /etc/passwd")
    lines = docker(daemon, "diff", "df1").stdout.splitlines()
    assert lines == ["C /bin", "D /bin/ls", "C /etc/passwd", "C /root",
                     "A /root/d", "C /tmp", "A /tmp/new"]
    assert docker(daemon, "container", "diff", "df1").stdout.splitlines() == lines
    docker(daemon, "run", "--name", "df2", "busybox", "true")
    assert docker(daemon, "diff", "df2").stdout == ""  # hostname, hosts…: hidden
    assert skiff(daemon, "diff", "df1").stdout.splitlines() == lines


def test_commit_then_run_the_new_image(daemon: Skiffd) -> None:
    docker(daemon, "run", "--name", "cm1", "busybox", "sh", "-c",
           "echo kept > /root/file; rm /bin/ls")
    image_id = docker(daemon, "commit", "-m", "a message", "-a", "me", "-c", "ENV A=b",
                      "cm1", "ops-commit:v1").stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    p = docker(daemon, "run", "--rm", "ops-commit:v1", "sh", "-c",
               "cat /root/file; echo $A; ls /bin/ls", check=False)
    assert p.stdout == "kept\nb\n"
    assert "ls: /bin/ls: No such file or directory" in p.stderr
    doc = json.loads(docker(daemon, "image", "inspect", "ops-commit:v1").stdout)[0]
    assert doc["Id"] == image_id and doc["Comment"] == "a message" and doc["Author"] == "me"
    assert "A=b" in doc["Config"]["Env"]
    history = docker(daemon, "history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}",
                     "ops-commit:v1").stdout.splitlines()
    assert history[0].endswith("|a message") and "rm /bin/ls" in history[0]
    # an unchanged container: no new layer
    docker(daemon, "run", "--name", "cm2", "ops-commit:v1", "true")
    skiff(daemon, "commit", "cm2", "ops-commit:v2")
    layers = [json.loads(docker(daemon, "image", "inspect", ref).stdout)[0]["RootFS"]["Layers"]
              for ref in ("ops-commit:v1", "ops-commit:v2")]
    assert layers[0] == layers[1]
    p = docker(daemon, "commit", "cm2", "Bad:Name", check=False)
    assert p.returncode != 0


# -- top, stats ---------------------------------------------------------------------------------
def test_top_lists_the_containers_processes(daemon: Skiffd) -> None:
    docker(daemon, "run", "-d", "--name", "tp1", "busybox", "sh", "-c", "sleep 61 & sleep 62")
    for _ in range(100):  # until sh has forked the one and become the other
        out = docker(daemon, "top", "tp1").stdout.splitlines()
        commands = out[1:]
        if sorted(line.split()[-1] for line in commands) == ["61", "62"]:
            break
        time.sleep(0.05)
    assert out[0].split()[:3] == ["UID", "PID", "PPID"]
    assert any(line.endswith("sleep 61") for line in commands)
    assert any(line.endswith("sleep 62") for line in commands)
    assert len(commands) == 2  # the two sleeps (sh execs the last), nothing of the host's
    out = docker(daemon, "top", "tp1", "-o", "pid,comm").stdout.splitlines()
    assert out[0].split() == ["PID", "COMMAND"] and len(out) == 3
    docker(daemon, "create", "--name", "tp2", "busybox", "true")
    p = docker(daemon, "top", "tp2", check=False)
    assert p.returncode == 1 and "is not running" in p.stderr


def test_stats_no_stream_shows_sane_numbers(daemon: Skiffd) -> None:
    docker(daemon, "run", "-d", "--name", "st1", "--memory", "64m", "busybox", "sh", "-c",
           "while true; do :; done")
    out = docker(daemon, "stats", "--no-stream", "--format",
                 "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", "st1").stdout.strip()
    name, cpu, mem, pids = out.split("|")
    assert name == "st1" and pids == "1"
    assert 20.0 < float(cpu.rstrip("%")) <= 210.0  # a busy loop: most of one CPU
    usage, limit = mem.split(" / ")
    assert limit == "64MiB" and usage.endswith(("KiB", "MiB")) and not usage.startswith("0B")
    table = docker(daemon, "stats", "--no-stream", "st1").stdout.splitlines()
    assert table[0].split()[:3] == ["CONTAINER", "ID", "NAME"] and "st1" in table[1]
    out = skiff(daemon, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}",
                "st1").stdout
    assert out == "st1 1\n"
    docker(daemon, "create", "--name", "st2", "busybox", "true")
    out = docker(daemon, "stats", "--no-stream", "--format", "{{.CPUPerc}} {{.PIDs}}",
                 "st2").stdout
    assert out == "0.00% 0\n"


def test_docker_py_reads_stats(daemon: Skiffd) -> None:
    docker(daemon, "run", "-d", "--name", "st3", "busybox", "sleep", "60")
    with docker_py_client(daemon.url) as client:
        container = client.containers.get("st3")
        doc = container.stats(stream=False)
        assert doc["name"] == "/st3" and doc["id"] == container.id
        assert doc["pids_stats"]["current"] == 1
        assert doc["memory_stats"]["usage"] > 0 and doc["memory_stats"]["limit"] > 0
        assert doc["cpu_stats"]["system_cpu_usage"] > doc["precpu_stats"]["system_cpu_usage"]
        assert doc["cpu_stats"]["online_cpus"] >= 1
        stream = container.stats(stream=True, decode=True)
        first, second = next(stream), next(stream)
        assert second["preread"] == first["read"]
        container.kill()
        after = [next(stream)["read"] for _ in range(3)]  # stopped: Docker's empty documents
        assert after[-1] == "0001-01-01T00:00:00Z"
        stream.close()


# -- pause, unpause, rename, update, port ------------------------------------------------------
def _count(d: Skiffd, name: str) -> int:
    return int(read_in(d, name, "/tmp/c").strip())


def test_pause_stops_a_counter_and_unpause_resumes_it(daemon: Skiffd) -> None:
    docker(daemon, "run", "-d", "--name", "pz1", "busybox", "sh", "-c", COUNTER)
    time.sleep(0.5)
    assert docker(daemon, "pause", "pz1").stdout == "pz1\n"
    state = docker(daemon, "inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "pz1")
    assert state.stdout == "paused true\n"
    assert "(Paused)" in docker(daemon, "ps", "--format", "{{.Status}}").stdout
    frozen = _count(daemon, "pz1")
    time.sleep(0.5)
    assert _count(daemon, "pz1") == frozen
    p = docker(daemon, "pause", "pz1", check=False)
    assert p.returncode == 1 and "is already paused" in p.stderr
    docker(daemon, "unpause", "pz1")
    time.sleep(0.5)
    assert _count(daemon, "pz1") > frozen
    p = docker(daemon, "unpause", "pz1", check=False)
    assert p.returncode == 1 and "is not paused" in p.stderr
    skiff(daemon, "pause", "pz1")
    docker(daemon, "stop", "-t", "1", "pz1")  # thawed to take the signal
    state = docker(daemon, "inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "pz1")
    assert state.stdout == "exited false\n"
    p = docker(daemon, "pause", "pz1", check=False)
    assert p.returncode == 1 and "is not running" in p.stderr


def test_rename(daemon: Skiffd) -> None:
    docker(daemon, "create", "--name", "rn1", "busybox", "true")
    docker(daemon, "create", "--name", "rn2", "busybox", "true")
    docker(daemon, "rename", "rn1", "rn3")
    names = sorted(docker(daemon, "ps", "-a", "--format", "{{.Names}}").stdout.split())
    assert names == ["rn2", "rn3"]
    p = docker(daemon, "rename", "rn3", "rn2", check=False)
    assert p.returncode == 1 and 'The container name "/rn2" is already in use' in p.stderr
    p = docker(daemon, "rename", "rn3", "bad/name", check=False)
    assert p.returncode == 1 and "Invalid container name" in p.stderr
    skiff(daemon, "rename", "rn3", "rn4")
    assert docker(daemon, "inspect", "-f", "{{.Name}}", "rn4").stdout == "/rn4\n"


def test_update_changes_a_running_containers_cgroup(daemon: Skiffd) -> None:
    docker(daemon, "run", "-d", "--name", "up1", "busybox", "sleep", "60")
    p = docker(daemon, "update", "--memory", "64m", "up1", check=False)
    assert p.returncode == 1 and "update the memoryswap at the same time" in p.stderr
    assert docker(daemon, "update", "--memory", "64m", "--memory-swap", "128m",
                  "up1").stdout == "up1\n"
    assert cgroup_file(daemon, "up1", "memory", "memory.limit_in_bytes") == str(64 << 20)
    docker(daemon, "update", "--pids-limit", "30", "--cpu-shares", "512", "up1")
    assert cgroup_file(daemon, "up1", "pids", "pids.max") == "30"
    assert cgroup_file(daemon, "up1", "cpu", "cpu.shares") == "512"
    host = json.loads(docker(daemon, "inspect", "up1").stdout)[0]["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["PidsLimit"], host["CpuShares"]) == \
        (64 << 20, 128 << 20, 30, 512)
    skiff(daemon, "update", "--pids-limit", "-1", "up1")
    assert cgroup_file(daemon, "up1", "pids", "pids.max") == "max"
    p = docker(daemon, "update", "--memory", "1m", "--memory-swap", "2m", "up1", check=False)
    assert p.returncode == 1 and "Minimum memory limit allowed is 6MB" in p.stderr
    assert cgroup_file(daemon, "up1", "memory", "memory.limit_in_bytes") == str(64 << 20)


def test_port_reads_what_inspect_publishes(daemon: Skiffd) -> None:
    docker(daemon, "create", "--name", "pt1", "busybox", "true")
    assert docker(daemon, "port", "pt1").stdout == ""
    p = docker(daemon, "port", "pt1", "80", check=False)
    assert p.returncode == 1 and "No public port '80' published for pt1" in p.stderr
    p = skiff(daemon, "port", "pt1", "80/tcp", check=False)
    assert p.returncode == 1 and "Error: No public port '80/tcp' published for pt1" in p.stderr


def test_skiff_cp_both_ways(daemon: Skiffd, local: Path) -> None:
    skiff(daemon, "run", "-d", "--name", "scp1", "busybox", "sleep", "60")
    (local / "in.txt").write_text("skiff\n")
    skiff(daemon, "cp", str(local / "in.txt"), "scp1:/tmp/x.txt")
    skiff(daemon, "container", "cp", "scp1:/tmp/x.txt", str(local / "out.txt"))
    assert (local / "out.txt").read_text() == "skiff\n"
    data = subprocess.run([str(Path(__import__("sys").executable).parent / "skiff"), "-H",
                           daemon.url, "cp", "scp1:/tmp/x.txt", "-"], env=daemon.env,
                          capture_output=True, check=True).stdout
    assert _tar_file(data) == "skiff\n"
    top = skiff(daemon, "top", "scp1").stdout.splitlines()
    assert top[0].split()[:2] == ["UID", "PID"] and top[1].endswith("sleep 60")


def _stderr_with_a_terminal(d: Skiffd, argv: list[str]) -> str:
    """What `argv` writes to stderr when its stdout is a terminal (docker cp's report)."""
    import pty

    leader, follower = pty.openpty()
    try:
        p = subprocess.run(argv, env=d.env, stdin=subprocess.DEVNULL, stdout=follower,
                           stderr=subprocess.PIPE, check=True, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    return p.stderr.decode()


def test_cp_reports_what_it_copied_as_docker_does(daemon: Skiffd, local: Path) -> None:
    import sys

    launcher = str(Path(sys.executable).parent / "skiff")
    docker(daemon, "create", "--name", "cpr", "busybox", "true")
    (local / "f").write_text("x" * 100)
    for client in ([DOCKER], [launcher, "-H", daemon.url]):
        to = _stderr_with_a_terminal(daemon, [*client, "cp", str(local / "f"), "cpr:/tmp/f"])
        back = _stderr_with_a_terminal(daemon, [*client, "cp", "cpr:/tmp/f", str(local / "g")])
        assert (to, back) == ("Successfully copied 2.05kB to cpr:/tmp/f\n",
                              f"Successfully copied 2.05kB to {local / 'g'}\n"), client


def test_docker_py_drives_the_verbs(daemon: Skiffd) -> None:
    with docker_py_client(daemon.url) as client:
        c = client.containers.run("busybox", ["sleep", "60"], detach=True, name="dpy1")
        assert c.top()["Titles"][:2] == ["UID", "PID"]
        upload = io.BytesIO()
        with tarfile.open(fileobj=upload, mode="w") as tar:
            info = tarfile.TarInfo("hello")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
        assert c.put_archive("/tmp", upload.getvalue()) is True
        bits, stat_doc = c.get_archive("/tmp/hello")
        assert stat_doc == {"name": "hello", "size": 3, "mode": 0o644,
                            "mtime": "1970-01-01T00:00:00Z", "linkTarget": ""}
        assert _tar_file(b"".join(bits)) == "abc"
        assert c.diff() == [{"Path": "/tmp", "Kind": 0}, {"Path": "/tmp/hello", "Kind": 1}]
        c.pause()
        c.reload()
        assert c.status == "paused"
        c.unpause()
        c.rename("dpy2")
        c.reload()
        assert c.name == "dpy2"
        assert c.update(mem_limit="64m", memswap_limit="128m") == {"Warnings": []}
        image = c.commit(repository="ops-commit", tag="v1", changes=["ENV X=1"])
        assert "ops-commit:v1" in image.tags and "X=1" in image.attrs["Config"]["Env"]
        with tarfile.open(fileobj=io.BytesIO(b"".join(c.export()))) as tar:
            assert "tmp/hello" in tar.getnames()
        c.remove(force=True)
