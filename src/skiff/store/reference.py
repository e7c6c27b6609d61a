"""Image references (``busybox``, ``myreg:5000/x/y:tag@sha256:…``) parsed as Docker parses them.

The grammar and the normalisation are those of github.com/distribution/reference
(regexp.go and normalize.go's `ParseNormalizedNamed`), which the docker CLI and dockerd
use: the first path component is a registry domain only if it holds a ``.`` or a ``:``,
is ``localhost``, or has an uppercase letter (Docker Hub allows none); no domain means
``docker.io``, ``index.docker.io`` is ``docker.io``, and a one-component name there is an
official image under ``library/``. Errors carry Docker's own words, so a user sees the
message they would see from ``docker pull``. `Reference.familiar` gives the short form Docker
prints; ``str()`` the full, canonical one.
"""

from __future__ import annotations

from skiff.errors import ReferenceError_
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

INVALID_FORMAT = "invalid reference format"
MUST_BE_LOWERCASE = "invalid reference format: repository name must be lowercase"

_HEX = frozenset("0123456789abcdef")


class Reference(Record):
    """A normalised reference: ``domain`` always set, ``path`` without the domain."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The name as Docker shows it: Docker Hub's domain and official ``library/`` dropped."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX) and path.count("/") == 1:
            return path[len(OFFICIAL_REPO_PREFIX):]
        return path

    def familiar(self) -> str:
        return self.familiar_name + self._suffix()

    def with_default_tag(self) -> Reference:
        """This reference, tagged ``latest`` if it names neither a tag nor a digest."""
        if self.tag is None and self.digest is None:
            return Reference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        return tag + (f"@{self.digest}" if self.digest is not None else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


def parse_reference(text: str) -> Reference:
    """Parse and normalise `text`, or raise ReferenceError_ with Docker's message."""
    if not isinstance(text, str):
        raise ReferenceError_(INVALID_FORMAT)
    if len(text) == 64 and _HEX.issuperset(text):
        # an image ID, not a name: Docker refuses it so that IDs and names never collide
        raise ReferenceError_(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise ReferenceError_(MUST_BE_LOWERCASE)
    full = f"{domain}/{remainder}"
    match = _reference_regexp().fullmatch(full)
    if match is None:
        if _reference_regexp().fullmatch(full.lower()) is not None:
            raise ReferenceError_(MUST_BE_LOWERCASE)
        raise ReferenceError_(INVALID_FORMAT)
    name, matched_domain, tag, digest = match.group(1, 2, 3, 4)
    if matched_domain != domain:
        # the first component was taken for a domain (it has a "." or ":") but is not one
        # ("a_b.c/d"); Go would return a reference with an empty domain, which no registry
        # lookup can use: refuse it here
        raise ReferenceError_(INVALID_FORMAT)
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError_(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if digest is not None:
        _check_digest(digest)
    return Reference(domain, name[len(domain) + 1:], tag, digest)


def _split_domain(text: str) -> tuple[str, str]:
    # normalize.go's splitDockerDomain, case for case
    first, slash, rest = text.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + text
    if first == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_DOMAIN, text
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _check_digest(digest: str) -> None:
    # go-digest's Validate, narrowed to the one algorithm skiff stores
    algorithm, _, encoded = digest.partition(":")
    if algorithm != "sha256":
        raise ReferenceError_("unsupported digest algorithm")
    if len(encoded) != 64:
        raise ReferenceError_("invalid checksum digest length")
    if not _HEX.issuperset(encoded):
        raise ReferenceError_("invalid checksum digest format")


_compiled: re.Pattern[str] | None = None


def _reference_regexp() -> re.Pattern[str]:
    # compiled on first use: importing `re` costs ~8 ms, which a CLI that never parses a
    # reference should not pay
    global _compiled
    if _compiled is None:
        import re

        alphanumeric = r"[a-z0-9]+"
        separator = r"(?:[._]|__|[-]+)"
        path_component = f"{alphanumeric}(?:{separator}{alphanumeric})*"
        domain_component = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
        domain_name = f"{domain_component}(?:\\.{domain_component})*"
        ipv6 = r"\[(?:[a-fA-F0-9:]+)\]"
        domain = f"(?:{domain_name}|{ipv6})(?::[0-9]+)?"
        name = f"(?:({domain})/)?{path_component}(?:/{path_component})*"
        tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # Go's \w is ASCII only
        digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
        _compiled = re.compile(f"({name})(?::({tag}))?(?:@({digest}))?")
    return _compiled
