"""Capsules to and from an OCI registry, as OCI artifacts of their own type.

A pushed capsule is an OCI image manifest (what every distribution registry stores) with
``artifactType`` ``application/vnd.skiff.capsule.v1``, a small config blob of its own media
type (the capsule's name, version, requirements, labels and creation time) and one layer,
the capsule's pack exactly as stored (`capsule_pack.MEDIA_TYPE`: a zstd tar), so that the
digest a registry serves is the capsule's own digest. The manifest's annotations carry the
version, requirements and labels too (``dev.skiff.capsule.*``, plus the OCI
``org.opencontainers.image.title``/``version``/``created`` ones), so a registry browser or
``skopeo inspect`` shows them without fetching a blob. Blobs go as images' do (`push._Push`:
a HEAD, a cross-repository mount when the origin is known, else one upload, retried). A
pull takes only such a manifest — anything else is refused saying what it is — reads the
capsule from its annotations, and streams the pack into the capsule store, which checks its
digest and size as it writes and refuses a pack with what a capsule cannot hold; the name
and version come from the manifest, not the repository path, so a capsule keeps its
identity wherever it was pushed.
"""

from __future__ import annotations

from skiff import jsonfast
from skiff.errors import InvalidArgument, RegistryError
from skiff.oci.image_spec import OCI_MANIFEST, Descriptor, Manifest, parse_manifest, to_json
from skiff.record import Record
from skiff.reference import parse_reference
from skiff.registry import origins
from skiff.registry.client import RegistryClient
from skiff.registry.progress import Reporter
from skiff.store.blobs import digest_of
from skiff.store.capsule_pack import MEDIA_TYPE as PACK_MEDIA_TYPE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.reference import Reference
    from skiff.registry.auth import AuthConfig
    from skiff.registry.options import RegistryOptions
    from skiff.store.capsules import CapsuleRecord, CapsuleStore

ARTIFACT_TYPE = "application/vnd.skiff.capsule.v1"
CONFIG_MEDIA_TYPE = "application/vnd.skiff.capsule.config.v1+json"
_PREFIX = "dev.skiff.capsule."


class CapsulePushed(Record):
    """Where a capsule went: the tag, the manifest's digest and size."""

    tag: str
    digest: str
    size: int


class CapsuleManifest(Record):
    """A capsule as a registry's manifest describes it."""

    name: str
    version: str
    requires: dict[str, str]
    labels: dict[str, str]
    created: str
    pack: Descriptor


def _target(ref: str) -> Reference:
    reference = parse_reference(ref)
    if reference.digest is None and reference.tag is None:
        raise InvalidArgument(f"a capsule is pushed to and pulled from a tag or digest: "
                              f"{ref} names neither (try {ref}:<version>)")
    return reference


def manifest_for(record: CapsuleRecord, config: bytes) -> bytes:
    annotations = {
        f"{_PREFIX}name": record.name, f"{_PREFIX}version": record.version,
        f"{_PREFIX}requires": jsonfast.dumps(dict(sorted(record.requires.items()))),
        f"{_PREFIX}labels": jsonfast.dumps(dict(sorted(record.labels.items()))),
        "org.opencontainers.image.title": record.name,
        "org.opencontainers.image.version": record.version,
    }
    if record.created:
        annotations["org.opencontainers.image.created"] = record.created
    manifest = Manifest(
        schema_version=2, media_type=OCI_MANIFEST, artifact_type=ARTIFACT_TYPE,
        config=Descriptor(media_type=CONFIG_MEDIA_TYPE, digest=digest_of(config),
                          size=len(config)),
        layers=(Descriptor(media_type=PACK_MEDIA_TYPE, digest=record.digest, size=record.size,
                           annotations={"org.opencontainers.image.title":
                                        f"{record.name}-{record.version}.tar.zst"}),),
        annotations=annotations)
    return to_json(manifest)


def config_for(record: CapsuleRecord) -> bytes:
    return jsonfast.dumps({"name": record.name, "version": record.version,
                           "requires": dict(sorted(record.requires.items())),
                           "labels": dict(sorted(record.labels.items())),
                           "created": record.created}).encode()


def push_capsule(store: CapsuleStore, record: CapsuleRecord, ref: str, *,
                 auth: AuthConfig | None = None,
                 options: RegistryOptions | None = None) -> CapsulePushed:
    """Push the stored capsule `record` to the registry reference `ref` (a tag)."""
    from skiff.registry.push import _Push

    reference = _target(ref)
    if reference.digest is not None:
        raise InvalidArgument(f"cannot push to a digest reference ({ref}): push to a tag")
    config = config_for(record)
    manifest = manifest_for(record, config)
    with RegistryClient(reference.domain, auth, options) as client:
        client.ping()
        pusher = _Push(store, client, reference.path, Reporter(None))
        pusher.blob(Descriptor(media_type=PACK_MEDIA_TYPE, digest=record.digest,
                               size=record.size), None)
        if client.blob_size(reference.path, digest_of(config)) is None:
            client.finish_upload(reference.path, client.start_upload(reference.path),
                                 digest_of(config), config, len(config))
        tag = reference.tag or record.version
        served = client.put_manifest(reference.path, tag, manifest, OCI_MANIFEST)
    digest = digest_of(manifest)
    if served and served != digest:
        raise RegistryError(f"push {ref}: the registry says the manifest is {served}, it is "
                            f"{digest}")
    origins.record(store.root, record.digest, reference.domain, reference.path)
    return CapsulePushed(tag=tag, digest=digest, size=len(manifest))


def read_manifest(data: bytes, media_type: str | None, ref: str) -> CapsuleManifest:
    """The capsule a registry's manifest describes, or why it is not one."""
    from skiff.errors import SpecError

    try:
        doc = parse_manifest(data, media_type)
    except SpecError as e:
        raise RegistryError(f"pull {ref}: the manifest is malformed: {e}") from e
    if not isinstance(doc, Manifest) or (doc.artifact_type != ARTIFACT_TYPE and
                                         doc.config.media_type != CONFIG_MEDIA_TYPE):
        what = "an image index" if not isinstance(doc, Manifest) else \
            doc.artifact_type or doc.config.media_type
        raise InvalidArgument(f"pull {ref}: not a capsule ({what}): a capsule's manifest has "
                              f"artifactType {ARTIFACT_TYPE}")
    packs = [d for d in doc.layers if d.media_type == PACK_MEDIA_TYPE]
    if len(packs) != 1:
        raise RegistryError(f"pull {ref}: a capsule's manifest has one layer of "
                            f"{PACK_MEDIA_TYPE}, this one has {len(packs)}")
    notes = doc.annotations or {}
    try:
        requires = jsonfast.loads(notes.get(f"{_PREFIX}requires") or "{}")
        labels = jsonfast.loads(notes.get(f"{_PREFIX}labels") or "{}")
    except ValueError as e:
        raise RegistryError(f"pull {ref}: the capsule's annotations are malformed: {e}") from e
    name, version = notes.get(f"{_PREFIX}name"), notes.get(f"{_PREFIX}version")
    if not name or not version or not isinstance(requires, dict) or \
            not isinstance(labels, dict):
        raise RegistryError(f"pull {ref}: the manifest does not say the capsule's name, "
                            f"version, requirements and labels")
    return CapsuleManifest(name=name, version=version,
                           requires={str(k): str(v) for k, v in requires.items()},
                           labels={str(k): str(v) for k, v in labels.items()},
                           created=notes.get("org.opencontainers.image.created", ""),
                           pack=packs[0])


def pull_capsule(store: CapsuleStore, ref: str, *, auth: AuthConfig | None = None,
                 options: RegistryOptions | None = None,
                 check: object = None) -> tuple[CapsuleRecord, bool]:
    """Pull the capsule at `ref` into `store`: (its record, whether it is new). `check`,
    when given, is called with the `CapsuleManifest` before a byte of the pack is fetched
    (the engine checks the name, version and ranges there)."""
    reference = _target(ref)
    with RegistryClient(reference.domain, auth, options) as client:
        client.ping()
        data, media_type, _ = client.get_manifest(reference.path,
                                                  reference.digest or reference.tag or "")
        if reference.digest is not None and digest_of(data) != reference.digest:
            raise RegistryError(f"pull {ref}: the registry served a manifest of "
                                f"{digest_of(data)}")
        found = read_manifest(data, media_type, ref)
        if callable(check):
            check(found)
        pack = found.pack
        resp = client.get_blob(reference.path, pack.digest)
        try:
            record, made = store.put_pack(found.name, found.version,
                                          resp,  # type: ignore[arg-type]  # read() is enough
                                          pack.digest,
                                          pack.size, requires=found.requires,
                                          labels=found.labels, created=found.created)
        finally:
            resp.close()
    origins.record(store.root, pack.digest, reference.domain, reference.path)
    return record, made
