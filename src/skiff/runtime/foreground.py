"""Stay with a container process until it exits: forward signals, relay its terminal, and
return its exit code the shell way (128 + signal number when a signal killed it).

`run` and `exec` without `-d` end here. The process is our child (we are its subreaper),
so waitpid gives its real status.
"""

from __future__ import annotations

import os

from skiff.kernel import signals

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    import socket


_FORWARDED = (signals.SIGHUP, signals.SIGINT, signals.SIGQUIT, signals.SIGTERM, signals.SIGUSR1,
              signals.SIGUSR2, signals.SIGCONT, signals.SIGWINCH)


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def wait_for(pid: int, terminal: socket.socket | None = None) -> int:
    def forward(sig: int, _frame: object) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    saved = {s: signals.set_handler(s, forward) for s in _FORWARDED if s != signals.SIGWINCH}
    result: list[int] = []

    def done() -> bool:
        if not result:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                result.append(status)
        return bool(result)

    try:
        if terminal is not None:
            from skiff.runtime import console
            master = console.receive_master(terminal)
            terminal.close()
            try:
                console.relay(master, done)
            finally:
                os.close(master)
        while not result:
            try:
                _, status = os.waitpid(pid, 0)
                result.append(status)
            except InterruptedError:
                continue
            except ChildProcessError:
                result.append(255 << 8)
    finally:
        for s, h in saved.items():
            signals.set_handler(s, h)
    return exit_code(result[0])
