"""`run`: create and start in one go; in the foreground, wait and return the exit code,
then delete the container (as `runc run` does unless `--detach`)."""

from __future__ import annotations

import contextlib

from skiff.errors import SkiffError
from skiff.runtime.create import CreateOptions, create
from skiff.runtime.delete import delete
from skiff.runtime.foreground import wait_for
from skiff.runtime.start import start
from skiff.runtime.state import StateStore


def run(store: StateStore, container_id: str, opts: CreateOptions, detach: bool = False,
        keep: bool = False) -> int:
    opts.relay_terminal = not detach and not opts.console_socket
    st = create(store, container_id, opts)
    terminal = opts.terminal
    try:
        start(store, container_id)
    except SkiffError:
        with contextlib.suppress(SkiffError):
            delete(store, container_id, force=True)
        raise
    if detach:
        return 0
    code = wait_for(st.pid, terminal)  # type: ignore[arg-type]
    if not keep:
        delete(store, container_id, force=True)
    return code
