"""TIOCSWINSZ for a lean process: a terminal's size set through `_ctypes` alone, as
`kernel.prctl` does for its one call (`fcntl` and `termios` would each add a module to a
container monitor whose memory is a goal).

The monitor holds a container's pty master and sets the size a client's terminal has;
the kernel tells the container's foreground process group with SIGWINCH.
"""

from __future__ import annotations

import _ctypes

from skiff.kernel.prctl import _CFunction, _Int, _Libc, _ULong

TIOCSWINSZ = 0x5414  # asm-generic/ioctls.h


class _Winsize(_ctypes._SimpleCData):
    _type_ = "Q"  # struct winsize: four unsigned shorts, 8 bytes


_ioctl = _CFunction(("ioctl", _Libc))  # type: ignore[arg-type]
_ioctl.argtypes = (_Int, _ULong, _ULong)


def set_window_size(fd: int, rows: int, cols: int) -> None:
    """The terminal of `fd` (a pty's master or slave) is now `rows` x `cols`."""
    # ws_row, ws_col, ws_xpixel, ws_ypixel in the host's (little-endian) order
    size = _Winsize((rows & 0xFFFF) | (cols & 0xFFFF) << 16)
    if int(_ioctl(fd, TIOCSWINSZ, _ctypes.addressof(size))) < 0:
        from skiff.errors import KernelError
        raise KernelError("ioctl TIOCSWINSZ", _ctypes.get_errno(), detail=f"(fd {fd})")
