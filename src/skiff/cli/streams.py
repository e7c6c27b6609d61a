"""The command's own streams as the commands that move bytes need them: whether a stream is a
terminal (`isatty`: docker refuses to write an archive to one, and tells what `cp` did only
there), the byte stream under a text stream (`binary`: a container's output and archives are
bytes; a stream with no buffer, as tests give, takes them decoded; `binary_input` for stdin), and a raw response copied
to one (`copy_out`)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, TextIO


def isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def binary(stream: TextIO) -> BinaryIO:
    """The byte stream under `stream`, which is flushed first so the two do not interleave."""
    stream.flush()
    raw = getattr(stream, "buffer", None)
    if raw is not None:
        return raw  # type: ignore[no-any-return]
    return _TextSink(stream)  # type: ignore[return-value]


def binary_input(stream: Any) -> BinaryIO:
    """The byte stream under a text input stream (the stream itself if it has none)."""
    raw: BinaryIO = getattr(stream, "buffer", stream)
    return raw


class _TextSink:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, data: bytes) -> int:
        self.stream.write(data.decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        self.stream.flush()


def copy_out(response: Any, stream: TextIO) -> None:
    """A response's body, as it comes, to `stream`'s bytes."""
    out = binary(stream)
    for data in response.iter_raw():
        out.write(data)
    out.flush()
