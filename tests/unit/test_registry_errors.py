"""The distribution spec's error JSON onto skiff's RegistryError tree, in Docker's words,
and Docker's rewording of the errors a pull reports."""

from __future__ import annotations

import json

import pytest

from skiff.errors import AuthenticationFailed, ManifestUnknown, RegistryError
from skiff.reference import parse_reference
from skiff.registry.spec_errors import (
    describe,
    parse_errors,
    pull_error,
    response_error,
)


def body(*errors: tuple[str, str]) -> bytes:
    return json.dumps({"errors": [{"code": c, "message": m, "detail": {}}
                                  for c, m in errors]}).encode()


def test_parse_and_describe() -> None:
    data = body(("MANIFEST_UNKNOWN", "manifest unknown"))
    assert parse_errors(data) == [("MANIFEST_UNKNOWN", "manifest unknown")]
    assert describe(404, data) == "manifest unknown: manifest unknown"
    assert describe(400, body(("NAME_INVALID", "invalid repository name"),
                              ("TAG_INVALID", "bad tag"))) == \
        "errors:\nname invalid: invalid repository name\ntag invalid: bad tag\n"
    assert parse_errors(b"<html>oops</html>") == []
    assert describe(502, b"<html>") == "received unexpected HTTP status: 502 Bad Gateway"
    assert describe(401, b"") == "unauthorized: authentication required"


@pytest.mark.parametrize(("status", "data", "manifest", "kind", "code"), [
    (401, body(("UNAUTHORIZED", "authentication required")), False, AuthenticationFailed,
     "UNAUTHORIZED"),
    (403, b"", False, AuthenticationFailed, "UNAUTHORIZED"),
    (404, body(("NAME_UNKNOWN", "repository name not known to registry")), False,
     ManifestUnknown, "NAME_UNKNOWN"),
    (404, b"", True, ManifestUnknown, "MANIFEST_UNKNOWN"),
    (404, body(("BLOB_UNKNOWN", "blob unknown to registry")), False, RegistryError,
     "BLOB_UNKNOWN"),
    (500, b"", False, RegistryError, None),
])
def test_response_error_classes(status: int, data: bytes, manifest: bool,
                                kind: type[RegistryError], code: str | None) -> None:
    err = response_error(status, data, manifest=manifest)
    assert type(err) is kind
    assert (err.status, err.code) == (status, code)


def test_bearer_error_parameter_is_dockers_denied() -> None:
    err = response_error(401, body(("UNAUTHORIZED", "authentication required")),
                         'Bearer realm="x",service="y",error="insufficient_scope"')
    assert isinstance(err, AuthenticationFailed)
    assert (err.code, str(err)) == ("DENIED", "denied: requested access to the resource is "
                                              "denied")


def test_pull_error_words() -> None:
    ref = parse_reference("busybox:nope")
    denied = pull_error(AuthenticationFailed("denied: requested access to the resource is "
                                             "denied", status=401, code="DENIED"), ref)
    assert str(denied) == ("pull access denied for busybox, repository does not exist or may "
                           "require 'docker login': denied: requested access to the resource "
                           "is denied")
    missing = pull_error(response_error(404, body(("MANIFEST_UNKNOWN", "manifest unknown"))),
                         ref)
    assert str(missing) == "manifest for busybox:nope not found: manifest unknown: manifest unknown"
    assert isinstance(missing, ManifestUnknown)
    ref = parse_reference("reg.example:5000/team/app")
    unknown = pull_error(response_error(404, body(("NAME_UNKNOWN", "repository name not known "
                                                                    "to registry"))), ref)
    assert str(unknown) == ("repository reg.example:5000/team/app not found: name unknown: "
                            "repository name not known to registry")
    other = RegistryError("received unexpected HTTP status: 500 Internal Server Error", 500)
    assert pull_error(other, ref) is other
