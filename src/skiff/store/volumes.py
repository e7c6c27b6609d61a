"""The local volume driver's store: one folder per volume, laid out as Docker's.

A volume `name` is ``<root>/volumes/<name>/``: its data in ``_data`` (what containers see)
and its metadata in ``volume.json`` (driver, labels, driver options, creation time, whether
it is anonymous). The metadata lives beside the data rather than in the engine's SQLite
file because the store may not import the engine (layers point down only), because a
volume is then one self-contained folder (copy it, and its labels go with it, as Docker's
``opts.json`` goes with its folder), and because there is no query across volumes that a
table would make faster. A volume comes into being whole: its folder is made under a
temporary name, its metadata written and fsynced, then renamed into place in one step —
the rename fails if the name exists, which is what makes two creates of one name safe. A
removal renames the folder away first (to a dot-name no volume can have) and then empties
it, so a crash half-way leaves no half-volume under the real name; `sweep` clears such
leftovers. Names follow Docker's rule (``[a-zA-Z0-9][a-zA-Z0-9_.-]+``, errors in moby's
words); anonymous volumes get 64-hex names.
"""

from __future__ import annotations

import os
import re
import shutil
import time

from skiff import jsonfast
from skiff.errors import InvalidArgument, StoreError
from skiff.record import Record
from skiff.store.durable import fsync_dir, write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DRIVER = "local"
NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"  # moby's names.RestrictedNameChars
_NAME = re.compile(NAME_CHARS + "+")
META = "volume.json"
DATA = "_data"
_TRASH = ".trash-"


class VolumeRecord(Record):
    """One volume's metadata as kept in its ``volume.json``."""

    name: str
    created: str                      # RFC 3339, seconds, local time with offset (Docker's)
    labels: dict[str, str] = {}
    options: dict[str, str] = {}      # the local driver's type, device, o
    anonymous: bool = False
    driver: str = DRIVER

    def doc(self) -> dict[str, Any]:
        return {"Name": self.name, "Driver": self.driver, "CreatedAt": self.created,
                "Labels": dict(self.labels), "Options": dict(self.options),
                "Anonymous": self.anonymous}


def check_name(name: str) -> None:
    """moby's local driver validateName."""
    if len(name) == 1:
        raise InvalidArgument("volume name is too short, names should be at least two "
                              "alphanumeric characters")
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f'"{name}" includes invalid characters for a local volume '
                              f'name, only "{NAME_CHARS}" are allowed. If you intended to '
                              f'pass a host directory, use absolute path')


def created_now() -> str:
    """Docker's CreatedAt: ``2026-12-02T01:20:03Z`` style, the local time with its offset."""
    now = time.localtime()
    text = time.strftime("%Y-%m-%dT%H:%M:%S%z", now)
    offset = text[-5:]
    return text[:-5] + ("Z" if offset == "+0000" else f"{offset[:3]}:{offset[3:]}")


def is_mountpoint(path: str) -> bool:
    """Whether something is mounted at `path`, by /proc/self/mountinfo: os.path.ismount
    compares devices and so misses a bind from the same filesystem (``-o o=bind``)."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].replace("\\040", " ") == real for line in f)


def tree_size(path: str) -> int:
    """The bytes of the files below `path` (symlinks counted as themselves)."""
    total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


class VolumeStore:
    """The volumes under ``<root>/volumes``."""

    def __init__(self, root: str) -> None:
        self.dir = os.path.join(root, "volumes")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def data_path(self, name: str) -> str:
        """The volume's Mountpoint: what a container's mount binds."""
        return os.path.join(self.dir, name, DATA)

    def create(self, record: VolumeRecord,
               owner: tuple[int, int] | None = None) -> tuple[VolumeRecord, bool]:
        """Store `record` as a new volume with an empty ``_data`` (0755, `owner`'s when
        given); (the stored record, True) — or (the one already stored under that name,
        False)."""
        check_name(record.name)
        found = self.get(record.name)
        if found is not None:
            return found, False
        os.makedirs(self.dir, 0o701, exist_ok=True)
        tmp = os.path.join(self.dir, f".new-{record.name}-{os.urandom(4).hex()}")
        os.mkdir(tmp, 0o701)
        try:
            os.mkdir(os.path.join(tmp, DATA), 0o755)
            if owner is not None:
                os.chown(os.path.join(tmp, DATA), *owner)
            write_atomic(os.path.join(tmp, META), jsonfast.dumps(record.doc()))
            fsync_dir(tmp)
            try:
                os.rename(tmp, self.path(record.name))
            except OSError:
                found = self.get(record.name)  # made meanwhile by another create
                if found is None:
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
                return found, False
            fsync_dir(self.dir)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise StoreError(f"create volume {record.name}: {e}") from e
        return record, True

    def get(self, name: str) -> VolumeRecord | None:
        if not name or name.startswith(".") or "/" in name:
            return None
        try:
            with open(os.path.join(self.path(name), META), "rb") as f:
                doc = jsonfast.loads(f.read())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise StoreError(f"volume {name}: read its metadata: {e}") from e
        return VolumeRecord(name=name, created=str(doc.get("CreatedAt") or ""),
                            labels=dict(doc.get("Labels") or {}),
                            options=dict(doc.get("Options") or {}),
                            anonymous=bool(doc.get("Anonymous")),
                            driver=str(doc.get("Driver") or DRIVER))

    def names(self) -> list[str]:
        try:
            entries = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        return [n for n in entries if not n.startswith(".")
                and os.path.exists(os.path.join(self.dir, n, META))]

    def all(self) -> list[VolumeRecord]:
        out = []
        for name in self.names():
            record = self.get(name)
            if record is not None:
                out.append(record)
        return out

    def remove(self, name: str) -> None:
        """Take the volume away: renamed out of its name first, then emptied. A volume
        with something mounted on its ``_data`` is refused: emptying it would empty what is
        mounted there (a host folder bound by ``-o o=bind``)."""
        if is_mountpoint(self.data_path(name)):
            raise StoreError(f"remove volume {name}: {self.data_path(name)} is mounted")
        trash = os.path.join(self.dir, f"{_TRASH}{name}-{os.urandom(4).hex()}")
        try:
            os.rename(self.path(name), trash)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StoreError(f"remove volume {name}: {e}") from e
        fsync_dir(self.dir)
        shutil.rmtree(trash, ignore_errors=True)

    def sweep(self) -> None:
        """Clear what a crash left of creates and removals (the dot-named folders)."""
        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for entry in entries:
            path = os.path.join(self.dir, entry)
            if entry.startswith((_TRASH, ".new-")) and \
                    not is_mountpoint(os.path.join(path, DATA)):  # never empty a mount
                shutil.rmtree(path, ignore_errors=True)

    def size(self, name: str) -> int:
        return tree_size(self.data_path(name))
