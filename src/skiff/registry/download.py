"""A blob's bytes from the registry, as a stream that survives a broken connection, and
the tee that stores them while a layer is unpacked from them.

`BlobStream` reads one blob in order. When the transfer breaks (the connection resets, or
closes before the blob's size is reached) it reopens the blob with ``Range: bytes=N-`` and
goes on where it broke — or, when the registry ignores the Range and sends it all again,
skips what it already had — after each of `transport.RETRY_DELAYS`, telling the progress
``Retrying in N seconds``; then it gives up with the last TransferError. It knows nothing
of digests: whoever writes the bytes verifies them (a `BlobWriter` does, as they come).

`TeeToBlob` is what an unpacker reads while the layer downloads: each chunk also goes to
a `BlobWriter`, and `close` drains what the unpacker left and commits the blob, raising
if its digest or size is wrong. So download and unpacking overlap, and a layer is only
ever published by `LayerStore.ensure` after its stream closed with a verified blob.
"""

from __future__ import annotations

import math
import time

from skiff.errors import RegistryError, TransferError
from skiff.registry import transport

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from skiff.registry.client import RegistryClient
    from skiff.registry.progress import Reporter
    from skiff.store.blobs import BlobWriter


def retry_text(delay: float) -> str:
    seconds = max(1, math.ceil(delay))
    return f"Retrying in {seconds} second{'s' if seconds != 1 else ''}"


class BlobStream:
    """The bytes of blob `digest` (`size` bytes) of `repo`, read in order, resumed when
    the transfer breaks. `progress_id` names the layer in ``Retrying`` statuses."""

    def __init__(self, client: RegistryClient, repo: str, digest: str, size: int,
                 report: Reporter | None = None, progress_id: str | None = None,
                 cancelled: Callable[[], bool] | None = None) -> None:
        self.client = client
        self.repo = repo
        self.digest = digest
        self.size = size
        self.report = report
        self.progress_id = progress_id
        self.cancelled = cancelled
        self.offset = 0
        self.retries = 0
        self._resp: transport.Response | None = None

    def _open(self) -> transport.Response:
        resp = self.client.get_blob(self.repo, self.digest, self.offset)
        if self.offset and resp.status == 200:
            skip = self.offset  # no Range support: read again what we had, and drop it
            while skip:
                got = resp.read(min(skip, transport.CHUNK))
                if not got:
                    resp.close()
                    raise TransferError(f"blob {self.digest}: the registry's answer ended "
                                        f"before byte {self.offset}")
                skip -= len(got)
        elif resp.status == 206:
            start = (resp.header("Content-Range") or "").removeprefix("bytes ").partition("-")[0]
            if start != str(self.offset):
                resp.close()
                raise RegistryError(f"blob {self.digest}: asked for bytes from {self.offset}, "
                                    f"the registry sent Content-Range "
                                    f"{resp.header('Content-Range')!r}")
        return resp

    def read(self, n: int = transport.CHUNK) -> bytes:
        while True:
            if self.cancelled is not None and self.cancelled():
                self.close()
                raise TransferError(f"blob {self.digest}: cancelled")
            if self.offset >= self.size:
                self.close()  # the whole blob: what follows, if anything, is not its
                return b""
            try:
                if self._resp is None:
                    self._resp = self._open()
                data = self._resp.read(min(n, self.size - self.offset))
            except TransferError as exc:
                self._broken(exc)
                continue
            if not data:
                self._broken(TransferError(f"blob {self.digest}: the transfer ended at "
                                           f"byte {self.offset} of {self.size}"))
                continue
            self.offset += len(data)
            return data

    def _broken(self, exc: TransferError) -> None:
        self.close()
        delays = transport.RETRY_DELAYS
        if self.retries >= len(delays):
            raise exc
        delay = delays[self.retries]
        self.retries += 1
        if self.report is not None and self.progress_id is not None:
            self.report(self.progress_id, retry_text(delay))
        time.sleep(delay)

    def close(self) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            resp.close()


class TeeToBlob:
    """A file-like reader over a `BlobStream` that writes every byte it reads to
    `writer`; `on_bytes(total)` is told the count after each chunk."""

    def __init__(self, source: BlobStream, writer: BlobWriter,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self.source = source
        self.writer = writer
        self.on_bytes = on_bytes
        self.total = 0
        self.failed = False
        self.digest: str | None = None  # set by a close that committed the blob
        self._data = b""
        self._pos = 0

    def _fill(self) -> bool:
        try:
            data = self.source.read(transport.CHUNK)
            if data:
                self.writer.write(data)
        except BaseException:
            self.failed = True
            self.writer.abort()
            raise
        if not data:
            return False
        self.total += len(data)
        if self.on_bytes is not None:
            self.on_bytes(self.total)
        self._data, self._pos = data, 0
        return True

    def read(self, n: int = -1) -> bytes:
        if self._pos >= len(self._data) and not self._fill():
            return b""
        data, pos = self._data, self._pos
        if n is None or n < 0 or pos + n >= len(data):
            self._pos = len(data)
            return data if pos == 0 else data[pos:]  # the whole chunk without a copy
        self._pos = pos + n
        return data[pos:pos + n]

    def close(self) -> None:
        """Read what is left into the blob and commit it (DigestMismatch if it is not
        what its digest says); after a failed read, only drop the stream."""
        if self.failed or self.digest is not None:
            self.source.close()
            return
        try:
            while self._fill():
                pass
            self.digest = self.writer.commit()
        finally:
            self.source.close()
