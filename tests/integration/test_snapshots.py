"""The overlay `Snapshotter` on the real kernel, over layers stored by `LayerStore`.

A lower layer holds a file, the upper one whites it out and adds another; the merged rootfs
must show exactly what Docker would, writes must land in the snapshot's upper dir, and
`remove` must leave no mount and no folder. Failures half-way (a missing lower dir, a path
overlayfs cannot express, a stack too deep for one page of options) must leave nothing.
Every snapshot is removed in a finalizer, so a failing assertion still unmounts it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterator

import pytest

from conftest import digest, tar_of
from skiff.errors import StoreError
from skiff.kernel import syscall
from skiff.store.layer_store import LayerStore
from skiff.store.snapshots import Snapshotter, mount_points

pytestmark = pytest.mark.root


def mounts_below(path: Path) -> list[str]:
    prefix = str(path)
    return [p for p in mount_points() if p == prefix or p.startswith(prefix + "/")]


@pytest.fixture
def snapshotter(work: Path) -> Iterator[Snapshotter]:
    snaps = Snapshotter(work)
    yield snaps
    for key in snaps.list():
        snaps.remove(key)
    for target in sorted(mounts_below(work), reverse=True):  # a last resort; should be none
        syscall.umount(target, syscall.MNT_DETACH)


@pytest.fixture
def layers(work: Path) -> LayerStore:
    return LayerStore(work)


def two_layers(layers: LayerStore) -> list[str]:
    bottom = tar_of({"etc/old.conf": b"old\n", "etc/keep.conf": b"keep\n"})
    top = tar_of({"etc/.wh.old.conf": b"", "etc/new.conf": b"new\n"})
    c0 = layers.ensure(None, digest(bottom), lambda: io.BytesIO(bottom))
    c1 = layers.ensure(c0, digest(top), lambda: io.BytesIO(top))
    return [c0, c1]


def test_merged_view_writes_and_remove(work: Path, layers: LayerStore,
                                       snapshotter: Snapshotter) -> None:
    chain = two_layers(layers)
    rootfs = Path(snapshotter.prepare("c1", layers.lower_dirs(chain)))
    assert rootfs == Path(snapshotter.rootfs("c1"))
    assert snapshotter.mounted("c1")
    assert snapshotter.list() == ["c1"]
    assert sorted(os.listdir(rootfs / "etc")) == ["keep.conf", "new.conf"]
    assert not (rootfs / "etc/old.conf").exists()  # the whiteout hides it
    assert (rootfs / "etc/new.conf").read_text() == "new\n"
    assert (rootfs / "etc/keep.conf").read_text() == "keep\n"

    (rootfs / "hello").write_text("from the container\n")
    (rootfs / "etc/keep.conf").write_text("changed\n")
    upper = Path(snapshotter.upper("c1"))
    assert (upper / "hello").read_text() == "from the container\n"
    assert (upper / "etc/keep.conf").read_text() == "changed\n"
    # the shared layer is untouched
    assert (Path(layers.diff_dir(chain[0])) / "etc/keep.conf").read_text() == "keep\n"

    snapshotter.remove("c1")
    assert not snapshotter.mounted("c1")
    assert mounts_below(work) == []
    with open("/proc/self/mounts") as f:
        assert str(work) not in f.read()
    assert not (work / "snapshots" / "c1").exists()
    assert snapshotter.list() == []


def test_two_snapshots_share_the_layers(layers: LayerStore, snapshotter: Snapshotter) -> None:
    lowers = layers.lower_dirs(two_layers(layers))
    a = Path(snapshotter.prepare("a", lowers))
    b = Path(snapshotter.prepare("b", lowers))
    (a / "etc/new.conf").write_text("a's\n")
    assert (b / "etc/new.conf").read_text() == "new\n"
    assert snapshotter.list() == ["a", "b"]
    assert snapshotter.lower_dirs("a") == lowers  # recorded, for remounts and the layer GC
    assert snapshotter.held_dirs() == set(lowers)


def test_a_snapshot_mounts_again_over_its_recorded_stack(layers: LayerStore,
                                                          snapshotter: Snapshotter) -> None:
    rootfs = Path(snapshotter.prepare("again", layers.lower_dirs(two_layers(layers))))
    (rootfs / "mine").write_text("kept")
    syscall.umount(str(rootfs))
    assert Path(snapshotter.mount("again")) == rootfs
    assert (rootfs / "mine").read_text() == "kept"
    assert (rootfs / "etc/new.conf").read_text() == "new\n"


def test_no_layers_gives_an_empty_rootfs(snapshotter: Snapshotter) -> None:
    rootfs = Path(snapshotter.prepare("scratch", []))
    assert snapshotter.mounted("scratch")
    assert os.listdir(rootfs) == []
    (rootfs / "x").write_text("x")
    assert (Path(snapshotter.upper("scratch")) / "x").exists()


def test_remove_detaches_a_busy_mount(work: Path, layers: LayerStore,
                                      snapshotter: Snapshotter) -> None:
    rootfs = Path(snapshotter.prepare("busy", layers.lower_dirs(two_layers(layers))))
    fd = os.open(rootfs / "etc", os.O_RDONLY | os.O_DIRECTORY)  # keeps the mount busy
    try:
        snapshotter.remove("busy")
    finally:
        os.close(fd)
    assert mounts_below(work) == []
    assert not (work / "snapshots" / "busy").exists()


def test_remove_takes_off_what_is_mounted_on_and_in_the_rootfs(
        work: Path, layers: LayerStore, snapshotter: Snapshotter,
        caplog: pytest.LogCaptureFixture) -> None:
    chain = two_layers(layers)
    rootfs = Path(snapshotter.prepare("stacked", layers.lower_dirs(chain)))
    syscall.mount("tmpfs", str(rootfs / "etc"), "tmpfs", 0, "size=1m")  # in it
    (rootfs / "etc" / "on-tmpfs").write_text("x")
    syscall.mount("tmpfs", str(rootfs), "tmpfs", 0, "size=1m")  # on it, hiding both
    snapshotter.remove("stacked")
    assert mounts_below(work) == []
    assert not (work / "snapshots" / "stacked").exists()
    assert "lazily" not in caplog.text  # each came off in its turn, none was busy
    assert sorted(os.listdir(Path(layers.diff_dir(chain[0])) / "etc")) == ["keep.conf",
                                                                         "old.conf"]


def test_bad_lower_dir_fails_cleanly(work: Path, snapshotter: Snapshotter) -> None:
    with pytest.raises(StoreError, match="not a directory"):
        snapshotter.prepare("bad", [str(work / "missing")])
    assert mounts_below(work) == []
    assert not (work / "snapshots" / "bad").exists()


def test_kernel_refusal_fails_cleanly(work: Path, snapshotter: Snapshotter) -> None:
    # procfs is a directory but cannot be an overlay lower dir: the mount itself fails
    with pytest.raises(StoreError, match="prepare snapshot `k`: mount overlay"):
        snapshotter.prepare("k", ["/proc"])
    assert mounts_below(work) == []
    assert not (work / "snapshots" / "k").exists()


def test_paths_overlayfs_cannot_carry_are_refused(work: Path, snapshotter: Snapshotter) -> None:
    for name in ("a,b", "a:b"):
        odd = work / name
        odd.mkdir()
        with pytest.raises(StoreError, match="overlayfs mount options cannot carry"):
            snapshotter.prepare("odd", [str(odd)])
    assert not (work / "snapshots" / "odd").exists()
    assert mounts_below(work) == []


def test_too_many_lower_dirs_is_a_clear_error(work: Path, snapshotter: Snapshotter) -> None:
    deep = work / ("d" * 200)
    deep.mkdir()
    with pytest.raises(StoreError, match="over the kernel's limit"):
        snapshotter.prepare("deep", [str(deep)] * 30)
    assert not (work / "snapshots" / "deep").exists()
    assert mounts_below(work) == []


def test_keys_are_checked(snapshotter: Snapshotter) -> None:
    for key in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(StoreError, match="snapshot key"):
            snapshotter.prepare(key, [])
    snapshotter.prepare("twice", [])
    with pytest.raises(StoreError, match="already exists"):
        snapshotter.prepare("twice", [])
    assert snapshotter.mounted("twice")
