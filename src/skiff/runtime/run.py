"""`run`: create and start in one go; in the foreground, wait and return the exit code,
then delete the container (as `runc run` does unless `--detach`)."""

from __future__ import annotations

import contextlib
import socket

from skiff.errors import SkiffError
from skiff.runtime.create import CreateOptions, create
from skiff.runtime.delete import delete
from skiff.runtime.foreground import wait_for
from skiff.runtime.start import start
from skiff.runtime.state import StateStore


def run(store: StateStore, container_id: str, opts: CreateOptions, detach: bool = False,
        keep: bool = False) -> int:
    ours: socket.socket | None = None
    if not detach and not opts.console_socket:
        # a terminal is relayed by us: the container gets one end of a pair
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        opts.terminal_sock = theirs
    try:
        st = create(store, container_id, opts)
    finally:
        if opts.terminal_sock is not None:
            opts.terminal_sock.close()  # type: ignore[attr-defined]
    terminal = ours if st.config.get("process", {}).get("terminal") else None
    if terminal is None and ours is not None:
        ours.close()
    try:
        start(store, container_id)
    except SkiffError:
        with contextlib.suppress(SkiffError):
            delete(store, container_id, force=True)
        raise
    if detach:
        return 0
    code = wait_for(st.pid, terminal)
    if not keep:
        delete(store, container_id, force=True)
    return code
