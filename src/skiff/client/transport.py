"""HTTP/1.1 to the engine, over a unix socket or TCP, on the `_socket` C module alone.

The `skiff` CLI sends one or two requests and exits, so what it imports is most of what it
costs: `http.client` pulls in `email`, `ssl`, `urllib` and `re` (~35 ms here, four times a
bare interpreter start), and even `socket` costs ~8 ms for its enums. This module speaks the
little HTTP the Engine API needs — a request with a fixed or chunked body, a response with a
Content-Length, chunked or read-to-close body — over `_socket` directly (~1 ms). One
connection per request: the daemon is local, a connect costs microseconds, and no state
outlives a call. `Address` is a parsed `-H`/`DOCKER_HOST` value, as Docker's ParseHost reads
it (``unix:///path``, ``tcp://host:port``, a bare ``host:port`` meaning TCP).
"""

from __future__ import annotations

import _socket

from skiff.errors import DaemonUnreachable, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Iterable, Iterator

DEFAULT_TCP_PORT = 2375
CHUNK = 1 << 16
_ERRNO_NAMES = {2: "no such file or directory", 13: "permission denied", 111: "connection refused"}


class Address:
    """Where an engine listens: a unix socket `path`, or a TCP `host` and `port`."""

    __slots__ = ("scheme", "path", "host", "port")

    def __init__(self, scheme: str, path: str = "", host: str = "", port: int = 0) -> None:
        self.scheme, self.path, self.host, self.port = scheme, path, host, port

    @property
    def url(self) -> str:
        if self.scheme == "unix":
            return "unix://" + self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    def __repr__(self) -> str:
        return f"Address({self.url})"


def parse_host(text: str) -> Address:
    """A `-H` value as Docker reads it; InvalidArgument (Docker's words) for a malformed one."""
    value = text.strip()
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "tcp", value
    scheme = scheme.lower()
    if scheme == "unix":
        if not rest:
            raise InvalidArgument(f"invalid bind address ({text}): empty unix socket path")
        return Address("unix", path=rest)
    if scheme in ("tcp", "http"):
        hostport = rest.split("/", 1)[0]
        if hostport.startswith("["):
            host, _, port_text = hostport[1:].partition("]")
            port_text = port_text.removeprefix(":")
        else:
            host, _, port_text = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
        if port_text and not port_text.isdigit():
            raise InvalidArgument(f"invalid bind address ({text}): invalid port")
        port = int(port_text) if port_text else DEFAULT_TCP_PORT
        if not 0 < port < 65536:
            raise InvalidArgument(f"invalid bind address ({text}): invalid port")
        return Address("tcp", host=host or "127.0.0.1", port=port)
    if scheme in ("https", "ssh", "npipe", "fd"):
        raise InvalidArgument(f"{scheme}:// hosts are not supported by skiff's client ({text})")
    raise InvalidArgument(f"Invalid bind address format: {text}")


class Response:
    """The status, headers (names lowercased) and body of one answer; the body is read on
    demand, as it arrives, so a stream of progress lines is shown line by line."""

    def __init__(self, sock: _socket.socket, method: str) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._eof = False
        line = self._readline()
        parts = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise DaemonUnreachable("", f"malformed HTTP response from the daemon: {line[:80]!r}")
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers: dict[str, str] = {}
        while True:
            line = self._readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self._left: int | None = int(length) if length is not None and not self._chunked else None
        if method == "HEAD" or self.status in (204, 304) or 100 <= self.status < 200:
            self._left = 0
            self._chunked = False
        self._done = self._left == 0

    # -- the socket, buffered
    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._sock.recv(CHUNK)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _readline(self) -> bytes:
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line = bytes(self._buf[:end + 1])
                del self._buf[:end + 1]
                return line
            if not self._fill():
                line = bytes(self._buf)
                self._buf.clear()
                return line

    def _take(self, limit: int) -> bytes:
        """Up to `limit` bytes: what is buffered, else one receive."""
        if not self._buf and not self._fill():
            return b""
        data = bytes(self._buf[:limit])
        del self._buf[:limit]
        return data

    # -- the body
    def iter_raw(self, size: int = CHUNK) -> Iterator[bytes]:
        """The body's bytes as they come (chunked, sized or up to the connection's end)."""
        try:
            while not self._done:
                if self._chunked:
                    header = self._readline()
                    if not header:
                        raise DaemonUnreachable("", "the daemon closed the connection mid-stream")
                    n = int(header.split(b";", 1)[0].strip() or b"0", 16)
                    if n == 0:
                        while self._readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        self._done = True
                        break
                    while n:
                        data = self._take(min(n, size))
                        if not data:
                            raise DaemonUnreachable("", "the daemon closed the connection mid-stream")
                        n -= len(data)
                        yield data
                    self._readline()  # the CRLF after the chunk
                elif self._left is not None:
                    data = self._take(min(self._left, size))
                    if not data:
                        raise DaemonUnreachable("", "the daemon closed the connection mid-stream")
                    self._left -= len(data)
                    self._done = self._left == 0
                    yield data
                else:
                    data = self._take(size)
                    if not data:
                        self._done = True
                        break
                    yield data
        finally:
            self.close()  # read to the end, broken, or abandoned: the answer is over

    def read(self) -> bytes:
        return b"".join(self.iter_raw())

    def iter_lines(self) -> Iterator[bytes]:
        """The body split at newlines (each line without its end), as lines complete."""
        pending = b""
        for data in self.iter_raw():
            pending += data
            if b"\n" in data:
                *lines, pending = pending.split(b"\n")
                yield from lines
        if pending:
            yield pending

    def iter_hijacked(self, size: int = CHUNK) -> Iterator[bytes]:
        """After a ``101`` (attach took the connection over): the raw bytes that followed
        the head, as they come, to the connection's end."""
        try:
            if self._buf:
                data = bytes(self._buf)
                self._buf.clear()
                yield data
            while data := self._sock.recv(size):
                yield data
        finally:
            self.close()

    def send(self, data: bytes) -> None:
        """Write to a hijacked connection (the process's stdin)."""
        self._sock.sendall(data)

    def close_write(self) -> None:
        """Half-close a hijacked connection: nothing more will be sent (no stdin), the
        daemon's output still comes."""
        try:
            self._sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self._done = True
        try:
            self._sock.close()
        except OSError:
            pass


def _connect(address: Address, timeout: float | None) -> _socket.socket:
    if address.scheme == "unix":
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        target: str | tuple[object, ...] = address.path
    else:
        infos = _socket.getaddrinfo(address.host, address.port, 0, _socket.SOCK_STREAM)
        family, kind, proto, _, sockaddr = infos[0]
        target = tuple(sockaddr)
        sock = _socket.socket(family, kind, proto)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError as exc:
        sock.close()
        raise DaemonUnreachable(address.url, _connect_problem(address, exc)) from exc
    return sock


def _connect_problem(address: Address, exc: OSError) -> str:
    if exc.errno == 13:
        return ("permission denied while trying to connect to the Docker daemon socket at "
                f"{address.url}")
    if exc.errno in (2, 111) or isinstance(exc, TimeoutError):
        return ""  # the plain "Cannot connect … Is the docker daemon running?"
    reason = _ERRNO_NAMES.get(exc.errno or 0, exc.strerror or str(exc))
    return f"Cannot connect to the Docker daemon at {address.url}: {reason}"


def request(address: Address, method: str, target: str, headers: dict[str, str] | None = None,
            body: bytes | BinaryIO | Iterable[bytes] | None = None,
            timeout: float | None = None, upgrade: bool = False) -> Response:
    """Send one request and read the answer's status and headers; the body is left to read.

    `body` bytes go with a Content-Length; a file or an iterable of bytes is streamed with
    chunked transfer encoding, so stdin of unknown length can be sent as it is read. With
    `upgrade` the request asks, as the docker CLI's attach does, to take the connection over
    (``Connection: Upgrade``, ``Upgrade: tcp``)."""
    # docker's Host for a unix socket; a TCP daemon gets its own address
    host = "api.moby.localhost" if address.scheme == "unix" else address.url[len("tcp://"):]
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    streamed = body is not None and not isinstance(body, (bytes, bytearray))
    if streamed:
        lines.append("Transfer-Encoding: chunked")
    elif body:
        lines.append(f"Content-Length: {len(body)}")  # type: ignore[arg-type]
    elif method in ("POST", "PUT"):
        lines.append("Content-Length: 0")
    lines.append("Connection: Upgrade\r\nUpgrade: tcp" if upgrade else "Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    sock = _connect(address, timeout)
    try:
        if not streamed:
            sock.sendall(head + (body or b""))  # type: ignore[operator]
        else:
            sock.sendall(head)
            for data in _pieces(body):  # type: ignore[arg-type]
                if data:
                    sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        return Response(sock, method)
    except BrokenPipeError:
        # the daemon answered (an error, most likely) before it read the whole body
        return Response(sock, method)
    except BaseException:
        sock.close()
        raise


def _pieces(body: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    read = getattr(body, "read", None)
    if read is None:
        yield from body  # type: ignore[misc]
        return
    read1 = getattr(body, "read1", read)  # what is there now, not a full buffer: stdin streams
    while True:
        data = read1(CHUNK * 16)
        if not data:
            return
        yield data
