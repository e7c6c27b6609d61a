"""Credentials and the challenge flow, with a fake transport: `WWW-Authenticate` parsing,
Docker's X-Registry-Auth decoding, when Basic credentials are sent, and Bearer tokens —
what is asked of the token service, cached per set of scopes until they expire, refreshed
by an identity token, dropped when the registry says the token lacks a scope."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from skiff.errors import AuthenticationFailed, InvalidArgument
from skiff.registry import auth as auth_module
from skiff.registry.auth import (
    AuthConfig,
    Authorizer,
    Challenge,
    basic_header,
    parse_challenges,
)


def test_bearer_challenge_with_quoted_values() -> None:
    header = ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
              'scope="repository:samalba/my-app:pull,push"')
    assert parse_challenges(header) == [Challenge("bearer", {
        "realm": "https://auth.docker.io/token", "service": "registry.docker.io",
        "scope": "repository:samalba/my-app:pull,push"})]


def test_several_challenges_bare_values_and_escapes() -> None:
    header = 'Basic realm="a \\"b\\"", BEARER realm=http://t/token , service = svc,error="x"'
    assert parse_challenges(header) == [
        Challenge("basic", {"realm": 'a "b"'}),
        Challenge("bearer", {"realm": "http://t/token", "service": "svc", "error": "x"})]


@pytest.mark.parametrize("header", ["", " , ", "realm=x"])
def test_no_challenge(header: str) -> None:
    assert parse_challenges(header) == []


def test_x_registry_auth_decodes_base64url_json() -> None:
    doc = {"username": "me", "password": "p?>~", "serveraddress": "r.example:5000"}
    raw = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
    assert AuthConfig.from_header(raw) == AuthConfig(username="me", password="p?>~",
                                                     serveraddress="r.example:5000")
    assert AuthConfig.from_header(raw.rstrip("=")) == AuthConfig.from_header(raw)
    assert AuthConfig.from_header(AuthConfig.from_header(raw).to_header()) == \
        AuthConfig.from_header(raw)


@pytest.mark.parametrize("text", ["", "{}", None, base64.b64encode(b"{}").decode()])
def test_empty_x_registry_auth(text: str | None) -> None:
    assert AuthConfig.from_header(text).empty


def test_bad_x_registry_auth() -> None:
    with pytest.raises(InvalidArgument):
        AuthConfig.from_header(base64.b64encode(b"[1, 2]").decode())
    with pytest.raises(InvalidArgument):
        AuthConfig.from_header("!!!not base64!!!")


def test_auth_json_keys_in_any_case_and_the_auth_field() -> None:
    cfg = AuthConfig.from_json({"Username": "", "Auth": base64.b64encode(b"u:p:q").decode(),
                                "IdentityToken": "tok"})
    assert cfg.credentials() == ("u", "p:q")
    assert cfg.identitytoken == "tok"
    assert basic_header("u", "p") == "Basic dTpw"


class FakeTransport:
    """Answers token requests from a list, recording them."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, dict[str, str], bytes | None]] = []

    def fetch(self, method: str, url: str, headers: dict[str, str] | None = None,
              body: bytes | None = None) -> tuple[int, bytes]:
        self.calls.append((method, url, dict(headers or {}), body))
        status, doc = self.answers.pop(0)
        return status, json.dumps(doc).encode()


BEARER = 'Bearer realm="https://auth.example/token",service="reg.example"'


def authorizer(transport: FakeTransport, auth: AuthConfig | None = None,
               login: bool = False) -> Authorizer:
    return Authorizer(auth, transport, login=login)  # type: ignore[arg-type]


def test_basic_is_sent_only_once_challenged() -> None:
    a = authorizer(FakeTransport(), AuthConfig(username="u", password="p"))
    assert a.header(("repository:x:pull",)) is None
    assert a.learn('Basic realm="r"')
    assert a.header(("repository:x:pull",)) == basic_header("u", "p")
    assert not a.basic_without_credentials()
    assert authorizer(FakeTransport()).learn('Basic realm="r"')


def test_bearer_token_is_fetched_once_per_scope_set_and_cached() -> None:
    t = FakeTransport((200, {"token": "T1", "expires_in": 300}),
                      (200, {"access_token": "T2"}))
    a = authorizer(t, AuthConfig(username="u", password="p"))
    assert a.learn(BEARER)
    assert a.header(("repository:x:pull",)) == "Bearer T1"
    assert a.header(("repository:x:pull",)) == "Bearer T1"
    assert a.header(("repository:y:pull", "repository:x:pull,push")) == "Bearer T2"
    assert len(t.calls) == 2
    method, url, headers, _ = t.calls[0]
    parts = urlsplit(url)
    assert (method, parts.netloc, parts.path) == ("GET", "auth.example", "/token")
    assert parse_qs(parts.query) == {"service": ["reg.example"], "scope": ["repository:x:pull"],
                                     "account": ["u"]}
    assert headers["Authorization"] == basic_header("u", "p")
    assert parse_qs(urlsplit(t.calls[1][1]).query)["scope"] == [
        "repository:x:pull,push", "repository:y:pull"]


def test_expired_token_is_fetched_again(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(auth_module.time, "monotonic", lambda: now[0])
    t = FakeTransport((200, {"token": "T1", "expires_in": 60}), (200, {"token": "T2"}))
    a = authorizer(t)
    a.learn(BEARER)
    assert a.header(("s",)) == "Bearer T1"
    now[0] += 30
    assert a.header(("s",)) == "Bearer T1"
    now[0] += 30  # within the last seconds of its life: renewed before it lapses
    assert a.header(("s",)) == "Bearer T2"
    assert "Authorization" not in t.calls[0][2]  # anonymous: no credentials, no account


def test_insufficient_scope_drops_the_cached_token() -> None:
    t = FakeTransport((200, {"token": "T1"}), (200, {"token": "T2"}))
    a = authorizer(t)
    a.learn(BEARER)
    assert a.header(("s",)) == "Bearer T1"
    a.learn(BEARER + ',error="insufficient_scope"')
    assert a.challenge is not None and "error" not in a.challenge.params
    assert a.header(("s",)) == "Bearer T2"


def test_identity_token_uses_the_refresh_grant() -> None:
    t = FakeTransport((200, {"access_token": "A", "refresh_token": "R2"}))
    a = authorizer(t, AuthConfig(username="u", identitytoken="R1"))
    a.learn(BEARER)
    assert a.header(("repository:x:pull",)) == "Bearer A"
    method, url, headers, body = t.calls[0]
    assert (method, url) == ("POST", "https://auth.example/token")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = parse_qs((body or b"").decode())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["R1"]
    assert form["scope"] == ["repository:x:pull"] and form["service"] == ["reg.example"]
    assert a.refresh_token == "R2"


def test_login_asks_for_an_offline_token() -> None:
    t = FakeTransport((200, {"token": "T", "refresh_token": "R"}))
    a = authorizer(t, AuthConfig(username="u", password="p"), login=True)
    a.learn(BEARER)
    assert a.header(()) == "Bearer T"
    query = parse_qs(urlsplit(t.calls[0][1]).query)
    assert query["offline_token"] == ["true"] and "scope" not in query
    assert a.refresh_token == "R"


def test_registry_token_is_used_as_is() -> None:
    a = authorizer(FakeTransport(), AuthConfig(registrytoken="RT"))
    assert a.header(("s",)) == "Bearer RT"


def test_token_service_refusal() -> None:
    t = FakeTransport((401, {"errors": [{"code": "UNAUTHORIZED",
                                         "message": "incorrect username or password"}]}))
    a = authorizer(t, AuthConfig(username="u", password="bad"))
    a.learn(BEARER)
    with pytest.raises(AuthenticationFailed, match="^unauthorized: incorrect username or "
                                                   "password$"):
        a.header(("s",))
    t = FakeTransport((200, {"nothing": "here"}))
    a = authorizer(t)
    a.learn(BEARER)
    with pytest.raises(AuthenticationFailed, match="sent no token"):
        a.header(("s",))
