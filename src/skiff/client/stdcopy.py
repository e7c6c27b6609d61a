"""Docker's multiplexed stream read back: the frames of `docker logs` and `docker attach`.

Without a TTY the daemon sends a container's stdout and stderr on one connection, each write
a frame — an 8-byte header ``[stream, 0, 0, 0, size (uint32, big-endian)]``, then the payload
(moby's pkg/stdcopy). `frames` cuts a byte stream (as it arrives, in chunks of any size)
into (stream, payload) pairs; `copy` writes them out as stdcopy.StdCopy does: stdin and
stdout frames to `out`, stderr to `err`, and stops with an error on a daemon error frame
(stream 3) or a header it cannot read.
"""

from __future__ import annotations

from skiff.errors import DaemonUnreachable, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Iterable, Iterator

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3


def frames(chunks: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    """(stream, payload) for each whole frame in `chunks`."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        start = 0
        while len(pending) - start >= 8:
            size = int.from_bytes(pending[start + 4:start + 8], "big")
            end = start + 8 + size
            if len(pending) < end:
                break
            yield pending[start], bytes(pending[start + 8:end])
            start = end
        if start:
            del pending[:start]
    if pending:
        raise DaemonUnreachable("", f"the daemon closed the stream mid-frame "
                                f"({len(pending)} bytes left)")


def copy(chunks: Iterable[bytes], out: BinaryIO | None, err: BinaryIO | None) -> int:
    """Write the frames of `chunks` to `out` and `err` (either may be None: not wanted),
    flushing each as it comes; the number of payload bytes written."""
    written = 0
    for stream, data in frames(chunks):
        if stream in (STDIN, STDOUT):
            target = out
        elif stream == STDERR:
            target = err
        elif stream == SYSTEMERR:
            raise SkiffError(f"error from daemon in stream: {data.decode('utf-8', 'replace')}")
        else:
            raise SkiffError(f"Unrecognized input header: {stream}")
        if target is not None and data:
            target.write(data)
            target.flush()
            written += len(data)
    return written
