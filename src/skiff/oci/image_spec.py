"""The OCI image spec and Docker's image formats (manifest v2 schema 2, manifest list, image
config) as frozen records, read the way containerd and docker read them.

`parse_manifest` tells a manifest from an index by the media type it was served with, else by
the document's own `mediaType`, else (OCI allows leaving it out) by its shape; `parse_config`
reads an image config, whose `config` keys are Docker's PascalCase. Docker's formats have the
same shapes as OCI's, so one record type serves both. `select_platform` picks an index entry
with containerd's default matching, `chain_ids` computes the layer chain IDs a snapshotter is
keyed by, and `to_json` is the way out. Every error is a `SpecError` naming the field.
"""

from __future__ import annotations

from skiff import jsonfast
from skiff.errors import SpecError
from skiff.oci.codec import decode_object, encode
from skiff.record import Record, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
# a layer's media type → how its tar is compressed ("" for not at all)
LAYER_COMPRESSION = {
    OCI_LAYER: "", OCI_LAYER_GZIP: "gzip", OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDISTRIBUTABLE: "", OCI_LAYER_NONDISTRIBUTABLE_GZIP: "gzip",
    OCI_LAYER_NONDISTRIBUTABLE_ZSTD: "zstd",
    DOCKER_LAYER: "", DOCKER_LAYER_GZIP: "gzip", DOCKER_LAYER_FOREIGN: "gzip",
}
# known layers that registries need not hold (their blobs live at `urls`, often Windows base
# layers): containerd and docker skip fetching them rather than fail
FOREIGN_LAYER_TYPES = frozenset({OCI_LAYER_NONDISTRIBUTABLE, OCI_LAYER_NONDISTRIBUTABLE_GZIP,
                                 OCI_LAYER_NONDISTRIBUTABLE_ZSTD, DOCKER_LAYER_FOREIGN})
_SCHEMA1_TYPES = (DOCKER_MANIFEST_SCHEMA1, DOCKER_MANIFEST_SCHEMA1_SIGNED)
# what registries and files say when they do not know: the document must tell
_VAGUE_TYPES = ("", "application/json", "application/octet-stream", "text/plain")

_HEX = frozenset("0123456789abcdef")
_DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}
_ALGORITHM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+._-")
_ENCODED_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789=_-")


class PlatformNotFound(SpecError):
    """An index holds no image for the platform asked for; the message lists what it holds."""


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _check_digest(where: str, digest: str) -> None:
    algorithm, colon, encoded = digest.partition(":")
    if not (colon and algorithm and encoded and set(algorithm) <= _ALGORITHM_CHARS
            and set(encoded) <= _ENCODED_CHARS):
        raise SpecError(where, f"must be algorithm:encoded, e.g. sha256:<64 hex digits>, got {digest!r}")
    length = _DIGEST_LENGTHS.get(algorithm)
    if length is not None and (len(encoded) != length or not set(encoded) <= _HEX):
        raise SpecError(where, f"a {algorithm} digest needs {length} lowercase hex digits, got {digest!r}")


class Platform(Record):
    architecture: str
    os: str
    os_version: str | None = field(None, json="os.version")
    os_features: tuple[str, ...] | None = field(None, json="os.features")
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class Descriptor(Record):
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] | None = None
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    artifact_type: str | None = None

    def validate(self, where: str) -> None:
        _check_digest(_at(where, "digest"), self.digest)
        if self.size < 0:
            raise SpecError(_at(where, "size"), f"must not be negative, got {self.size}")


def _check_schema_version(version: int) -> None:
    if version != 2:
        raise SpecError("schemaVersion", f"must be 2, got {version}")


class _Document(Record):
    """What manifests and indexes share (the fields come first in their JSON, as Docker and
    the OCI write them)."""

    schema_version: int
    media_type: str | None = None

    def validate(self, where: str) -> None:
        _check_schema_version(self.schema_version)


class Manifest(_Document):
    config: Descriptor = field()
    layers: tuple[Descriptor, ...] = field()
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None


class Index(_Document):
    """An OCI image index, or Docker's manifest list: the same shape."""

    manifests: tuple[Descriptor, ...] = field()
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: dict[str, str] | None = None


class ContainerConfig(Record):
    """What a container made from the image runs with by default (Docker's PascalCase keys)."""

    user: str | None = field(None, json="User")
    exposed_ports: dict[str, Any] | None = field(None, json="ExposedPorts")  # "80/tcp": {}
    env: tuple[str, ...] | None = field(None, json="Env")
    entrypoint: tuple[str, ...] | None = field(None, json="Entrypoint")
    cmd: tuple[str, ...] | None = field(None, json="Cmd")
    volumes: dict[str, Any] | None = field(None, json="Volumes")  # "/data": {}
    working_dir: str | None = field(None, json="WorkingDir")
    labels: dict[str, str] | None = field(None, json="Labels")
    stop_signal: str | None = field(None, json="StopSignal")
    healthcheck: Any = field(None, json="Healthcheck")


class RootFS(Record):
    type: str = field(choices=("layers",))
    diff_ids: tuple[str, ...] = field(json="diff_ids")

    def validate(self, where: str) -> None:
        for i, diff_id in enumerate(self.diff_ids):
            _check_digest(f"{_at(where, 'diff_ids')}[{i}]", diff_id)


class History(Record):
    created: str | None = None
    created_by: str | None = field(None, json="created_by")
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = field(None, json="empty_layer")


class ImageConfig(Record):
    architecture: str
    os: str
    rootfs: RootFS
    variant: str | None = None
    os_version: str | None = field(None, json="os.version")
    os_features: tuple[str, ...] | None = field(None, json="os.features")
    created: str | None = None
    author: str | None = None
    config: ContainerConfig | None = None
    history: tuple[History, ...] | None = None


def _document(data: str | bytes, what: str) -> Any:
    try:
        doc = jsonfast.loads(data)
    except ValueError as e:  # a UnicodeDecodeError is one too
        raise SpecError("", f"the {what} is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise SpecError("", f"the {what} must be a JSON object")
    return doc


def _kind_of(doc: dict[str, Any], media_type: str | None) -> str:
    """"manifest" or "index", from the type served, the document's mediaType or its shape."""
    given = (media_type or "").partition(";")[0].strip().lower()
    own = doc.get("mediaType")
    if given in _SCHEMA1_TYPES or own in _SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
        raise SpecError("schemaVersion", "Docker schema 1 manifests are not supported: "
                                         "push the image again with a current Docker or buildkit")
    if own is not None and not isinstance(own, str):
        raise SpecError("mediaType", f"expected a string, got {type(own).__name__}")
    if own is not None and own not in MANIFEST_TYPES and own not in INDEX_TYPES:
        raise SpecError("mediaType", f"{own!r} is not a manifest or index media type")
    if given in _VAGUE_TYPES:
        given = ""
    elif given not in MANIFEST_TYPES and given not in INDEX_TYPES:
        raise SpecError("mediaType", f"served as {given!r}, which is not a manifest or index")
    if given and own and given != own:
        raise SpecError("mediaType", f"the document says {own!r} but was served as {given!r}")
    decided = given or own
    if decided:
        kind = "manifest" if decided in MANIFEST_TYPES else "index"
    elif "manifests" in doc:
        kind = "index"
    elif "layers" in doc or "config" in doc:
        kind = "manifest"
    else:
        raise SpecError("mediaType", "is absent, and the document has neither manifests nor layers")
    # containerd refuses a document that is both: reading only half of it would hide the rest
    if kind == "manifest" and "manifests" in doc:
        raise SpecError("manifests", "a manifest must not have manifests: is it an index?")
    if kind == "index" and ("layers" in doc or "config" in doc):
        raise SpecError("layers" if "layers" in doc else "config",
                        "an index must not have layers or config: is it a manifest?")
    return kind


def parse_manifest(data: str | bytes, media_type: str | None = None) -> Manifest | Index:
    """A manifest or an index; `media_type` is what it was served as (Content-Type or the
    descriptor that pointed at it), None when unknown."""
    doc = _document(data, "manifest")
    kind = _kind_of(doc, media_type)
    if kind == "manifest":
        return decode_object(Manifest, doc)
    return decode_object(Index, doc)


def parse_config(data: str | bytes) -> ImageConfig:
    return decode_object(ImageConfig, _document(data, "image config"))


_ARCH_ALIASES = {"x86_64": ("amd64", ""), "x86-64": ("amd64", ""), "aarch64": ("arm64", ""),
                 "i386": ("386", ""), "armhf": ("arm", "v7"), "armel": ("arm", "v6")}
_ARM_VARIANTS = ("v8", "v7", "v6", "v5")  # an arm CPU runs its own variant and the older ones


def _normal_arch(architecture: str, variant: str | None) -> tuple[str, str]:
    arch, implied = _ARCH_ALIASES.get(architecture.lower(), (architecture.lower(), ""))
    v = (variant or implied).lower()
    if v.isdigit():
        v = "v" + v
    return arch, v


def platform_from_text(text: str) -> Platform:
    """``os/arch[/variant]`` (``linux/arm64/v8``), with containerd's aliases (x86_64, aarch64)."""
    parts = text.strip().split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise SpecError("platform", f"{text!r} is not os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8")
    arch, variant = _normal_arch(parts[1], parts[2] if len(parts) == 3 else None)
    return Platform(architecture=arch, os=parts[0].lower(), variant=variant or None)


def _accepted_variants(arch: str, variant: str) -> tuple[str, ...] | None:
    """The variants a wanted platform takes, best first; None takes any."""
    if arch == "amd64":
        return None  # containerd pulls plain amd64 whatever variant is asked
    if arch == "arm64":
        return (variant or "v8",)
    if arch == "arm":
        v = variant or "v7"
        return _ARM_VARIANTS[_ARM_VARIANTS.index(v):] if v in _ARM_VARIANTS else (v,)
    return (variant,) if variant else None


def _default_variant(arch: str, variant: str) -> str:
    return variant or {"arm64": "v8", "arm": "v7"}.get(arch, "")


def select_platform(index: Index, os: str = "linux", architecture: str = "amd64",
                    variant: str | None = None) -> Descriptor:
    """The index entry containerd would pull for the platform: os and architecture exact
    (after aliases), the variant as given (arm64 means v8, arm v7 and older run on v7, amd64
    ignores it); entries without a platform are a last resort; the first of equals wins."""
    want_os = os.lower()
    want_arch, want_variant = _normal_arch(architecture, variant)
    accepted = _accepted_variants(want_arch, want_variant)
    best: tuple[int, Descriptor] | None = None
    for desc in index.manifests:
        p = desc.platform
        if p is None:
            rank = 1000 if desc.media_type in MANIFEST_TYPES else -1
        elif p.os.lower() != want_os:
            rank = -1
        else:
            arch, v = _normal_arch(p.architecture, p.variant)
            if arch != want_arch:
                rank = -1
            elif accepted is None:
                rank = 0
            else:
                v = _default_variant(arch, v)
                rank = accepted.index(v) if v in accepted else -1
        if rank >= 0 and (best is None or rank < best[0]):
            best = (rank, desc)
    if best is None:
        wanted = "/".join(x for x in (want_os, want_arch, want_variant) if x)
        offered = ", ".join(str(d.platform) for d in index.manifests if d.platform is not None)
        raise PlatformNotFound("manifests", f"no image for {wanted}; the index offers "
                                            f"{offered or 'no platforms'}")
    return best[1]


def chain_ids(diff_ids: tuple[str, ...] | list[str]) -> list[str]:
    """The OCI chain IDs: ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " +
    DiffID(Ln)); each names the stack of layers up to it, so equal stacks share a snapshot."""
    import hashlib  # lazily: only unpacking needs it, and importing it costs

    out: list[str] = []
    for diff_id in diff_ids:
        if out:
            text = f"{out[-1]} {diff_id}".encode()
            out.append("sha256:" + hashlib.sha256(text).hexdigest())
        else:
            out.append(diff_id)
    return out


def to_json(record: Record) -> bytes:
    """The compact JSON of a record, None fields left out. Not digest-stable: keep the bytes
    you were given when their digest matters."""
    return jsonfast.dumps(encode(record)).encode()
