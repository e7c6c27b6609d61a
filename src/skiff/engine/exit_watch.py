"""Learning, without polling, that a container's monitor has ended.

A monitor writes the container's exit file and then exits, so the end of the monitor
process is the moment the exit is known. `ExitWatcher` holds a pidfd per watched monitor in
one epoll set and one thread waits on it: a pidfd becomes readable when its process ends,
whoever its parent is (the monitors are detached, not skiffd's children), so skiffd hears
of an exit within microseconds and costs nothing while containers run. Watching a monitor
that is already gone reports it at once. A pid is only taken for the monitor when its
command line says it is that container's monitor (`monitor_alive`), so a pid reused by
another process is never waited on.
The callback runs on the watcher's thread (or the caller's, for a monitor already gone);
it must not block for long.
"""

from __future__ import annotations

import os
import select
import threading

from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_log = logger("skiff.engine.exit_watch")


class ExitWatcher:
    """Calls `on_exit(container_id, monitor_pid)` once per watched monitor, when it ends."""

    def __init__(self, on_exit: Callable[[str, int], None]) -> None:
        self.on_exit = on_exit
        self._lock = threading.Lock()
        self._epoll: select.epoll | None = None
        self._wake_r = self._wake_w = -1
        self._watched: dict[int, tuple[str, int]] = {}  # pidfd → (container, monitor pid)
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, container_id: str, monitor_pid: int) -> None:
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
        with self._lock:
            if self._closed:
                os.close(pidfd)
                return
            epoll = self._start()
            self._watched[pidfd] = (container_id, monitor_pid)
            epoll.register(pidfd, select.EPOLLIN)

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
                with self._lock:
                    found = self._watched.pop(fd, None)
                    if found is not None:
                        epoll.unregister(fd)
                        os.close(fd)
                if found is not None:
                    self._report(*found)

    def _report(self, container_id: str, monitor_pid: int) -> None:
        try:
            self.on_exit(container_id, monitor_pid)
        except Exception as e:  # noqa: BLE001 - one container's trouble must not stop the rest
            _log.error("container %s: handling its exit failed: %s", container_id, e)
