"""Detach keys: the key sequence that ends an attached stream while the container (or exec
process) goes on, in Docker's notation, and the scanner that watches a client's input for it.

The notation is moby/term's ``ToBytes``: comma-separated keys, each one character taken as
itself or a name ``ctrl-@``, ``ctrl-a`` … ``ctrl-z``, ``ctrl-[``, ``ctrl-\\``, ``ctrl-]``,
``ctrl-^``, ``ctrl-_`` (any case); Docker's default is ``ctrl-p,ctrl-q``. `parse` turns the
text into bytes, or raises `InvalidArgument` with dockerd's words ("Invalid detach keys (x)
provided", a 400). The daemon watches for them only on a TTY's input (moby's copyEscapable:
without a TTY the bytes are data), and the keys never reach the container.

`DetachScanner` is fed the client's input in whatever pieces it arrives and gives back what
may go on to the container: bytes that could begin the sequence are held until the next byte
tells, then given back if they did not complete it (as moby's escape proxy does, but across
reads of any size rather than one key per read). `API`: ``keys = parse(text or "")``;
``scanner = DetachScanner(keys)``; ``data, detached = scanner.feed(chunk)``; at the input's
end ``scanner.flush()`` gives the held bytes back.
"""

from __future__ import annotations

from skiff.errors import InvalidArgument

DEFAULT = b"\x10\x11"  # ctrl-p, ctrl-q
_NAMED = {"ctrl-@": 0, **{f"ctrl-{chr(ord('a') + i)}": i + 1 for i in range(26)},
          "ctrl-[": 27, "ctrl-\\": 28, "ctrl-]": 29, "ctrl-^": 30, "ctrl-_": 31}


def to_bytes(keys: str) -> bytes:
    """moby/term's ToBytes: ValueError("Unknown character: 'x'") for a key it cannot name."""
    codes = bytearray()
    for key in keys.split(","):
        raw = key.encode("utf-8")
        if len(raw) == 1:  # Go's len: bytes, so "é" is a name (and unknown)
            codes += raw
        elif key.lower() in _NAMED:
            codes.append(_NAMED[key.lower()])
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


def parse(keys: str) -> bytes:
    """The detach sequence of an API request's ``detachKeys`` (or a container's
    Config.DetachKeys); "" is Docker's default ctrl-p,ctrl-q."""
    if not keys:
        return DEFAULT
    try:
        return to_bytes(keys)
    except ValueError:
        raise InvalidArgument(f"Invalid detach keys ({keys}) provided") from None


class DetachScanner:
    """Watches a stream for `keys`; `feed` answers (what to pass on, whether it was hit)."""

    def __init__(self, keys: bytes = DEFAULT) -> None:
        if not keys:
            raise ValueError("a detach sequence has at least one key")
        self.keys = keys
        self.held = b""  # a prefix of `keys` seen at the end of the input so far

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The part of `data` (with bytes held before) that is the container's, and True
        once the sequence is complete (what follows it is dropped: the stream ends)."""
        keys, first = self.keys, self.keys[0]
        start = 0 if self.held else data.find(first)
        if start < 0:
            return data, False  # nothing that could begin the sequence: the usual case
        out = bytearray(data[:start])
        held = self.held
        for byte in data[start:]:
            held += bytes((byte,))
            if held == keys:
                self.held = b""
                return bytes(out), True
            # keep the longest tail of what is held that may still grow into the sequence
            cut = 0
            while not keys.startswith(held[cut:]):
                cut += 1
            out += held[:cut]
            held = held[cut:]
        self.held = held
        return bytes(out), False

    def flush(self) -> bytes:
        """The bytes held at the input's end: they were the container's after all."""
        held, self.held = self.held, b""
        return held
