"""Image references as the docker CLI reads them before it calls the daemon.

The CLI checks and normalises a name itself (`tag`, `pull`, `push` refuse a malformed one
with Docker's words and send the daemon the full name), and it needs a reference's registry
to pick credentials from config.json. That is distribution/reference's
`ParseNormalizedNamed`: a first component with a ``.`` or ``:``, ``localhost``, or an
uppercase letter is a registry, none means ``docker.io``, and a lone name there lives
under ``library/``. The layers below keep their own parser (store/); the CLI may import
only client/, so this is the client's small one, with `re` compiled on first use.
"""

from __future__ import annotations

from skiff.errors import ReferenceError_

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

DOCKER_HUB = "docker.io"
INDEX_SERVER = "https://index.docker.io/v1/"  # Docker Hub's key in config.json
DEFAULT_TAG = "latest"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io",
                          "https://index.docker.io/v1/", "https://index.docker.io/v1",
                          "index.docker.io/v1/", "https://docker.io", "registry.hub.docker.com"})
_HEX = frozenset("0123456789abcdef")


class Named:
    """A normalised reference: `domain` (``docker.io`` for Docker Hub), `path`
    (``library/busybox``), and a `tag` and/or `digest`."""

    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain: str, path: str, tag: str | None = None,
                 digest: str | None = None) -> None:
        self.domain, self.path, self.tag, self.digest = domain, path, tag, digest

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        if self.domain != DOCKER_HUB:
            return self.name
        if self.path.startswith("library/") and self.path.count("/") == 1:
            return self.path[len("library/"):]
        return self.path

    @property
    def name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def tagged(self) -> Named:
        """``:latest`` added when neither a tag nor a digest is given (TagNameOnly)."""
        return Named(self.domain, self.path, DEFAULT_TAG) if self.name_only else self

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def familiar(self) -> str:
        return self.familiar_name + self._suffix()

    def __str__(self) -> str:
        return self.name + self._suffix()

    def __repr__(self) -> str:
        return f"Named({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Named) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def parse_named(text: str) -> Named:
    """ParseNormalizedNamed: the reference, or ReferenceError_ with Docker's message."""
    if len(text) == 64 and _HEX.issuperset(text):
        raise ReferenceError_(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = split_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise ReferenceError_(
            f"invalid reference format: repository name ({remote}) must be lowercase")
    whole = f"{domain}/{remainder}"
    found = _grammar().fullmatch(whole)
    if found is None:
        if not text:
            raise ReferenceError_("repository name must have at least one component")
        if _grammar().fullmatch(whole.lower()) is not None:
            raise ReferenceError_("repository name must be lowercase")
        raise ReferenceError_("invalid reference format")
    name, tag, digest = found.group(1, 2, 3)
    if len(name) > 255:
        raise ReferenceError_("repository name must not be more than 255 characters")
    if digest is not None:
        algorithm, _, hex_part = digest.partition(":")
        if algorithm == "sha256" and len(hex_part) != 64:
            raise ReferenceError_("invalid checksum digest length")
        if algorithm not in ("sha256", "sha384", "sha512"):
            raise ReferenceError_("unsupported digest algorithm")
    return Named(domain, name[len(domain) + 1:], tag, digest)


def familiar_parts(text: str) -> tuple[str, str | None, str | None]:
    """(familiar name, tag, digest) of a reference the daemon reported (RepoTags,
    RepoDigests), split without the grammar: listing images must not pay for `re`."""
    name, _, digest = text.partition("@")
    tag = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
    domain, path = split_domain(name)
    return Named(domain, path).familiar_name, tag, digest or None


def is_image_id(text: str) -> bool:
    """A full or short image ID (or ``sha256:`` digest), which ParseAnyReference accepts."""
    hex_part = text.removeprefix("sha256:")
    return bool(hex_part) and _HEX.issuperset(hex_part) and (
        len(hex_part) == 64 or text.startswith("sha256:"))


def check_any(text: str) -> None:
    """ParseAnyReference: an image ID, a digest or a name; ReferenceError_ otherwise."""
    if not is_image_id(text):
        parse_named(text)


def split_domain(text: str) -> tuple[str, str]:
    first, slash, rest = text.partition("/")
    if slash and (first == "localhost" or "." in first or ":" in first or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = DOCKER_HUB, text
    if domain == "index.docker.io":
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = "library/" + remainder
    return domain, remainder


def index_server(domain: str) -> str:
    """The config.json key of a registry: Docker Hub's historic URL, else host[:port]."""
    return INDEX_SERVER if domain in _HUB_ALIASES else domain


def server_hostname(server: str) -> str:
    """A login server as given (``https://host:5000/v2/``), reduced to ``host:5000``; Docker
    Hub's names to its config.json key."""
    if server in _HUB_ALIASES or not server:
        return INDEX_SERVER
    host = server.split("://", 1)[-1].split("/", 1)[0]
    return INDEX_SERVER if host in _HUB_ALIASES else host


_compiled: re.Pattern[str] | None = None


def _grammar() -> re.Pattern[str]:
    global _compiled
    if _compiled is None:
        import re
        component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
        label = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
        host = rf"(?:{label}(?:\.{label})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
        name = rf"(?:{host}/)?{component}(?:/{component})*"
        tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
        digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
        _compiled = re.compile(rf"({name})(?::({tag}))?(?:@({digest}))?")
    return _compiled
