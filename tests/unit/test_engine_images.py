"""`ImageService`: Docker's image semantics over a real store on a temporary root, with
images made here from small tars (and the registry client replaced by fakes where a pull
or push is wanted). Root: unpacked layers keep numeric owners."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import digest, tar_of

from skiff.engine import Engine, EngineOptions
from skiff.engine.images import ImageUser, container_config
from skiff.errors import ImageConflict, ImageNotFound, InvalidArgument, ReferenceError_
from skiff.oci.image_spec import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST
from skiff.store.images import Image, ImageStore

pytestmark = pytest.mark.root


def make_image(store: ImageStore, layers: list[dict[str, bytes]], ref: str | None = None, *,
               created: str = "2024-01-01T00:00:00Z", labels: dict[str, str] | None = None,
               history: list[dict[str, Any]] | None = None,
               config: dict[str, Any] | None = None) -> Image:
    """An image of uncompressed layers (one per file map), stored and named `ref`."""
    tars = [tar_of(files) for files in layers]
    cfg: dict[str, Any] = {"Cmd": ["sh"], "Env": ["PATH=/bin"], **(config or {})}
    if labels is not None:
        cfg["Labels"] = labels
    doc = {"architecture": "amd64", "os": "linux", "created": created, "config": cfg,
           "rootfs": {"type": "layers", "diff_ids": [digest(t) for t in tars]},
           "history": history if history is not None else [
               {"created": created, "created_by": f"layer {i}"} for i in range(len(tars))]}
    config_bytes = json.dumps(doc).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest(config_bytes),
                   "size": len(config_bytes)},
        "layers": [{"mediaType": OCI_LAYER, "digest": digest(t), "size": len(t)} for t in tars],
    }).encode()
    blobs = [(digest(t), lambda t=t: io.BytesIO(t)) for t in tars]
    return store.add(manifest, config_bytes, blobs, ref)  # type: ignore[arg-type]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = Engine(tmp_path / "root", tmp_path / "run", EngineOptions(builtin_busybox=False))
    e.start()
    return e


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["Id"] for r in rows]


# -- list -----------------------------------------------------------------------------------
def test_list_shapes_and_newest_first(engine: Engine) -> None:
    old = make_image(engine.store, [{"a": b"1"}], "old:1", created="2020-01-01T00:00:00Z",
                     labels={"tier": "db"})
    new = make_image(engine.store, [{"b": b"2"}], "new:1", created="2024-05-01T10:00:00.5Z")
    rows = engine.images.list()
    assert ids(rows) == [new.id, old.id]
    assert rows[1] == {"Containers": -1, "Created": 1577836800, "Id": old.id,
                       "Labels": {"tier": "db"}, "ParentId": "", "RepoDigests": [],
                       "RepoTags": ["old:1"], "SharedSize": -1, "Size": old.size,
                       "VirtualSize": old.size}


def test_an_untagged_image_is_none_none_and_dangling(engine: Engine) -> None:
    tagged = make_image(engine.store, [{"a": b"1"}], "x:1")
    loose = make_image(engine.store, [{"b": b"2"}])
    rows = {r["Id"]: r for r in engine.images.list()}
    assert rows[loose.id]["RepoTags"] == ["<none>:<none>"]
    assert rows[loose.id]["RepoDigests"] == ["<none>@<none>"]
    assert ids(engine.images.list(filters='{"dangling": {"true": true}}')) == [loose.id]
    assert ids(engine.images.list(filters={"dangling": ["false"]})) == [tagged.id]
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling=maybe'"):
        engine.images.list(filters={"dangling": ["maybe"]})


def test_label_before_since_and_reference_filters(engine: Engine) -> None:
    a = make_image(engine.store, [{"a": b"1"}], "example.com/team/app:1",
                   created="2021-01-01T00:00:00Z", labels={"tier": "web", "x": "y"})
    b = make_image(engine.store, [{"b": b"2"}], "busybox:latest",
                   created="2022-01-01T00:00:00Z", labels={"tier": "db"})
    c = make_image(engine.store, [{"c": b"3"}], "team/app:2", created="2023-01-01T00:00:00Z")
    lst = engine.images.list
    assert ids(lst(filters={"label": ["tier"]})) == [b.id, a.id]
    assert ids(lst(filters={"label": ["tier=web", "x=y"]})) == [a.id]
    assert ids(lst(filters={"label": ["tier=web", "x=z"]})) == []
    assert ids(lst(filters={"before": ["busybox"]})) == [a.id]
    assert ids(lst(filters={"since": ["busybox:latest"]})) == [c.id]
    assert ids(lst(filters={"reference": ["busybox"]})) == [b.id]
    assert ids(lst(filters={"reference": ["*/app"]})) == [c.id]  # * stops at /
    assert ids(lst(filters={"reference": ["*/*/app:1"]})) == [a.id]
    assert ids(lst(filters={"reference": ["team/app:[0-9]"]})) == [c.id]
    with pytest.raises(InvalidArgument, match="invalid filter 'until'"):
        lst(filters={"until": ["1h"]})
    with pytest.raises(ImageNotFound):
        lst(filters={"before": ["nothing:here"]})


def test_reference_filter_shows_only_matching_names(engine: Engine) -> None:
    image = make_image(engine.store, [{"a": b"1"}], "one:1")
    engine.images.tag("one:1", "two", "2")
    rows = engine.images.list(filters={"reference": ["two"]})
    assert [r["RepoTags"] for r in rows] == [["two:2"]]
    assert rows[0]["Id"] == image.id


def test_disk_usage_counts_shared_layers_once(engine: Engine) -> None:
    base = make_image(engine.store, [{"a": b"1" * 5000}], "base:1")
    top = make_image(engine.store, [{"a": b"1" * 5000}, {"b": b"2" * 100}], "top:1")
    usage = engine.images.disk_usage()
    rows = {r["Id"]: r for r in usage["Images"]}
    shared = engine.store.layers.info(base.chain_ids[0]).size
    assert rows[base.id]["SharedSize"] == rows[top.id]["SharedSize"] == shared
    assert rows[top.id]["Containers"] == 0
    assert usage["LayersSize"] == top.size


# -- inspect and history ----------------------------------------------------------------------
def test_inspect_is_dockers_shape(engine: Engine) -> None:
    image = make_image(engine.store, [{"a": b"1"}, {"b": b"22"}], "app:1",
                       config={"OnBuild": ["RUN true"], "Shell": ["/bin/ash", "-c"]})
    doc = engine.images.inspect("app:1")
    assert doc["Id"] == image.id and doc["RepoTags"] == ["app:1"] and doc["RepoDigests"] == []
    assert doc["Created"] == "2024-01-01T00:00:00Z"
    assert doc["Config"]["Cmd"] == ["sh"] and doc["Config"]["OnBuild"] == ["RUN true"]
    assert doc["Config"]["Shell"] == ["/bin/ash", "-c"]  # kept though skiff does not model it
    assert doc["Config"]["Entrypoint"] is None and doc["Config"]["Hostname"] == ""
    assert "ExposedPorts" not in doc["Config"]  # omitempty, as Go
    assert doc["RootFS"] == {"Type": "layers", "Layers": list(image.config.rootfs.diff_ids)}
    lower, upper = engine.store.rootfs_layers(image)[1], engine.store.rootfs_layers(image)[0]
    assert doc["GraphDriver"] == {"Name": "overlay2",
                                  "Data": {"LowerDir": lower, "UpperDir": upper}}
    assert doc["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}
    assert doc["Size"] == doc["VirtualSize"] == image.size
    with pytest.raises(ImageNotFound, match="No such image: nope:latest"):
        engine.images.inspect("nope")


def test_container_config_fills_go_zero_values() -> None:
    full = container_config(None)
    assert list(full)[:4] == ["Hostname", "Domainname", "User", "AttachStdin"]
    assert full["Env"] is None and full["Labels"] is None and full["Tty"] is False
    assert "Healthcheck" not in full and "StopSignal" not in full
    assert container_config({"StopSignal": "SIGQUIT", "X-Other": 1})["X-Other"] == 1


def test_history_newest_first_with_missing_below(engine: Engine) -> None:
    image = make_image(engine.store, [{"a": b"1"}, {"b": b"22"}], "hist:1", history=[
        {"created": "2020-01-01T00:00:00Z", "created_by": "ADD a", "comment": "base"},
        {"created": "2020-01-02T00:00:00Z", "created_by": "ENV X=1", "empty_layer": True},
        {"created": "2020-01-03T00:00:00Z", "created_by": "ADD b"},
    ])
    rows = engine.images.history("hist:1")
    assert [r["CreatedBy"] for r in rows] == ["ADD b", "ENV X=1", "ADD a"]
    assert rows[0]["Id"] == image.id and rows[0]["Tags"] == ["hist:1"]
    assert [r["Id"] for r in rows[1:]] == ["<missing>", "<missing>"]
    assert rows[1]["Size"] == 0 and rows[2]["Comment"] == "base"
    sizes = [engine.store.layers.info(c).size for c in image.chain_ids]
    assert rows[0]["Size"] == sizes[1] and rows[2]["Size"] == sizes[0]
    assert rows[2]["Created"] == 1577836800


# -- tag and rmi --------------------------------------------------------------------------------
def test_tag_sets_last_tag_time_and_refuses_digests(engine: Engine) -> None:
    make_image(engine.store, [{"a": b"1"}], "src:1")
    assert engine.images.tag("src:1", "127.0.0.1:5000/x/y", "v2") == "127.0.0.1:5000/x/y:v2"
    doc = engine.images.inspect("127.0.0.1:5000/x/y:v2")
    assert doc["Metadata"]["LastTagTime"].endswith("Z")
    assert doc["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    assert engine.images.tag("src:1", "plain") == "plain:latest"
    with pytest.raises(InvalidArgument, match="digest reference"):
        engine.images.tag("src:1", "x@sha256:" + "a" * 64)
    with pytest.raises(ReferenceError_, match="invalid reference format"):
        engine.images.tag("src:1", "x", "bad tag")
    with pytest.raises(ReferenceError_):
        engine.images.tag("src:1", "")


def test_rmi_refuses_an_image_containers_use(engine: Engine) -> None:
    image = make_image(engine.store, [{"a": b"1"}], "used:1")
    users = [ImageUser("c0ffee" * 10 + "abcd", running=False)]
    engine.images.in_use = lambda image_id: users if image_id == image.id else []
    with pytest.raises(ImageConflict) as by_name:
        engine.images.remove("used:1")
    assert str(by_name.value) == (
        'conflict: unable to remove repository reference "used:1" (must force) - container '
        f"c0ffeec0ffee is using its referenced image {image.short_id}")
    with pytest.raises(ImageConflict, match=r"\(must be forced\) - image is being used by "
                                            r"stopped container c0ffeec0ffee"):
        engine.images.remove(image.id)
    users[0] = ImageUser(users[0].container_id, running=True)
    with pytest.raises(ImageConflict, match=r"\(cannot be forced\) - image is being used "
                                            r"by running container"):
        engine.images.remove(image.id, force=True)
    # forced by name while it runs: the name goes, the image stays (Docker's quiet conflict)
    assert engine.images.remove("used:1", force=True) == [{"Untagged": "used:1"}]
    assert engine.store.exists(image.id)
    users.clear()
    assert engine.images.remove(image.id)[0] == {"Deleted": image.id}


def test_rmi_of_one_name_of_many_only_untags(engine: Engine) -> None:
    image = make_image(engine.store, [{"a": b"1"}], "a:1")
    engine.images.tag("a:1", "b", "1")
    engine.images.in_use = lambda image_id: [ImageUser("f" * 64, running=True)]
    assert engine.images.remove("a:1") == [{"Untagged": "a:1"}]
    assert engine.store.references(image.id) == ["docker.io/library/b:1"]


# -- prune ------------------------------------------------------------------------------------
def test_prune_dangling_by_default_and_all_unused_with_dangling_false(engine: Engine) -> None:
    tagged = make_image(engine.store, [{"a": b"1" * 1000}], "keep:1", labels={"k": "v"})
    loose = make_image(engine.store, [{"b": b"2" * 3000}])
    used = make_image(engine.store, [{"c": b"3"}], "used:1")
    engine.images.in_use = lambda image_id: ([ImageUser("e" * 64, False)]
                                             if image_id == used.id else [])
    report = engine.images.prune()
    assert {"Deleted": loose.id} in report["ImagesDeleted"]
    assert report["SpaceReclaimed"] == engine_size_of(loose)
    assert engine.store.exists(tagged.id)
    assert engine.images.prune() == {"ImagesDeleted": None, "SpaceReclaimed": 0}
    report = engine.images.prune({"dangling": ["false"], "label!": ["k=v"]})
    assert report["ImagesDeleted"] is None  # keep:1 has k=v; used:1 is in use
    report = engine.images.prune({"dangling": ["false"]})
    assert {"Untagged": "keep:1"} in report["ImagesDeleted"]
    assert not engine.store.exists(tagged.id) and engine.store.exists(used.id)
    with pytest.raises(InvalidArgument, match="invalid filter 'reference'"):
        engine.images.prune({"reference": ["x"]})


def engine_size_of(image: Image) -> int:
    return image.size


def test_prune_until_and_label(engine: Engine) -> None:
    old = make_image(engine.store, [{"a": b"1"}], created="2000-01-01T00:00:00Z",
                     labels={"app": "x"})
    new = make_image(engine.store, [{"b": b"2"}], created="2999-01-01T00:00:00Z")
    assert engine.images.prune({"until": ["24h"], "label": ["app"]})["ImagesDeleted"] == [
        {"Deleted": old.id}, {"Deleted": old.chain_ids[0]}]
    assert engine.store.exists(new.id)
    with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
        engine.images.prune({"until": ["yesterday"]})


# -- pull and push through fakes ------------------------------------------------------------------
class FakeProgress:
    def __init__(self, id: str, status: str, current: int | None = None,
                 total: int | None = None) -> None:
        self.id, self.status, self.current, self.total = id, status, current, total


def test_pull_reports_as_docker_does(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.registry.pull as registry_pull

    image = make_image(engine.store, [{"a": b"1"}])
    seen: dict[str, Any] = {}

    class Result:
        reference = "127.0.0.1:5000/x/y:v1"
        digest = "sha256:" + "d" * 64
        fresh = True

    def fake_pull(store: ImageStore, ref: str, **kw: Any) -> Result:
        seen.update(ref=ref, **kw)
        kw["progress"](FakeProgress("abcdef012345", "Pulling fs layer"))
        kw["progress"](FakeProgress("abcdef012345", "Downloading", 500, 1000))
        kw["progress"](FakeProgress("abcdef012345", "Pull complete"))
        store.tag(image.id, ref)
        return Result()

    monkeypatch.setattr(registry_pull, "pull", fake_pull)
    messages: list[dict[str, Any]] = []
    engine.images.pull("127.0.0.1:5000/x/y", "v1", platform="linux/amd64",
                       auth="e30=", emit=messages.append)
    assert seen["ref"] == "127.0.0.1:5000/x/y:v1" and seen["platform"] == "linux/amd64"
    assert messages[0] == {"status": "Pulling from x/y", "id": "v1"}
    assert messages[1] == {"status": "Pulling fs layer", "progressDetail": {},
                           "id": "abcdef012345"}
    assert messages[2]["progressDetail"] == {"current": 500, "total": 1000}
    assert messages[2]["progress"] == "[=========================>" + " " * 25 + "]     500B/1kB"
    assert messages[-2] == {"status": "Digest: sha256:" + "d" * 64}
    assert messages[-1] == {"status": "Status: Downloaded newer image for "
                                      "127.0.0.1:5000/x/y:v1"}


def test_pull_takes_a_digest_as_tag_and_checks_names(engine: Engine,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.registry.pull as registry_pull

    asked: list[str] = []

    def fake_pull(store: ImageStore, ref: str, **kw: Any) -> Any:
        asked.append(ref)
        raise ImageNotFound(ref)

    monkeypatch.setattr(registry_pull, "pull", fake_pull)
    with pytest.raises(ImageNotFound):
        engine.images.pull("busybox", "sha256:" + "e" * 64)
    assert asked == ["docker.io/library/busybox@sha256:" + "e" * 64]
    with pytest.raises(ReferenceError_, match="invalid reference format"):
        engine.images.pull("Not/Valid", "")


def test_denied_pull_is_a_404_in_dockers_words(engine: Engine,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.registry.pull as registry_pull
    from skiff.errors import AuthenticationFailed, ManifestUnknown

    def denied(store: ImageStore, ref: str, **kw: Any) -> Any:
        raise AuthenticationFailed("pull access denied for x, repository does not exist or "
                                   "may require 'docker login': denied", status=401)

    monkeypatch.setattr(registry_pull, "pull", denied)
    with pytest.raises(ManifestUnknown, match="^pull access denied for x"):
        engine.images.pull("x", "latest")


def test_push_every_tag_of_a_repository(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import skiff.registry.push as registry_push

    image = make_image(engine.store, [{"a": b"1"}], "reg.example:5000/app:1")
    engine.images.tag("reg.example:5000/app:1", "reg.example:5000/app", "2")
    pushed: list[str] = []

    class Result:
        def __init__(self, tag: str) -> None:
            self.tag, self.digest, self.size = tag, image.manifest_digest, 321

    def fake_push(store: ImageStore, ref: str, **kw: Any) -> Result:
        pushed.append(ref)
        kw["progress"](FakeProgress("abcdef012345", "Pushed"))
        return Result(ref.rpartition(":")[2])

    monkeypatch.setattr(registry_push, "push", fake_push)
    messages: list[dict[str, Any]] = []
    engine.images.push("reg.example:5000/app", emit=messages.append)
    assert pushed == ["reg.example:5000/app:1", "reg.example:5000/app:2"]
    assert messages[0] == {"status": "The push refers to repository [reg.example:5000/app]"}
    assert {"status": f"2: digest: {image.manifest_digest} size: 321"} in messages
    assert {"progressDetail": {}, "aux": {"Tag": "1", "Digest": image.manifest_digest,
                                          "Size": 321}} in messages
    digests = engine.images.inspect("reg.example:5000/app:1")["RepoDigests"]
    assert digests == [f"reg.example:5000/app@{image.manifest_digest}"]
    with pytest.raises(ImageNotFound):
        engine.images.push("reg.example:5000/other")
