"""HTTP to one registry: pooled keep-alive connections, Docker's TLS rules, retries and
redirects.

A `Transport` serves one operation (a pull, a push, a login) and the threads it runs:
idle connections are kept per scheme and host and handed to whichever thread asks next,
so parallel layer downloads reuse a handful of sockets. The scheme is settled by `ping`:
HTTPS, verified unless the registry is insecure (see `options`); an insecure registry that
does not speak TLS is then tried over plain HTTP, as Docker falls back. GET and HEAD are
retried, after `RETRY_DELAYS`, when the connection fails or the registry answers 429 or a
5xx; any request is retried once at once when a kept-alive connection turns out to have
been closed by the other side. Redirects are followed (registries send blob GETs to their
storage), without the ``Authorization`` header once they leave the registry's host.
Failures become `TransferError` (the connection) or `RegistryError` (TLS), with Go's way of
naming the request (``Get "https://host/v2/": …``), as Docker prints them.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from urllib.parse import urljoin, urlsplit

from skiff.errors import RegistryError, TransferError
from skiff.registry.options import (
    RegistryOptions,
    api_host,
    is_insecure,
    split_host,
    ssl_context,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO

    Body = bytes | IO[bytes] | None

RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0)  # seconds before each retry (tests shorten it)
TIMEOUT = 60.0  # seconds a connect or a read may stall
CHUNK = 1 << 20  # the size of reads and of the blocks a body is sent in
MAX_REDIRECTS = 5
MAX_DOCUMENT = 8 << 20  # manifests, token answers and error bodies are small; refuse a flood
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_IDEMPOTENT = frozenset({"GET", "HEAD"})
_CONNECTION_ERRORS = (OSError, http.client.HTTPException)


def go_method(method: str) -> str:
    """Go's url.Error names the method so: ``Get``, ``Head``, ``Put``."""
    return method[:1] + method[1:].lower()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connect: connection refused"
    if isinstance(exc, TimeoutError):
        return "i/o timeout"
    if isinstance(exc, ConnectionResetError):
        return "read: connection reset by peer"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "EOF"
    text = str(exc)
    return text or type(exc).__name__


def tls_error(method: str, url: str, exc: ssl.SSLError) -> RegistryError:
    """A TLS failure in Docker's words, with what OpenSSL said after it."""
    where = f'{go_method(method)} "{url}"'
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        detail = exc.verify_message or exc.reason or str(exc)
        if code in (2, 18, 19, 20, 21):
            what = "x509: certificate signed by unknown authority"
        elif code == 10:
            what = "x509: certificate has expired or is not yet valid"
        elif code == 62:
            what = "x509: certificate is not valid for this host"
        else:
            what = "x509: certificate verification failed"
        return RegistryError(f"{where}: tls: failed to verify certificate: {what} ({detail})")
    text = str(exc)
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text or \
            "HTTP_REQUEST" in text or "PACKET_LENGTH_TOO_LONG" in text:
        return RegistryError(f"{where}: http: server gave HTTP response to HTTPS client")
    return RegistryError(f"{where}: tls: {exc.reason or text}")


class Response:
    """A response whose body is read on demand; `close` gives the connection back to the
    pool when the body was read to its end, and drops it otherwise."""

    def __init__(self, transport: Transport, key: tuple[str, str],
                 conn: http.client.HTTPConnection, raw: http.client.HTTPResponse,
                 method: str, url: str) -> None:
        self.transport = transport
        self.key = key
        self.conn: http.client.HTTPConnection | None = conn
        self.raw = raw
        self.method = method
        self.url = url
        self.status = raw.status
        self.reason = raw.reason

    def header(self, name: str) -> str | None:
        return self.raw.getheader(name)

    def headers(self, name: str) -> list[str]:
        return self.raw.headers.get_all(name) or []

    def _broken(self, exc: BaseException) -> TransferError:
        self._drop()
        return TransferError(f'{go_method(self.method)} "{self.url}": {_reason(exc)}')

    def read(self, n: int = CHUNK) -> bytes:
        """Up to `n` bytes; b"" at the end. A body cut short (the connection closed before
        Content-Length was reached) is a TransferError, not a quiet end."""
        try:
            data = self.raw.read(n)
        except _CONNECTION_ERRORS as exc:
            raise self._broken(exc) from exc
        if not data and n and self.raw.length:  # http.client ends quietly; we do not
            raise self._broken(http.client.IncompleteRead(b"", self.raw.length))
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        try:
            got = self.raw.readinto(buffer)
        except _CONNECTION_ERRORS as exc:
            raise self._broken(exc) from exc
        if not got and len(buffer) and self.raw.length:
            raise self._broken(http.client.IncompleteRead(b"", self.raw.length))
        return got

    def body(self, limit: int = MAX_DOCUMENT) -> bytes:
        """The whole (small) body; more than `limit` bytes is refused."""
        parts = []
        total = 0
        while True:
            data = self.read(min(CHUNK, limit + 1 - total))
            if not data:
                break
            parts.append(data)
            total += len(data)
            if total > limit:
                self._drop()
                raise RegistryError(f'{go_method(self.method)} "{self.url}": the response '
                                    f"is larger than {limit} bytes")
        self.close()
        return b"".join(parts)

    def discard(self) -> None:
        """Read a small rest and close (keeping the connection), or just drop it."""
        if self.conn is None:
            return
        try:
            left = self.raw.length
            if left is None or left <= 65536:
                self.raw.read()
        except _CONNECTION_ERRORS:
            pass
        self.close()

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self.raw.isclosed() and not self.raw.will_close:
            self.transport.release(self.key, conn)
        else:
            self.raw.close()
            conn.close()

    def _drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self.raw.close()
            conn.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transport:
    """Connections to one registry (`domain` as references name it) and to the hosts it
    sends us to (its token service, its storage)."""

    def __init__(self, domain: str, options: RegistryOptions | None = None) -> None:
        self.domain = domain
        self.options = options or RegistryOptions()
        self.host = api_host(domain)
        self.insecure = is_insecure(domain, self.options)
        self.scheme = "https"
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._contexts: dict[tuple[str, bool], ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._closed = False

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}"

    def url(self, path: str) -> str:
        return path if "://" in path else self.base + path

    # -- connections ------------------------------------------------------------------------
    def _context(self, hostport: str) -> ssl.SSLContext:
        if hostport == self.host:
            domain, verify = self.domain, not self.insecure
        else:
            domain, verify = hostport, not is_insecure(hostport, self.options)
        key = (domain, verify)
        with self._lock:
            context = self._contexts.get(key)
        if context is None:
            try:
                context = ssl_context(domain, self.options, verify)
            except (OSError, ssl.SSLError) as exc:
                raise RegistryError(f"TLS settings for {domain} (from "
                                    f"{self.options.certs_dir}/{domain}): {exc}") from exc
            with self._lock:
                self._contexts[key] = context
        return context

    def _acquire(self, key: tuple[str, str]) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop(), True
        scheme, hostport = key
        name, port = split_host(hostport)
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(name, port, timeout=TIMEOUT,
                                               context=self._context(hostport), blocksize=CHUNK)
        else:
            conn = http.client.HTTPConnection(name, port, timeout=TIMEOUT, blocksize=CHUNK)
        return conn, False

    def release(self, key: tuple[str, str], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.setdefault(key, []).append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()

    # -- requests ---------------------------------------------------------------------------
    def ping(self) -> Response:
        """GET /v2/, settling the scheme: HTTPS, or for an insecure registry plain HTTP
        when TLS does not work. The response (200, 401…) is the caller's to read."""
        try:
            # an insecure registry's TLS attempt is not retried: plain HTTP is the next try
            return self.open("GET", "/v2/", retry=None if not self.insecure else False)
        except RegistryError as first:
            if not self.insecure or self.scheme == "http":
                raise
            self.scheme = "http"
            try:
                return self.open("GET", "/v2/")
            except RegistryError as second:
                if isinstance(first, TransferError):
                    self.scheme = "https"
                    raise first from None  # nothing answers at all: say so for HTTPS
                raise second from None  # something answered, but not TLS: its HTTP error

    def open(self, method: str, url: str, headers: dict[str, str] | None = None,
             body: Body = None, retry: bool | None = None) -> Response:
        """Send a request (`url` absolute, or a path on the registry) and return its
        response once the headers are in, redirects followed."""
        url = self.url(url)
        headers = dict(headers or {})
        for _ in range(MAX_REDIRECTS + 1):
            resp = self._send(method, url, headers, body, retry)
            location = resp.header("Location")
            if resp.status not in _REDIRECTS or not location:
                return resp
            resp.discard()
            target = urljoin(url, location)
            if urlsplit(target).netloc != urlsplit(url).netloc:
                headers.pop("Authorization", None)  # credentials stay with the registry
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, body = "GET", None
                headers.pop("Content-Length", None)
                headers.pop("Content-Type", None)
            url = target
        raise RegistryError(f'{go_method(method)} "{url}": stopped after {MAX_REDIRECTS} '
                            f"redirects")

    def fetch(self, method: str, url: str, headers: dict[str, str] | None = None,
              body: bytes | None = None) -> tuple[int, bytes]:
        """A small request in full: (status, body)."""
        resp = self.open(method, url, headers, body)
        return resp.status, resp.body()

    def _send(self, method: str, url: str, headers: dict[str, str], body: Body,
              retry: bool | None) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"cannot request {url!r}: not an http(s) URL")
        key = (parts.scheme, parts.netloc)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        idempotent = method in _IDEMPOTENT if retry is None else retry
        delays = RETRY_DELAYS if idempotent else ()
        attempt = 0
        while True:
            conn, reused = self._acquire(key)
            try:
                _rewind(body)
                conn.request(method, target, body=body, headers=headers)
                raw = conn.getresponse()
            except ssl.SSLError as exc:
                conn.close()
                raise tls_error(method, url, exc) from exc
            except _CONNECTION_ERRORS as exc:
                conn.close()
                if reused and _rewindable(body):
                    continue  # a kept-alive connection the other side had closed: at once
                if attempt < len(delays):
                    time.sleep(delays[attempt])
                    attempt += 1
                    continue
                raise TransferError(f'{go_method(method)} "{url}": {_reason(exc)}') from exc
            resp = Response(self, key, conn, raw, method, url)
            if raw.status in _RETRY_STATUS and attempt < len(delays):
                resp.discard()
                time.sleep(delays[attempt])
                attempt += 1
                continue
            return resp


def _rewindable(body: Body) -> bool:
    return body is None or isinstance(body, bytes) or hasattr(body, "seek")


def _rewind(body: Body) -> None:
    if body is not None and not isinstance(body, bytes) and hasattr(body, "seek"):
        body.seek(0)
