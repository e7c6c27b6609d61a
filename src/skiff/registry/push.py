"""``docker push``: send a stored image's blobs and manifest to a registry.

Each layer is pushed by its own worker (five at a time, as dockerd): a HEAD first —
the registry has it: "Layer already exists"; else, when `origins` knows another repository
of the same registry that holds it, a cross-repository mount (``POST …/uploads/?mount=…
&from=…``): "Mounted from <repository>" (a registry that cannot mount answers with an
upload to use instead); else an upload — POST to open it, one monolithic PUT of the whole
blob with ``?digest=``, streamed from the store with "Pushing" progress — "Pushed". A broken
upload starts over, after `transport.RETRY_DELAYS` ("Retrying in N seconds"). Then the
config, then the manifest, PUT under the tag with its own media type and its exact stored
bytes, so the registry's digest is the store's. Progress ids are the layers' short diff IDs,
as Docker shows them on push.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from skiff.errors import AuthenticationFailed, InvalidArgument, TransferError
from skiff.log import logger
from skiff.oci.image_spec import OCI_MANIFEST
from skiff.record import Record
from skiff.reference import parse_reference
from skiff.registry import origins, transport
from skiff.registry.client import RegistryClient, push_scope
from skiff.registry.download import retry_text
from skiff.registry.progress import CountingReader, Reporter, short_id
from skiff.store.blobs import digest_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.oci.image_spec import Descriptor
    from skiff.registry.auth import AuthConfig
    from skiff.registry.options import RegistryOptions
    from skiff.registry.progress import ProgressFn
    from skiff.store.capsules import CapsuleStore
    from skiff.store.images import ImageStore

_log = logger("skiff.registry.push")
CONCURRENT_UPLOADS = 5  # dockerd's default max-concurrent-uploads


class PushResult(Record):
    """What Docker prints at the end: ``<tag>: digest: <digest> size: <size>``."""

    tag: str
    digest: str
    size: int


def push(store: ImageStore, ref: str, *, auth: AuthConfig | None = None,
         options: RegistryOptions | None = None,
         progress: ProgressFn | None = None) -> PushResult:
    """Push the stored image `ref` (``:latest`` when untagged) to its registry."""
    reference = parse_reference(ref)
    if reference.digest is not None:
        raise InvalidArgument(f"cannot push a digest reference ({reference.familiar()}): "
                              f"push a tag")
    reference = reference.with_default_tag()
    image = store.get(str(reference))
    manifest_bytes = store.blobs.read_bytes(image.manifest_digest)
    manifest = image.manifest
    report = Reporter(progress)
    with RegistryClient(reference.domain, auth, options) as client:
        pusher = _Push(store, client, reference.path, report)
        client.ping()
        ids = [short_id(d) for d in image.config.rootfs.diff_ids]
        layers = list(zip(manifest.layers, ids))
        for _, pid in reversed(layers):
            report(pid, "Preparing")
        with ThreadPoolExecutor(max_workers=CONCURRENT_UPLOADS,
                                thread_name_prefix="skiff-push") as pool:
            futures = []
            for n, (desc, pid) in enumerate(reversed(layers)):
                futures.append(pool.submit(pusher.blob, desc, pid))
                if n >= CONCURRENT_UPLOADS:
                    report(pid, "Waiting")
            try:
                for future in futures:
                    future.result()
            except BaseException:
                pusher.stop = True
                for future in futures:
                    future.cancel()
                raise
        pusher.blob(manifest.config, None)
        media_type = manifest.media_type or OCI_MANIFEST
        digest = digest_of(manifest_bytes)
        served = client.put_manifest(reference.path, reference.tag or "latest",
                                     manifest_bytes, media_type)
        if served and served != digest:
            _log.warning("push %s: the registry says the manifest is %s, it is %s",
                         reference, served, digest)
    for desc in [manifest.config, *manifest.layers]:
        origins.record(store.root, desc.digest, reference.domain, reference.path)
    return PushResult(reference.tag or "latest", digest, len(manifest_bytes))


class _Push:
    """The blobs of one push; `store` is the image store or the capsule store (both keep
    their blobs in `blobs` under `root`)."""

    def __init__(self, store: ImageStore | CapsuleStore, client: RegistryClient, repo: str,
                 report: Reporter) -> None:
        self.store = store
        self.client = client
        self.repo = repo
        self.report = report
        self.stop = False

    def blob(self, desc: Descriptor, pid: str | None) -> None:
        """Make sure the registry's repository has `desc`; `pid` None pushes quietly."""
        if self.stop:
            return
        client, digest = self.client, desc.digest
        if client.blob_size(self.repo, digest, (push_scope(self.repo),)) is not None:
            self._say(pid, "Layer already exists")
            return
        location = None
        for source in origins.sources(self.store.root, digest):
            domain, _, path = source.partition("/")
            if domain != client.domain or path == self.repo:
                continue
            try:
                location = client.mount_blob(self.repo, digest, path)
            except AuthenticationFailed:
                continue  # not allowed to read the source: upload instead
            if location is None:
                self._say(pid, f"Mounted from {path}")
                return
            break
        self.upload(desc, pid, location)
        self._say(pid, "Pushed")

    def upload(self, desc: Descriptor, pid: str | None, location: str | None) -> None:
        delays = transport.RETRY_DELAYS
        for attempt in range(len(delays) + 1):
            if location is None:
                location = self.client.start_upload(self.repo)
            body = self._body(desc, pid)
            try:
                # a CountingReader is file-like enough for http.client
                self.client.finish_upload(self.repo, location, desc.digest,
                                          body, desc.size)  # type: ignore[arg-type]
                return
            except TransferError:
                if attempt >= len(delays) or self.stop:
                    raise
                self._say(pid, retry_text(delays[attempt]))
                time.sleep(delays[attempt])
                location = None  # a broken upload is not resumed: start another
            finally:
                body.close()

    def _body(self, desc: Descriptor, pid: str | None) -> CountingReader:
        report, size = self.report, desc.size

        def sent(n: int) -> None:
            if pid is not None:
                report.bytes(pid, "Pushing", n, size)

        return CountingReader(self.store.blobs.open(desc.digest), sent)

    def _say(self, pid: str | None, status: str) -> None:
        if pid is not None:
            self.report(pid, status)
