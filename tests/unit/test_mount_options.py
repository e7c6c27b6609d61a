"""`mount_options.parse`: config.json option words into mount(2) flags, propagation and data.

The expected bits are the kernel's own values (include/uapi/linux/mount.h), written out here
rather than imported, so a wrong constant in `skiff.kernel.syscall` would show too. Words
apply in order, as mount(8) applies them: a later `rw` undoes an earlier `ro`.
"""

from __future__ import annotations

import pytest

from skiff.errors import SpecError
from skiff.runtime.mount_options import PROPAGATION_WORDS, check, parse

# from include/uapi/linux/mount.h
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_NOATIME = 0x400
MS_BIND = 0x1000
MS_REC = 0x4000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000


def test_no_options() -> None:
    opts = parse([])
    assert (opts.flags, opts.propagation, opts.data) == (0, (), "")
    assert not opts.is_bind


def test_defaults_is_zero() -> None:
    assert parse(["defaults"]).flags == 0
    assert parse(["nosuid", "defaults"]).flags == MS_NOSUID


@pytest.mark.parametrize(("words", "flags"), [
    (["ro"], MS_RDONLY),
    (["nosuid", "nodev", "noexec"], MS_NOSUID | MS_NODEV | MS_NOEXEC),
    (["noatime"], MS_NOATIME),
    (["relatime"], MS_RELATIME),
    (["strictatime"], MS_STRICTATIME),
    (["remount", "ro"], MS_REMOUNT | MS_RDONLY),
])
def test_flag_words_set_bits(words: list[str], flags: int) -> None:
    assert parse(words).flags == flags


def test_later_words_win() -> None:
    assert parse(["ro", "rw"]).flags & MS_RDONLY == 0
    assert parse(["rw", "ro"]).flags & MS_RDONLY == MS_RDONLY
    assert parse(["nosuid", "suid"]).flags & MS_NOSUID == 0
    assert parse(["nodev", "dev", "nodev"]).flags & MS_NODEV == MS_NODEV
    assert parse(["noexec", "exec"]).flags & MS_NOEXEC == 0


def test_clearing_leaves_other_bits() -> None:
    assert parse(["ro", "nosuid", "rw"]).flags == MS_NOSUID


def test_bind_and_rbind() -> None:
    bind = parse(["bind"])
    assert bind.is_bind
    assert bind.flags == MS_BIND
    rbind = parse(["rbind", "ro"])
    assert rbind.is_bind
    assert rbind.flags == MS_BIND | MS_REC | MS_RDONLY


def test_propagation_is_collected_apart_in_order() -> None:
    opts = parse(["rprivate", "nosuid", "shared", "runbindable", "slave"])
    assert opts.propagation == (MS_PRIVATE | MS_REC, MS_SHARED, MS_UNBINDABLE | MS_REC, MS_SLAVE)
    assert opts.flags == MS_NOSUID  # propagation bits stay out of the mount flags
    assert opts.data == ""


def test_every_propagation_word_is_known() -> None:
    assert PROPAGATION_WORDS == {"private", "rprivate", "shared", "rshared", "slave", "rslave",
                                 "unbindable", "runbindable"}
    for word in PROPAGATION_WORDS:
        assert len(parse([word]).propagation) == 1


def test_unknown_words_become_data_joined_by_commas() -> None:
    opts = parse(["nosuid", "strictatime", "mode=755", "size=65536k"])
    assert opts.flags == MS_NOSUID | MS_STRICTATIME
    assert opts.data == "mode=755,size=65536k"


def test_data_keeps_its_order_and_skips_empty_words() -> None:
    opts = parse(["newinstance", "", "ptmxmode=0666", "nosuid", "mode=0620", "gid=5"])
    assert opts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    assert opts.flags == MS_NOSUID


def test_tuple_input() -> None:
    assert parse(("ro", "bind")) == parse(["ro", "bind"])


# from include/uapi/linux/mount.h: mount_setattr's attributes
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20


def test_recursive_words_become_mount_setattr_attributes() -> None:
    opts = parse(["rbind", "rro", "rnosuid", "rnoexec"])
    assert opts.attr_set == MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC
    assert opts.attr_clr == 0
    assert opts.flags == MS_BIND | MS_REC and opts.data == ""


def test_a_later_recursive_word_wins() -> None:
    opts = parse(["rro", "rrw"])
    assert (opts.attr_set, opts.attr_clr) == (0, MOUNT_ATTR_RDONLY)
    opts = parse(["rrw", "rro"])
    assert (opts.attr_set, opts.attr_clr) == (MOUNT_ATTR_RDONLY, 0)


def test_an_atime_mode_clears_the_whole_atime_field() -> None:
    # mount_setattr(2): attr_clr must hold all of MOUNT_ATTR__ATIME to change the mode
    opts = parse(["rnoatime"])
    assert (opts.attr_set, opts.attr_clr) == (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME)
    opts = parse(["rnoatime", "rro", "rstrictatime"])
    assert opts.attr_set == MOUNT_ATTR_STRICTATIME | MOUNT_ATTR_RDONLY
    assert opts.attr_clr == MOUNT_ATTR__ATIME


@pytest.mark.parametrize(("words", "where"), [
    (["rbind", "frobnicate"], "mounts[0].options"),
    (["rbind", "tmpcopyup"], "mounts[0].options"),
])
def test_check_refuses_what_would_be_lost_or_is_not_done(words: list[str], where: str) -> None:
    with pytest.raises(SpecError) as info:
        check(tuple(words), "mounts[0]")
    assert info.value.field == where


def test_check_passes_data_words_of_a_filesystem_mount() -> None:
    assert check(("size=1m", "mode=700", "nosuid"), "mounts[0]").data == "size=1m,mode=700"


def test_idmap_words_are_no_filesystem_data() -> None:
    opts = parse(["rbind", "ridmap"])
    assert opts.data == "" and opts.flags == MS_BIND | MS_REC
