"""``skiffd --userns-remap default``, as dockerd's: the user dockremap and its subordinate
ranges made on first use, containers whose root is uid 0 inside and the remapped uid on the
host (/proc/<pid>/status), files they write owned by that uid on the host, the image's
layers seen through idmapped mounts (nothing chowned, nothing left mounted after rm),
``--userns=host`` opting out, Docker's refusals, skiffd refusing a user it cannot map,
volumes the remapped root owns (copy-up, docker cp and commit mapping owners), docker
cp out and docker export showing the container's own ids, not the host's, and a root the
remapped root cannot reach refused at skiffd's start with the folder named.
The test removes the user it made (userdel takes its /etc/subuid and /etc/subgid lines)."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures_daemon import SKIFFD, Skiffd, module_daemon, remove_all, start_skiffd, stop_skiffd
from test_docker_cli import DOCKER, docker

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI"),
              pytest.mark.skipif(not shutil.which("useradd"), reason="no useradd")]

USER = "dockremap"


def _user_exists() -> bool:
    return subprocess.run(["getent", "passwd", USER], capture_output=True).returncode == 0


def _first_id(path: str) -> int:
    for line in Path(path).read_text().splitlines():
        name, start, _ = line.split(":")
        if name == USER:
            return int(start)
    raise AssertionError(f"no {USER} range in {path}")


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Skiffd]:
    made_user = not _user_exists()
    try:
        with module_daemon(tmp_root, "userns", "--userns-remap", "default") as d:
            yield d
    finally:
        if made_user and _user_exists():
            subprocess.run(["userdel", USER], check=True)


def mounts_under(path: Path) -> list[str]:
    return [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(path))]


def test_root_inside_is_the_remapped_user_outside(daemon: Skiffd) -> None:
    uid, gid = _first_id("/etc/subuid"), _first_id("/etc/subgid")
    cid = docker(daemon, "run", "-d", "busybox", "sh", "-c",
                 "echo hi > /written; mkdir -p /made; sleep 60").stdout.strip()
    try:
        pid = json.loads(docker(daemon, "inspect", cid).stdout)[0]["State"]["Pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in status
        assert f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}" in status
        upper = daemon.root / "snapshots" / cid / "upper"
        written = upper / "written"
        for _ in range(100):
            if written.exists():
                break
            subprocess.run(["sleep", "0.05"])
        assert (written.stat().st_uid, written.stat().st_gid) == (uid, gid)
        assert upper.stat().st_uid == uid
        # the image's layer is not chowned: its files stay root's on the host
        lower = next((daemon.root / "layers").glob("*/diff"))
        assert (lower / "bin").stat().st_uid == 0
        assert mounts_under(daemon.root / "snapshots" / cid)  # the rootfs and idmapped lower
        # an exec joins the container's user namespace: root inside, the mapped uid outside
        assert docker(daemon, "exec", cid, "sh", "-c", "id -u; cat /written").stdout \
            == "0\nhi\n"
    finally:
        docker(daemon, "rm", "-f", cid)
    assert mounts_under(daemon.root / "snapshots") == []


def test_inside_the_container(daemon: Skiffd) -> None:
    uid = _first_id("/etc/subuid")
    out = docker(daemon, "run", "--rm", "busybox", "sh", "-c",
                 "id -u; cat /proc/self/uid_map; ls -ln /bin/sh | cut -c1-40; "
                 "grep Seccomp: /proc/self/status; ip link show lo | head -1; "
                 "touch /etc/x && echo writable; ls -ln /etc/hosts").stdout
    lines = out.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(uid), "65536"]
    assert lines[2].split()[2:4] == ["0", "0"]  # the layer's root files are root's inside
    assert "Seccomp:\t2" in out and "UP" in lines[4] and "writable" in out
    assert lines[-1].split()[2:4] == ["0", "0"]  # /etc/hosts is the container root's


def test_volumes_belong_to_the_remapped_root(daemon: Skiffd) -> None:
    """As dockerd's local driver under its remapped root: a new volume's _data is the
    remapped root's (0755, the folder above it root's 0701), so the container's root
    writes into it; a copy-up keeps the image's owners as the container sees them; a
    docker cp and a commit map owners through the container's maps."""
    uid, gid = _first_id("/etc/subuid"), _first_id("/etc/subgid")
    docker(daemon, "volume", "create", "rm-named")
    try:
        data = daemon.root / "volumes" / "rm-named" / "_data"
        st = data.stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (uid, gid, 0o755)
        st = data.parent.stat()
        assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o701)
        out = docker(daemon, "run", "--rm", "-v", "rm-named:/data", "-v", "rm-etc:/etc",
                     "-v", "/anon", "busybox", "sh", "-c",
                     "echo ok > /data/f && cat /data/f; touch /anon/x && echo anon; "
                     "ls -ln /etc/passwd | cut -c1-40; echo more >> /etc/group && echo etc",
                     check=False)
        assert out.stdout.split("\n")[:2] == ["ok", "anon"], out.stderr
        assert out.stdout.splitlines()[2].split()[2:4] == ["0", "0"]
        assert out.stdout.splitlines()[3] == "etc"
        copied = daemon.root / "volumes" / "rm-etc" / "_data" / "passwd"
        assert (copied.stat().st_uid, copied.stat().st_gid) == (uid, gid)
        written = data / "f"
        assert (written.stat().st_uid, written.stat().st_gid) == (uid, gid)
        # docker cp in (a tar of root's files) and commit out: owners as the container's
        cid = docker(daemon, "create", "busybox", "ls", "-ln", "/given").stdout.strip()
        try:
            given = daemon.workdir / "given"
            given.write_text("x\n")  # root's: 0:0 in the tar the CLI sends
            docker(daemon, "cp", str(given), f"{cid}:/given")
            assert docker(daemon, "start", "-a", cid).stdout.split()[2:4] == ["0", "0"]
            docker(daemon, "commit", cid, "rm-commit:1")
            out2 = docker(daemon, "run", "--rm", "--userns", "host", "rm-commit:1", "ls", "-ln",
                          "/given").stdout
            assert out2.split()[2:4] == ["0", "0"]  # not the remapped uid, in the layer
        finally:
            docker(daemon, "rm", "-f", cid)
            docker(daemon, "rmi", "-f", "rm-commit:1", check=False)
    finally:
        docker(daemon, "volume", "rm", "rm-named", "rm-etc", check=False)
        docker(daemon, "volume", "prune", "-f", check=False)


def _owners(data: bytes) -> dict[str, tuple[int, int]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.rstrip("/"): (m.uid, m.gid) for m in tar.getmembers()}


def test_cp_out_and_export_show_the_containers_ids(daemon: Skiffd) -> None:
    """What the host holds as the remapped ids comes out as the container's own (moby's
    IDMap.ToContainer): docker cp of a running and of a stopped container (its volume
    too) and docker export."""
    uid = _first_id("/etc/subuid")
    cid = docker(daemon, "run", "-d", "-v", "rm-cp:/data", "busybox", "sh", "-c",
                 "echo hi > /written; echo v > /data/f; mkdir /made; chown 5:6 /made; "
                 "touch /ready; sleep 60").stdout.strip()
    try:
        upper = daemon.root / "snapshots" / cid / "upper"
        for _ in range(100):
            if (upper / "ready").exists():
                break
            subprocess.run(["sleep", "0.05"])
        assert (upper / "written").stat().st_uid == uid  # the host's id, on the host
        for state in ("running", "stopped"):
            for path, name, owner in (("/written", "written", (0, 0)),
                                      ("/made", "made", (5, 6)),
                                      ("/etc/passwd", "passwd", (0, 0)),
                                      ("/data/f", "f", (0, 0))):
                data = subprocess.run([DOCKER, "cp", f"{cid}:{path}", "-"], env=daemon.env,
                                      capture_output=True, check=True).stdout
                assert _owners(data)[name] == owner, (state, path)
            docker(daemon, "stop", "-t", "0", cid)
        data = subprocess.run([DOCKER, "export", cid], env=daemon.env, capture_output=True,
                              check=True).stdout
        owners = _owners(data)
        assert owners["written"] == (0, 0) and owners["made"] == (5, 6)
        assert owners["bin/sh"] == (0, 0) and owners["etc"] == (0, 0)
    finally:
        docker(daemon, "rm", "-f", "-v", cid)
        docker(daemon, "volume", "rm", "rm-cp", check=False)


def test_userns_host_opts_out(daemon: Skiffd) -> None:
    out = docker(daemon, "run", "--rm", "--userns", "host", "busybox",
                 "cat", "/proc/self/uid_map").stdout
    assert out.split() == ["0", "0", "4294967295"]


def test_dockers_refusals_and_info(daemon: Skiffd) -> None:
    for flag, words in ((["--privileged"], "privileged mode is incompatible with user "
                                           "namespaces"),
                        (["--network", "host"], "cannot share the host's network namespace"),
                        (["--pid", "host"], "cannot share the host PID namespace")):
        p = docker(daemon, "run", "--rm", *flag, "busybox", "true", check=False)
        assert p.returncode == 125 and words in p.stderr, p.stderr
    docker(daemon, "run", "--rm", "--userns", "host", "--privileged", "busybox", "true")
    info = daemon.json("GET", "/info")[1]
    assert "name=userns" in info["SecurityOptions"]
    assert docker(daemon, "ps", "-aq").stdout == ""


def test_skiffd_refuses_a_user_without_ranges(tmp_path: Path) -> None:
    p = subprocess.run([SKIFFD, "--root", str(tmp_path / "root"), "--exec-root",
                        str(tmp_path / "run"), "--userns-remap", "nosuchuser-xyz"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "nosuchuser-xyz" in p.stderr
    p = subprocess.run([SKIFFD, "--root", str(tmp_path / "root"), "--exec-root",
                        str(tmp_path / "run"), "--userns-remap", "nobody:nogroup"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "No subuid ranges found for user 'nobody'" in p.stderr


def test_a_rootfs_barred_after_start_is_said_as_such(daemon: Skiffd) -> None:
    """A root closed to the remapped root while skiffd runs (past its check at start): the
    run fails with the runtime's real errno, not a misleading ENOENT, and leaves nothing."""
    mode = daemon.root.stat().st_mode & 0o7777
    daemon.root.chmod(0o700)
    try:
        p = docker(daemon, "run", "--rm", "busybox", "true", check=False)
    finally:
        daemon.root.chmod(mode)
    assert p.returncode != 0 and "stat rootfs" in p.stderr and "EACCES" in p.stderr, p.stderr
    assert docker(daemon, "ps", "-aq").stdout == ""
    assert mounts_under(daemon.root / "snapshots") == []


def test_skiffd_refuses_a_root_its_remapped_root_cannot_traverse(daemon: Skiffd,
                                                                 tmp_root: Path) -> None:
    """A root below a folder as ``mktemp -d`` makes it (0700, root's): skiffd refuses to
    start, naming the folder and how to open it (moby's setupDaemonRoot check), where it
    used to start and fail every run with ``stat rootfs … ENOENT``; opened as the message
    says, remapped runs work. (`daemon`: the user dockremap exists.)"""
    private = Path(tempfile.mkdtemp(prefix="remap-errors-", dir=tmp_root))
    try:
        try:
            with module_daemon(private, "barred", "--userns-remap", "default") as d:
                run = docker(d, "run", "--rm", "busybox", "true", check=False)
                pytest.fail(f"skiffd started on a root below {private} (0700), and a run "
                            f"said: {run.stderr}")
        except AssertionError as e:  # start_skiffd's: skiffd exited, its log in the text
            refusal = str(e)
        assert f"cannot traverse {private} (mode drwx------, owner 0:0)" in refusal, refusal
        assert f"`chmod o+x {private}`" in refusal, refusal
        private.chmod(0o701)
        with module_daemon(private, "opened", "--userns-remap", "default") as d:
            assert docker(d, "run", "--rm", "busybox", "id", "-u").stdout == "0\n"
    finally:
        shutil.rmtree(private, ignore_errors=True)


def test_a_skiffd_started_under_umask_077_runs_remapped_containers(daemon: Skiffd,
                                                                   tmp_root: Path) -> None:
    """skiffd's umask is 022 whatever its caller's, as dockerd's (setDefaultUmask): under
    077 the folders it made were 0700 and no remapped container could reach its rootfs or
    its volume."""
    workdir = tmp_root / f"skiffd-umask-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    try:
        old = os.umask(0o077)
        try:
            d = start_skiffd(workdir, "--userns-remap", "default")
        finally:
            os.umask(old)
        try:
            out = docker(d, "run", "--rm", "-v", "rm-umask:/v", "busybox", "sh", "-c",
                         "touch /v/x && id -u")
            assert out.stdout == "0\n"
        finally:
            try:
                remove_all(d, volumes=True)
            finally:
                stop_skiffd(d)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
