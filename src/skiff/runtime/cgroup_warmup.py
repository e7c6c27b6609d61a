"""Pay the kernel's cgroup-migration toll while Python is still starting.

Moving a process into a cgroup takes a global, per-CPU read-mostly lock for writing; when
no migration happened for a while, the first writer waits out a whole RCU grace period
(10–20 ms on these VMs, the largest single cost of `skiff-runtime run` and `exec`), and
the kernel keeps the lock on its fast path for writers until a grace period has passed
with none. So `create`, `run` and `exec` start, in a thread, a migration that moves
nothing: this process into the cgroup it is already in, in the cgroup2 hierarchy. It waits
out the grace period while the main thread imports and reads the bundle, and the
container's process is then moved without waiting — if the lock is still on its fast
path by then. It may not be: a command whose own move comes more than a grace period
after the thread's (exec's comes ~10 ms after it, create's ~20 ms, and the thread's
returns at once when another process warmed the lock a moment before) would wait all
over again. So `start(hold)` has the thread repeat the no-op every few milliseconds for
`hold` seconds (the command's `os._exit` ends it sooner), each one a few microseconds of
the lock. If the write is refused (no cgroup2, no permission), nothing is lost but the
head start. The earlier it starts the more it hides, so `skiff-runtime` starts it before
it imports anything else (`runtime.launcher`), and this module imports only built-in
modules (no `os`, no `__future__`: ~1.5 ms of imports that would come first).
"""

import _thread
import posix
import time

_UNIFIED_MOUNTS = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
# well below a grace period (>= ~10 ms here), so that the lock stays on its fast path even
# when the thread waits a GIL switch interval (5 ms) to run again
_REPEAT_EVERY = 0.002


def _own_procs_file() -> int:
    """An fd open for writing on our cgroup2 cgroup's cgroup.procs, or -1."""
    with open("/proc/self/cgroup") as f:
        path = next(line.rstrip("\n")[3:] for line in f if line.startswith("0::"))
    for mount in _UNIFIED_MOUNTS:
        try:
            # no O_CREAT: on a v1 or hybrid host /sys/fs/cgroup is a tmpfs, where a
            # missing cgroup.procs would be made as a plain file
            return posix.open(f"{mount}{path.rstrip('/')}/cgroup.procs",
                              posix.O_WRONLY | posix.O_CLOEXEC)
        except FileNotFoundError:
            continue
    return -1


def _move_self_in_place(hold: float) -> None:
    try:
        fd = _own_procs_file()
        if fd < 0:
            return
        try:
            pid = str(posix.getpid()).encode()
            posix.write(fd, pid)
            until = time.monotonic() + hold
            while time.monotonic() < until:
                time.sleep(_REPEAT_EVERY)
                posix.write(fd, pid)
        finally:
            posix.close(fd)
    except (OSError, StopIteration):
        pass


def start(hold: float = 0.0) -> None:
    """Start the no-op migration in a thread, repeated for `hold` seconds."""
    _thread.start_new_thread(_move_self_in_place, (hold,))
