"""``docker pull``: resolve a reference in a registry, fetch what the store lacks, verify
it and store the image.

The tag (or digest) is resolved with one manifest GET that accepts the four formats
skiff reads; an index (OCI) or manifest list (Docker) is narrowed to one platform with
`select_platform` — the one asked for, else linux and the host's architecture — and every
manifest fetched by digest is checked against it. When the name already points at that
manifest the pull stops there ("Image is up to date"). Otherwise the config is fetched (or
read from the store) and each layer is looked at: already unpacked and stored means
"Already exists"; the rest download in parallel (three at a time, as dockerd) straight
into `BlobWriter`s, which verify digest and size while they write. Layers are unpacked in
order as their downloads finish, and the first layer that needs both is unpacked *while*
it downloads, through a tee into its blob writer — its folder is published only after the
stream closed with a verified blob, and its content is checked against the config's diff
ID in any case. `store.add` then records the image under the name (and, as Docker adds
it, the digest reference), finding everything in place. A pull that fails half-way takes
back every blob and layer it made, so the store is as it was. Progress goes out per layer
in Docker's statuses.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from skiff.errors import (
    DigestMismatch,
    ImageNotFound,
    InvalidArgument,
    LayerError,
    ManifestUnknown,
    RegistryError,
    SpecError,
    StoreError,
)
from skiff.log import logger
from skiff.oci.image_spec import (
    Index,
    Manifest,
    Platform,
    PlatformNotFound,
    parse_config,
    parse_manifest,
    platform_from_text,
    select_platform,
)
from skiff.record import Record
from skiff.reference import Reference, parse_reference
from skiff.registry import origins
from skiff.registry.client import RegistryClient
from skiff.registry.download import BlobStream, TeeToBlob
from skiff.registry.options import RegistryOptions
from skiff.registry.progress import CountingReader, Reporter, short_id
from skiff.registry.spec_errors import pull_error
from skiff.store.blobs import digest_of
from skiff.store.images import Image
from skiff.store.layer_store import chain_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO

    from skiff.oci.image_spec import Descriptor, ImageConfig
    from skiff.registry.auth import AuthConfig
    from skiff.registry.progress import ProgressFn
    from skiff.store.images import ImageStore

_log = logger("skiff.registry.pull")
CONCURRENT_DOWNLOADS = 3  # dockerd's default max-concurrent-downloads
_MACHINES = {"x86_64": "linux/amd64", "amd64": "linux/amd64", "aarch64": "linux/arm64/v8",
             "arm64": "linux/arm64/v8", "armv7l": "linux/arm/v7", "armv6l": "linux/arm/v6",
             "i686": "linux/386", "i386": "linux/386", "ppc64le": "linux/ppc64le",
             "s390x": "linux/s390x", "riscv64": "linux/riscv64"}


class PullResult(Record):
    """`reference` is the familiar name pulled (``busybox:latest``, ``name@sha256:…``),
    `digest` the digest the registry resolved it to (the index's, when there was one) and
    `fresh` False when the image was already there ("Image is up to date")."""

    image: Image
    reference: str
    digest: str
    fresh: bool


def host_platform() -> Platform:
    """linux and the host's architecture, in OCI's names (x86_64 is amd64)."""
    import platform

    machine = platform.machine().lower()
    return platform_from_text(_MACHINES.get(machine, f"linux/{machine}"))


def pull(store: ImageStore, ref: str, *, platform: str | None = None,
         auth: AuthConfig | None = None, options: RegistryOptions | None = None,
         progress: ProgressFn | None = None) -> PullResult:
    """Pull `ref` (``:latest`` when it names neither tag nor digest) into `store`."""
    reference = parse_reference(ref)
    if reference.tag is None and reference.digest is None:
        reference = reference.with_default_tag()
    try:
        want = platform_from_text(platform) if platform else host_platform()
    except SpecError as e:
        raise InvalidArgument(f"invalid platform: {e.problem}") from None
    with RegistryClient(reference.domain, auth, options) as client:
        return _Pull(store, client, reference, want, platform is not None,
                     Reporter(progress)).run()


class _Layer:
    """One layer of the manifest and what it needs."""

    def __init__(self, desc: Descriptor, diff_id: str, parent: str | None) -> None:
        self.desc = desc
        self.diff_id = diff_id
        self.parent = parent
        self.chain = chain_id(parent, diff_id)
        self.id = short_id(desc.digest)
        self.need_blob = False
        self.need_layer = False


class _Pull:
    def __init__(self, store: ImageStore, client: RegistryClient, reference: Reference,
                 want: Platform, explicit: bool, report: Reporter) -> None:
        self.store = store
        self.client = client
        self.ref = reference
        self.repo = reference.path
        self.want = want
        self.explicit = explicit
        self.report = report
        self.cancel = threading.Event()
        self.lock = threading.Lock()
        self.made_blobs: list[str] = []
        self.made_layers: list[str] = []
        self.index: tuple[str, bytes] | None = None  # (digest, bytes) of the index, if any

    # -- the whole pull ---------------------------------------------------------------------
    def run(self) -> PullResult:
        data, manifest, digest, top = self.resolve()
        name = f"{self.ref.name}@{top}" if self.ref.digest is not None else str(self.ref)
        index = self.index[1] if self.index is not None else None
        try:
            existing = self.store.get(name)
        except ImageNotFound:
            existing = None
        if existing is not None and existing.manifest_digest == digest:
            return PullResult(existing, self.ref.familiar(), top, False)
        config_bytes = self.config(manifest)
        config = _parse_config(config_bytes, manifest.config.digest)
        self.check_platform(config)
        diff_ids = config.rootfs.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise RegistryError(f"manifest {digest} has {len(manifest.layers)} layers but its "
                                f"config has {len(diff_ids)} diff IDs")
        layers: list[_Layer] = []
        parent: str | None = None
        for desc, diff_id in zip(manifest.layers, diff_ids):
            layers.append(_Layer(desc, diff_id, parent))
            parent = layers[-1].chain
        try:
            self.fetch_layers(layers)
            openers = [(layer.desc.digest, self.opener(layer.desc)) for layer in layers]
            image = self.store.add(data, config_bytes, layer_blobs=openers, ref=name,
                                   index_bytes=index)
        except BaseException:
            self.take_back()
            raise
        if self.ref.digest is None:
            # Docker names a pulled image by the digest its tag resolved to too (its
            # RepoDigests): the index's, when the tag named one
            self.store.add(data, config_bytes, ref=f"{self.ref.name}@{top}", index_bytes=index)
        for d in [manifest.config.digest] + [layer.desc.digest for layer in layers]:
            origins.record(self.store.root, d, self.client.domain, self.repo)
        return PullResult(image, self.ref.familiar(), top, True)

    # -- the manifest -----------------------------------------------------------------------
    def resolve(self) -> tuple[bytes, Manifest, str, str]:
        """(manifest bytes, manifest, its digest, the digest the reference resolved to)."""
        self.client.ping()
        data, media_type, digest = self.manifest(self.ref.digest or self.ref.tag or "latest",
                                                 self.ref.digest)
        top = digest
        doc = _parse(data, media_type, digest)
        if isinstance(doc, Index):
            try:
                desc = select_platform(doc, self.want.os, self.want.architecture,
                                       self.want.variant)
            except PlatformNotFound:
                raise ManifestUnknown(f"no matching manifest for {self.want} in the manifest "
                                      f"list entries") from None
            self.index = (top, data)
            data, media_type, digest = self.manifest(desc.digest, desc.digest)
            doc = _parse(data, desc.media_type, digest)
            if not isinstance(doc, Manifest):
                raise RegistryError(f"index {top} gives another index ({digest}) for "
                                    f"{self.want}: nested indexes are not supported")
        return data, doc, digest, top

    def manifest(self, reference: str, expected: str | None) -> tuple[bytes, str | None, str]:
        try:
            data, media_type, served = self.client.get_manifest(self.repo, reference)
        except RegistryError as e:
            translated = pull_error(e, self.ref)
            if translated is e:
                raise
            raise translated from e
        digest = digest_of(data)
        if expected is not None and digest != expected:
            raise RegistryError(f"manifest verification failed for digest {expected}")
        if expected is None and served and served.startswith("sha256:") and served != digest:
            raise RegistryError(f"manifest verification failed for digest {served}")
        return data, media_type, digest

    def check_platform(self, config: ImageConfig) -> None:
        """An image that is not an index must be of the platform asked for, if one was."""
        if not self.explicit or self.index is not None:
            return
        got = platform_from_text(f"{config.os}/{config.architecture}" +
                                 (f"/{config.variant}" if config.variant else ""))
        want = self.want
        if (got.os, got.architecture) != (want.os, want.architecture) or \
                (want.variant and got.variant and want.variant != got.variant):
            raise ManifestUnknown(f"image with reference {self.ref.familiar()} was found but "
                                  f"does not match the specified platform: wanted {want}, "
                                  f"actual: {got}")

    # -- blobs ------------------------------------------------------------------------------
    def stream(self, desc: Descriptor, progress_id: str | None = None) -> BlobStream:
        return BlobStream(self.client, self.repo, desc.digest, desc.size, self.report,
                          progress_id, self.cancel.is_set)

    def opener(self, desc: Descriptor) -> Callable[[], IO[bytes]]:
        # store.add fetches through it only if the blob went missing meanwhile
        return lambda: self.stream(desc)  # type: ignore[return-value]

    def config(self, manifest: Manifest) -> bytes:
        desc = manifest.config
        if self.store.blobs.exists(desc.digest):
            return self.store.blobs.read_bytes(desc.digest)
        stream = self.stream(desc)
        parts = []
        while chunk := stream.read():
            parts.append(chunk)
        data = b"".join(parts)
        if digest_of(data) != desc.digest or len(data) != desc.size:
            raise RegistryError(f"image config verification failed for digest {desc.digest}")
        return data

    def download(self, layer: _Layer) -> None:
        """Fetch a layer's blob into the store (a worker thread's job)."""
        desc, report = layer.desc, self.report
        stream = self.stream(desc, layer.id)
        try:
            with self.store.blobs.writer(desc.digest, desc.size) as writer:
                report.bytes(layer.id, "Downloading", 0, desc.size)
                while chunk := stream.read():
                    writer.write(chunk)
                    report.bytes(layer.id, "Downloading", writer.written, desc.size)
                report(layer.id, "Verifying Checksum")
                self.committed(writer.commit)
        except DigestMismatch as e:
            raise _layer_mismatch(desc.digest, e) from e
        finally:
            stream.close()
        report(layer.id, "Download complete")

    def committed(self, commit: Callable[[], str]) -> None:
        digest = commit()
        with self.lock:
            self.made_blobs.append(digest)

    def unpack(self, layer: _Layer) -> None:
        """Unpack a layer whose blob is stored."""
        store, report, size = self.store, self.report, layer.desc.size

        def opener() -> IO[bytes]:
            return CountingReader(store.blobs.open(layer.desc.digest),  # type: ignore[return-value]
                                  lambda n: report.bytes(layer.id, "Extracting", n, size))

        report(layer.id, "Extracting", 0, size)
        self.ensure(layer, opener)

    def stream_unpack(self, layer: _Layer) -> None:
        """Download a layer and unpack it at once, the blob written as it streams."""
        desc, report = layer.desc, self.report
        writer = self.store.blobs.writer(desc.digest, desc.size)
        tee = TeeToBlob(self.stream(desc, layer.id), writer,
                        lambda n: report.bytes(layer.id, "Downloading", n, desc.size))
        report.bytes(layer.id, "Downloading", 0, desc.size)
        try:
            try:
                self.ensure(layer, lambda: tee)  # type: ignore[arg-type, return-value]
            except LayerError as e:
                # the unpacker reports every failure of its stream as a corrupt layer; a
                # broken transfer or a blob too long is the download's failure, not the layer's
                if isinstance(e.__cause__, (RegistryError, DigestMismatch)):
                    raise e.__cause__ from None
                raise
        except DigestMismatch as e:
            raise _layer_mismatch(desc.digest, e) from e
        finally:
            writer.abort()  # harmless after a commit; drops the temporary file otherwise
            if tee.digest is not None:
                with self.lock:
                    self.made_blobs.append(tee.digest)
        if tee.digest is None:  # someone else stored the layer meanwhile: fetch the blob
            self.download(layer)
            return
        report(layer.id, "Verifying Checksum")
        report(layer.id, "Download complete")
        report(layer.id, "Extracting", desc.size, desc.size)

    def ensure(self, layer: _Layer, opener: Callable[[], IO[bytes]]) -> None:
        existed = self.store.layers.exists(layer.chain)
        self.store.layers.ensure(layer.parent, layer.diff_id, opener)
        if not existed:
            with self.lock:
                self.made_layers.append(layer.chain)

    # -- the layers -------------------------------------------------------------------------
    def fetch_layers(self, layers: list[_Layer]) -> None:
        """Bring every layer's blob and unpacked folder into the store, downloads in
        parallel, unpacking in order."""
        blobs, layer_store, report = self.store.blobs, self.store.layers, self.report
        seen: set[str] = set()
        for layer in layers:
            layer.need_layer = not layer_store.exists(layer.chain)
            layer.need_blob = layer.desc.digest not in seen and not blobs.exists(layer.desc.digest)
            seen.add(layer.desc.digest)
            if layer.need_blob or layer.need_layer:
                report(layer.id, "Pulling fs layer")
            else:
                report(layer.id, "Already exists")
        streamed = next((layer for layer in layers if layer.need_blob and layer.need_layer),
                        None)
        pool = ThreadPoolExecutor(max_workers=CONCURRENT_DOWNLOADS,
                                  thread_name_prefix="skiff-pull")
        futures: dict[str, Future[None]] = {}
        try:
            queued = 0
            for layer in layers:
                if layer.need_blob and layer is not streamed:
                    futures[layer.desc.digest] = pool.submit(self.download, layer)
                    queued += 1
                    if queued > CONCURRENT_DOWNLOADS:
                        report(layer.id, "Waiting")
            for layer in layers:
                future = futures.get(layer.desc.digest)
                if layer is streamed or (future is not None and layer.need_layer
                                         and future.cancel()):
                    self.stream_unpack(layer)
                elif future is not None:
                    if future.cancel():
                        self.download(layer)
                    else:
                        future.result()
                    if layer.need_layer:
                        self.unpack(layer)
                elif layer.need_layer:
                    self.unpack(layer)
                if layer.need_blob or layer.need_layer:
                    report(layer.id, "Pull complete")
        except BaseException:
            self.cancel.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def take_back(self) -> None:
        """Remove what this pull made, so a failed pull leaves the store as it was — but
        nothing a stored image uses: a concurrent pull of the same layers may have
        finished with them meanwhile (one still running finds them gone at its `add`,
        which fetches and unpacks them again)."""
        self.cancel.set()
        used_chains, used_blobs = self.in_use()
        for chain in reversed(self.made_layers):
            if chain in used_chains:
                continue
            try:
                self.store.layers.remove(chain)
            except StoreError as e:
                _log.warning("pull %s: could not take back layer %s: %s", self.ref, chain, e)
        for digest in self.made_blobs:
            if digest in used_blobs:
                continue
            try:
                self.store.blobs.delete(digest)
            except StoreError:
                pass

    def in_use(self) -> tuple[set[str], set[str]]:
        chains: set[str] = set()
        blobs: set[str] = set()
        try:
            images = self.store.list()
        except StoreError as e:
            _log.warning("pull %s: cannot list the stored images: %s", self.ref, e)
            return chains, blobs
        for image, _ in images:
            chains.update(image.chain_ids)
            blobs.add(image.manifest.config.digest)
            blobs.update(d.digest for d in image.manifest.layers)
        return chains, blobs


def _parse(data: bytes, media_type: str | None, digest: str) -> Manifest | Index:
    try:
        return parse_manifest(data, media_type)
    except SpecError as e:
        raise RegistryError(f"manifest {digest}: {e}") from e


def _parse_config(data: bytes, digest: str) -> ImageConfig:
    try:
        return parse_config(data)
    except SpecError as e:
        raise RegistryError(f"image config {digest}: {e}") from e


def _layer_mismatch(digest: str, e: DigestMismatch) -> RegistryError:
    return RegistryError(f"filesystem layer verification failed for digest {digest} ({e})")
