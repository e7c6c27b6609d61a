"""Image references and registry names (``busybox``, ``reg:5000/x:v1``), read as Docker reads them.

Like errors.py, record.py and jsonfast.py this is a foundation module that every layer may
import, because the reference grammar is shared knowledge: the store resolves names with
it, the registry client finds the registry a name lives in, and the CLI (which may import
only client/ and the foundation) refuses a bad name before it calls the daemon and picks
the credentials of a name's registry from config.json. The grammar, the normalisation and
the error texts are those of github.com/distribution/reference v0.6 (``ParseNormalizedNamed``,
``ParseAnyReference``) and go-digest, as the docker 28 CLI and dockerd use them: the first
path component is a registry domain only if it holds a ``.`` or a ``:``, is ``localhost``,
or has an uppercase letter (Docker Hub allows none); no domain means ``docker.io``,
``index.docker.io`` is ``docker.io``, and a one-component name there is an official image
under ``library/``. `Reference.familiar` gives the short form Docker prints; ``str()`` the
full, canonical one. Docker Hub is keyed in config.json by its historic URL
(``https://index.docker.io/v1/``), every other registry by its ``host[:port]``. Importing
this module imports neither `re` nor `typing`: the grammar is compiled on first use.
"""

from __future__ import annotations

from skiff.errors import ReferenceError_
from skiff.record import Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    import re

DOCKER_HUB = "docker.io"
LEGACY_DOCKER_HUB = "index.docker.io"
INDEX_SERVER = "https://index.docker.io/v1/"  # Docker Hub's key in config.json
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

INVALID_FORMAT = "invalid reference format"

# every host name Docker Hub answers to; its API is served by registry-1.docker.io
_HUB_HOSTS = frozenset({DOCKER_HUB, LEGACY_DOCKER_HUB, "registry-1.docker.io",
                        "registry.hub.docker.com"})
# go-digest's algorithms (all three are linked into the docker CLI and dockerd), by hex length
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX = frozenset("0123456789abcdef")


class Reference(Record):
    """A normalised reference: ``domain`` always set (``docker.io`` for Docker Hub), ``path``
    without the domain (``library/busybox``), and a ``tag`` and/or ``digest``."""

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
        if self.domain != DOCKER_HUB:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX) and path.count("/") == 1:
            return path[len(OFFICIAL_REPO_PREFIX):]
        return path

    @property
    def name_only(self) -> bool:
        """Neither a tag nor a digest (Docker's `IsNameOnly`)."""
        return self.tag is None and self.digest is None

    def familiar(self) -> str:
        return self.familiar_name + self._suffix()

    def with_default_tag(self) -> Reference:
        """This reference, tagged ``latest`` if it names neither a tag nor a digest
        (Docker's `TagNameOnly`)."""
        if self.name_only:
            return Reference(self.domain, self.path, DEFAULT_TAG, None)
        return self

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        return tag + (f"@{self.digest}" if self.digest is not None else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


def parse_reference(text: str) -> Reference:
    """ParseNormalizedNamed: the normalised reference, or ReferenceError_ with Docker's message."""
    if not isinstance(text, str):
        raise ReferenceError_(INVALID_FORMAT)
    if len(text) == 64 and _HEX.issuperset(text):
        # an image ID, not a name: Docker refuses it so that IDs and names never collide
        raise ReferenceError_(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = split_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise ReferenceError_(
            f"invalid reference format: repository name ({remote}) must be lowercase")
    full = f"{domain}/{remainder}"
    match = _reference_regexp().fullmatch(full)
    if match is None:
        if _reference_regexp().fullmatch(full.lower()) is not None:
            raise ReferenceError_("repository name must be lowercase")
        raise ReferenceError_(INVALID_FORMAT)
    name, matched_domain, tag, digest = match.group(1, 2, 3, 4)
    if matched_domain != domain:
        # the first component was taken for a domain (it has a "." or ":") but is not one
        # ("a_b.c/d"); Go would return a reference with an empty domain, which no registry
        # lookup can use: refuse it here
        raise ReferenceError_(INVALID_FORMAT)
    path = name[len(domain) + 1:]
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise ReferenceError_(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if digest is not None:
        _check_digest(digest)
    return Reference(domain, path, tag, digest)


def check_any(text: str) -> None:
    """ParseAnyReference: an image ID, a digest or a name; ReferenceError_ otherwise."""
    if not is_image_id(text):
        parse_reference(text)


def is_image_id(text: str) -> bool:
    """A full image ID, or a ``sha256:`` digest (full or short), which ParseAnyReference
    takes for an ID rather than a name."""
    hex_part = text.removeprefix("sha256:")
    return bool(hex_part) and _HEX.issuperset(hex_part) and (
        len(hex_part) == 64 or text.startswith("sha256:"))


def familiar_parts(text: str) -> tuple[str, str | None, str | None]:
    """(familiar name, tag, digest) of a reference the daemon reported (RepoTags,
    RepoDigests), split without the grammar: listing images must not pay for `re`."""
    name, _, digest = text.partition("@")
    tag = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
    domain, path = split_domain(name)
    return Reference(domain, path).familiar_name, tag, digest or None


def split_domain(text: str) -> tuple[str, str]:
    """(domain, the rest) of a name, as normalize.go's `splitDockerDomain`, case for case."""
    first, slash, rest = text.partition("/")
    if slash and (first == "localhost" or "." in first or ":" in first
                  or first.lower() != first):
        domain, remainder = first, rest
    else:
        domain, remainder = DOCKER_HUB, text
    if domain == LEGACY_DOCKER_HUB:
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def is_docker_hub(host: str) -> bool:
    """`host` is one of Docker Hub's names (``docker.io``, ``index.docker.io``…)."""
    return host in _HUB_HOSTS


def index_server(domain: str) -> str:
    """The config.json key of a reference's registry: Docker Hub's historic URL, else
    host[:port]."""
    return INDEX_SERVER if is_docker_hub(domain) else domain


def server_domain(server: str) -> str:
    """The registry a login server names, as written (``https://host:5000/v2/``,
    ``host:5000``): its host[:port], or ``docker.io`` for "" and Docker Hub's names."""
    host = server.split("://", 1)[-1].split("/", 1)[0]
    return DOCKER_HUB if not host or is_docker_hub(host) else host


def server_hostname(server: str) -> str:
    """The config.json key of a login server as written (the docker CLI's
    `ConvertToHostname`): ``host:5000``, or Docker Hub's historic URL."""
    return index_server(server_domain(server))


def _check_digest(digest: str) -> None:
    # go-digest's Digest.Validate; the grammar has made sure of the ":" and of hex digits
    algorithm, _, encoded = digest.partition(":")
    length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        # an unknown algorithm is "unsupported" only if it is well formed (lowercase)
        raise ReferenceError_("invalid checksum digest format" if algorithm.lower() != algorithm
                              else "unsupported digest algorithm")
    if len(encoded) != length:
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
