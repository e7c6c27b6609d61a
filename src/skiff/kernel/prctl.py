"""prctl(2) for a lean, long-lived process, through the `_ctypes` C extension alone.

The `ctypes` package loads `os`, `struct` and `types` and builds its whole family of C
types: about 600 KB of a container monitor whose budget is 2.7 MB. A monitor needs one
call, PR_SET_CHILD_SUBREAPER, so this module defines only the two C types and the one
function pointer that call takes, on top of `_ctypes` itself (about 150 KB), and imports
nothing else; `kernel.ffi` builds the rest of what `kernel.syscall` needs on these. Errors raise `KernelError`, imported
only then (errors.py loads `os`).
"""

from __future__ import annotations

import _ctypes

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
_RTLD_NOW = 2


class _Int(_ctypes._SimpleCData):
    _type_ = "i"


class _ULong(_ctypes._SimpleCData):
    _type_ = "L"


class _Libc:
    _handle = _ctypes.dlopen("libc.so.6", _RTLD_NOW)


class _CFunction(_ctypes.CFuncPtr):
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _Int


# (the pair CFuncPtr takes is a name and anything with a `_handle`: a CDLL, or this class)
_prctl = _CFunction(("prctl", _Libc))  # type: ignore[arg-type]
_prctl.argtypes = (_Int, _ULong, _ULong, _ULong, _ULong)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret = int(_prctl(option, arg2, arg3, arg4, arg5))
    if ret < 0:
        from skiff.errors import KernelError
        raise KernelError("prctl", _ctypes.get_errno(), detail=f"(option {option})")
    return ret


def set_child_subreaper() -> None:
    """Orphans among our descendants become our children (we can wait for them)."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def is_child_subreaper() -> bool:
    flag = _Int()
    prctl(PR_GET_CHILD_SUBREAPER, _ctypes.addressof(flag))
    return bool(flag.value)
