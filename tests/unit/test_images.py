"""`ImageStore` and the built-in busybox image, on temporary roots.

Builds the busybox image from the host's busybox-static, then checks that it is made once
(same ID, one layer, nothing unpacked again), found by every reference form and by ID
prefix, tagged and untagged, and removed as ``docker rmi`` removes: shared layers and blobs
kept, Docker's force rule and messages, and a bad layer leaving no trace. Root: layers keep
numeric owners.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

import pytest
from conftest import digest, tar_of

from skiff.errors import ImageNotFound, LayerError, StoreError
from skiff.oci.image_spec import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
from skiff.store.builtin import ensure_busybox
from skiff.store.images import Image, ImageStore

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="no busybox-static")]


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


def refs_file(store: ImageStore) -> dict[str, str]:
    return json.loads(Path(store.refs_path).read_text())


def on_top(store: ImageStore, base: Image, files: dict[str, bytes], ref: str | None,
           diff_id: str | None = None) -> Image:
    """Add `base` plus one layer holding `files`, via `add`."""
    plain = tar_of(files)
    layer = gzip.compress(plain, mtime=0)
    cfg = json.loads(store.blobs.read_bytes(base.id))
    cfg["rootfs"]["diff_ids"].append(diff_id or digest(plain))
    config = json.dumps(cfg).encode()
    layers = [{"mediaType": d.media_type, "digest": d.digest, "size": d.size}
              for d in base.manifest.layers]
    layers.append({"mediaType": OCI_LAYER_GZIP, "digest": digest(layer), "size": len(layer)})
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": layers,
                           "config": {"mediaType": OCI_CONFIG, "digest": digest(config),
                                      "size": len(config)}}).encode()
    return store.add(manifest, config, [(digest(layer), lambda: io.BytesIO(layer))], ref)


def test_busybox_is_made_once_and_deterministically(tmp_path: Path, store: ImageStore) -> None:
    first = ensure_busybox(store)
    mtime = os.stat(store.layers.path(first.chain_ids[0])).st_mtime_ns
    again = ensure_busybox(store)
    assert again == first
    assert len(first.chain_ids) == 1 and store.layers.list() == list(first.chain_ids)
    assert os.stat(store.layers.path(first.chain_ids[0])).st_mtime_ns == mtime
    # another root, the same bytes
    other = ensure_busybox(ImageStore(tmp_path / "other"))
    assert (other.id, other.manifest_digest) == (first.id, first.manifest_digest)
    assert first.config.architecture in ("amd64", "arm64", os.uname().machine)
    assert first.config.config is not None and first.config.config.cmd == ("sh",)
    assert first.size > 0


def test_the_layer_is_a_busybox_rootfs(store: ImageStore) -> None:
    image = ensure_busybox(store)
    (diff,) = store.rootfs_layers(image)
    root = Path(diff)
    assert os.readlink(root / "bin/sh") == "busybox"
    assert (root / "bin/busybox").stat().st_mode & 0o777 == 0o755
    assert (root / "etc/passwd").read_text().startswith("root:x:0:0:root:/root:/bin/sh\n")
    assert (root / "etc/group").read_text() == "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    for d in ("root", "proc", "sys", "dev", "home", "var", "usr/bin", "usr/sbin", "sbin"):
        assert (root / d).is_dir(), d
    assert (root / "bin/busybox").stat().st_uid == 0


def test_get_by_every_form(store: ImageStore) -> None:
    image = ensure_busybox(store)
    hexid = image.id[7:]
    for text in ("busybox", "busybox:latest", "docker.io/library/busybox:latest",
                 "library/busybox", image.id, hexid, hexid[:12], "sha256:" + hexid[:12]):
        assert store.get(text) == image, text
    assert refs_file(store) == {"docker.io/library/busybox:latest": image.manifest_digest}


def test_not_found_has_dockers_words(store: ImageStore) -> None:
    ensure_busybox(store)
    with pytest.raises(ImageNotFound, match=r"^No such image: busybox:1\.36$"):
        store.get("busybox:1.36")
    with pytest.raises(ImageNotFound, match=r"^No such image: alpine:latest$"):
        store.get("docker.io/library/alpine")
    with pytest.raises(ImageNotFound, match="No such image: 0123456789ab"):
        store.get("0123456789ab")
    with pytest.raises(ImageNotFound):
        store.get(store.get("busybox").id[7:18])  # 11 digits: too short for a prefix
    assert issubclass(ImageNotFound, StoreError)


def test_tag_untag_list(store: ImageStore) -> None:
    image = ensure_busybox(store)
    store.tag("busybox", "myreg:5000/tools/bb:1")
    store.tag(image.id, "bb")
    assert store.get("myreg:5000/tools/bb:1") == image
    [(listed, refs)] = store.list()
    assert listed == image
    assert refs == ["docker.io/library/bb:latest", "docker.io/library/busybox:latest",
                    "myreg:5000/tools/bb:1"]
    store.untag("bb")
    with pytest.raises(ImageNotFound, match="No such image: bb:latest"):
        store.untag("bb")
    store.untag("busybox")
    store.untag("myreg:5000/tools/bb:1")
    [(listed, refs)] = store.list()  # dangling, still there by ID
    assert refs == [] and store.get(image.id[7:19]) == image
    with pytest.raises(StoreError, match="digest"):
        store.tag("busybox", "bb@sha256:" + "0" * 64)


def test_remove_keeps_what_another_image_shares(store: ImageStore) -> None:
    base = ensure_busybox(store)
    app = on_top(store, base, {"app/hello": b"hi\n"}, "app:1")
    assert len(app.chain_ids) == 2 and app.chain_ids[0] == base.chain_ids[0]
    assert store.rootfs_layers(app)[1] == store.rootfs_layers(base)[0]
    report = store.remove("busybox")
    assert report == [{"Untagged": "busybox:latest"}, {"Deleted": base.id}]
    assert store.layers.list() == sorted(app.chain_ids)
    assert store.blobs.exists(base.manifest.layers[0].digest)
    assert not store.blobs.exists(base.id) and not store.blobs.exists(base.manifest_digest)
    with pytest.raises(ImageNotFound):
        store.get("busybox")
    report = store.remove("app:1")
    assert report[-2:] == [{"Deleted": app.chain_ids[1]}, {"Deleted": app.chain_ids[0]}]
    assert store.layers.list() == [] and list(store.blobs.digests()) == []
    assert store.list() == [] and refs_file(store) == {}


def test_a_containers_layers_stay_until_the_last_snapshot_on_them_is_gone(
        store: ImageStore) -> None:
    base = ensure_busybox(store)
    image = on_top(store, base, {"etc/two": b"2\n"}, "two:1")
    lowers = store.layers.lower_dirs(list(image.chain_ids))
    snapshots = Path(store.root) / "snapshots"
    for key in ("a", "b", "c"):  # containers' snapshots, as `Snapshotter.prepare` records them
        (snapshots / key).mkdir(parents=True)
        (snapshots / key / "lowers").write_text("".join(d + "\n" for d in lowers))

    def removed(key: str) -> list[str]:
        (snapshots / key / "lowers").unlink()
        (snapshots / key).rmdir()
        return store.release_layers(lowers)

    assert removed("a") == []  # the image holds them
    store.remove("two:1")
    assert all(store.layers.exists(c) for c in image.chain_ids)  # b and c stand on them
    assert removed("b") == []  # c still does
    assert all(store.layers.exists(c) for c in image.chain_ids)
    assert removed("c") == [image.chain_ids[1]]  # the last holder went
    assert store.layers.list() == [base.chain_ids[0]]  # busybox's own stays with its image


def test_remove_by_id_needs_force_with_several_repositories(store: ImageStore) -> None:
    image = ensure_busybox(store)
    store.tag("busybox", "busybox:stable")  # one repository, two tags: still needs force
    store.tag("busybox", "other")
    with pytest.raises(StoreError, match=rf"^conflict: unable to delete {image.id[7:19]} "
                                         r"\(must be forced\) - image is referenced in "
                                         r"multiple repositories$"):
        store.remove(image.id)
    report = store.remove("other")  # by name: only the name goes
    assert report == [{"Untagged": "other:latest"}]
    with pytest.raises(StoreError, match="must be forced"):
        store.remove(image.id[7:19])
    report = store.remove(image.id[7:19], force=True)
    assert {"Untagged": "busybox:stable"} in report and {"Deleted": image.id} in report
    assert store.layers.list() == [] and refs_file(store) == {}


def test_remove_by_id_with_one_reference_needs_no_force(store: ImageStore) -> None:
    image = ensure_busybox(store)
    assert store.remove(image.id)[0] == {"Untagged": "busybox:latest"}
    with pytest.raises(ImageNotFound, match=f"No such image: {image.id}"):
        store.remove(image.id)


def test_a_layer_not_matching_its_diff_id_leaves_no_trace(store: ImageStore) -> None:
    base = ensure_busybox(store)
    before_refs = refs_file(store)
    before_layers = store.layers.list()
    before_blobs = list(store.blobs.digests())
    with pytest.raises(LayerError):
        on_top(store, base, {"app/hello": b"hi\n"}, "app:1", diff_id=digest(b"not it"))
    assert refs_file(store) == before_refs
    assert store.layers.list() == before_layers
    assert list(store.blobs.digests()) == before_blobs
    assert [refs for _, refs in store.list()] == [["docker.io/library/busybox:latest"]]


def test_dynamic_or_missing_busybox_says_what_to_install(tmp_path: Path,
                                                        store: ImageStore) -> None:
    with pytest.raises(StoreError, match="apt install busybox-static"):
        ensure_busybox(store, binary=str(tmp_path / "nope"))
    with pytest.raises(StoreError, match="dynamically linked.*apt install busybox-static"):
        ensure_busybox(store, binary="/bin/ls")
