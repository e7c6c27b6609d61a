"""engine.mounts: Docker's -v, --mount and --tmpfs grammar and checks (moby's linuxParser
words), the image's VOLUMEs as anonymous volumes, the inspect view and the OCI mounts."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.engine.mounts import (by_depth, merge_tmpfs_options, mount_points, oci_mount,
                                 parse_bind, parse_mount, parse_tmpfs, tmpfs_data, view, views)
from skiff.errors import InvalidArgument


def never(path: str) -> bool:
    return False


def test_bind_forms() -> None:
    p = parse_bind("/host/dir/:/in//here:ro,rshared")
    assert (p["Type"], p["Source"], p["Destination"], p["RW"], p["Propagation"], p["Mode"]) \
        == ("bind", "/host/dir", "/in/here", False, "rshared", "ro,rshared")
    assert p["CreateSource"] is True  # -v makes a missing source, --mount does not
    v = parse_bind("data:/d:nocopy,z")
    assert (v["Type"], v["Name"], v["Driver"], v["RW"], v["CopyData"], v["Anonymous"]) == \
        ("volume", "data", "local", True, False, False)
    a = parse_bind("/only")
    assert (a["Type"], a["Name"], a["Anonymous"], a["CopyData"]) == ("volume", "", True, True)
    assert parse_bind("/a:/b")["Propagation"] == "rprivate"


@pytest.mark.parametrize("raw, message", [
    ("", "invalid volume specification: ''"),
    (":/x", "invalid volume specification: ':/x'"),
    ("/a:/b:ro:x", "invalid volume specification: '/a:/b:ro:x'"),
    ("/data:rw", "invalid volume specification: '/data:rw'"),
    ("/a:/b:ro,rw", "invalid mode: ro,rw"),
    ("/a:/b:shared,slave", "invalid mode: shared,slave"),
    ("/a:/b:bogus", "invalid mode: bogus"),
    ("/a:b", "invalid volume specification: '/a:b': invalid mount config for type \"bind\": "
             "invalid mount path: 'b' mount path must be absolute"),
    ("v:/", "invalid volume specification: 'v:/': invalid mount config for type \"volume\": "
            "invalid specification: destination can't be '/'"),
])
def test_bad_binds(raw: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_bind(raw)
    assert str(info.value) == message


def test_mount_objects() -> None:
    b = parse_mount({"Type": "bind", "Source": "/src", "Target": "/t", "ReadOnly": True,
                     "BindOptions": {"Propagation": "rslave", "NonRecursive": True}},
                    exists=lambda p: p == "/src")
    assert (b["RW"], b["Propagation"], b["NonRecursive"], b["Mode"]) == (False, "rslave", True,
                                                                        "")
    assert oci_mount(b, b["Source"])["options"] == ["bind", "ro", "rslave"]
    v = parse_mount({"Type": "volume", "Source": "n", "Target": "/v",
                     "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"},
                                       "DriverConfig": {"Name": "local",
                                                        "Options": {"type": "tmpfs"}}}})
    assert (v["CopyData"], v["Labels"], v["DriverOpts"]) == (False, {"a": "b"},
                                                             {"type": "tmpfs"})
    t = parse_mount({"Type": "tmpfs", "Target": "/t",
                     "TmpfsOptions": {"SizeBytes": 2 << 20, "Mode": 0o1770}})
    assert t["Data"] == "mode=1770,size=2m" and "Hidden" not in t


@pytest.mark.parametrize("spec, message", [
    ({"Type": "bind", "Source": "/nope", "Target": "/x"},
     'invalid mount config for type "bind": bind source path does not exist: /nope'),
    ({"Type": "bind", "Target": "/x"},
     'invalid mount config for type "bind": field Source must not be empty'),
    ({"Type": "bind", "Source": "rel", "Target": "/x"},
     "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be "
     "absolute"),
    ({"Type": "bind", "Source": "/s", "Target": "/x", "BindOptions": {"Propagation": "odd"}},
     'invalid mount config for type "bind": invalid propagation mode: odd'),
    ({"Type": "bind", "Source": "/s", "Target": "/x", "VolumeOptions": {}},
     'invalid mount config for type "bind": field VolumeOptions must not be specified'),
    ({"Type": "volume", "Target": ""},
     'invalid mount config for type "volume": field Target must not be empty'),
    ({"Type": "volume", "Target": "/x", "ReadOnly": True},
     'invalid mount config for type "volume": must not set ReadOnly mode when using '
     'anonymous volumes'),
    ({"Type": "volume", "Target": "/x", "BindOptions": {}},
     'invalid mount config for type "volume": field BindOptions must not be specified'),
    ({"Type": "tmpfs", "Source": "s", "Target": "/x"},
     'invalid mount config for type "tmpfs": field Source must not be specified'),
    ({"Type": "npipe", "Target": "/x"}, 'invalid mount config for type "npipe": mount type '
                                        'unknown'),
    ({"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "nfs9"}}},
     'error looking up volume plugin nfs9: plugin "nfs9" not found'),
])
def test_bad_mounts(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_mount(spec, exists=never)
    assert str(info.value) == message


def test_all_of_a_containers_mounts() -> None:
    host = {"Binds": ["/h:/b", "named:/n"], "Mounts": [{"Type": "tmpfs", "Target": "/m"}],
            "Tmpfs": {"/run": "size=1m"}}
    points = mount_points(host, {"Volumes": {"/n": {}, "/img": {}}})
    assert [(p["Type"], p["Destination"]) for p in points] == [
        ("bind", "/b"), ("volume", "/n"), ("tmpfs", "/m"), ("tmpfs", "/run"),
        ("volume", "/img")]  # the image's /n is the user's named volume
    assert [v["Destination"] for v in views(points)] == ["/b", "/n", "/m", "/img"]
    for host in ({"Binds": ["/a:/x", "/b:/x"]}, {"Binds": ["/a:/x"], "Tmpfs": {"/x": ""}},
                 {"Binds": ["/a:/x/"], "Mounts": [{"Type": "tmpfs", "Target": "/x"}]}):
        with pytest.raises(InvalidArgument, match="^Duplicate mount point: /x$"):
            mount_points(host, {})
    with pytest.raises(InvalidArgument, match="plugin \"flocker\" not found"):
        mount_points({"VolumeDriver": "flocker"}, {})
    with pytest.raises(InvalidArgument, match="mount path must be absolute"):
        parse_tmpfs("run", "")


def test_views_are_dockers_mount_points() -> None:
    assert view(parse_bind("/h:/b:ro")) == {"Type": "bind", "Source": "/h", "Destination": "/b",
                                            "Mode": "ro", "RW": False,
                                            "Propagation": "rprivate"}
    point = dict(parse_bind("n:/v"), Source="/root/volumes/n/_data")
    assert view(point) == {"Type": "volume", "Name": "n", "Source": "/root/volumes/n/_data",
                           "Destination": "/v", "Driver": "local", "Mode": "z", "RW": True,
                           "Propagation": ""}
    assert view(dict(parse_mount({"Type": "volume", "Source": "n", "Target": "/v"}),
                     Source="/s"))["Mode"] == ""  # --mount's have none


def test_tmpfs_options_merge_under_the_users() -> None:
    assert merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", "exec", "size=1m",
                                "size=2m"]) == ["nosuid", "nodev", "rprivate", "exec",
                                                "size=2m"]
    point = parse_tmpfs("/run", "rw,exec,size=65536k")
    assert oci_mount(point, "") == {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid", "nodev", "rprivate", "rw", "exec",
                                                "size=65536k"]}
    assert tmpfs_data(None, True) == "ro"
    assert tmpfs_data({"SizeBytes": 1000}, False) == "size=1000"


def test_mounts_go_by_depth() -> None:
    mounts = [{"destination": d} for d in ("/a/b/c", "/a", "/x/y", "/b")]
    assert [m["destination"] for m in by_depth(mounts)] == ["/a", "/b", "/x/y", "/a/b/c"]
