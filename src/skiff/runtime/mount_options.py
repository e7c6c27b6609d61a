"""config.json mount options, read into mount(2) flags, propagation and filesystem data.

The option words are those of mount(8) and runc: flag words set or clear bits, propagation
words (`rprivate`, `shared`, …) become a separate mount call, `bind`/`rbind` select a bind
mount, the recursive words of the runtime spec (`rro`, `rnosuid`, …) become one
`mount_setattr(AT_RECURSIVE)` on the new mount, and every other word is passed to the
filesystem as data (`mode=755`, `size=65536k`), as config.md says runtimes SHOULD. `idmap`,
`ridmap` and `tmpcopyup` are no mount(2) word at all: the rootfs builder acts on them. `check`
adds what only the runtime refuses: `tmpcopyup` on anything but a tmpfs, and data words on a
bind mount, which has no filesystem to take them and would drop them.
"""

from __future__ import annotations

from skiff.errors import SpecError
from skiff.record import Record

from skiff.kernel import syscall as sc

# word -> (clear?, flag)
_FLAGS: dict[str, tuple[bool, int]] = {
    "async": (True, sc.MS_SYNCHRONOUS), "atime": (True, sc.MS_NOATIME),
    "bind": (False, sc.MS_BIND), "defaults": (False, 0), "dev": (True, sc.MS_NODEV),
    "diratime": (True, sc.MS_NODIRATIME), "dirsync": (False, sc.MS_DIRSYNC),
    "exec": (True, sc.MS_NOEXEC), "mand": (False, sc.MS_MANDLOCK),
    "noatime": (False, sc.MS_NOATIME), "nodev": (False, sc.MS_NODEV),
    "nodiratime": (False, sc.MS_NODIRATIME), "noexec": (False, sc.MS_NOEXEC),
    "nomand": (True, sc.MS_MANDLOCK), "norelatime": (True, sc.MS_RELATIME),
    "nostrictatime": (True, sc.MS_STRICTATIME), "nosuid": (False, sc.MS_NOSUID),
    "rbind": (False, sc.MS_BIND | sc.MS_REC), "relatime": (False, sc.MS_RELATIME),
    "remount": (False, sc.MS_REMOUNT), "ro": (False, sc.MS_RDONLY), "rw": (True, sc.MS_RDONLY),
    "strictatime": (False, sc.MS_STRICTATIME), "suid": (True, sc.MS_NOSUID),
    "sync": (False, sc.MS_SYNCHRONOUS), "lazytime": (False, sc.MS_LAZYTIME),
    "nolazytime": (True, sc.MS_LAZYTIME), "silent": (False, sc.MS_SILENT),
    "loud": (True, sc.MS_SILENT), "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
    "symfollow": (True, sc.MS_NOSYMFOLLOW),
}
_PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
PROPAGATION_WORDS = frozenset(_PROPAGATION)
# the runtime spec's AT_RECURSIVE words: word -> (MOUNT_ATTR_* to set, to clear)
_ATIME = sc.MOUNT_ATTR__ATIME
_RECURSIVE: dict[str, tuple[int, int]] = {
    "rro": (sc.MOUNT_ATTR_RDONLY, 0), "rrw": (0, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (sc.MOUNT_ATTR_NOSUID, 0), "rsuid": (0, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (sc.MOUNT_ATTR_NODEV, 0), "rdev": (0, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (sc.MOUNT_ATTR_NOEXEC, 0), "rexec": (0, sc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (sc.MOUNT_ATTR_NODIRATIME, 0), "rdiratime": (0, sc.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (sc.MOUNT_ATTR_NOSYMFOLLOW, 0), "rsymfollow": (0, sc.MOUNT_ATTR_NOSYMFOLLOW),
    # the atime modes are one field: setting one clears the field first (mount_setattr(2))
    "rnoatime": (sc.MOUNT_ATTR_NOATIME, _ATIME), "ratime": (sc.MOUNT_ATTR_RELATIME, _ATIME),
    "rrelatime": (sc.MOUNT_ATTR_RELATIME, _ATIME), "rnorelatime": (sc.MOUNT_ATTR_RELATIME, _ATIME),
    "rstrictatime": (sc.MOUNT_ATTR_STRICTATIME, _ATIME),
    "rnostrictatime": (sc.MOUNT_ATTR_RELATIME, _ATIME),
}
RECURSIVE_WORDS = frozenset(_RECURSIVE)
# words of the spec's table that skiff does not implement: refused, never passed on as data
# no mount(2) word: RootfsBuilder acts on them (an idmapped bind, a tmpfs's copy-up)
IDMAP_WORDS = frozenset({"idmap", "ridmap"})
RUNTIME_WORDS = IDMAP_WORDS | {"tmpcopyup"}
# flags a bind mount only takes through a second, MS_REMOUNT call
BIND_REMOUNT_FLAGS = (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME
                      | sc.MS_NODIRATIME | sc.MS_RELATIME | sc.MS_STRICTATIME | sc.MS_NOSYMFOLLOW)


class MountOptions(Record):
    flags: int
    propagation: tuple[int, ...]
    data: str
    attr_set: int = 0  # MOUNT_ATTR_* for mount_setattr(AT_RECURSIVE), from the r* words
    attr_clr: int = 0

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)


def parse(options: tuple[str, ...] | list[str]) -> MountOptions:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    attr_set = attr_clr = 0
    for word in options:
        if word in _FLAGS:
            clear, bit = _FLAGS[word]
            flags = flags & ~bit if clear else flags | bit
        elif word in _PROPAGATION:
            propagation.append(_PROPAGATION[word])
        elif word in _RECURSIVE:
            on, off = _RECURSIVE[word]  # a later word wins, as with the flag words
            attr_set = (attr_set & ~off) | on
            attr_clr = (attr_clr & ~on) | off
        elif word and word not in RUNTIME_WORDS:
            data.append(word)
    return MountOptions(flags, tuple(propagation), ",".join(data), attr_set, attr_clr)


def check(options: tuple[str, ...], where: str, fstype: str | None = None) -> MountOptions:
    """`parse`, refusing data words on a bind mount (the kernel ignores a bind's data: a
    word there would be silently lost) and `tmpcopyup` on another filesystem than tmpfs."""
    opts = parse(options)
    if opts.is_bind and opts.data:
        raise SpecError(f"{where}.options", f"unknown option(s) for a bind mount: {opts.data}")
    if "tmpcopyup" in options and (opts.is_bind or fstype != "tmpfs"):
        raise SpecError(f"{where}.options", "tmpcopyup is for a tmpfs mount only")
    return opts


def flag_of(word: str) -> int:
    """The mount flag a word sets or clears (``exec`` and ``noexec`` both give MS_NOEXEC);
    0 for a word that is no flag."""
    return _FLAGS.get(word, (False, 0))[1]


def propagation_flags(word: str) -> int:
    return _PROPAGATION[word]
