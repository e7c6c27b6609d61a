"""`run`: create and start in one go; in the foreground, wait and return the exit code,
then delete the container (as `runc run` does unless `--detach`)."""

from __future__ import annotations


from skiff.runtime.create import CreateOptions, create
from skiff.runtime.delete import delete
from skiff.runtime.foreground import wait_for
from skiff.runtime.container import Container
from skiff.runtime.start import poststart
from skiff.runtime.state import StateStore


def run(store: StateStore, container_id: str, opts: CreateOptions, detach: bool = False,
        keep: bool = False) -> int:
    opts.relay_terminal = not detach and not opts.console_socket
    opts.start_at_once = True  # no exec fifo round trip: nobody can see it between the two
    st = create(store, container_id, opts)
    terminal = opts.terminal
    poststart(Container(store, st))
    if detach:
        return 0
    code = wait_for(st.pid, terminal)  # type: ignore[arg-type]
    if not keep:
        delete(store, container_id, force=True)
    return code
