"""Learning, without polling, that a container's run has ended.

A monitor writes the container's exit file (renaming it into place whole), then tidies up —
it deletes the runtime container, whose cgroup takes milliseconds to go — and exits.
`ExitWatcher` hears of both moments from one thread waiting on one epoll set: an inotify
watch on the folder of the exit file reports the file's arrival (the early moment, which
is what `docker run --rm` waits for), and a pidfd per monitor reports the monitor's end —
a pidfd becomes readable when its process ends, whoever its parent is (the monitors are
detached, not skiffd's children) — which is the only news of a monitor killed before it
could write anything. Nothing polls, and nothing costs while containers run. A run is
reported once per moment; the callback tells a second report from a first (by the
monitor pid the state holds). Watching a monitor that is already gone, or whose exit file
is there already, reports it at once. A pid is only taken for the monitor when its command
line says it is that container's monitor (`monitor_alive`), so a pid reused by another
process is never waited on. The callback runs on the watcher's thread (or the caller's,
for a run already over); it must not block for long. The same folder watch also tells
`on_file(container_id, monitor_pid, name)` when a monitor rewrites one of the files of
`NEWS` (a restart's record, the health state), as often as it does, until the run ends.
"""

from __future__ import annotations

import os
import select
import threading

from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from skiff.kernel.inotify import Inotify

_log = logger("skiff.engine.exit_watch")
EXIT_FILE = "exit.json"
NEWS = ("runs.jsonl", "health.json")  # what a monitor tells while its container runs


class ExitWatcher:
    """Calls `on_exit(container_id, monitor_pid)` when a watched run's exit file arrives
    and when its monitor ends."""

    def __init__(self, on_exit: Callable[[str, int], None],
                 on_file: Callable[[str, int, str], None] | None = None) -> None:
        self.on_exit = on_exit
        self.on_file = on_file
        self._lock = threading.Lock()
        self._epoll: select.epoll | None = None
        self._inotify: Inotify | None = None
        self._wake_r = self._wake_w = -1
        self._watched: dict[int, tuple[str, int]] = {}  # pidfd → (container, monitor pid)
        self._folders: dict[int, tuple[str, int]] = {}  # inotify wd → the same
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, container_id: str, monitor_pid: int, folder: str | None = None) -> None:
        """Watch the run of `container_id` under `monitor_pid`; `folder` holds its exit
        file (without one, only the monitor's end is reported)."""
        from skiff.engine.monitor.launch import monitor_alive

        try:
            pidfd = os.pidfd_open(monitor_pid)
        except OSError:
            pidfd = -1
        if pidfd >= 0 and not monitor_alive(monitor_pid, container_id):
            os.close(pidfd)
            pidfd = -1
        if pidfd < 0:
            self._report(container_id, monitor_pid)
            return
        run = (container_id, monitor_pid)
        with self._lock:
            if self._closed:
                os.close(pidfd)
                return
            epoll = self._start()
            self._watched[pidfd] = run
            epoll.register(pidfd, select.EPOLLIN)
            watching_folder = folder is not None and self._watch_folder(folder, run)
        if watching_folder and folder is not None and \
                os.path.exists(os.path.join(folder, EXIT_FILE)):
            self._report(*run)  # it ended before the watch was in place

    def _watch_folder(self, folder: str, run: tuple[str, int]) -> bool:
        # under the lock
        from skiff.errors import KernelError
        from skiff.kernel import inotify

        if self._inotify is None:
            try:
                self._inotify = inotify.Inotify()
            except KernelError as e:
                _log.warning("no inotify (%s): exits are known when monitors end", e)
                return False
            assert self._epoll is not None
            self._epoll.register(self._inotify.fileno(), select.EPOLLIN)
        try:
            wd = self._inotify.add_watch(folder, inotify.IN_MOVED_TO | inotify.IN_CLOSE_WRITE
                                         | inotify.IN_ONLYDIR)
        except KernelError as e:
            _log.warning("watch %s: %s", folder, e)
            return False
        self._folders[wd] = run
        return True

    def watching(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._watched.values())

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if self._wake_w >= 0:
                os.write(self._wake_w, b"x")
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        with self._lock:
            for pidfd in self._watched:
                os.close(pidfd)
            self._watched.clear()
            self._folders.clear()
            if self._inotify is not None:
                self._inotify.close()
                self._inotify = None
            if self._epoll is not None:
                self._epoll.close()
                self._epoll = None
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    os.close(fd)
            self._wake_r = self._wake_w = -1

    def _start(self) -> select.epoll:
        # under the lock
        if self._epoll is None:
            self._epoll = select.epoll()
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._epoll.register(self._wake_r, select.EPOLLIN)
            self._thread = threading.Thread(target=self._run, name="skiffd-exits",
                                            daemon=True)
            self._thread.start()
        return self._epoll

    def _run(self) -> None:
        epoll = self._epoll
        assert epoll is not None
        while True:
            try:
                events = epoll.poll()
            except OSError:
                return  # closed under us
            for fd, _ in events:
                if fd == self._wake_r:
                    with self._lock:
                        if self._closed:
                            return
                    continue
                for run, name in self._take(fd):
                    if name == EXIT_FILE:
                        self._report(*run)
                    elif self.on_file is not None:
                        self._tell(*run, name)

    def _take(self, fd: int) -> list[tuple[tuple[str, int], str]]:
        """The runs an event on `fd` reports, with the file that came (the watches of
        ended runs removed)."""
        with self._lock:
            inotify, epoll = self._inotify, self._epoll
            if inotify is not None and fd == inotify.fileno():
                runs = []
                for event in inotify.read(0):
                    run = self._folders.get(event.wd)
                    if run is not None and event.name == EXIT_FILE:
                        del self._folders[event.wd]
                        inotify.remove_watch(event.wd)
                        runs.append((run, EXIT_FILE))
                    elif run is not None and event.name in NEWS:
                        runs.append((run, event.name))
                return runs
            run = self._watched.pop(fd, None)
            if run is None or epoll is None:
                return []
            epoll.unregister(fd)
            os.close(fd)
            for wd, other in list(self._folders.items()):
                if other == run and inotify is not None:
                    del self._folders[wd]
                    inotify.remove_watch(wd)
            return [(run, EXIT_FILE)]

    def _tell(self, container_id: str, monitor_pid: int, name: str) -> None:
        assert self.on_file is not None
        try:
            self.on_file(container_id, monitor_pid, name)
        except Exception as e:  # noqa: BLE001 - as _report
            _log.error("container %s: reading its %s failed: %s", container_id, name, e)

    def _report(self, container_id: str, monitor_pid: int) -> None:
        try:
            self.on_exit(container_id, monitor_pid)
        except Exception as e:  # noqa: BLE001 - one container's trouble must not stop the rest
            _log.error("container %s: handling its exit failed: %s", container_id, e)
