"""Signal numbers, names and handlers, straight from the C module `_signal`.

`import signal` wraps every signal in an IntEnum, which brings in enum, functools and
collections: about 3 ms of a 35 ms `skiff-runtime run`, for numbers the kernel gives as
plain ints anyway. The calls here are `_signal`'s own; `parse` reads a signal the way runc
takes one (`KILL`, `SIGKILL`, `9`) and `name` spells one for a message.
"""

from __future__ import annotations

import _signal
from _signal import (NSIG, SIG_DFL, SIG_IGN, SIGCONT, SIGHUP, SIGINT, SIGKILL,  # noqa: F401
                     SIGPIPE, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGXFSZ,
                     getsignal)
from _signal import signal as set_handler  # noqa: F401

# the names the kernel's own tables use first, where _signal has aliases too
_ALIASES = {"SIGIOT", "SIGCLD", "SIGPOLL"}
_BY_NAME = {k: v for k, v in vars(_signal).items()
            if k.startswith("SIG") and not k.startswith("SIG_") and isinstance(v, int)}
_BY_NUMBER = {v: k for k, v in _BY_NAME.items() if k not in _ALIASES and not k.startswith("SIGRT")}


def unignore_all() -> None:
    """Put every ignored signal back to its default, at the kernel: execve keeps ignored
    signals, and a container's program must not start with what its runtime's parents
    happened to ignore (Python itself ignores SIGPIPE and SIGXFSZ; a shell or CI runner may
    ignore more, glibc's own 32 and 33 among them, which `signal.signal` cannot touch)."""
    from skiff.kernel import ffi  # (already loaded by kernel.syscall; named here for the call)
    from skiff.kernel.syscall import SYSCALL_NUMBERS, libc
    try:
        with open("/proc/self/status") as f:
            mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    except (OSError, StopIteration):
        return
    number = SYSCALL_NUMBERS["rt_sigaction"]
    default = (ffi.c_ulong * 4)()  # struct kernel_sigaction: handler 0 (SIG_DFL), flags, restorer, mask
    for sig in range(1, 65):
        if mask & (1 << (sig - 1)):
            libc.syscall(number, sig, ffi.byref(default), None, 8)


def name(sig: int) -> str:
    if sig in _BY_NUMBER:
        return _BY_NUMBER[sig]
    low, high = _BY_NAME["SIGRTMIN"], _BY_NAME["SIGRTMAX"]
    return f"SIGRTMIN+{sig - low}" if low <= sig <= high else f"signal {sig}"


def parse(text: str) -> int:
    """A signal given as a number, `KILL` or `SIGKILL` (any case); ValueError otherwise."""
    if text.isdigit():
        num = int(text)
        if 0 < num < NSIG:
            return num
    else:
        key = text.upper() if text.upper().startswith("SIG") else "SIG" + text.upper()
        if key in _BY_NAME:
            return _BY_NAME[key]
    raise ValueError(f"unknown signal {text!r}")
