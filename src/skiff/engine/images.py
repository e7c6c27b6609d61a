"""The image half of the engine: Docker's image semantics on top of skiff's image store.

`ImageService` answers every image endpoint of the Docker Engine API in Docker's own terms
(moby's daemon/images): the summaries of ``GET /images/json`` with its filters (dangling,
label, before, since, reference globs) and its ``<none>:<none>`` rows, the full inspect
document, history with ``<missing>`` below the top, tag (with Docker's LastTagTime), ``rmi``
with the conflicts Docker raises for images that containers use, prune (dangling images by
default, every unused one with ``dangling=false``), and pull, push, save, load and import,
which call the registry client and the archive code and report progress as Docker's
streamed JSON messages through an `Emit` callback. Which containers use an image is not
known here: `in_use` is a hook the container service fills (by default nothing uses any).
The raw config JSON of an image is read for inspect and history, so that fields skiff's
records do not model (OnBuild, Shell…) still come back as they were pushed. Each operation
tells dockerd's image event (LogImageEvent's actor and name, the image's labels) to `events`.
"""

from __future__ import annotations

import os
import threading

from skiff import jsonfast
from skiff.engine import jsonmessage
from skiff.engine.events import EventLog, actor_attributes
from skiff.engine.filters import Filters, familiar_match, until_timestamp
from skiff.engine.times import GO_ZERO_TIME, parse_time, rfc3339_nano, unix_seconds
from skiff.errors import (
    AuthenticationFailed,
    ImageConflict,
    ImageNotFound,
    InvalidArgument,
    ManifestUnknown,
    ReferenceError_,
    StoreError,
)
from skiff.log import logger
from skiff.record import Record
from skiff.reference import Reference, parse_reference
from skiff.store.durable import write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from collections.abc import Callable, Iterable, Mapping
    from typing import IO, Any

    from skiff.store.images import Image, ImageStore

    Emit = Callable[[dict[str, Any]], None]
    FilterArg = str | Mapping[str, Iterable[str]] | Filters | None

_log = logger("skiff.engine.images")
LIST_FILTERS = ("dangling", "label", "before", "since", "reference")
PRUNE_FILTERS = ("dangling", "label", "label!", "until")
_OMIT: Any = object()  # an `omitempty` field: left out when the image does not set it
# Docker's container.Config in its field order, with what a field is when the image's config
# does not set it (None is Go's nil: null lists and maps)
_CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", _OMIT), ("Tty", False),
    ("OpenStdin", False), ("StdinOnce", False), ("Env", None), ("Cmd", None),
    ("Healthcheck", _OMIT), ("ArgsEscaped", _OMIT), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("NetworkDisabled", _OMIT), ("MacAddress", _OMIT),
    ("OnBuild", None), ("Labels", None), ("StopSignal", _OMIT), ("StopTimeout", _OMIT),
    ("Shell", _OMIT),
)


class ImageUser(Record):
    """A container that uses an image (what `in_use` reports)."""

    container_id: str
    running: bool

    @property
    def short_id(self) -> str:
        return self.container_id[:12]


def _nobody_uses(image_id: str) -> list[ImageUser]:
    return []


def _say(emit: Emit | None, message: dict[str, Any]) -> None:
    if emit is not None:
        emit(message)


class ImageService:
    """Docker's image operations over `store`. `state_dir` keeps what Docker keeps beside
    its images (the last tag times); `registry_options` is a callable giving the registry
    client's RegistryOptions (made lazily: the registry package loads only when used)."""

    def __init__(self, store: ImageStore, state_dir: str,
                 registry_options: Callable[[], Any] | None = None) -> None:
        self.store = store
        self.state_dir = state_dir
        self.registry_options = registry_options
        self.in_use: Callable[[str], list[ImageUser]] = _nobody_uses
        self.events = EventLog()  # the engine's own, once the engine gives it
        self._raw: dict[str, dict[str, Any]] = {}  # image ID → its config JSON (never changes)
        self._tag_times_path = os.path.join(state_dir, "tag-times.json")
        self._tag_lock = threading.Lock()
        self._prune_lock = threading.Lock()

    # -- queries ----------------------------------------------------------------------------
    def list(self, *, all: bool = False, filters: FilterArg = None,
             digests: bool = False) -> builtins.list[dict[str, Any]]:
        """``GET /images/json``: ImageSummary objects, newest first."""
        f = Filters.parse(filters)
        f.validate(LIST_FILTERS)
        dangling_only = f.boolean("dangling", False)
        before = self._bound(f, "before")
        since = self._bound(f, "since")
        patterns = f.get("reference")
        out: builtins.list[tuple[int, str, dict[str, Any]]] = []
        for image, refs in self.store.list():
            raw = self._config_json(image)
            created = unix_seconds(raw.get("created"))
            if before is not None and created >= before:
                continue
            if since is not None and created <= since:
                continue
            labels = _labels(raw)
            if f.contains("label") and not f.match_kv_list("label", labels):
                continue
            tags, repo_digests = [], []
            for text in refs:
                ref = parse_reference(text)
                if patterns and not any(familiar_match(p, ref) for p in patterns):
                    continue
                if ref.digest is not None:
                    repo_digests.append(ref.familiar())
                if ref.tag is not None:
                    tags.append(ref.familiar())
            if not tags and not repo_digests:
                if f.contains("dangling") and not dangling_only:
                    continue
                if patterns:
                    continue
                tags, repo_digests = ["<none>:<none>"], ["<none>@<none>"]
            elif dangling_only and tags:
                continue
            out.append((created, image.id, {
                "Containers": -1,
                "Created": created,
                "Id": image.id,
                "Labels": labels,
                "ParentId": "",
                "RepoDigests": repo_digests,
                "RepoTags": tags,
                "SharedSize": -1,
                "Size": image.size,
                "VirtualSize": image.size,
            }))
        out.sort(key=lambda row: (-row[0], row[1]))
        return [row[2] for row in out]

    def inspect(self, name: str) -> dict[str, Any]:
        """``GET /images/{name}/json``: Docker's ImageInspect."""
        image = self.store.get(name)
        raw = self._config_json(image)
        tags, repo_digests = self._names(image)
        history = raw.get("history") or []
        comment = raw.get("comment") or ""
        if not comment and history and isinstance(history[-1], dict):
            comment = history[-1].get("comment") or ""
        created = raw.get("created")
        doc: dict[str, Any] = {
            "Id": image.id,
            "RepoTags": tags,
            "RepoDigests": repo_digests,
            "Parent": "",
            "Comment": comment,
            "Created": created if parse_time(created) is not None else GO_ZERO_TIME,
            "Container": raw.get("container") or "",
            "ContainerConfig": container_config(raw.get("container_config")),
            "DockerVersion": raw.get("docker_version") or "",
            "Author": raw.get("author") or "",
            "Config": container_config(raw.get("config")),
            "Architecture": raw.get("architecture") or "",
        }
        if raw.get("variant"):
            doc["Variant"] = raw["variant"]
        doc["Os"] = raw.get("os") or "linux"
        if raw.get("os.version"):
            doc["OsVersion"] = raw["os.version"]
        doc["Size"] = image.size
        doc["VirtualSize"] = image.size
        doc["GraphDriver"] = self._graph_driver(image)
        root_fs: dict[str, Any] = {"Type": "layers"}
        if image.config.rootfs.diff_ids:
            root_fs["Layers"] = list(image.config.rootfs.diff_ids)
        doc["RootFS"] = root_fs
        doc["Metadata"] = {"LastTagTime": self._tag_times().get(image.id, GO_ZERO_TIME)}
        return doc

    def disk_usage(self) -> dict[str, Any]:
        """The image half of ``GET /system/df``: every image's summary with its SharedSize
        (the bytes of its layers other images stack too) and container count, and the
        bytes of all layers once."""
        counts: dict[str, int] = {}
        images = self.store.list()
        for image, _ in images:
            for chain in image.chain_ids:
                counts[chain] = counts.get(chain, 0) + 1
        sizes = {c: self.store.layers.info(c).size for c in counts}
        rows = self.list(all=True)
        by_id = {image.id: image for image, _ in images}
        for row in rows:
            image = by_id[row["Id"]]
            row["SharedSize"] = sum(sizes[c] for c in image.chain_ids if counts[c] > 1)
            row["Containers"] = len(self.in_use(image.id))
        return {"LayersSize": sum(sizes.values()), "Images": rows}

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        """``GET /images/{name}/history``: one entry per history step, newest first; only
        the top one carries the image ID and tags (Docker knows no parent of a pulled image:
        the rest are ``<missing>``)."""
        image = self.store.get(name)
        raw = self._config_json(image)
        chains = list(image.chain_ids)
        entries: builtins.list[dict[str, Any]] = []
        layer = 0
        for step in raw.get("history") or []:
            if not isinstance(step, dict):
                continue
            size = 0
            if not step.get("empty_layer"):
                if layer >= len(chains):
                    raise StoreError(f"image {image.id}: too many non-empty layers in its "
                                     f"history")
                size = self.store.layers.info(chains[layer]).size
                layer += 1
            entries.append({
                "Comment": step.get("comment") or "",
                "Created": unix_seconds(step.get("created")),
                "CreatedBy": step.get("created_by") or "",
                "Id": "<missing>",
                "Size": size,
                "Tags": None,
            })
        entries.reverse()
        if entries:
            tags = self._names(image)[0]
            entries[0]["Id"] = image.id
            entries[0]["Tags"] = tags or None
        return entries

    # -- names ------------------------------------------------------------------------------
    def tag(self, name: str, repo: str, tag: str = "") -> str:
        """``POST /images/{name}/tag``: name the image `name` also `repo[:tag]`; returns the
        new reference as Docker prints it."""
        image = self.store.get(name)
        target = _with_tag(_parse(repo), tag) if tag else _parse(repo)
        if target.digest is not None:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        target = target.with_default_tag()
        self.store.tag(image.id, str(target))
        self._touch_tag(image.id)
        self._event("tag", image.id, target.familiar(), image)
        return target.familiar()

    def remove(self, name: str, *, force: bool = False,
               noprune: bool = False) -> builtins.list[dict[str, str]]:
        """``DELETE /images/{name}``: Docker's rmi report. A name in use by a container is
        refused unless forced; an image a running container uses is never deleted (by name
        and forced, only the name goes). `noprune` is accepted: skiff images have no parent
        images to prune."""
        image = self.store.get(name)
        labels = _labels(self._config_json(image))  # read while the image is there
        report = self._remove(name, image, force)
        for item in report:
            if "Untagged" in item:  # dockerd names the image by its ID in both
                self._event("untag", image.id, image.id, labels=labels)
            elif item.get("Deleted") == image.id:  # the rest are its layers
                self._event("delete", image.id, image.id)
        return report

    def _remove(self, name: str, image: Image, force: bool) -> builtins.list[dict[str, str]]:
        refs = self.store.references(image.id)
        users = self.in_use(image.id)
        key = _reference_key(name, refs)
        if key is not None:
            if users and not force and _single_repository(refs):
                raise ImageConflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - '
                    f"container {users[0].short_id} is using its referenced image "
                    f"{image.short_id}")
            doomed = _untagged_with(key, refs)
            if all(r in doomed for r in refs) and any(u.running for u in users):
                # the last name goes, the image stays for its running container (Docker
                # ignores this conflict when the removal was asked by name)
                for r in doomed:
                    self.store.untag(r)
                return [{"Untagged": parse_reference(r).familiar()} for r in doomed]
            return self.store.remove(name, force=force)
        running = [u for u in users if u.running]
        if running:
            raise ImageConflict(f"conflict: unable to delete {image.short_id} (cannot be "
                                f"forced) - image is being used by running container "
                                f"{running[0].short_id}")
        if users and not force:
            raise ImageConflict(f"conflict: unable to delete {image.short_id} (must be "
                                f"forced) - image is being used by stopped container "
                                f"{users[0].short_id}")
        return self.store.remove(name, force=force)

    def prune(self, filters: FilterArg = None) -> dict[str, Any]:
        """``POST /images/prune``: remove dangling images (every unused one with
        ``dangling=false``); images in use, and names that cannot go, are skipped."""
        if not self._prune_lock.acquire(blocking=False):
            raise ImageConflict("a prune operation is already running")
        try:
            return self._prune(Filters.parse(filters))
        finally:
            self._prune_lock.release()

    def _prune(self, f: Filters) -> dict[str, Any]:
        f.validate(PRUNE_FILTERS)
        dangling_only = f.boolean("dangling", True)
        untils = f.get("until")
        if len(untils) > 1:
            raise InvalidArgument("more than one until filter specified")
        until = until_timestamp(untils[0]) if untils else None
        sizes = {c: self.store.layers.info(c).size for c in self.store.layers.list()}
        deleted: builtins.list[dict[str, str]] = []
        for image, refs in self.store.list():
            raw = self._config_json(image)
            if until is not None and unix_seconds(raw.get("created")) > until:
                continue
            labels = _labels(raw)
            if not f.match_kv_list("label", labels):
                continue
            if f.contains("label!") and f.match_kv_list("label!", labels):
                continue
            if dangling_only and any(parse_reference(r).tag is not None for r in refs):
                continue
            for target in refs or [image.id]:
                try:
                    deleted += self.remove(target)
                except ImageNotFound:
                    continue  # taken with an earlier name of the same image
                except ImageConflict:
                    continue  # in use: that is what "unused" means
                except StoreError as e:
                    _log.warning("prune: could not remove %s: %s", target, e)
        reclaimed = sum(sizes.get(d["Deleted"], 0) for d in deleted if "Deleted" in d)
        self.events.emit("image", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- transfers --------------------------------------------------------------------------
    def pull(self, name: str, tag: str = "", *, platform: str | None = None,
             auth: str | None = None, emit: Emit | None = None) -> Any:
        """``POST /images/create?fromImage=``: pull through the registry client, reporting as
        ``docker pull`` does. `auth` is the X-Registry-Auth header as sent. Returns the
        registry's PullResult."""
        from skiff.registry.pull import pull

        ref = _parse(name.removesuffix(":"))
        if tag:
            ref = _with_digest(ref, tag) if tag.startswith("sha256:") else _with_tag(ref, tag)
        ref = ref.with_default_tag()
        started = False

        def begin() -> None:
            nonlocal started
            if not started:
                started = True
                _say(emit, jsonmessage.status(f"Pulling from {ref.path}", ref.tag or ref.digest))

        def progress(p: Any) -> None:
            begin()
            _say(emit, jsonmessage.from_progress(p))

        try:
            result = pull(self.store, str(ref), platform=platform or None,
                          auth=_auth(auth), options=self._registry_options(),
                          progress=progress)
        except AuthenticationFailed as e:
            if not str(e).startswith("pull access denied"):
                raise
            # dockerd answers a denied pull 404 (its notFoundError): a 401 would make the
            # docker CLI ask for a password on the terminal and try again
            raise ManifestUnknown(str(e), e.status, e.code) from e
        begin()
        _say(emit, jsonmessage.status(f"Digest: {result.digest}"))
        news = "Downloaded newer image for" if result.fresh else "Image is up to date for"
        _say(emit, jsonmessage.status(f"Status: {news} {result.reference}"))
        self._named_event("pull", ref)
        return result

    def push(self, name: str, tag: str = "", *, auth: str | None = None,
             emit: Emit | None = None) -> builtins.list[Any]:
        """``POST /images/{name}/push``: push `name:tag` (every local tag of the repository
        when neither names one), reporting as ``docker push`` does. Returns the registry's
        PushResults."""
        from skiff.registry.push import push

        ref = _parse(name)
        if tag:
            ref = _with_tag(Reference(ref.domain, ref.path), tag)
        _say(emit, jsonmessage.status(f"The push refers to repository [{ref.name}]"))
        if ref.tag is not None or ref.digest is not None:
            targets = [str(ref)]
            self.store.get(targets[0])
        else:
            targets = sorted(r for _, refs in self.store.list() for r in refs
                             if "@" not in r and parse_reference(r).name == ref.name)
            if not targets:
                raise ImageNotFound(ref.familiar_name)
        results = []
        for target in targets:
            result = push(self.store, target, auth=_auth(auth),
                          options=self._registry_options(),
                          progress=lambda p: _say(emit, jsonmessage.from_progress(p)))
            _say(emit, jsonmessage.status(
                f"{result.tag}: digest: {result.digest} size: {result.size}"))
            _say(emit, jsonmessage.aux(
                {"Tag": result.tag, "Digest": result.digest, "Size": result.size}))
            self._add_digest_reference(target, result.digest)
            self._named_event("push", parse_reference(target))
            results.append(result)
        return results

    def save(self, names: builtins.list[str], out: IO[bytes]) -> None:
        """``GET /images/get``: one tar of `names` (docker-archive and OCI layout at once)."""
        from skiff.store.archive import save

        if not names:
            raise InvalidArgument("no image names given to save")
        save(self.store, names, out)
        for image in {i.id: i for i in map(self.store.get, names)}.values():
            self._event("save", image.id, image.id, image)

    def load(self, src: IO[bytes], *, quiet: bool = True,
             emit: Emit | None = None) -> builtins.list[str]:
        """``POST /images/load``: load a docker-archive or OCI layout tar; says
        ``Loaded image: …`` per image as a stream line."""
        from skiff.store.archive import load

        progress = None if quiet else (lambda p: _say(emit, jsonmessage.from_progress(p)))
        lines = load(self.store, src, progress)
        for line in lines:
            _say(emit, jsonmessage.stream(line + "\n"))
        loaded = (line.removeprefix("Loaded image ID: ").removeprefix("Loaded image: ")
                  for line in lines)
        for image in {i.id: i for i in map(self.store.get, loaded)}.values():
            self._event("load", image.id, image.id, image)
        return lines

    def import_(self, src: IO[bytes] | None, *, from_src: str = "-", repo: str = "",
                tag: str = "", changes: Iterable[str] = (), message: str = "",
                platform: str | None = None, emit: Emit | None = None) -> str:
        """``POST /images/create?fromSrc=``: one image from a rootfs tar — the request body
        (`from_src` ``-``) or a URL — with ``--change`` lines; returns the image ID."""
        from skiff.store.importer import import_rootfs

        target = None
        if repo:
            ref = _parse(repo)
            target = str((_with_tag(ref, tag) if tag else ref).with_default_tag())
        stream, source = src, "-"
        if from_src != "-":
            source = from_src if "://" in from_src else f"http://{from_src}"
            if not source.startswith(("http://", "https://")):
                raise InvalidArgument(f"import: unsupported URL {source!r} (http and https "
                                      f"only)")
            _say(emit, jsonmessage.status(f"Downloading from {source}"))
            stream = _open_url(source)
        if stream is None:
            raise InvalidArgument("import: no rootfs tar given")
        try:
            image = import_rootfs(self.store, stream, ref=target, changes=list(changes),
                                  message=message, platform=platform or None, source=source)
        finally:
            if stream is not src:
                stream.close()
        if target is not None:
            self._touch_tag(image.id)
            self._event("tag", image.id, parse_reference(target).familiar(), image)
        self._event("import", image.id, image.id, image)
        _say(emit, jsonmessage.status(image.id))
        return str(image.id)

    # -- inside -----------------------------------------------------------------------------
    def _event(self, action: str, actor: str, name: str, image: Image | None = None, *,
               labels: dict[str, str] | None = None) -> None:
        """dockerd's LogImageEvent: the image's labels (while it exists) and `name`."""
        if image is not None:
            labels = _labels(self._config_json(image))
        self.events.emit("image", action, actor, actor_attributes(labels, name=name))

    def _named_event(self, action: str, ref: Reference) -> None:
        """A pull's or push's event: dockerd names its actor ``name:tag``, with the bare
        repository as the name."""
        try:
            image: Image | None = self.store.get(str(ref))
        except (ImageNotFound, StoreError):
            image = None
        self._event(action, ref.familiar(), ref.familiar_name, image)

    def _add_digest_reference(self, pushed: str, digest: str) -> None:
        """Name the pushed image also ``name@digest``, as dockerd does after a push (its
        RepoDigests then show where it went)."""
        image = self.store.get(pushed)
        if image.manifest_digest != digest:
            return  # the registry holds other bytes than the store: no digest to vouch for
        try:
            self.store.add(self.store.blobs.read_bytes(digest),
                           self.store.blobs.read_bytes(image.id),
                           ref=f"{parse_reference(pushed).name}@{digest}")
        except StoreError as e:
            _log.warning("push %s: could not record its digest reference: %s", pushed, e)

    def _registry_options(self) -> Any:
        if self.registry_options is not None:
            return self.registry_options()
        from skiff.registry.options import RegistryOptions

        return RegistryOptions()

    def _config_json(self, image: Image) -> dict[str, Any]:
        raw = self._raw.get(image.id)
        if raw is None:
            doc = jsonfast.loads(self.store.blobs.read_bytes(image.id))
            raw = self._raw[image.id] = doc if isinstance(doc, dict) else {}
        return raw

    def _names(self, image: Image) -> tuple[builtins.list[str], builtins.list[str]]:
        """(RepoTags, RepoDigests) of an image, as Docker prints them."""
        tags, digests = [], []
        for text in self.store.references(image.id):
            ref = parse_reference(text)
            if ref.digest is not None:
                digests.append(ref.familiar())
            elif ref.tag is not None:
                tags.append(ref.familiar())
        return tags, digests

    def _bound(self, f: Filters, key: str) -> int | None:
        found = None
        for value in f.get(key):  # as Docker: the last one given wins
            found = unix_seconds(self._config_json(self.store.get(value)).get("created"))
        return found

    def _graph_driver(self, image: Image) -> dict[str, Any]:
        dirs = self.store.rootfs_layers(image) if image.chain_ids else []
        data: dict[str, str] = {}
        if len(dirs) > 1:
            data["LowerDir"] = ":".join(dirs[1:])
        if dirs:
            data["UpperDir"] = dirs[0]
        return {"Data": data, "Name": "overlay2"}

    def _tag_times(self) -> dict[str, str]:
        try:
            with open(self._tag_times_path, "rb") as f:
                doc = jsonfast.loads(f.read())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _touch_tag(self, image_id: str) -> None:
        import time

        with self._tag_lock:
            times = self._tag_times()
            times[image_id] = rfc3339_nano(time.time())
            os.makedirs(self.state_dir, exist_ok=True)
            write_atomic(self._tag_times_path, jsonfast.dumps(times, indent=2, sort_keys=True))


def container_config(raw: Any) -> dict[str, Any]:
    """An image config's ``config`` object in the full shape of Docker's container.Config:
    absent fields as Go's zero values (null lists and maps), `omitempty` ones left out, and
    keys Docker does not know kept after its own."""
    given = raw if isinstance(raw, dict) else {}
    out: dict[str, Any] = {}
    for key, default in _CONFIG_FIELDS:
        if given.get(key) is not None:
            out[key] = given[key]
        elif default is not _OMIT:
            out[key] = default
    for key, value in given.items():
        out.setdefault(key, value)
    return out


def _labels(raw: dict[str, Any]) -> dict[str, str]:
    config = raw.get("config")
    labels = config.get("Labels") if isinstance(config, dict) else None
    return dict(labels) if isinstance(labels, dict) else {}


def _parse(text: str) -> Reference:
    if not text:
        raise ReferenceError_("repository name must have at least one component")
    return parse_reference(text)


def _with_tag(ref: Reference, tag: str) -> Reference:
    # checked by the grammar: a bad tag gets Docker's "invalid reference format"
    return parse_reference(f"{ref.name}:{tag}")


def _with_digest(ref: Reference, digest: str) -> Reference:
    return parse_reference(f"{ref.name}@{digest}")


def _reference_key(name: str, refs: list[str]) -> str | None:
    """The full reference `name` stands for when it names the image by one of `refs` (as
    the store resolves: a name first, an ID prefix otherwise); None for an ID."""
    try:
        key = str(parse_reference(name).with_default_tag())
    except ReferenceError_:
        return None
    return key if key in refs else None


def _untagged_with(key: str, refs: list[str]) -> list[str]:
    """The references an rmi of `key` takes away: it, and the digest references of its
    repository when they are all that would be left (the store's rule, as Docker's)."""
    rest = [r for r in refs if r != key]
    name = parse_reference(key).name
    if "@" not in key and rest and all(
            "@" in r and parse_reference(r).name == name for r in rest):
        return [key, *rest]
    return [key]


def _single_repository(refs: list[str]) -> bool:
    """Docker's isSingleReference: one repository, and at most one tag in it."""
    tagged = sum(1 for r in refs if "@" not in r)
    return tagged <= 1 and len({parse_reference(r).name for r in refs}) == 1


def _auth(header: str | None) -> Any:
    if not header:
        return None
    from skiff.registry.auth import AuthConfig

    return AuthConfig.from_header(header)


def _open_url(url: str) -> IO[bytes]:
    import urllib.error
    import urllib.request

    try:
        response: IO[bytes] = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - checked
    except (urllib.error.URLError, OSError) as e:
        raise InvalidArgument(f"import: get {url}: {e}") from e
    return response
