"""A container's persisted state and the state machine its operations move it through.

Each container owns `<root>/<id>/`: `state.json` (what `create` decided: init pid and its
start time, bundle, cgroup path, the spec), the exec fifo while it waits to be started, and a
lock file that serialises operations on it. The status is never stored: like runc, it is
read off the kernel each time (is init alive — the same process, by start time —, is its
cgroup frozen, does the exec fifo still exist), so a crash can never leave a stale answer.
Which operation may run in which status is one table, `ALLOWED`; anything else is an
`InvalidState` error.
"""

from __future__ import annotations

import fcntl
import os
from skiff.record import Record, field, fields

from skiff.errors import ContainerExists, ContainerNotFound, InvalidState, RuntimeError_
from skiff import jsonfast

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.2.0"
EXEC_FIFO = "exec.fifo"
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.+-")


class Status:
    """The statuses of the OCI runtime spec, as the strings it uses (an enum costs start-up)."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    ALL = (CREATING, CREATED, RUNNING, PAUSED, STOPPED)


S = Status
ALLOWED: dict[str, frozenset[str]] = {
    "start": frozenset({S.CREATED}),
    "kill": frozenset({S.CREATED, S.RUNNING, S.PAUSED}),
    "pause": frozenset({S.RUNNING, S.CREATED}),
    "resume": frozenset({S.PAUSED}),
    "exec": frozenset({S.CREATED, S.RUNNING}),
    "delete": frozenset({S.CREATED, S.STOPPED}),
    "update": frozenset({S.CREATED, S.RUNNING, S.PAUSED}),
    "ps": frozenset({S.CREATED, S.RUNNING, S.PAUSED}),
    "mount": frozenset({S.CREATED, S.RUNNING, S.PAUSED}),  # live_mount: init's namespace lives
}
_HINTS = {
    ("delete", S.RUNNING): "stop it first or use --force",
    ("delete", S.PAUSED): "stop it first or use --force",
    ("start", S.RUNNING): "it is already started",
    ("start", S.STOPPED): "it has already run; delete it and create it again",
    ("resume", S.RUNNING): "it is not paused",
}


def check_move(container_id: str, operation: str, status: str) -> None:
    if status not in ALLOWED[operation]:
        raise InvalidState(container_id, operation, status, _HINTS.get((operation, status), ""))


def validate_id(container_id: str) -> None:
    if (not container_id or len(container_id) > 1024 or not container_id[0].isalnum()
            or not set(container_id) <= _ID_CHARS or ".." in container_id):
        raise RuntimeError_(f"invalid container id {container_id!r}: use letters, digits and _.+-")


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, which tells a process from a later one with its pid;
    None if there is no such process or it is a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = raw[raw.rindex(b")") + 2:].split()
    if rest[0] in (b"Z", b"X"):
        return None
    return int(rest[19])


def remove_tree(path: str) -> None:
    """rm -rf of a state folder (a few files and, for fifos, no links to follow)."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            remove_tree(entry.path)
        else:
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def write_pid_file(path: str, pid: int) -> None:
    """The pid, written whole or not at all (a new file renamed over the old); the temporary
    name is made with O_EXCL and never followed through a symlink."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _frozen(path: str, line: str) -> bool:
    try:
        with open(path) as f:
            return line in f.read().splitlines()
    except FileNotFoundError:
        return False


class _Lock:
    """A lock on the container's lock file, as a `with` block (contextlib costs start-up)."""

    def __init__(self, path: str, container_id: str) -> None:
        self.path = path
        self.container_id = container_id
        self.fd = -1

    def __enter__(self) -> None:
        self.acquire(wait=True)

    def acquire(self, wait: bool) -> bool:
        """Take the lock; without `wait`, False if someone holds it."""
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            raise ContainerNotFound(self.container_id) from None
        try:
            # a POSIX lock, not flock: it belongs to this process alone, so the container's
            # init, forked while create holds it, does not keep it held until `start`
            fcntl.lockf(self.fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except (BlockingIOError, PermissionError):
            os.close(self.fd)
            self.fd = -1
            return False
        if os.fstat(self.fd).st_nlink == 0:  # removed while this waited for it
            self.__exit__()
            raise ContainerNotFound(self.container_id)
        return True

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ContainerState(Record, mutable=True):
    id: str
    bundle: str
    rootfs: str
    pid: int
    pid_start: int
    created: str
    cgroup_path: str
    config: dict[str, Any]
    owner: str = ""
    annotations: dict[str, str] = field(factory=dict)
    cgroup_root: str = "/sys/fs/cgroup"
    freezer: list[str] | None = None  # (file, line) of the cgroup's freezer: see Cgroup.freezer_probe
    # the cgroup's cgroup.procs files (Cgroup.procs_files), which exec writes its process's
    # pid to; None in a state saved before they were kept (exec then loads the driver)
    cgroup_procs: list[str] | None = None

    def alive(self) -> bool:
        return self.pid > 0 and process_start_time(self.pid) == self.pid_start

    def oci(self, status: str) -> dict[str, Any]:
        """The state document of the OCI runtime spec (what `state` prints and hooks read)."""
        doc: dict[str, Any] = {
            "ociVersion": OCI_VERSION, "id": self.id, "pid": self.pid if status != S.STOPPED else 0,
            "status": status, "bundle": self.bundle, "rootfs": self.rootfs,
            "created": self.created, "owner": self.owner,
        }
        if self.annotations:
            doc["annotations"] = self.annotations
        return doc


class StateStore:
    """The folder of containers of one runtime root (`--root`)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def dir(self, container_id: str) -> str:
        validate_id(container_id)
        return os.path.join(self.root, container_id)

    def ids(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [n for n in names if not n.startswith(".")
                and os.path.exists(os.path.join(self.root, n, "state.json"))]

    def make_dir(self, container_id: str) -> str:
        path = self.dir(container_id)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise ContainerExists(container_id) from None
        return path

    def remove_dir(self, container_id: str) -> None:
        """The folder is first renamed out of the way, so that a process about to take the
        lock cannot make a new lock file in it while it is emptied (the rmdir would fail):
        it finds no container instead. A crash between leaves a hidden name `ids` skips."""
        path = self.dir(container_id)
        doomed = os.path.join(self.root, f".{container_id}.{os.getpid()}.removing")
        try:
            os.rename(path, doomed)
        except FileNotFoundError:
            return
        remove_tree(doomed)

    def locked(self, container_id: str) -> "_Lock":
        """Hold the container's lock: two operations on one container never interleave."""
        return _Lock(os.path.join(self.dir(container_id), "lock"), container_id)

    def save(self, st: ContainerState) -> None:
        path = os.path.join(self.dir(st.id), "state.json")
        tmp = path + ".tmp"
        # 0600: the config may hold secrets in its env, as runc keeps its state.json
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with open(fd, "w") as f:
            f.write(jsonfast.dumps(st.__dict__))
        os.replace(tmp, path)

    def load(self, container_id: str) -> ContainerState:
        try:
            with open(os.path.join(self.dir(container_id), "state.json")) as f:
                raw = jsonfast.loads(f.read())
        except FileNotFoundError:
            raise ContainerNotFound(container_id) from None
        known = {f.name for f in fields(ContainerState)}  # a newer or older skiff's extras
        return ContainerState(**{k: v for k, v in raw.items() if k in known})

    def fifo(self, container_id: str) -> str:
        return os.path.join(self.dir(container_id), EXEC_FIFO)

    def status(self, st: ContainerState) -> str:
        """Read the status off the kernel: is init alive, is its cgroup frozen (one file,
        named at create by the cgroup driver), is the exec fifo still there."""
        if not st.alive():
            return S.STOPPED
        if st.freezer and _frozen(*st.freezer):
            return S.PAUSED
        if os.path.exists(self.fifo(st.id)):
            return S.CREATED
        return S.RUNNING
