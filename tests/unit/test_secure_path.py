"""The runtime's one path walker (`secure_path`) on a hostile rootfs built in tmp_path.

A container's rootfs is untrusted: its symlinks may be absolute, climb with `..`, or loop.
These tests build such a tree next to an `outside` folder that stands for the host, and
check that every answer stays below the rootfs (resolved as the container would see it),
that loops end in ELOOP, that `make_target` creates the missing directories or the empty
file, and that nothing is ever created in `outside`. `open_in_root` answers with an fd,
from the kernel's `openat2` when that finds the path and from its own component walk
otherwise: its tests run both ways (`way`) and check what both callers rely on — `..`
clamped (`CLAMP`) or refused (`REFUSE`, a live attach), what is made taken back by
`Created`, a link swapped in for what was made never followed, the kernel's answer and the
walk's the same file.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Iterator

import pytest

from skiff.errors import InvalidArgument, KernelError
from skiff.kernel import syscall as sc
from skiff.runtime import secure_path
from skiff.runtime.secure_path import (CLAMP, REFUSE, Created, make_target, open_in_root, pin,
                                       secure_join)


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
    root = tmp_path / "rootfs"
    (root / "data").mkdir(parents=True)
    fd = pin(str(root), str(root / "data"))
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == str(root / "data")
    finally:
        os.close(fd)


def test_pin_refuses_what_was_swapped_for_a_link_out(tmp_path):
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


# -- open_in_root: the walk with an fd for an answer ------------------------------------------
@pytest.fixture
def root(rootfs: Path, outside: Path) -> Path:
    """`rootfs` with links of every kind in it."""
    r = rootfs
    (r / "abs").symlink_to("/etc")                                  # absolute: the root's /etc
    (r / "host").symlink_to(outside)                                # names the host's folder
    (r / "usr" / "lib" / "conf").symlink_to("../../etc")            # relative, inside
    (r / "usr" / "lib" / "up").symlink_to("../../../../../" + str(outside).lstrip("/"))
    (r / "one").symlink_to("two")
    (r / "two").symlink_to("abs/passwd")                            # a chain to a file
    (r / "loop").symlink_to("loop")
    (r / "l1").symlink_to("l2/x")
    (r / "l2").symlink_to("../l1")
    (r / "dangling").symlink_to("../new/file")
    return r


@pytest.fixture
def root_fd(root: Path) -> Iterator[int]:
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    yield fd
    os.close(fd)


def where(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


@pytest.fixture(params=["kernel", "walk"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test twice: as it runs, and with openat2 failing so the walk answers alone."""
    if request.param == "walk":
        def refuse(*args: object, **kw: object) -> int:
            raise KernelError("openat2", errno.ENOSYS)
        monkeypatch.setattr(sc, "openat2", refuse)
    return str(request.param)


@pytest.mark.parametrize("path, found", [
    ("/etc/passwd", "etc/passwd"), ("etc", "etc"), ("/", ""), ("//etc/./passwd", "etc/passwd"),
    ("/abs/passwd", "etc/passwd"), ("/usr/lib/conf/passwd", "etc/passwd"),
    ("/one", "etc/passwd"), ("/../../etc", "etc"), ("/usr/../../../etc/passwd", "etc/passwd"),
])
def test_links_and_dot_dot_resolve_inside_the_root(root: Path, root_fd: int, way: str,
                                                   path: str, found: str) -> None:
    assert where(open_in_root(root_fd, path)) == str(root / found).rstrip("/")


def test_a_link_to_the_hosts_path_is_that_path_below_the_root(root: Path, root_fd: int,
                                                              outside: Path, way: str) -> None:
    (root / str(outside).lstrip("/")).mkdir(parents=True)
    for path in ("/host", "/usr/lib/up"):
        assert where(open_in_root(root_fd, path)) == str(root) + str(outside)


@pytest.mark.parametrize("path", ["/loop", "/l1/y", "/l1"])
def test_a_symlink_loop_is_eloop(root_fd: int, way: str, path: str) -> None:
    with pytest.raises(KernelError) as info:
        open_in_root(root_fd, path, create=True)
    assert info.value.errno == errno.ELOOP and path in str(info.value)


@pytest.mark.parametrize("path", ["/usr/lib/up", "/usr/lib/up/x", "/usr/../../etc"])
def test_refuse_will_not_climb_above_the_root(root_fd: int, way: str, path: str) -> None:
    with pytest.raises(InvalidArgument, match="leaves the container's root"):
        open_in_root(root_fd, path, create=True, escape=REFUSE, what="mount target")


def test_refuse_still_takes_absolute_links_relative_to_the_root(root: Path, root_fd: int,
                                                                way: str) -> None:
    assert where(open_in_root(root_fd, "/abs/passwd", escape=REFUSE)) == str(root / "etc/passwd")
    assert where(open_in_root(root_fd, "/usr/lib/conf", escape=REFUSE)) == str(root / "etc")


def test_missing_parts_are_enoent_unless_made(root: Path, root_fd: int, way: str) -> None:
    with pytest.raises(KernelError) as info:
        open_in_root(root_fd, "/no/such")
    assert info.value.errno == errno.ENOENT and "/no/such" in str(info.value)
    assert where(open_in_root(root_fd, "/mnt/a/b", want_dir=True, create=True)) == \
        str(root / "mnt/a/b")
    assert where(open_in_root(root_fd, "/run/token", create=True)) == str(root / "run/token")
    assert (root / "run" / "token").is_file() and (root / "mnt" / "a" / "b").is_dir()


def test_a_dangling_link_is_made_where_it_points_inside(root: Path, root_fd: int, outside: Path,
                                                        way: str) -> None:
    assert where(open_in_root(root_fd, "/dangling", create=True)) == str(root / "new/file")
    assert (root / "new" / "file").is_file() and list(outside.iterdir()) == []


@pytest.mark.parametrize("path, want_dir", [("/etc/passwd", True), ("/etc/passwd/x", False),
                                            ("/one/x", False), ("/etc/passwd/..", False)])
def test_a_file_in_the_way_is_enotdir(root_fd: int, way: str, path: str, want_dir: bool) -> None:
    with pytest.raises(KernelError) as info:
        open_in_root(root_fd, path, want_dir=want_dir, create=True)
    assert info.value.errno == errno.ENOTDIR and path in str(info.value)


def test_created_takes_back_what_the_walk_made_on_an_error(root: Path, root_fd: int,
                                                           way: str) -> None:
    with pytest.raises(RuntimeError), Created() as made:
        os.close(open_in_root(root_fd, "/etc/new/deep", want_dir=True, create=True, made=made))
        assert [name for _, name, _ in made.entries] == ["new", "deep"]
        raise RuntimeError("the mount failed")
    assert not (root / "etc" / "new").exists() and (root / "etc" / "passwd").is_file()
    with Created() as made:
        os.close(open_in_root(root_fd, "/etc/kept", want_dir=True, create=True, made=made))
    assert (root / "etc" / "kept").is_dir() and made.entries == []


def test_what_is_made_goes_to_the_owner(root: Path, root_fd: int, way: str) -> None:
    os.close(open_in_root(root_fd, "/capsules/x", want_dir=True, create=True, owner=(4321, 4322)))
    for path in (root / "capsules", root / "capsules" / "x"):
        assert (path.stat().st_uid, path.stat().st_gid) == (4321, 4322)


@pytest.mark.parametrize("is_dir", [True, False])
def test_a_link_swapped_in_for_what_was_made_is_never_followed(
        root: Path, root_fd: int, outside: Path, monkeypatch: pytest.MonkeyPatch,
        way: str, is_dir: bool) -> None:
    # CVE-2021-30465: between the walk's mkdir and its entering the folder, a container
    # sharing the volume puts a link to the host there
    enter = secure_path._enter_made

    def swap_then_enter(parent: int, name: str, *args: object) -> int:
        os.rename(name, name + ".moved", src_dir_fd=parent, dst_dir_fd=parent)
        os.symlink(str(outside), name, dir_fd=parent)
        return enter(parent, name, *args)  # type: ignore[arg-type]
    monkeypatch.setattr(secure_path, "_enter_made", swap_then_enter)
    with pytest.raises(KernelError) as info, Created() as made:
        open_in_root(root_fd, "/vol/t", want_dir=is_dir, create=True, made=made)
    assert "link swapped in" in str(info.value)
    assert list(outside.iterdir()) == []


def test_the_kernel_answers_alone_when_the_path_exists(root: Path, root_fd: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    walks: list[str] = []
    walk = secure_path._walk
    monkeypatch.setattr(secure_path, "_walk", lambda r, p, **kw: walks.append(p) or walk(r, p, **kw))
    os.close(open_in_root(root_fd, "/usr/lib/conf/passwd"))
    os.close(open_in_root(root_fd, "/usr/lib/conf", want_dir=True, escape=REFUSE))
    assert walks == []
    # RESOLVE_BENEATH takes no absolute link: refusing, the walk expands it
    os.close(open_in_root(root_fd, "/abs", want_dir=True, escape=REFUSE))
    assert walks == ["/abs"]
    os.close(open_in_root(root_fd, "/made/here", want_dir=True, create=True))
    assert walks == ["/abs", "/made/here"]  # missing: only the walk makes what is missing


@pytest.mark.root
def test_a_magic_link_is_read_as_its_text_inside_the_root(tmp_path: Path, way: str) -> None:
    # /proc/PID/root of a proc in the root: the kernel will not follow it (NO_MAGICLINKS);
    # the walk reads its text ("/") and looks that up below the root, as secure_join did
    r = tmp_path / "r"
    (r / "proc").mkdir(parents=True)
    (r / "etc").mkdir()
    sc.mount("proc", str(r / "proc"), "proc", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    try:
        fd = os.open(r, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            assert where(open_in_root(fd, f"/proc/{os.getpid()}/root/etc")) == str(r / "etc")
        finally:
            os.close(fd)
    finally:
        sc.umount(str(r / "proc"), sc.MNT_DETACH)


def test_clamp_is_the_default(root: Path, root_fd: int, way: str) -> None:
    assert where(open_in_root(root_fd, "/usr/lib/../../../../etc", escape=CLAMP)) == str(root / "etc")
    assert where(open_in_root(root_fd, "/usr/lib/conf/../../../../etc")) == str(root / "etc")
