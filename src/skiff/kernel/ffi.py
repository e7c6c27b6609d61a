"""libc's functions and the C types of their arguments, on the `_ctypes` C extension alone.

`import ctypes` costs a command about 1.1 ms on top of `_ctypes` itself: it builds its
whole family of C types and loads `struct`, `types` and `_endian`, for runtime verbs
(`exec`, `create`) that call a few libc functions with ints, strings and a handful of
structs. This module defines only those types, under ctypes' own names and as ctypes
defines them (each a `_SimpleCData` of the same type code; `Structure`, `byref`,
`addressof`, `sizeof`, `get_errno` are `_ctypes`' own, which ctypes re-exports), and
`Library`, a loaded library (libc, libseccomp) whose functions are attributes, as a
``ctypes.CDLL(..., use_errno=True)``: a call returns the C result, and `get_errno()` tells
why it failed.
The two types and the function-pointer class a container monitor needs are
`kernel.prctl`'s, which loads nothing else (the monitor's memory is a goal); this module
adds the rest. Apart from `kernel.prctl`, it imports nothing of skiff.
"""

from __future__ import annotations

import _ctypes

from skiff.kernel.prctl import _CFunction as Function
from skiff.kernel.prctl import _Int as c_int
from skiff.kernel.prctl import _ULong as c_ulong

__all__ = ["Function", "Library", "POINTER", "Structure", "addressof", "byref", "c_char_p", "c_int",
           "c_int32", "c_long", "c_size_t", "c_ubyte", "c_uint", "c_uint8", "c_uint16",
           "c_uint32", "c_uint64", "c_ulong", "c_ushort", "c_void_p", "get_errno", "sizeof"]

RTLD_NOW = 2

POINTER = _ctypes.POINTER
Structure = _ctypes.Structure
addressof = _ctypes.addressof
byref = _ctypes.byref
get_errno = _ctypes.get_errno
sizeof = _ctypes.sizeof


def _simple(name: str, code: str) -> type[_ctypes._SimpleCData]:
    """A C type as ctypes defines it: a `_SimpleCData` of the struct-module type `code`."""
    return type(name, (_ctypes._SimpleCData,), {"_type_": code, "__module__": __name__})


c_uint = _simple("c_uint", "I")
c_long = _simple("c_long", "l")
c_ushort = _simple("c_ushort", "H")
c_ubyte = _simple("c_ubyte", "B")
c_char_p = _simple("c_char_p", "z")
c_void_p = _simple("c_void_p", "P")

# the fixed-width names, as ctypes binds them on the LP64 Linux skiff runs on
c_int32 = c_int
c_uint8 = c_ubyte
c_uint16 = c_ushort
c_uint32 = c_uint
c_uint64 = c_size_t = c_ulong


class Library:
    """A C library, opened once; ``lib.name`` is its function `name` (returning a C int
    unless its `restype` is set), made at first use and kept, as a CDLL's are."""

    def __init__(self, soname: str) -> None:
        self._handle = _ctypes.dlopen(soname, RTLD_NOW)

    def __getattr__(self, name: str) -> Function:
        if name.startswith("__"):
            raise AttributeError(name)
        # (CFuncPtr takes a name and anything with a `_handle`)
        func = Function((name, self))  # type: ignore[arg-type]
        setattr(self, name, func)
        return func
