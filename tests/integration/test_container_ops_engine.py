"""The container verbs in the engine itself, on the real kernel: the events they emit
(Docker's actions and attributes: image, name, labels, rename's oldName, commit's
imageID), a paused container removed by force, an update refused by a check that leaves
the cgroup and the stored HostConfig as they were, a commit of a directory removed and
made again (an opaque directory) run back from the new image, a commit that keeps
files' xattrs (user.*, a file capability that works again in the image's containers), and
docker cp's way into a container's root (through its init only, no import in there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from test_engine_containers import Env, clean, env  # noqa: F401 - the engine's fixtures

from skiff.errors import ContainerConflict, InvalidArgument

pytestmark = pytest.mark.root


def _events(env: Env, after: int) -> list[tuple[str, str, dict[str, str]]]:
    return [(e.action, e.actor_id, e.attributes) for e in env.engine.events.since(after)
            if e.type == "container"]


def test_the_verbs_emit_dockers_events(clean: Env) -> None:
    from skiff.engine import container_control as control
    from skiff.engine.commit import commit

    c = clean.containers
    cid = clean.run(["sleep", "60"], name="ev1", Labels={"team": "ops"})
    mark = clean.engine.events.last_seq()
    control.pause(c, "ev1")
    control.unpause(c, "ev1")
    control.rename(c, "ev1", "ev2")
    control.update(c, "ev2", {"CpuShares": 512})
    result = commit(c, clean.engine.images, "ev2", repo="ops-events", tag="1")
    seen = _events(clean, mark)
    actions = [a for a, _, _ in seen]
    assert actions == ["pause", "unpause", "rename", "update", "pause", "unpause", "commit"]
    assert all(actor == cid for _, actor, _ in seen)
    base = {"image": "busybox", "team": "ops"}
    assert seen[0][2] == dict(base, name="ev1")
    assert seen[2][2] == dict(base, name="ev2", oldName="/ev1")
    assert seen[-1][2]["imageID"] == result["Id"]
    assert seen[-1][2]["imageRef"] == "ops-events:1"
    clean.engine.images.remove("ops-events:1")


def test_a_paused_container_is_removed_by_force(clean: Env) -> None:
    from skiff.engine import container_control as control

    c = clean.containers
    cid = clean.run(["sleep", "60"])
    control.pause(c, cid)
    assert c.inspect(cid)["State"]["Status"] == "paused"
    with pytest.raises(ContainerConflict, match="You cannot remove a running container"):
        c.remove(cid)
    c.remove(cid, force=True)
    assert clean.leftovers() == []


def test_a_refused_update_changes_nothing(clean: Env) -> None:
    from skiff.engine import container_control as control

    c = clean.containers
    cid = clean.run(["sleep", "60"], HostConfig={"Memory": 64 << 20})
    before = c.inspect(cid)["HostConfig"]
    with pytest.raises(InvalidArgument, match="Minimum memoryswap limit should be larger"):
        control.update(c, cid, {"Memory": 32 << 20, "MemorySwap": 16 << 20})
    assert c.inspect(cid)["HostConfig"] == before
    with pytest.raises(InvalidArgument, match="invalid restart policy: unknown policy"):
        control.update(c, cid, {"RestartPolicy": {"Name": "bogus"}})
    assert c.inspect(cid)["HostConfig"] == before
    c.stop(cid, timeout=0)
    control.update(c, cid, {"Memory": 96 << 20, "MemorySwap": 192 << 20})  # stored only
    assert c.inspect(cid)["HostConfig"]["Memory"] == 96 << 20


def test_commit_of_a_directory_made_again(clean: Env) -> None:
    from skiff.engine.commit import commit
    from skiff.engine.container_archive import ContainerFiles

    c = clean.containers
    cid = clean.run(["sh", "-c", "rm -rf /var; mkdir /var; "
                     "touch /var/only; rm /bin/ls"])
    c.wait(cid)
    changes = {(ch["Kind"], ch["Path"]) for ch in ContainerFiles(c).changes(cid) or []}
    assert {(2, "/bin/ls"), (2, "/var"), (1, "/var/only")} <= changes  # /var: opaque
    image = commit(c, clean.engine.images, cid, repo="ops-opaque")["Id"]
    out = clean.run(["sh", "-c", "ls /var; ls /bin/ls 2>&1; true"],
                    Image="ops-opaque")
    c.wait(out)
    assert clean.output(out) == b"only\nls: /bin/ls: No such file or directory\n"
    c.remove(out)
    c.remove(cid)
    clean.engine.images.remove(image, force=True)


def test_commit_keeps_xattrs_and_they_come_back_in_a_run(clean: Env) -> None:
    import gzip
    import io
    import os
    import struct
    import tarfile

    from skiff.engine.commit import commit
    from skiff.engine.container_archive import ContainerFiles

    c, store = clean.containers, clean.containers.store
    cid = clean.run(["sh", "-c", "echo x > /tagged; mkdir /caps; cp /bin/busybox /caps/grep"])
    c.wait(cid)
    _, rootfs = ContainerFiles(c).rootfs(cid)  # (busybox has no setfattr: set them here)
    os.setxattr(f"{rootfs}/tagged", "user.origin", b"skiff\xff")
    net_raw = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)  # v2, effective, CAP_NET_RAW
    os.setxattr(f"{rootfs}/caps/grep", "security.capability", net_raw)
    image = commit(c, clean.engine.images, cid, repo="ops-xattrs")["Id"]
    try:
        blob = store.get(image).manifest.layers[-1].digest
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(store.blobs.read_bytes(blob)))) \
                as tar:
            records = {m.name: m.pax_headers for m in tar}
        assert records["tagged"]["SCHILY.xattr.user.origin"].encode(
            "utf-8", "surrogateescape") == b"skiff\xff"
        assert records["caps/grep"]["SCHILY.xattr.security.capability"].encode(
            "utf-8", "surrogateescape") == net_raw
        # a non-root user running the file gets the capability from it
        out = clean.run(["/caps/grep", "CapEff", "/proc/self/status"], Image="ops-xattrs",
                        User="1000")
        c.wait(out)
        assert clean.output(out) == b"CapEff:\t0000000000002000\n"
        _, again = ContainerFiles(c).rootfs(out)
        assert os.getxattr(f"{again}/tagged", "user.origin") == b"skiff\xff"
        c.remove(out)
    finally:
        c.remove(cid)
        clean.engine.images.remove(image, force=True)


def test_files_of_a_stopped_container_whose_snapshot_was_unmounted(clean: Env) -> None:
    import io
    import tarfile

    from skiff.engine.container_archive import ContainerFiles
    from skiff.kernel import syscall

    c = clean.containers
    cid = clean.run(["sh", "-c", "echo kept > /root/f"])
    c.wait(cid)
    syscall.umount(c.snapshots.rootfs(cid))  # what a reboot leaves
    assert not c.snapshots.mounted(cid)
    files = ContainerFiles(c)
    assert files.stat(cid, "/root/f")["size"] == 5
    out = io.BytesIO()
    files.archive(cid, "/root/f", out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        f = tar.extractfile("f")
        assert f is not None and f.read() == b"kept\n"


def test_a_running_containers_files_are_reached_through_its_init_only(clean: Env,
                                                                       tmp_path: Path) -> None:
    """docker cp works in /proc/<init>/root, checked to be the container's rootfs: a pid
    that is not (an init gone, its pid another process's) is a clear error, and nothing
    is read or written in that other process's root (here: the host's)."""
    import io
    import subprocess
    import tarfile

    from skiff.engine.container_archive import ContainerFiles
    from skiff.engine.container_view import init_root

    c = clean.containers
    cid = clean.run(["sleep", "60"])
    rootfs = c.snapshots.rootfs(cid)
    os.close(init_root(c.inspect(cid)["State"]["Pid"], rootfs, cid))
    host = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(ContainerConflict, match=f"its init process {host.pid} has "
                                                    f"exited"):
            init_root(host.pid, rootfs, cid)
        row = c.db.get(cid)
        assert row is not None
        state = dict(row.state)
        c.db.set_state(cid, dict(state, Pid=host.pid))  # as if its init had just gone
        upload = io.BytesIO()
        with tarfile.open(fileobj=upload, mode="w") as tar:
            tar.addfile(tarfile.TarInfo("planted"))
        files = ContainerFiles(c)
        for attempt in (lambda: files.stat(cid, str(tmp_path)),
                        lambda: files.put(cid, str(tmp_path), upload,
                                          no_overwrite_dir_non_dir=False,
                                          copy_uid_gid=False)):
            with pytest.raises(ContainerConflict, match="has exited"):
                attempt()
        assert not (tmp_path / "planted").exists()
        c.db.set_state(cid, state)
    finally:
        host.kill()
        host.wait()
    with pytest.raises(ContainerConflict, match=f"its init process {host.pid} has exited"):
        init_root(host.pid, rootfs, cid)  # no such process at all
    c.remove(cid, force=True)


def test_nothing_is_imported_inside_a_containers_root(tmp_path: Path) -> None:
    """A module not loaded yet is never looked for in the container's root, where a file
    planted at a folder of skiffd's module path would run as skiffd's code: the import is
    refused there."""
    import sys

    from skiff.engine.container_view import run_in_root

    site, root = tmp_path / "site", tmp_path / "root"  # the site is empty on the host
    site.mkdir()
    planted = root / str(site).lstrip("/")
    planted.mkdir(parents=True)
    (planted / "planted_module_xyz.py").write_text(
        "raise SystemExit('the container ran code in skiffd')\n")
    os.utime(planted, (0, 0))  # not the host folder's time, which the finder cached
    sys.path.insert(0, str(site))
    try:
        with pytest.raises(ImportError, match="no import inside a container's root"):
            run_in_root(lambda root: __import__("planted_module_xyz"), rootfs=str(root))
        assert run_in_root(lambda root: os.listdir(root), rootfs=str(root)) == ["tmp"]
    finally:
        sys.path.remove(str(site))
        sys.path_importer_cache.pop(str(site), None)
    assert "planted_module_xyz" not in sys.modules
