"""`secure_join` and `make_target` on a hostile rootfs built in tmp_path.

A container's rootfs is untrusted: its symlinks may be absolute, climb with `..`, or loop.
These tests build such a tree next to an `outside` folder that stands for the host, and
check that every answer stays below the rootfs (resolved as the container would see it),
that loops end in ELOOP, that `make_target` creates the missing directories or the empty
file, and that nothing is ever created in `outside`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from skiff.errors import KernelError
from skiff.runtime.secure_path import make_target, secure_join


@pytest.fixture
def rootfs(tmp_path: Path, outside: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "usr" / "lib").mkdir(parents=True)
    return root


def inside(root: Path, path: str) -> bool:
    return os.path.commonpath([str(root), path]) == str(root)


def test_plain_path(rootfs: Path) -> None:
    assert secure_join(str(rootfs), "/etc/passwd") == str(rootfs / "etc" / "passwd")
    assert secure_join(str(rootfs), "usr/lib") == str(rootfs / "usr" / "lib")
    assert secure_join(str(rootfs), "/") == str(rootfs)


def test_missing_components_are_kept(rootfs: Path) -> None:
    assert secure_join(str(rootfs), "/no/such/dir") == str(rootfs / "no" / "such" / "dir")


def test_dot_and_repeated_slashes(rootfs: Path) -> None:
    assert secure_join(str(rootfs), "//etc/./passwd") == str(rootfs / "etc" / "passwd")


@pytest.mark.parametrize("unsafe", ["/../../etc", "../etc", "/usr/../../../etc", "/etc/../../etc"])
def test_dot_dot_is_clamped_at_the_root(rootfs: Path, unsafe: str) -> None:
    assert secure_join(str(rootfs), unsafe) == str(rootfs / "etc")


def test_absolute_symlink_is_relative_to_the_root(rootfs: Path) -> None:
    (rootfs / "a").symlink_to("/etc")
    assert secure_join(str(rootfs), "/a") == str(rootfs / "etc")
    assert secure_join(str(rootfs), "/a/passwd") == str(rootfs / "etc" / "passwd")


def test_relative_symlink_climbing_out_stays_inside(rootfs: Path) -> None:
    (rootfs / "usr" / "lib" / "up").symlink_to("../../../../../outside")
    got = secure_join(str(rootfs), "/usr/lib/up/file")
    assert got == str(rootfs / "outside" / "file")
    assert inside(rootfs, got)


def test_relative_symlink_within_the_root(rootfs: Path) -> None:
    (rootfs / "usr" / "lib" / "conf").symlink_to("../../etc")
    assert secure_join(str(rootfs), "/usr/lib/conf/passwd") == str(rootfs / "etc" / "passwd")


def test_chained_symlinks(rootfs: Path) -> None:
    (rootfs / "one").symlink_to("two")
    (rootfs / "two").symlink_to("/etc")
    assert secure_join(str(rootfs), "/one/passwd") == str(rootfs / "etc" / "passwd")


def test_symlink_to_the_host_path_of_the_outside_is_kept_inside(rootfs: Path,
                                                                outside: Path) -> None:
    (rootfs / "host").symlink_to(outside)  # absolute, names the real host folder
    got = secure_join(str(rootfs), "/host/x")
    assert inside(rootfs, got)
    assert got == str(rootfs) + str(outside / "x")


@pytest.mark.parametrize("links", [{"loop": "loop"}, {"l1": "l2", "l2": "/l1"},
                                   {"l1": "l2/x", "l2": "../l1"}])
def test_symlink_loop_is_eloop(rootfs: Path, links: dict[str, str]) -> None:
    for name, target in links.items():
        (rootfs / name).symlink_to(target)
    with pytest.raises(KernelError) as info:
        secure_join(str(rootfs), "/l1/y" if "l1" in links else "/loop")
    assert info.value.errno == errno.ELOOP
    assert "ELOOP" in str(info.value)


def test_make_target_creates_directories(rootfs: Path) -> None:
    got = make_target(str(rootfs), "/mnt/a/b", is_dir=True)
    assert got == str(rootfs / "mnt" / "a" / "b")
    assert (rootfs / "mnt" / "a" / "b").is_dir()


def test_make_target_creates_an_empty_file(rootfs: Path) -> None:
    got = make_target(str(rootfs), "/run/secrets/token", is_dir=False)
    assert got == str(rootfs / "run" / "secrets" / "token")
    assert (rootfs / "run" / "secrets").is_dir()
    target = rootfs / "run" / "secrets" / "token"
    assert target.is_file() and not target.is_symlink()
    assert target.stat().st_size == 0


def test_make_target_keeps_what_exists(rootfs: Path) -> None:
    assert make_target(str(rootfs), "/etc", is_dir=True) == str(rootfs / "etc")
    assert make_target(str(rootfs), "/etc/passwd", is_dir=False) == str(rootfs / "etc" / "passwd")
    assert (rootfs / "etc" / "passwd").read_text().startswith("root:")


def test_make_target_never_creates_outside(rootfs: Path, outside: Path) -> None:
    (rootfs / "rel").symlink_to("../../../outside")
    (rootfs / "abs").symlink_to(outside)
    (rootfs / "dangling").symlink_to("../outside/newfile")
    made = [make_target(str(rootfs), "/rel/d1/d2", is_dir=True),
            make_target(str(rootfs), "/rel/f", is_dir=False),
            make_target(str(rootfs), "/abs/d3", is_dir=True),
            make_target(str(rootfs), "/abs/f", is_dir=False),
            make_target(str(rootfs), "/dangling", is_dir=False)]
    assert list(outside.iterdir()) == []
    for path in made:
        assert inside(rootfs, path)
        assert os.path.lexists(path)
    assert (rootfs / "outside" / "d1" / "d2").is_dir()
    assert (rootfs / "outside" / "newfile").is_file()


def test_file_in_the_way_of_the_last_directory_is_enotdir(rootfs: Path) -> None:
    with pytest.raises(KernelError) as info:
        make_target(str(rootfs), "/etc/passwd", is_dir=True)
    assert info.value.errno == errno.ENOTDIR
    assert (rootfs / "etc" / "passwd").is_file()


def test_file_in_the_way_of_a_middle_directory_is_enotdir(rootfs: Path) -> None:
    with pytest.raises(KernelError) as info:
        make_target(str(rootfs), "/etc/passwd/sub/dir", is_dir=True)
    assert info.value.errno == errno.ENOTDIR
    assert (rootfs / "etc" / "passwd").is_file()


@pytest.mark.parametrize("target, swapped, is_dir", [
    ("/vol/x/t", "x", True), ("/vol/x/t", "x", False), ("/vol/t", "t", False)])
def test_make_target_never_follows_a_link_swapped_in_for_what_it_made(
        rootfs: Path, outside: Path, monkeypatch, target: str, swapped: str, is_dir: bool) -> None:
    # the race of runc's CVE-2021-30465: the walk made a folder (or the file), which a
    # container sharing the volume swaps for a link out before the walk enters it; what is
    # missing below is never made there
    from skiff.runtime import secure_path
    (rootfs / "vol").mkdir()
    enter = secure_path._enter_made

    def swap_then_enter(parent: int, name: str, *args):
        if name == swapped:
            os.rename(name, f"{name}.moved", src_dir_fd=parent, dst_dir_fd=parent)
            os.symlink(str(outside), name, dir_fd=parent)
        return enter(parent, name, *args)
    monkeypatch.setattr(secure_path, "_enter_made", swap_then_enter)
    with pytest.raises(KernelError) as info:
        make_target(str(rootfs), target, is_dir=is_dir)
    assert info.value.errno in (errno.ENOTDIR, errno.ELOOP)
    assert "link swapped in" in str(info.value) and target in str(info.value)
    assert list(outside.iterdir()) == []


def test_pin_holds_a_target_inside_the_root(tmp_path):
    from skiff.runtime.secure_path import pin
    root = tmp_path / "rootfs"
    (root / "data").mkdir(parents=True)
    fd = pin(str(root), str(root / "data"))
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == str(root / "data")
    finally:
        os.close(fd)


def test_pin_refuses_what_was_swapped_for_a_link_out(tmp_path):
    from skiff.runtime.secure_path import pin
    root = tmp_path / "rootfs"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "data").symlink_to(outside)  # what a racing process could do after resolution
    with pytest.raises(KernelError) as e:
        pin(str(root), str(root / "data"))
    assert e.value.errno in (errno.ELOOP, errno.EXDEV)
    (root / "sub").symlink_to(outside)  # a link higher up the path
    (outside / "x").mkdir()
    with pytest.raises(KernelError) as e:
        pin(str(root), str(root / "sub" / "x"))
    assert e.value.errno == errno.EXDEV and "outside the rootfs" in str(e.value)
