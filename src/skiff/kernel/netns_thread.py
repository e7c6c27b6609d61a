"""Running a piece of code inside another network namespace, from a thread of its own.

A network namespace belongs to a thread, not to a process. `in_new_thread(fn)` runs `fn`
in a short-lived thread of its own (`engine.netns` unshares a new namespace there);
`in_netns(path, fn)` starts such a thread, has it setns() into the namespace kept at
`path` (a bind mount such as ``$SKIFF_RUN/netns/<id>``, or ``/proc/PID/ns/net``) and runs
`fn` there. Either hands back what `fn` returned or raised; the thread then ends, still in
that namespace, so the caller and every other thread never move. What `fn` makes there
stays there: a socket keeps the namespace it was made in for its whole life, which is how
one thread in the host's namespace can serve sockets that listen inside many containers.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, TypeVar

from skiff.errors import KernelError
from skiff.kernel import syscall

T = TypeVar("T")


def in_new_thread(fn: Callable[[], T]) -> T:
    """What `fn` returns when run in a thread of its own, started and joined here (what it
    raises, raised here): for a change to a thread's namespaces that must not stay."""
    result: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            failed.append(e)

    worker = threading.Thread(target=run, name="skiff-ns-thread")
    worker.start()
    worker.join()
    if failed:
        raise failed[0]
    return result[0]


def in_netns(path: str, fn: Callable[[], T]) -> T:
    """What `fn` returns when run in the network namespace at `path` (what it raises, raised
    here; a `KernelError` when the namespace cannot be joined)."""

    def inside() -> T:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise KernelError.from_os("open", e, path) from None
        try:
            syscall.setns(fd, syscall.CLONE_NEWNET, path)
        finally:
            os.close(fd)
        return fn()

    return in_new_thread(inside)
