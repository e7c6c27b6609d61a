"""The Docker Engine API client: versioned requests, JSON answers, streams, errors.

`EngineClient(host)` talks to skiffd or to a real Docker Engine alike. The API version is
negotiated as the docker CLI does it: the first request asks `/_ping` for the server's
`Api-Version` and every later path carries ``/v<min(server, ours)>``. Answers come as JSON
values (`get`, `post`, `delete`), as JSON messages yielded while the daemon still works
(`stream`: pull, push, load progress), or as a raw `Response` whose bytes are copied
(`open`: save). An error status raises `APIError` (`NotFound` for 404) carrying the daemon's
``{"message": …}``; a dead address raises `DaemonUnreachable`. Query strings are encoded
here (booleans as ``1``, lists as repeated keys), without importing `urllib`.
"""

from __future__ import annotations

from skiff import __version__, jsonfast
from skiff.client import transport
from skiff.errors import APIError, DaemonUnreachable, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Iterable, Iterator

    from skiff.client.transport import Response

# the newest Engine API version this client speaks (the v1.41 spec is the one it follows);
# an older server gets its own version, as the docker CLI downgrades
MAX_API_VERSION = "1.41"
FALLBACK_API_VERSION = "1.24"  # what Docker assumes of a server that does not say
USER_AGENT = f"skiff/{__version__}"
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_SAFE_PATH = _SAFE | frozenset(b"/:@")


def quote(text: str, safe: frozenset[int] = _SAFE) -> str:
    return "".join(chr(b) if b in safe else "%%%02X" % b for b in text.encode("utf-8"))


def encode_query(query: dict[str, Any] | None) -> str:
    """``a=1&b=x`` from a dict: None and False are left out, True is ``1``, a list repeats."""
    parts = []
    for key, value in (query or {}).items():
        if value is None or value is False:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            text = "1" if v is True else str(v)
            parts.append(f"{quote(key)}={quote(text)}")
    return "&".join(parts)


def version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


class EngineClient:
    """One engine at `host` (``unix:///path`` or ``tcp://host:port``)."""

    def __init__(self, host: str, api_version: str | None = None) -> None:
        self.host = host
        self.address = transport.parse_host(host)
        self._version = api_version
        self.server_version: str | None = None  # what /_ping said, once asked

    # -- version negotiation
    def ping(self, timeout: float | None = None) -> dict[str, str]:
        """GET /_ping: the server's headers (`api-version`, `ostype`...); raises on failure."""
        resp = transport.request(self.address, "GET", "/_ping",
                                 {"User-Agent": USER_AGENT}, timeout=timeout)
        body = resp.read()
        if resp.status >= 400:
            raise _api_error(resp.status, resp.reason, body)
        self.server_version = resp.headers.get("api-version") or FALLBACK_API_VERSION
        return resp.headers

    @property
    def api_version(self) -> str:
        if self._version is None:
            if self.server_version is None:
                self.ping()
            server = self.server_version or FALLBACK_API_VERSION
            self._version = min(server, MAX_API_VERSION, key=version_tuple)
        return self._version

    # -- requests
    def open(self, method: str, path: str, query: dict[str, Any] | None = None,
             body: bytes | BinaryIO | Iterable[bytes] | None = None,
             headers: dict[str, str] | None = None, json: Any = None,
             upgrade: bool = False) -> Response:
        """Send a request; the answer if its status is below 400, else its APIError. With
        `upgrade`, the connection is asked to be taken over (attach): a ``101`` answer's
        `Response.iter_hijacked` then carries the raw stream."""
        target = f"/v{self.api_version}{quote(path, _SAFE_PATH)}"
        qs = encode_query(query)
        if qs:
            target += "?" + qs
        sent = {"User-Agent": USER_AGENT}
        if json is not None:
            body = jsonfast.dumps(json).encode()
            sent["Content-Type"] = "application/json"
        sent.update(headers or {})
        resp = transport.request(self.address, method, target, sent, body, upgrade=upgrade)
        if resp.status >= 400:
            raise _api_error(resp.status, resp.reason, resp.read())
        return resp

    def call(self, method: str, path: str, query: dict[str, Any] | None = None,
             json: Any = None, headers: dict[str, str] | None = None) -> Any:
        """A request whose answer is one JSON value (None for an empty body)."""
        data = self.open(method, path, query, headers=headers, json=json).read()
        return jsonfast.loads(data) if data.strip() else None

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.call("GET", path, query)

    def post(self, path: str, query: dict[str, Any] | None = None, json: Any = None,
             headers: dict[str, str] | None = None) -> Any:
        return self.call("POST", path, query, json=json, headers=headers)

    def delete(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.call("DELETE", path, query)

    def stream(self, method: str, path: str, query: dict[str, Any] | None = None,
               body: bytes | BinaryIO | Iterable[bytes] | None = None,
               headers: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """The JSON messages of a streamed answer (Docker's jsonmessage lines), each yielded
        as soon as its line is complete. A line that is not a whole JSON value yet (a value
        spread over lines) is joined with the next ones."""
        return json_messages(self.open(method, path, query, body, headers))


def json_messages(resp: Response) -> Iterator[dict[str, Any]]:
    pending = b""
    try:
        for line in resp.iter_lines():
            pending = pending + b"\n" + line if pending else line
            if not pending.strip():
                pending = b""
                continue
            try:
                value = jsonfast.loads(pending)
            except ValueError:
                continue
            pending = b""
            yield value if isinstance(value, dict) else {"stream": str(value)}
        if pending.strip():
            raise DaemonUnreachable("", f"malformed message from the daemon: {pending[:80]!r}")
    finally:
        resp.close()


def _api_error(status: int, reason: str, body: bytes) -> APIError:
    message = ""
    text = body.decode("utf-8", "replace").strip()
    if text:
        try:
            value = jsonfast.loads(text)
            message = value.get("message", "") if isinstance(value, dict) else ""
        except ValueError:
            pass
        message = message or text
    message = message or reason or f"HTTP status {status}"
    return (NotFound if status == 404 else APIError)(message, status)
