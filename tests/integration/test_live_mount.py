"""`live_mount.add_mount` / `remove_mount` on real running containers, checked from inside.

Each test starts a busybox container with `skiff-runtime`, mounts a host folder into it while
it runs and looks from inside (exec, the init's own view) and from the host (its mountinfo):
the files appear read-only, nosuid and nodev, root in the container cannot write them nor
remount them, they go on detach, other containers never see them, and a bad target (`..`, a
symlink that climbs out, a file) or a failure half-way leaves no mount and no folder behind.
"""

from __future__ import annotations

import os
import stat
import statistics
import time
from pathlib import Path

import pytest

from skiff.errors import ContainerNotFound, InvalidArgument, InvalidState, KernelError
from skiff.kernel import syscall as sc
from skiff.runtime import live_mount
from skiff.runtime.container import Container, open_container
from skiff.runtime.state import StateStore
from test_security import in_user_namespace

pytestmark = pytest.mark.root


@pytest.fixture
def capsule(work: Path) -> Path:
    """A host folder standing for an unpacked capsule: a file, a script, a folder."""
    path = work / "capsule-1.0"
    (path / "lib").mkdir(parents=True)
    (path / "hello.txt").write_text("hello from the capsule\n")
    (path / "lib" / "libdemo.so.1").write_bytes(b"\x7fELF-not-really")
    (path / "run.sh").write_text("#!/bin/sh\necho ran from the capsule\n")
    (path / "run.sh").chmod(0o755)
    return path


def running(runtime, bundle, *argv: str) -> Container:
    runtime.create(bundle.args(*(argv or ("sleep", "1000"))))
    runtime("start", bundle.id)
    return open_container(StateStore(str(runtime.root)), bundle.id)


def mounts_at(c: Container, target: str) -> list[list[str]]:
    """The container's mountinfo lines (split) whose mount point is `target`."""
    with open(f"/proc/{c.state.pid}/mountinfo") as f:
        return [line.split() for line in f if line.split()[4] == target]


def sh(runtime, c: Container, script: str, check: bool = True):
    return runtime("exec", c.id, "sh", "-c", script, check=check)


def test_attach_shows_the_files_read_only_and_detach_takes_them(runtime, bundle, capsule):
    c = running(runtime, bundle)
    live_mount.add_mount(c, str(capsule), "/capsules/demo/1.0")
    assert sh(runtime, c, "cat /capsules/demo/1.0/hello.txt").stdout == "hello from the capsule\n"
    assert sh(runtime, c, "/capsules/demo/1.0/run.sh").stdout == "ran from the capsule\n"  # exec
    [line] = mounts_at(c, "/capsules/demo/1.0")
    assert {"ro", "nosuid", "nodev"} <= set(line[5].split(","))
    assert "noexec" not in line[5].split(",")
    assert not [o for o in line[6:line.index("-")] if o.startswith(("shared:", "master:"))]
    live_mount.remove_mount(c, "/capsules/demo/1.0")
    assert mounts_at(c, "/capsules/demo/1.0") == []
    assert sh(runtime, c, "ls /capsules/demo/1.0").stdout == ""
    assert not (bundle.rootfs / "capsules" / "demo" / "1.0" / "hello.txt").exists()


def test_a_process_already_running_sees_the_attach(runtime, bundle, capsule):
    # /seen appears whole or not at all (the poll below must not read it half-written)
    script = ("while ! [ -f /opt/demo/hello.txt ]; do sleep 0.01; done; "
              "cat /opt/demo/hello.txt > /seen.tmp && mv /seen.tmp /seen; sleep 1000")
    c = running(runtime, bundle, "sh", "-c", script)
    live_mount.add_mount(c, str(capsule), "/opt/demo")
    deadline = time.monotonic() + 10
    while not (bundle.rootfs / "seen").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (bundle.rootfs / "seen").read_text() == "hello from the capsule\n"
    live_mount.remove_mount(c, "/opt/demo")


def test_root_in_the_container_can_neither_write_nor_remount(runtime, bundle, capsule):
    c = running(runtime, bundle)
    live_mount.add_mount(c, str(capsule), "/cap")
    for script in ("echo x > /cap/hello.txt", "touch /cap/new", "rm /cap/hello.txt",
                   "mkdir /cap/d", "mount -o remount,rw /cap",
                   "mount -o remount,rw,bind /cap", "umount /cap"):
        p = sh(runtime, c, script, check=False)
        assert p.returncode != 0, script
    assert sh(runtime, c, "grep ' /cap ' /proc/self/mountinfo").stdout.split()[5].startswith("ro")
    assert (capsule / "hello.txt").read_text() == "hello from the capsule\n"
    assert sorted(os.listdir(capsule)) == ["hello.txt", "lib", "run.sh"]
    live_mount.remove_mount(c, "/cap")


def test_a_device_node_in_the_capsule_cannot_be_opened(runtime, bundle, capsule):
    os.mknod(capsule / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    c = running(runtime, bundle)
    live_mount.add_mount(c, str(capsule), "/cap")
    p = sh(runtime, c, "cat /cap/null", check=False)
    assert p.returncode != 0 and "Permission denied" in p.stderr  # nodev
    live_mount.remove_mount(c, "/cap")


def test_two_containers_two_versions_one_target_and_a_third_sees_none(
        runtime, bundle, capsule, work):
    other = work / "capsule-2.0"
    other.mkdir()
    (other / "hello.txt").write_text("version two\n")
    a = running(runtime, bundle)
    bundle.id += "b"
    b = running(runtime, bundle)  # the same rootfs folder: only the mounts tell them apart
    bundle.id += "c"
    third = running(runtime, bundle)
    live_mount.add_mount(a, str(capsule), "/capsules/demo")
    live_mount.add_mount(b, str(other), "/capsules/demo")
    assert sh(runtime, a, "cat /capsules/demo/hello.txt").stdout == "hello from the capsule\n"
    assert sh(runtime, b, "cat /capsules/demo/hello.txt").stdout == "version two\n"
    assert sh(runtime, third, "cat /capsules/demo/hello.txt", check=False).returncode != 0
    assert mounts_at(third, "/capsules/demo") == []
    live_mount.remove_mount(a, "/capsules/demo")
    assert sh(runtime, b, "cat /capsules/demo/hello.txt").stdout == "version two\n"
    live_mount.remove_mount(b, "/capsules/demo")


def test_a_symlinked_target_is_followed_inside_the_root(runtime, bundle, capsule, outside):
    # an absolute link names the container's own folder of that path, never the host's
    os.symlink(str(outside), bundle.rootfs / "abs")
    os.symlink("../lib", bundle.rootfs / "usr" / "rel")
    c = running(runtime, bundle)
    live_mount.add_mount(c, str(capsule), "/abs/demo")
    live_mount.add_mount(c, str(capsule), "/usr/rel/demo")
    assert os.listdir(outside) == []
    inside_path = str(outside) + "/demo"
    assert len(mounts_at(c, inside_path)) == 1 and len(mounts_at(c, "/lib/demo")) == 1
    assert (bundle.rootfs / str(outside).lstrip("/") / "demo").is_dir()
    live_mount.remove_mount(c, "/abs/demo")
    live_mount.remove_mount(c, "/usr/rel/demo")
    assert mounts_at(c, inside_path) == mounts_at(c, "/lib/demo") == []


@pytest.mark.parametrize("target", ["/../../etc", "/a/../../b", "relative/x", "/", "/./"])
def test_a_target_that_climbs_or_is_not_absolute_is_refused(runtime, bundle, capsule, target):
    c = running(runtime, bundle)
    before = Path(f"/proc/{c.state.pid}/mountinfo").read_text()
    with pytest.raises(InvalidArgument):
        live_mount.add_mount(c, str(capsule), target)
    assert Path(f"/proc/{c.state.pid}/mountinfo").read_text() == before


def test_a_symlink_that_climbs_out_is_an_error_and_leaves_nothing(
        runtime, bundle, capsule, outside):
    up = "../" * 12 + str(outside).lstrip("/")
    os.symlink(up, bundle.rootfs / "evil")
    os.makedirs(bundle.rootfs / "deep" / "er")
    os.symlink("../../../..", bundle.rootfs / "deep" / "er" / "up")
    c = running(runtime, bundle)
    before = Path(f"/proc/{c.state.pid}/mountinfo").read_text()
    for target in ("/evil", "/evil/new/dir", "/deep/er/up/x", "/newdir/../evil"):
        with pytest.raises(InvalidArgument) as err:
            live_mount.add_mount(c, str(capsule), target)
        assert target in str(err.value)
    assert os.listdir(outside) == []
    assert not (bundle.rootfs / "newdir").exists()
    assert Path(f"/proc/{c.state.pid}/mountinfo").read_text() == before


def test_a_file_target_or_a_missing_source_fails_cleanly(runtime, bundle, capsule, work):
    c = running(runtime, bundle)
    before = Path(f"/proc/{c.state.pid}/mountinfo").read_text()
    with pytest.raises(KernelError) as err:
        live_mount.add_mount(c, str(capsule), "/etc/passwd/x")
    assert "ENOTDIR" in str(err.value) and "/etc/passwd/x" in str(err.value)
    with pytest.raises(KernelError) as err:
        live_mount.add_mount(c, str(work / "no-such-capsule"), "/made/here")
    assert "ENOENT" in str(err.value)
    with pytest.raises(KernelError):
        live_mount.add_mount(c, str(capsule / "hello.txt"), "/made/here")
    assert not (bundle.rootfs / "made").exists()
    assert Path(f"/proc/{c.state.pid}/mountinfo").read_text() == before


def test_a_failure_at_the_last_step_removes_the_folders_it_made(
        runtime, bundle, capsule, monkeypatch):
    c = running(runtime, bundle)
    before = Path(f"/proc/{c.state.pid}/mountinfo").read_text()

    def refuse(*args, **kw):
        raise KernelError("move_mount", 1, "/new/deep/target")
    monkeypatch.setattr(sc, "move_mount", refuse)
    with pytest.raises(KernelError):
        live_mount.add_mount(c, str(capsule), "/new/deep/target")
    assert not (bundle.rootfs / "new").exists()
    assert Path(f"/proc/{c.state.pid}/mountinfo").read_text() == before


def test_detach_of_what_is_not_mounted_is_an_error(runtime, bundle):
    c = running(runtime, bundle)
    with pytest.raises(InvalidArgument, match="nothing is mounted at `/etc`"):
        live_mount.remove_mount(c, "/etc")
    with pytest.raises(KernelError, match="ENOENT"):
        live_mount.remove_mount(c, "/no/such")


def test_a_stopped_or_unknown_container_is_refused(runtime, bundle, capsule):
    c = running(runtime, bundle, "true")
    deadline = time.monotonic() + 10
    while c.status() != "stopped" and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(InvalidState, match="state stopped"):
        live_mount.add_mount(c, str(capsule), "/cap")
    with pytest.raises(ContainerNotFound):
        open_container(StateStore(str(runtime.root)), "no-such-container")


def test_in_a_user_namespace_the_folders_made_are_the_containers(runtime, bundle, capsule):
    host = 220000
    in_user_namespace(bundle, host)
    c = running(runtime, bundle)
    live_mount.add_mount(c, str(capsule), "/capsules/demo/1.0")
    st = os.stat(bundle.rootfs / "capsules" / "demo")
    assert (st.st_uid, st.st_gid) == (host, host)
    assert sh(runtime, c, "cat /capsules/demo/1.0/hello.txt").stdout == "hello from the capsule\n"
    for script in ("touch /capsules/demo/1.0/new", "mount -o remount,rw /capsules/demo/1.0"):
        assert sh(runtime, c, script, check=False).returncode != 0, script
    live_mount.remove_mount(c, "/capsules/demo/1.0")
    assert mounts_at(c, "/capsules/demo/1.0") == []


def test_a_thousand_cycles_leave_no_mount(runtime, bundle, capsule):
    """The unit-level bench: attach, see the file from the host through the init's root,
    detach; its median and p99 are printed (bench/capsules.py compares them with Docker)."""
    c = running(runtime, bundle)
    before = Path(f"/proc/{c.state.pid}/mountinfo").read_text()
    seen = f"/proc/{c.state.pid}/root/cap/hello.txt"
    attach, detach = [], []
    for _ in range(1000):
        t0 = time.perf_counter()
        live_mount.add_mount(c, str(capsule), "/cap")
        assert os.path.exists(seen)
        t1 = time.perf_counter()
        live_mount.remove_mount(c, "/cap")
        t2 = time.perf_counter()
        attach.append(t1 - t0)
        detach.append(t2 - t1)
    assert not os.path.exists(seen)
    assert Path(f"/proc/{c.state.pid}/mountinfo").read_text() == before
    for name, xs in (("attach", attach), ("detach", detach)):
        xs.sort()
        print(f"{name}: median {statistics.median(xs) * 1e6:.0f} us, "
              f"p99 {xs[989] * 1e6:.0f} us")
