"""engine.volumes over store.volumes on a temporary root: Docker's create (idempotent, names
and options checked in moby's words), list filters, inspect, the 409 of a volume in use,
1.41's prune, the events, the anonymous volumes of `attach` and `drop_anonymous`, copy-up,
a crash's leftovers swept, and the spec's mounts composed with the container's own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skiff.engine.events import EventLog
from skiff.engine.mounts import parse_bind
from skiff.engine.oci_spec import compose_spec_json
from skiff.engine.volumes import VolumeService
from skiff.errors import ContainerConflict, InvalidArgument, NoSuchVolume


@pytest.fixture
def service(tmp_path: Path) -> VolumeService:
    return VolumeService(str(tmp_path), EventLog())


def actions(service: VolumeService) -> list[tuple[str, str, dict[str, str]]]:
    return [(e.action, e.actor_id, e.attributes) for e in service.events.since()
            if e.type == "volume"]


def test_create_is_idempotent_and_durable(service: VolumeService, tmp_path: Path) -> None:
    doc = service.create({"Name": "v1", "Labels": {"b": "2", "a": "1"}})
    assert doc["Mountpoint"] == str(tmp_path / "volumes/v1/_data")
    assert list(doc["Labels"]) == ["a", "b"] and doc["Options"] == {}
    again = service.create({"Name": "v1", "Labels": {"other": "x"}})
    assert again == doc  # the one already there, as Docker answers
    assert actions(service) == [("create", "v1", {"driver": "local"})]
    fresh = VolumeService(str(tmp_path))  # what a restarted skiffd reads
    assert fresh.inspect("v1") == doc
    random = service.create({})
    assert len(random["Name"]) == 64


@pytest.mark.parametrize("body, message", [
    ({"Name": "a/b"}, 'create a/b: "a/b" includes invalid characters for a local volume name, '
                      'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a '
                      'host directory, use absolute path'),
    ({"Name": ".hidden"}, 'create .hidden: ".hidden" includes invalid characters'),
    ({"Name": "x"}, "create x: volume name is too short, names should be at least two "
                    "alphanumeric characters"),
    ({"Name": "ok", "DriverOpts": {"o": "size=1m"}}, 'create ok: missing required option: '
                                                     '"device"'),
    ({"Name": "ok", "DriverOpts": {"size": "1m"}}, "create ok: quota size requested but no "
                                                   "quota support"),
    ({"Name": "ok", "Driver": "rexray"}, 'create ok: error looking up volume plugin rexray: '
                                         'plugin "rexray" not found'),
    ({"Name": 5}, "json: cannot unmarshal into Go struct field VolumeCreateBody.Name"),
    ({"Name": "ok", "Labels": {"a": 1}}, "json: cannot unmarshal into Go struct field "
                                         "VolumeCreateBody.Labels"),
])
def test_bad_creates_change_nothing(service: VolumeService, body: object,
                                    message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        service.create(body)
    assert str(info.value).startswith(message)
    assert service.list()["Volumes"] == [] and actions(service) == []


def test_list_filters(service: VolumeService) -> None:
    service.create({"Name": "used", "Labels": {"tier": "db"}})
    service.create({"Name": "free"})
    service.users = lambda: [("c" * 64, False, ["used"])]
    names = lambda f: [v["Name"] for v in service.list(f)["Volumes"]]  # noqa: E731
    assert names(None) == ["free", "used"]
    assert names({"dangling": ["true"]}) == ["free"]
    assert names({"dangling": ["0"]}) == ["used"]
    assert names({"label": ["tier=db"]}) == ["used"] and names({"label": ["tier=x"]}) == []
    assert names({"name": ["^fr"]}) == ["free"] and names({"driver": ["local"]}) == ["free",
                                                                                   "used"]
    with pytest.raises(InvalidArgument, match="invalid filter 'size'"):
        service.list({"size": ["1"]})
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling=maybe'"):
        service.list({"dangling": ["maybe"]})


def test_remove_refused_while_used_even_forced(service: VolumeService, tmp_path: Path) -> None:
    service.create({"Name": "keep"})
    (tmp_path / "volumes/keep/_data/f").write_text("data")
    cid = "a" * 64
    service.users = lambda: [(cid, False, ["keep"])]
    for force in (False, True):
        with pytest.raises(ContainerConflict) as info:
            service.remove("keep", force=force)
        assert str(info.value) == f"remove keep: volume is in use - [{cid}]"
    assert (tmp_path / "volumes/keep/_data/f").read_text() == "data"
    assert service.prune() == {"VolumesDeleted": None, "SpaceReclaimed": 0}
    assert service.disk_usage()[0]["UsageData"] == {"Size": 4, "RefCount": 1}
    service.users = list
    service.remove("keep")
    assert not (tmp_path / "volumes/keep").exists()
    with pytest.raises(NoSuchVolume, match="^get keep: no such volume$"):
        service.remove("keep")
    service.remove("keep", force=True)  # forced: a missing one is no error
    assert actions(service)[-1] == ("destroy", "keep", {"driver": "local"})


def test_prune_takes_every_unused_local_volume(service: VolumeService, tmp_path: Path) -> None:
    for name in ("a1", "b1", "c1"):
        service.create({"Name": name, "Labels": {"k": name}})
    (tmp_path / "volumes/a1/_data/x").write_text("12345")
    service.users = lambda: [("d" * 64, True, ["c1"])]
    assert service.prune({"label!": ["k=b1"]}) == {"VolumesDeleted": ["a1"],
                                                   "SpaceReclaimed": 5}
    assert service.prune({"all": ["true"]}) == {"VolumesDeleted": ["b1"], "SpaceReclaimed": 0}
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling'"):
        service.prune({"dangling": ["true"]})
    assert actions(service)[-1] == ("prune", "", {"reclaimed": "0"})


def test_attach_names_copies_and_drops_anonymous(service: VolumeService,
                                                 tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc/sub").mkdir(parents=True)
    (rootfs / "etc/conf").write_text("c")
    os.symlink("conf", rootfs / "etc/link")
    os.chmod(rootfs / "etc/sub", 0o700)
    os.setxattr(rootfs / "etc/conf", "user.skiff", b"kept")
    owned = os.geteuid() == 0  # owners other than one's own need root
    if owned:
        os.lchown(rootfs / "etc/conf", 1234, 5678)
    cid = "e" * 64
    points = service.attach(cid, [parse_bind("/etc"), parse_bind("named:/etc2"),
                                  parse_bind("nc:/etc:nocopy")], str(rootfs))
    anon, named, nocopy = points
    assert anon["Anonymous"] and len(anon["Name"]) == 64
    data = Path(anon["Source"])
    assert (data / "conf").read_text() == "c" and os.readlink(data / "link") == "conf"
    assert (os.stat(data / "sub").st_mode & 0o777) == 0o700
    assert os.getxattr(data / "conf", "user.skiff") == b"kept"
    if owned:
        assert (os.stat(data / "conf").st_uid, os.stat(data / "conf").st_gid) == (1234, 5678)
    assert os.listdir(named["Source"]) == []  # nothing at /etc2 in the image
    assert os.listdir(nocopy["Source"]) == []
    assert service.store.get(anon["Name"]).labels == {"com.docker.volume.anonymous": ""}
    with pytest.raises(ContainerConflict):  # claimed by the create under way
        service.remove("named")
    service.settle(cid)
    service.drop_anonymous(points)
    assert sorted(service.store.names()) == ["named", "nc"]


def test_a_crash_leaves_nothing_under_a_real_name(service: VolumeService,
                                                  tmp_path: Path) -> None:
    service.create({"Name": "v1"})
    os.rename(tmp_path / "volumes/v1", tmp_path / "volumes/.trash-v1-0000")
    os.mkdir(tmp_path / "volumes/.new-v2-1111")
    assert service.list()["Volumes"] == []
    service.store.sweep()
    assert os.listdir(tmp_path / "volumes") == []


def test_the_containers_mounts_replace_defaults_and_go_by_depth() -> None:
    from skiff.engine.container_config import parse_create

    request = parse_create({"Image": "busybox", "Cmd": ["true"],
                            "HostConfig": {"Tmpfs": {"/dev/shm": "size=1m"},
                                           "Binds": ["/h/a:/x/y", "/h:/x"]}}, {},
                           host_hostname=lambda: "h", known_caps=["CAP_CHOWN"],
                           cgroup_v2=False)
    mounts = [{"destination": p["Destination"], "type": "bind", "source": p["Source"],
               "options": ["rbind"]} for p in request.mounts]
    spec = compose_spec_json("f" * 64, request.config, request.host_config, rootfs="/r",
                             mounts=mounts, known_caps=["CAP_CHOWN"], bounding=None,
                             sysctl_exists=lambda k: False)
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests.count("/dev/shm") == 1 and dests.index("/x") < dests.index("/x/y")
    assert dests[-3:] == ["/x", "/x/y", "/dev/shm"]  # by depth, equal depths as given
