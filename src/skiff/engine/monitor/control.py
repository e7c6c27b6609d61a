"""The attach socket's protocol: what skiffd sends a container's monitor for its stdin and
its terminal, in small frames.

A connection to ``<bundle>/attach.sock`` carries frames from skiffd to the monitor, each a
5-byte header — one kind byte and the payload's length (uint32, big-endian) — and the
payload; the monitor sends nothing back. Kinds:

- ``i`` (STDIN): the payload goes to the container's stdin (its pipe, or the pty);
- ``w`` (RESIZE): 4 bytes, rows and columns (uint16 each, big-endian): TIOCSWINSZ on the
  pty's master, so the container sees SIGWINCH and the new size;
- ``c`` (CLOSE): the container's stdin ends (its pipe is closed: the program reads EOF).
  skiffd sends it when Docker would close it (StdinOnce: the attach that held stdin ended
  its input); a connection that just ends closes nothing, so several attachers may come
  and go.

Built-in modules only: the monitor loads this.
"""

from __future__ import annotations

STDIN, RESIZE, CLOSE = b"i", b"w", b"c"
KINDS = (STDIN, RESIZE, CLOSE)
HEADER = 5
MAX_PAYLOAD = 1 << 20  # a longer frame is a broken peer, not a big write (skiffd sends 64 KiB)


def encode(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + len(payload).to_bytes(4, "big") + payload


def stdin(data: bytes) -> bytes:
    return encode(STDIN, data)


def resize(rows: int, cols: int) -> bytes:
    if not (0 <= rows < 1 << 16 and 0 <= cols < 1 << 16):
        raise ValueError(f"a terminal size is two uint16s, not {rows}x{cols}")
    return encode(RESIZE, rows.to_bytes(2, "big") + cols.to_bytes(2, "big"))


def close() -> bytes:
    return encode(CLOSE)


def size_of(payload: bytes) -> tuple[int, int]:
    """(rows, cols) of a RESIZE frame's payload."""
    if len(payload) != 4:
        raise ValueError(f"a resize frame carries 4 bytes, not {len(payload)}")
    return int.from_bytes(payload[:2], "big"), int.from_bytes(payload[2:], "big")


class Decoder:
    """Frames out of a connection's bytes, in pieces of any size; ValueError for a frame
    that cannot be one (unknown kind, or longer than MAX_PAYLOAD): drop the peer."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        buf = self.buffer + data
        frames = []
        while len(buf) >= HEADER:
            kind = buf[:1]
            size = int.from_bytes(buf[1:HEADER], "big")
            if kind not in KINDS or size > MAX_PAYLOAD:
                raise ValueError(f"not a control frame: kind {kind!r}, {size} bytes")
            if len(buf) < HEADER + size:
                break
            frames.append((kind, buf[HEADER:HEADER + size]))
            buf = buf[HEADER + size:]
        self.buffer = buf
        return frames
