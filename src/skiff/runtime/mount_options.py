"""config.json mount options, read into mount(2) flags, propagation and filesystem data.

The option words are those of mount(8) and runc: flag words set or clear bits, propagation
words (`rprivate`, `shared`, …) become a separate mount call, `bind`/`rbind` select a bind
mount, and every other word is passed to the filesystem as data (`mode=755`, `size=65536k`).
"""

from __future__ import annotations

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
# flags a bind mount only takes through a second, MS_REMOUNT call
BIND_REMOUNT_FLAGS = (sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME
                      | sc.MS_NODIRATIME | sc.MS_RELATIME | sc.MS_STRICTATIME | sc.MS_NOSYMFOLLOW)


class MountOptions(Record):
    flags: int
    propagation: tuple[int, ...]
    data: str

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)


def parse(options: tuple[str, ...] | list[str]) -> MountOptions:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for word in options:
        if word in _FLAGS:
            clear, bit = _FLAGS[word]
            flags = flags & ~bit if clear else flags | bit
        elif word in _PROPAGATION:
            propagation.append(_PROPAGATION[word])
        elif word:
            data.append(word)
    return MountOptions(flags, tuple(propagation), ",".join(data))


def flag_of(word: str) -> int:
    """The mount flag a word sets or clears (``exec`` and ``noexec`` both give MS_NOEXEC);
    0 for a word that is no flag."""
    return _FLAGS.get(word, (False, 0))[1]


def propagation_flags(word: str) -> int:
    return _PROPAGATION[word]
