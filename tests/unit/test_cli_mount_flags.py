"""cli.mount_flags: ``-v``, ``--tmpfs`` and ``--mount`` as the docker CLI turns them into
the create request (Binds, Config.Volumes, Tmpfs, Mounts) and its words for bad ones."""

from __future__ import annotations

import os

import pytest

from skiff.cli.mount_flags import parse_mount, split_volumes, tmpfs_map
from skiff.errors import InvalidArgument


def test_volumes_split_into_binds_and_anonymous() -> None:
    binds, volumes = split_volumes(["/h:/c:ro", "name:/n", "/anon", "./rel:/r", ".:/dot"])
    assert binds == ["/h:/c:ro", "name:/n", f"{os.getcwd()}/rel:/r", f"{os.getcwd()}:/dot"]
    assert volumes == {"/anon": {}}
    assert split_volumes([]) == (None, {})


def test_tmpfs() -> None:
    assert tmpfs_map(["/run", "/t:size=1m,exec"]) == {"/run": "", "/t": "size=1m,exec"}
    assert tmpfs_map([]) is None


def test_mount_fields() -> None:
    assert parse_mount("src=v,dst=/b") == {"Type": "volume", "Source": "v", "Target": "/b"}
    assert parse_mount("type=bind,src=/a,dst=/b,ro,bind-propagation=rslave") == {
        "Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True,
        "BindOptions": {"Propagation": "rslave"}}
    assert parse_mount('type=volume,source=v,target=/v,volume-nocopy,'
                       '"volume-label=a=b",volume-opt=type=tmpfs,volume-driver=local') == {
        "Type": "volume", "Source": "v", "Target": "/v",
        "VolumeOptions": {"NoCopy": True, "Labels": {"a": "b"},
                          "DriverConfig": {"Options": {"type": "tmpfs"}, "Name": "local"}}}
    assert parse_mount("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1777,"
                       "readonly=false") == {
        "Type": "tmpfs", "Target": "/t", "ReadOnly": False,
        "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}}


@pytest.mark.parametrize("value, message", [
    ("type=bind,src=/a", "target is required"),
    ("type=bind,dst=/b,bogus", "invalid field 'bogus' must be a key=value pair"),
    ("type=bind,dst=/b,colour=red", "unexpected key 'colour' in 'colour=red'"),
    ("type=bind,dst=/b,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
    ("type=volume,dst=/b,tmpfs-size=1m", "cannot mix 'tmpfs-*' options with mount type "
                                         "'volume'"),
    ("type=tmpfs,dst=/b,tmpfs-mode=9", "invalid value for tmpfs-mode: 9"),
    ("type=bind,dst=/b,ro=maybe", "invalid value for ro: maybe"),
])
def test_bad_mounts(value: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_mount(value)
    assert str(info.value) == message
