"""Undo what a half-done operation made, newest first, when it fails.

`create` registers an undo the moment it makes each resource (state folder, cgroup, init
process, …); if anything later fails, the undos run in reverse order and the original
error goes on, never masked by a failing undo (that one is logged). On success
`commit()` forgets them. This is contextlib.ExitStack's job, kept here in a few lines
because contextlib (with functools and collections) costs `run` a few ms of start-up.
"""

from __future__ import annotations

from skiff.log import logger

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import Any, Callable

log = logger("skiff.runtime")


class Rollback:
    def __init__(self) -> None:
        self._undo: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def push(self, fn: Callable[..., Any], *args: Any) -> None:
        self._undo.append((fn, args))

    def commit(self) -> None:
        self._undo.clear()

    def __enter__(self) -> Rollback:
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        while self._undo:
            fn, args = self._undo.pop()
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - the first failure is the one to report
                log.warning("rollback: %s: %s", getattr(fn, "__qualname__", fn), e)
