"""`save` and `load` on temporary stores: the archive ``docker save`` 25+ writes (its members,
``index.json``, ``manifest.json``, ``repositories``, uncompressed layers named by diff ID,
shared blobs once, the same bytes every time), Docker's name rules, and loading back every
format ``docker save`` ever wrote (the legacy layout built here by hand from the documented
format), plain OCI layout tars, gzip'd archives and non-seekable streams — each bad archive
refused with the store left exactly as it was. Root: layers keep numeric owners.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import digest, tar_of

from skiff.errors import ArchiveError, DigestMismatch, ImageNotFound, LayerError
from skiff.oci.image_spec import OCI_CONFIG, OCI_LAYER, OCI_LAYER_GZIP, OCI_MANIFEST
from skiff.store.archive import ArchiveProgress, load, load_oci_dir, save, save_oci_dir
from skiff.store.images import Image, ImageStore

pytestmark = pytest.mark.root

CREATED = "2024-01-01T00:00:00Z"


# -- helpers ------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


@pytest.fixture
def other(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "other")


def config_of(diff_ids: list[str], cmd: tuple[str, ...] = ("sh",), os_name: str = "linux",
              comment: str = "") -> bytes:
    doc: dict[str, Any] = {"architecture": "amd64", "os": os_name, "created": CREATED,
                           "config": {"Cmd": list(cmd), "Env": ["PATH=/bin"]},
                           "rootfs": {"type": "layers", "diff_ids": diff_ids},
                           "history": [{"created": CREATED, "created_by": f"layer {i}"}
                                       for i in range(len(diff_ids))]}
    if comment:
        doc["comment"] = comment
    return json.dumps(doc).encode()


def add_image(store: ImageStore, layers: list[dict[str, bytes]], ref: str | None = None,
              *, compress: bool = True, cmd: tuple[str, ...] = ("sh",)) -> Image:
    """An image of one layer per file map, stored through `ImageStore.add`."""
    descs, diff_ids, openers = [], [], []
    for files in layers:
        plain = tar_of(files)
        blob = gzip.compress(plain, compresslevel=1, mtime=0) if compress else plain
        descs.append({"mediaType": OCI_LAYER_GZIP if compress else OCI_LAYER,
                      "digest": digest(blob), "size": len(blob)})
        diff_ids.append(digest(plain))
        openers.append((digest(blob), lambda b=blob: io.BytesIO(b)))
    config = config_of(diff_ids, cmd)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": descs,
                           "config": {"mediaType": OCI_CONFIG, "digest": digest(config),
                                      "size": len(config)}}).encode()
    return store.add(manifest, config, openers, ref)


def saved(store: ImageStore, names: list[str]) -> bytes:
    out = io.BytesIO()
    save(store, names, out)
    return out.getvalue()


def members(archive: bytes) -> dict[str, bytes | None]:
    """name → content (None for directories and links)."""
    out: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for info in tar:
            f = tar.extractfile(info) if info.isreg() else None
            out[info.name] = f.read() if f is not None else None
    return out


def tar_bytes(entries: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """A tar of (name, data, symlink target) entries: data None and no target = a dir."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def state(store: ImageStore) -> dict[str, Any]:
    """Everything under the store's root (the lock file aside): a failed load must not
    change it."""
    root = Path(store.root)
    if not root.exists():
        return {}
    out: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.name == "repositories.lock" or p.is_dir():
            continue
        out[rel] = p.read_bytes() if p.suffix == ".json" else p.stat().st_size
    return out


def legacy_archive(images: list[tuple[list[bytes], list[str]]], *,
                   config_edit: Callable[[bytes], bytes] | None = None,
                   compress_layers: bool = False) -> bytes:
    """What Docker 1.10-24 `docker save` writes, built from the documented format: per
    layer `<v1 id>/{VERSION,json,layer.tar}` (a layer already written under another v1 id
    becomes a symlink to it), per image `<config hex>.json`, then `manifest.json` and
    `repositories`. `images` are (layer tars, tags)."""
    entries: list[tuple[str, bytes | None, str | None]] = []
    manifest, repositories = [], {}
    written: dict[str, str] = {}
    for n, (tars, tags) in enumerate(images):
        diff_ids = [digest(t) for t in tars]
        config = config_of(diff_ids, comment=f"image {n}")
        if config_edit is not None:
            config = config_edit(config)
        config_hex = hashlib.sha256(config).hexdigest()
        layer_paths, parent = [], ""
        for i, tar in enumerate(tars):
            top = i == len(tars) - 1
            v1 = hashlib.sha256(f"{parent} {diff_ids[i]} {n if top else ''}".encode()).hexdigest()
            data = gzip.compress(tar, mtime=0) if compress_layers else tar
            if v1 not in {p.split("/")[0] for p in written.values()}:
                entries.append((v1, None, None))
                entries.append((f"{v1}/VERSION", b"1.0", None))
                entries.append((f"{v1}/json", json.dumps(
                    {"id": v1, "parent": parent or None, "os": "linux"}).encode(), None))
                if diff_ids[i] in written:
                    entries.append((f"{v1}/layer.tar", None, f"../{written[diff_ids[i]]}"))
                else:
                    entries.append((f"{v1}/layer.tar", data, None))
                    written[diff_ids[i]] = f"{v1}/layer.tar"
            layer_paths.append(f"{v1}/layer.tar")
            parent = v1
        entries.append((f"{config_hex}.json", config, None))
        manifest.append({"Config": f"{config_hex}.json", "RepoTags": tags or None,
                         "Layers": layer_paths})
        for tag in tags:
            repo, _, t = tag.rpartition(":")
            repositories.setdefault(repo, {})[t] = parent
    entries.append(("manifest.json", json.dumps(manifest).encode() + b"\n", None))
    entries.append(("repositories", json.dumps(repositories).encode() + b"\n", None))
    return tar_bytes(entries)


def oci_archive(tars: list[bytes], ref_name: str | None, *, tamper: str | None = None) -> bytes:
    """A plain OCI image layout tar (what `skopeo copy … oci-archive:` writes): gzip
    layers, index.json with only the ref-name annotation."""
    blobs: dict[str, bytes] = {}
    layers = []
    for t in tars:
        blob = gzip.compress(t, mtime=0)
        blobs[digest(blob)] = blob
        layers.append({"mediaType": OCI_LAYER_GZIP, "digest": digest(blob), "size": len(blob)})
    config = config_of([digest(t) for t in tars])
    blobs[digest(config)] = config
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": layers,
                           "config": {"mediaType": OCI_CONFIG, "digest": digest(config),
                                      "size": len(config)}}).encode()
    blobs[digest(manifest)] = manifest
    desc: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": digest(manifest),
                            "size": len(manifest)}
    if ref_name is not None:
        desc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    index = json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode()
    entries: list[tuple[str, bytes | None, str | None]] = [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', None), ("index.json", index, None),
        ("blobs", None, None), ("blobs/sha256", None, None)]
    for d, data in blobs.items():
        if tamper == "config" and d == digest(config):
            data = data.replace(b'"sh"', b'"ls"')
        entries.append((f"blobs/sha256/{d[7:]}", data, None))
    return tar_bytes(entries)


class Pipe(io.RawIOBase):
    """A stream that cannot seek, as stdin or an HTTP body."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        chunk = self._data.read(min(len(b), 65536))
        b[:len(chunk)] = chunk
        return len(chunk)


# -- save ---------------------------------------------------------------------------------
def test_save_writes_docker_25s_archive(store: ImageStore) -> None:
    image = add_image(store, [{"a.txt": b"alpha"}, {"b.txt": b"beta"}], "busybox:latest")
    archive = saved(store, ["busybox"])
    got = members(archive)
    diff_ids = list(image.config.rootfs.diff_ids)
    manifest_hex = [n for n in got if n.startswith("blobs/sha256/")
                    and n[13:] not in {image.id[7:], *(d[7:] for d in diff_ids)}]
    assert len(manifest_hex) == 1
    assert list(got) == ["blobs", "blobs/sha256",
                         *sorted(f"blobs/sha256/{h}" for h in
                                 [image.id[7:], manifest_hex[0][13:], *(d[7:] for d in diff_ids)]),
                         "index.json", "manifest.json", "oci-layout", "repositories"]
    assert got["oci-layout"] == b'{"imageLayoutVersion": "1.0.0"}'
    assert got[f"blobs/sha256/{image.id[7:]}"] == store.blobs.read_bytes(image.id)
    for d in diff_ids:  # each layer an uncompressed tar named (and hashing to) its diff ID
        assert digest(got[f"blobs/sha256/{d[7:]}"] or b"") == d
    index = json.loads(got["index.json"] or b"")
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [entry] = index["manifests"]
    assert entry["annotations"] == {"io.containerd.image.name": "docker.io/library/busybox:latest",
                                    "org.opencontainers.image.ref.name": "latest"}
    assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
    manifest = json.loads(got[manifest_hex[0]] or b"")
    assert entry["digest"] == "sha256:" + manifest_hex[0][13:]
    assert manifest["config"]["digest"] == image.id
    assert [(l["mediaType"], l["digest"]) for l in manifest["layers"]] == \
        [("application/vnd.oci.image.layer.v1.tar", d) for d in diff_ids]
    assert json.loads(got["manifest.json"] or b"") == [{
        "Config": f"blobs/sha256/{image.id[7:]}", "RepoTags": ["busybox:latest"],
        "Layers": [f"blobs/sha256/{d[7:]}" for d in diff_ids]}]
    assert json.loads(got["repositories"] or b"") == {"busybox": {"latest": diff_ids[-1][7:]}}
    assert saved(store, ["busybox:latest"]) == archive  # the same bytes every time


def test_shared_layers_are_written_once(store: ImageStore, other: ImageStore) -> None:
    base = add_image(store, [{"base": b"shared"}], "base:1")
    child = add_image(store, [{"base": b"shared"}, {"top": b"mine"}], "child:1")
    archive = saved(store, ["base:1", "child:1"])
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = [n for n in tar.getnames() if n.startswith("blobs/sha256/")]
    assert len(names) == len(set(names)) == 6  # 2 configs, 2 manifests, 3 layers of which 2 differ
    assert load(other, io.BytesIO(archive)) == ["Loaded image: base:1", "Loaded image: child:1"]
    assert other.get("base:1").id == base.id and other.get("child:1").id == child.id
    assert other.get("child:1").chain_ids[0] == base.chain_ids[0]
    assert len(other.layers.list()) == 2


def test_a_repository_alone_saves_all_its_tags_and_an_id_none(store: ImageStore) -> None:
    image = add_image(store, [{"f": b"1"}], "app:1")
    store.tag("app:1", "app:2")
    add_image(store, [{"f": b"other"}], "unrelated:1")
    got = members(saved(store, ["app"]))
    [item] = json.loads(got["manifest.json"] or b"")
    assert item["RepoTags"] == ["app:1", "app:2"]
    names = [m["annotations"]["io.containerd.image.name"]
             for m in json.loads(got["index.json"] or b"")["manifests"]]
    assert names == ["docker.io/library/app:1", "docker.io/library/app:2"]
    for by_id in (image.id, image.short_id):
        got = members(saved(store, [by_id]))
        assert json.loads(got["manifest.json"] or b"")[0]["RepoTags"] is None
        [entry] = json.loads(got["index.json"] or b"")["manifests"]
        assert "annotations" not in entry
        assert "repositories" not in got


def test_unknown_names_fail_before_anything_is_written(store: ImageStore) -> None:
    add_image(store, [{"f": b"1"}], "app:1")
    out = io.BytesIO()
    with pytest.raises(ImageNotFound, match="No such image: nothere:latest"):
        save(store, ["app:1", "nothere"], out)
    with pytest.raises(ImageNotFound):
        save(store, ["sha256:" + "0" * 64], out)
    assert out.getvalue() == b""


def test_a_big_layer_streams_through(store: ImageStore) -> None:
    data = os.urandom(24 << 20)
    image = add_image(store, [{"big.bin": data}], "big:1")

    class Counting(io.RawIOBase):
        size = 0
        hash = hashlib.sha256()

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            self.size += len(b)
            self.hash.update(b)
            return len(b)

    out = Counting()
    tracemalloc.start()
    try:
        save(store, ["big:1"], out)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.size > len(data)
    assert peak < 8 << 20, f"save held {peak} bytes at once"
    assert image.size >= len(data)


# -- load ---------------------------------------------------------------------------------
def test_round_trip_keeps_id_tags_layers_and_history(store: ImageStore, other: ImageStore) -> None:
    image = add_image(store, [{"a": b"1"}, {"b": b"2"}], "example.com/team/app:v1")
    store.tag("example.com/team/app:v1", "app:latest")
    lines = load(other, io.BytesIO(saved(store, ["example.com/team/app:v1", "app"])))
    assert lines == ["Loaded image: example.com/team/app:v1", "Loaded image: app:latest"]
    back = other.get("app")
    assert back.id == image.id
    assert back.chain_ids == image.chain_ids
    assert back.config == image.config
    assert other.references(image.id) == ["docker.io/library/app:latest",
                                          "example.com/team/app:v1"]
    assert (Path(other.layers.diff_dir(back.chain_ids[1])) / "b").read_bytes() == b"2"


def test_untagged_images_load_by_id(store: ImageStore, other: ImageStore) -> None:
    image = add_image(store, [{"a": b"1"}])
    assert load(other, io.BytesIO(saved(store, [image.id]))) == [f"Loaded image ID: {image.id}"]
    assert other.get(image.id).id == image.id
    assert other.references(image.id) == []


def test_gzip_archives_and_pipes_load(store: ImageStore, other: ImageStore) -> None:
    image = add_image(store, [{"a": b"1"}], "app:1")
    archive = saved(store, ["app:1"])
    assert load(other, Pipe(gzip.compress(archive))) == ["Loaded image: app:1"]  # type: ignore[arg-type]
    assert other.get("app:1").id == image.id
    assert not list(Path(other.root, "tmp").iterdir())  # the spooled copy is gone


def test_loading_an_image_again_only_names_it(store: ImageStore, other: ImageStore) -> None:
    first = add_image(store, [{"a": b"1"}], "app:latest")
    archive = saved(store, ["app"])
    load(other, io.BytesIO(archive))
    before = state(other)
    assert load(other, io.BytesIO(archive)) == ["Loaded image: app:latest"]
    assert state(other) == before
    # a tag that named another image moves, and Docker says so
    second = add_image(other, [{"a": b"2"}], "app:latest")
    assert load(other, io.BytesIO(archive)) == [
        f"The image app:latest already exists, renaming the old one with ID {second.id} "
        f"to empty string", "Loaded image: app:latest"]
    assert other.get("app").id == first.id


def test_progress_is_told_per_layer(store: ImageStore, other: ImageStore) -> None:
    image = add_image(store, [{"a": b"1" * 5000}], "app:1")
    seen: list[ArchiveProgress] = []
    load(other, io.BytesIO(saved(store, ["app:1"])), seen.append)
    short = image.config.rootfs.diff_ids[0][7:19]
    assert {p.id for p in seen} == {short}
    assert seen[0].current == 0 and seen[-1].current == seen[-1].total
    assert all(p.status == "Loading layer" for p in seen)


def test_legacy_docker_save_archives_load(other: ImageStore) -> None:
    l1, l2 = tar_of({"etc/os": b"legacy"}), tar_of({"app": b"bin"})
    archive = legacy_archive([([l1], ["busybox:latest"]), ([l1, l2], ["me/app:1", "me/app:2"])])
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        assert any(m.issym() for m in tar)  # the shared layer is a link, as Docker writes it
    lines = load(other, io.BytesIO(archive))
    assert lines == ["Loaded image: busybox:latest", "Loaded image: me/app:1",
                     "Loaded image: me/app:2"]
    app = other.get("me/app:2")
    assert app.id == digest(config_of([digest(l1), digest(l2)], comment="image 1"))
    assert app.config.rootfs.diff_ids == (digest(l1), digest(l2))
    assert app.chain_ids[0] == other.get("busybox").chain_ids[0]
    # the manifest made for it describes the layers as they are: uncompressed tars
    assert [d.media_type for d in app.manifest.layers] == \
        ["application/vnd.docker.image.rootfs.diff.tar"] * 2


def test_legacy_archives_with_gzip_layers_load(other: ImageStore) -> None:
    l1 = tar_of({"f": b"zipped"})
    lines = load(other, io.BytesIO(legacy_archive([([l1], ["z:1"])], compress_layers=True)))
    assert lines == ["Loaded image: z:1"]
    assert other.get("z:1").manifest.layers[0].media_type == \
        "application/vnd.docker.image.rootfs.diff.tar.gzip"


def test_plain_oci_layout_tars_load(other: ImageStore) -> None:
    layer = tar_of({"hello": b"oci"})
    lines = load(other, io.BytesIO(oci_archive([layer], "quay.io/me/thing:2")))
    assert lines == ["Loaded image: quay.io/me/thing:2"]
    image = other.get("quay.io/me/thing:2")
    assert image.manifest.layers[0].media_type == OCI_LAYER_GZIP
    # a bare tag names no repository: the image is loaded by its ID
    lines = load(other, io.BytesIO(oci_archive([tar_of({"x": b"y"})], "latest")))
    assert lines[0].startswith("Loaded image ID: sha256:")


def test_oci_dirs_round_trip_with_their_manifest_digest(store: ImageStore, other: ImageStore,
                                                         tmp_path: Path) -> None:
    image = add_image(store, [{"a": b"1"}], "app:1")
    save_oci_dir(store, ["app:1"], tmp_path / "layout")
    assert json.loads((tmp_path / "layout" / "index.json").read_text())["manifests"][0][
        "digest"] == image.manifest_digest
    with pytest.raises(ArchiveError, match="not an empty directory"):
        save_oci_dir(store, ["app:1"], tmp_path / "layout")
    assert load_oci_dir(other, tmp_path / "layout", ref="1") == ["Loaded image: app:1"]
    assert other.get("app:1").manifest_digest == image.manifest_digest
    with pytest.raises(ArchiveError, match="holds no image named 'nope'"):
        load_oci_dir(other, tmp_path / "layout", ref="nope")


# -- bad archives -------------------------------------------------------------------------
def docker25(store: ImageStore, edit: Callable[[dict[str, bytes | None]], None]) -> bytes:
    """The busybox-like test image saved, then edited member by member."""
    got = members(saved(store, ["app:1"]))
    edit(got)
    return tar_bytes([(n, d, None) for n, d in got.items()])


def layer_name(store: ImageStore) -> str:
    return "blobs/sha256/" + store.get("app:1").config.rootfs.diff_ids[0][7:]


BAD: dict[str, tuple[type[Exception], str]] = {
    "not a tar": (ArchiveError, "not a readable tar archive"),
    "empty": (ArchiveError, "not a readable tar archive"),
    "neither": (ArchiveError, "neither manifest.json"),
    "null manifest": (ArchiveError, "manifest cannot be null"),
    "missing layer": (ArchiveError, "is missing in the archive"),
    "climbing name": (ArchiveError, "leads outside the archive"),
    "climbing path": (ArchiveError, "leads outside the archive"),
    "escaping link": (ArchiveError, "outside the archive"),
    "bad tag": (ArchiveError, 'invalid tag "app"'),
    "wrong layer": (LayerError, "invalid diffID for layer 0"),
    "swapped layer": (DigestMismatch, "digest mismatch"),
    "short layer": (DigestMismatch, "size mismatch"),
    "config digest": (DigestMismatch, "digest mismatch"),
    "layers count": (ArchiveError, "layers length mismatch"),
    "windows": (ArchiveError, "cannot load windows image on linux"),
    "truncated gzip": (ArchiveError, "corrupt or truncated"),
}


def bad_archive(case: str, store: ImageStore) -> bytes:
    layer = layer_name(store)

    def drop(name: str) -> Callable[[dict[str, bytes | None]], None]:
        return lambda m: m.pop(name) and None

    def swap(name: str, data: bytes) -> Callable[[dict[str, bytes | None]], None]:
        return lambda m: m.update({name: data})

    def manifest_edit(fn: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, bytes | None]], None]:
        def edit(m: dict[str, bytes | None]) -> None:
            doc = json.loads(m["manifest.json"] or b"")
            fn(doc[0])
            m["manifest.json"] = json.dumps(doc).encode()
            m.pop("index.json")
        return edit

    if case == "not a tar":
        return b"this is not a tar archive" * 100
    if case == "empty":
        return b""
    if case == "neither":
        return tar_bytes([("hello.txt", b"hi", None)])
    if case == "null manifest":
        return tar_bytes([("manifest.json", b"null", None)])
    if case == "missing layer":
        return docker25(store, drop(layer))
    if case == "climbing name":
        return tar_bytes([("manifest.json", b"[]", None), ("../evil", b"x", None)])
    if case == "climbing path":
        return docker25(store, manifest_edit(lambda e: e.update(Config="../../etc/passwd")))
    if case == "escaping link":
        return tar_bytes([("manifest.json", b"[]", None), ("link", None, "../../etc")])
    if case == "bad tag":
        return docker25(store, manifest_edit(lambda e: e.update(RepoTags=["app"])))
    if case == "wrong layer":  # the config names another layer than the archive holds
        tar = tar_of({"f": b"w"})
        return legacy_archive([([tar], ["app:1"])], config_edit=lambda c: c.replace(
            digest(tar).encode(), digest(b"another layer").encode()))
    if case == "swapped layer":  # a layer member that is not what its name says
        return docker25(store, swap(layer, tar_of({"other": b"content"})))
    if case == "short layer":  # the OCI manifest says one size, the member has another
        return docker25(store, lambda m: m.update({layer: (m[layer] or b"")[:-512]}))
    if case == "config digest":  # a config that is not what its name says
        config = "blobs/sha256/" + store.get("app:1").id[7:]

        def tamper(m: dict[str, bytes | None]) -> None:
            m[config] = (m[config] or b"").replace(b"PATH", b"HTAP")
            m.pop("index.json")
        return docker25(store, tamper)
    if case == "layers count":
        return docker25(store, manifest_edit(lambda e: e.update(Layers=e["Layers"] * 2)))
    if case == "windows":
        return legacy_archive([([tar_of({"f": b"w"})], ["win:1"])],
                              config_edit=lambda c: c.replace(b'"os": "linux"', b'"os": "windows"'))
    if case == "truncated gzip":
        zipped = gzip.compress(saved(store, ["app:1"]))
        return zipped[:len(zipped) // 2]
    raise AssertionError(case)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_archives_are_refused_and_change_nothing(case: str, store: ImageStore,
                                                     other: ImageStore) -> None:
    add_image(store, [{"a": b"1" * 4096}], "app:1", compress=False)
    add_image(other, [{"kept": b"yes"}], "kept:1")
    archive = bad_archive(case, store)
    before = state(other)
    error, text = BAD[case]
    with pytest.raises(error, match=text):
        load(other, Pipe(archive))  # type: ignore[arg-type]
    assert state(other) == before


def test_a_compressed_layer_with_the_wrong_diff_id_changes_nothing(other: ImageStore) -> None:
    good, bad = tar_of({"f": b"good"}), tar_of({"f": b"evil"})
    # the second image's config claims another diff ID for its (gzip'd) top layer
    archive = legacy_archive([([good], ["fine:1"]), ([good, bad], ["bad:1"])],
                             compress_layers=True, config_edit=lambda c: c.replace(
                                 digest(bad).encode(), digest(b"not it").encode()))
    add_image(other, [{"kept": b"yes"}], "kept:1")
    before = state(other)
    with pytest.raises((LayerError, DigestMismatch)):
        load(other, io.BytesIO(archive))
    assert state(other) == before  # the first image, loaded, was taken back


def test_a_tampered_oci_blob_is_refused(other: ImageStore) -> None:
    before = state(other)
    with pytest.raises(DigestMismatch):
        load(other, io.BytesIO(oci_archive([tar_of({"a": b"b"})], "x:1", tamper="config")))
    assert state(other) == before
