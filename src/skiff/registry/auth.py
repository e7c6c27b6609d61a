"""Credentials and the ``WWW-Authenticate`` challenge flow of the distribution spec.

`AuthConfig` is Docker's auth configuration: what the CLI sends base64url-encoded in the
``X-Registry-Auth`` header and in the ``/auth`` body, and what config.json keeps. A
registry says how it wants to be authenticated in the ``WWW-Authenticate`` header of a 401
(`parse_challenges`): ``Basic realm=…`` means the credentials go with each request;
``Bearer realm=…,service=…,scope=…`` means a token service at `realm` hands out a short-lived
token for a `scope` (``repository:library/busybox:pull``), for the credentials or for
nobody. `Authorizer` keeps one registry's challenge and a token per set of scopes, fetched
once even when several threads ask at the same time: GET with Basic credentials (or none),
or the OAuth2 POST with a refresh token (Docker's identity token) — and, for `login`, the
password grant or ``offline_token=true``, so the token service can hand back an identity
token to keep instead of the password.
"""

from __future__ import annotations

import base64
import threading
import time

from skiff import jsonfast
from skiff.errors import AuthenticationFailed, InvalidArgument
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.registry.transport import Transport

CLIENT_ID = "skiff"
_DEFAULT_TOKEN_LIFE = 60  # seconds, when a token response says nothing (the spec's default)
_EARLY = 10  # refresh a token this many seconds before it expires


class AuthConfig(Record):
    """Docker's AuthConfig: `auth` is base64 of ``user:password``; `identitytoken` a
    refresh token from an earlier login; `registrytoken` a bearer token to use as is."""

    username: str | None = None
    password: str | None = None
    auth: str | None = None
    email: str | None = None
    serveraddress: str | None = None
    identitytoken: str | None = None
    registrytoken: str | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AuthConfig:
        """From the JSON object Docker sends (keys in any case, as Go decodes them)."""
        if not isinstance(doc, dict):
            raise InvalidArgument("auth config: expected a JSON object")
        known = {f.name for f in cls.__fields__}
        values: dict[str, Any] = {}
        for key, value in doc.items():
            name = str(key).lower()
            if name in known and value not in (None, ""):
                if not isinstance(value, str):
                    raise InvalidArgument(f"auth config: {key} must be a string")
                values[name] = value
        return cls(**values)

    @classmethod
    def from_header(cls, text: str | None) -> AuthConfig:
        """Decode ``X-Registry-Auth``: base64url (padded or not) of the JSON; empty or
        ``{}`` is no credentials."""
        text = (text or "").strip()
        if not text or text == "{}":
            return cls()
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except ValueError:
            try:
                raw = base64.b64decode(text + "=" * (-len(text) % 4))
            except ValueError:
                raise InvalidArgument("X-Registry-Auth: not base64") from None
        try:
            doc = jsonfast.loads(raw)
        except ValueError:
            raise InvalidArgument("X-Registry-Auth: not a JSON object") from None
        return cls.from_json(doc)

    def to_header(self) -> str:
        """The ``X-Registry-Auth`` value for these credentials."""
        doc = {f.name: getattr(self, f.name) for f in self.__fields__
               if getattr(self, f.name) is not None}
        return base64.urlsafe_b64encode(jsonfast.dumps(doc).encode()).decode()

    def credentials(self) -> tuple[str, str] | None:
        """(username, password) from the fields or from `auth`; None when there are none."""
        if self.username:
            return self.username, self.password or ""
        if self.auth:
            try:
                user, colon, password = base64.b64decode(self.auth).decode().partition(":")
            except ValueError:
                raise InvalidArgument("auth config: `auth` is not base64 of user:password") \
                    from None
            if colon and user:
                return user, password
        return None

    @property
    def empty(self) -> bool:
        return not (self.credentials() or self.identitytoken or self.registrytoken)


class Challenge(Record):
    """One challenge of a ``WWW-Authenticate`` header; `scheme` lowercased, parameter
    names lowercased."""

    scheme: str
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """RFC 7235 challenges: ``Bearer realm="https://x/token",service="x",scope="a b"``,
    several in one header separated by commas, values quoted (with ``\\`` escapes) or not."""
    out: list[Challenge] = []
    i, n = 0, len(header)
    while i < n:
        while i < n and header[i] in " \t,":
            i += 1
        start = i
        while i < n and header[i] not in " \t,=":
            i += 1
        word = header[start:i]
        if not word:
            break
        j = i
        while j < n and header[j] in " \t":
            j += 1
        if j < n and header[j] == "=":
            value, i = _param_value(header, j + 1)
            if out:  # a parameter before any scheme is malformed: dropped
                out[-1].params[word.lower()] = value
        else:
            out.append(Challenge(word.lower(), {}))
    return out


def _param_value(header: str, i: int) -> tuple[str, int]:
    """The value starting at `i` (quoted or a bare token) and the index after it."""
    n = len(header)
    while i < n and header[i] in " \t":
        i += 1
    if i < n and header[i] == '"':
        i += 1
        chars = []
        while i < n and header[i] != '"':
            if header[i] == "\\" and i + 1 < n:
                i += 1
            chars.append(header[i])
            i += 1
        return "".join(chars), i + 1
    start = i
    while i < n and header[i] not in " \t,":
        i += 1
    return header[start:i], i


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _scope_text(scopes: tuple[str, ...]) -> str:
    return " ".join(scopes)


class _Token(Record):
    value: str
    expires: float


class Authorizer:
    """One registry's authentication: its challenge (from the ping or a 401) and the
    tokens fetched for it, per set of scopes; shared by the threads of one operation."""

    def __init__(self, auth: AuthConfig | None, transport: Transport, login: bool = False) -> None:
        self.auth = auth or AuthConfig()
        self.transport = transport
        self.login = login
        self.challenge: Challenge | None = None
        self.refresh_token: str | None = None  # what the token service gave back on login
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._lock = threading.Lock()

    def learn(self, header: str | None) -> bool:
        """Take the challenge from a 401's ``WWW-Authenticate``; True when it is one this
        client answers (Basic or Bearer)."""
        for challenge in parse_challenges(header or ""):
            if challenge.scheme in ("bearer", "basic"):
                with self._lock:
                    if challenge.scheme == "bearer" and challenge.params.get("error"):
                        # the token was refused or lacks a scope: fetch a new one next time
                        self._tokens.clear()
                    if self.challenge is None or self.challenge.scheme != challenge.scheme \
                            or challenge.params.get("realm") != self.challenge.params.get("realm"):
                        self._tokens.clear()
                    self.challenge = Challenge(challenge.scheme,
                                               {k: v for k, v in challenge.params.items()
                                                if k not in ("error", "error_description")})
                return True
        return False

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """The ``Authorization`` value for a request needing `scopes`, or None."""
        if self.auth.registrytoken:
            return f"Bearer {self.auth.registrytoken}"
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self.auth.credentials()
            return basic_header(*creds) if creds else None
        key = tuple(sorted(set(scopes)))
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.expires - _EARLY < time.monotonic():
                token = self._fetch(challenge, key)
                self._tokens[key] = token
            return f"Bearer {token.value}"

    def basic_without_credentials(self) -> bool:
        return (self.challenge is not None and self.challenge.scheme == "basic"
                and self.auth.credentials() is None and not self.auth.registrytoken)

    # -- the token service ------------------------------------------------------------------
    def _fetch(self, challenge: Challenge, scopes: tuple[str, ...]) -> _Token:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthenticationFailed("the registry's Bearer challenge names no realm",
                                       status=401, code="UNAUTHORIZED")
        service = challenge.params.get("service", "")
        creds = self.auth.credentials()
        if self.auth.identitytoken:
            doc = self._post(realm, {"grant_type": "refresh_token",
                                     "refresh_token": self.auth.identitytoken,
                                     "service": service, "scope": _scope_text(scopes),
                                     "client_id": CLIENT_ID, "access_type": "offline"})
        else:
            doc = self._get(realm, service, scopes, creds)
        token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthenticationFailed(f"the token service at {realm} sent no token",
                                       status=None, code="UNAUTHORIZED")
        refresh = doc.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            self.refresh_token = refresh
        life = doc.get("expires_in")
        if not isinstance(life, (int, float)) or life <= 0:
            life = _DEFAULT_TOKEN_LIFE
        return _Token(token, time.monotonic() + max(float(life), _EARLY + 1.0))

    def _get(self, realm: str, service: str, scopes: tuple[str, ...],
             creds: tuple[str, str] | None) -> dict[str, Any]:
        from urllib.parse import urlencode

        query: list[tuple[str, str]] = []
        if service:
            query.append(("service", service))
        query += [("scope", s) for s in scopes]
        headers = {}
        if creds is not None:
            query.append(("account", creds[0]))
            headers["Authorization"] = basic_header(*creds)
        if self.login:
            query += [("client_id", CLIENT_ID), ("offline_token", "true")]
        sep = "&" if "?" in realm else "?"
        url = realm + (sep + urlencode(query) if query else "")
        status, body = self.transport.fetch("GET", url, headers)
        return _token_answer(realm, status, body)

    def _post(self, realm: str, form: dict[str, str]) -> dict[str, Any]:
        from urllib.parse import urlencode

        body = urlencode({k: v for k, v in form.items() if v}).encode()
        status, answer = self.transport.fetch(
            "POST", realm, {"Content-Type": "application/x-www-form-urlencoded"}, body)
        return _token_answer(realm, status, answer)


def _token_answer(realm: str, status: int, body: bytes) -> dict[str, Any]:
    if status == 200:
        try:
            doc = jsonfast.loads(body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise AuthenticationFailed(f"the token service at {realm} answered with something "
                                       f"other than a JSON object", status=status)
        return doc
    from skiff.registry.spec_errors import describe

    cause = describe(status, body)
    raise AuthenticationFailed(cause, status=status,
                               code="UNAUTHORIZED" if status in (401, 403) else None)
