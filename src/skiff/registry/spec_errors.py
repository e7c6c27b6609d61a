"""The distribution spec's error JSON mapped onto skiff's `RegistryError` tree, in Docker's
words.

A registry answers a failed request with ``{"errors": [{"code": "MANIFEST_UNKNOWN",
"message": "manifest unknown", "detail": …}]}``, and a Bearer registry may say more in the
``WWW-Authenticate`` header of a 401 (``error="insufficient_scope"`` is Docker's DENIED,
``error="invalid_token"`` its UNAUTHORIZED). Docker prints each error as ``<code in lower
case, spaces for underscores>: <message>`` (``manifest unknown: manifest unknown``), and on
a pull rewrites the three that mean "not there, or not for you": DENIED and UNAUTHORIZED
become ``pull access denied for NAME, repository does not exist or may require 'docker
login': …``, MANIFEST_UNKNOWN ``manifest for NAME:TAG not found: …`` and NAME_UNKNOWN
``repository NAME not found: …``. `response_error` picks the class (AuthenticationFailed
for 401/403 and the auth codes, ManifestUnknown for the unknown-name codes and a manifest's
404), `pull_error` does Docker's rewriting.
"""

from __future__ import annotations

from skiff import jsonfast
from skiff.errors import AuthenticationFailed, ManifestUnknown, RegistryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.reference import Reference

AUTH_CODES = frozenset({"UNAUTHORIZED", "DENIED"})
UNKNOWN_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN"})
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 413: "Request Entity Too Large",
            416: "Requested Range Not Satisfiable", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}
# RFC 6750's error parameter of a Bearer challenge, as Docker's client maps it
_BEARER_ERRORS = {"invalid_token": ("UNAUTHORIZED", "authentication required"),
                  "insufficient_scope": ("DENIED", "requested access to the resource is denied")}


def parse_errors(body: bytes) -> list[tuple[str, str]]:
    """(code, message) of each error in a spec error body; [] when it is not one."""
    try:
        doc = jsonfast.loads(body) if body else None
    except ValueError:
        return []
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        items = doc["errors"]
    elif isinstance(doc, dict) and "code" in doc:
        items = [doc]  # some registries send one error bare
    else:
        return []
    out = []
    for item in items:
        if isinstance(item, dict):
            code = str(item.get("code") or "UNKNOWN").upper()
            out.append((code, str(item.get("message") or "")))
    return out


def error_text(code: str, message: str) -> str:
    """Docker's rendering of one spec error: ``manifest unknown: manifest unknown``."""
    name = code.lower().replace("_", " ")
    return f"{name}: {message}" if message else name


def _bearer_error(www_authenticate: str | None) -> tuple[str, str] | None:
    if not www_authenticate:
        return None
    from skiff.registry.auth import parse_challenges

    for challenge in parse_challenges(www_authenticate):
        if challenge.scheme == "bearer":
            known = _BEARER_ERRORS.get(challenge.params.get("error", ""))
            if known is not None:
                return known[0], challenge.params.get("error_description") or known[1]
    return None


def _errors(status: int, body: bytes, www_authenticate: str | None) -> list[tuple[str, str]]:
    errors = parse_errors(body)
    bearer = _bearer_error(www_authenticate) if 400 <= status < 500 else None
    if bearer is not None:
        # the header and the body tell of one refusal; the header's word is the precise one
        errors = [bearer] + [e for e in errors if e[0] not in AUTH_CODES]
    if not errors and status == 401:
        errors = [("UNAUTHORIZED", "authentication required")]
    return errors


def describe(status: int, body: bytes, www_authenticate: str | None = None) -> str:
    """The cause as Docker prints it, for any failed response."""
    errors = _errors(status, body, www_authenticate)
    if not errors:
        return f"received unexpected HTTP status: {status} {_REASONS.get(status, '')}".rstrip()
    if len(errors) == 1:
        return error_text(*errors[0])
    return "errors:\n" + "".join(error_text(*e) + "\n" for e in errors)


def response_error(status: int, body: bytes, www_authenticate: str | None = None,
                   manifest: bool = False) -> RegistryError:
    """The error for a failed response; `manifest` says a 404 means an unknown manifest."""
    errors = _errors(status, body, www_authenticate)
    code = errors[0][0] if errors else None
    text = describe(status, body, www_authenticate)
    if status in (401, 403) or code in AUTH_CODES:
        return AuthenticationFailed(text, status=status, code=code or "UNAUTHORIZED")
    if code in UNKNOWN_CODES or (manifest and status == 404):
        return ManifestUnknown(text, status=status, code=code or "MANIFEST_UNKNOWN")
    return RegistryError(text, status=status, code=code)


def pull_error(error: RegistryError, ref: Reference) -> RegistryError:
    """Docker's `translatePullError`: the not-there-or-not-for-you errors reworded."""
    name = ref.familiar_name
    if isinstance(error, AuthenticationFailed) and error.status in (401, 403):
        return AuthenticationFailed(
            f"pull access denied for {name}, repository does not exist or may require "
            f"'docker login': {error}", status=error.status, code=error.code)
    if error.code == "MANIFEST_UNKNOWN" or (isinstance(error, ManifestUnknown)
                                            and error.code != "NAME_UNKNOWN"):
        return ManifestUnknown(f"manifest for {ref.familiar()} not found: {error}",
                               status=error.status, code=error.code)
    if error.code == "NAME_UNKNOWN":
        return ManifestUnknown(f"repository {name} not found: {error}", status=error.status,
                               code=error.code)
    return error
