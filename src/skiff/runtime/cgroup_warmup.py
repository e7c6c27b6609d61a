"""Pay the kernel's cgroup-migration toll while Python is still starting.

Moving a process into a cgroup takes a global, per-CPU read-mostly lock for writing; when
no migration happened for a while, the first writer waits out a whole RCU grace period
(10–20 ms on these VMs, the largest single cost of `skiff-runtime run` and `exec`), and
writers that follow within about one more grace period pass at once. So `create`, `run`
and `exec` start, in a thread, a migration that moves nothing: this process into the cgroup
it is already in, in the cgroup2 hierarchy. It waits out the grace period while the main
thread imports and reads the bundle, and the container's process is then moved without
waiting. If the write is refused (no cgroup2, no permission), nothing is lost but the head
start. The earlier it starts the more it hides, so `skiff-runtime` starts it before it
imports anything else (`runtime.launcher`), and this module imports only built-in modules
(no `os`, no `__future__`: ~1.5 ms of imports that would come first).
"""

import _thread
import posix

_UNIFIED_MOUNTS = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")


def _move_self_in_place() -> None:
    try:
        with open("/proc/self/cgroup") as f:
            path = next(line.rstrip("\n")[3:] for line in f if line.startswith("0::"))
        pid = str(posix.getpid()).encode()
        for mount in _UNIFIED_MOUNTS:
            try:
                # no O_CREAT: on a v1 or hybrid host /sys/fs/cgroup is a tmpfs, where a
                # missing cgroup.procs would be made as a plain file
                fd = posix.open(f"{mount}{path.rstrip('/')}/cgroup.procs",
                                posix.O_WRONLY | posix.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                posix.write(fd, pid)
            finally:
                posix.close(fd)
            return
    except (OSError, StopIteration):
        pass


def start() -> None:
    _thread.start_new_thread(_move_self_in_place, ())
