"""engine.userns_remap over fake /etc files: dockerd's parsing of --userns-remap, the
subordinate ranges laid end to end, Docker's conflicts, and what the spec gets."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.engine import userns_remap as ur
from skiff.engine.oci_spec import compose_spec_json
from skiff.errors import InvalidArgument, SkiffError
from skiff.kernel.idmap import IdMaps


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    files = {"passwd": "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/a:/bin/sh\n",
             "group": "root:x:0:\nalice:x:1000:\nstaff:x:50:\n",
             "subuid": "alice:300000:1000\n1000:200000:65536\nbob:500000:10\n",
             "subgid": "alice:400000:65536\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for attr, name in (("_PASSWD", "passwd"), ("_GROUP", "group"), ("_SUBUID", "subuid"),
                       ("_SUBGID", "subgid")):
        monkeypatch.setattr(ur, attr, str(tmp_path / name))
    return tmp_path


def test_ranges_by_name_and_uid_end_to_end(etc: Path) -> None:
    remap = ur.setup_remap("alice")
    assert (remap.user, remap.group) == ("alice", "alice")
    assert remap.maps.uids == ((0, 200000, 65536), (65536, 300000, 1000))
    assert remap.maps.gids == ((0, 400000, 65536),)
    assert remap.maps.host_ids() == (200000, 400000)
    assert remap.maps.host_ids(65540, 5) == (300004, 400005)
    assert ur.setup_remap("1000:staff").group == "staff"
    assert ur.parse_remap("alice:50") == ("alice", "staff")


def test_remap_errors(etc: Path) -> None:
    for spec, words in (("a:b:c", "Invalid user/group specification"),
                        ("nobody", "Error during uid lookup for 'nobody'"),
                        ("4242", "Uid 4242 has no entry in /etc/passwd"),
                        ("alice:nogroup", "Error during gid lookup for 'nogroup'"),
                        ("root", "No subuid ranges found for user 'root'")):
        with pytest.raises(SkiffError, match=words):
            ur.setup_remap(spec)


def test_next_free_range_is_past_the_others(etc: Path) -> None:
    assert ur._next_free(ur._SUBUID) == 500010


MAPS = IdMaps(uids=((0, 100000, 65536),), gids=((0, 100000, 65536),))


def test_container_maps_and_conflicts() -> None:
    remap = ur.Remap(user="u", group="g", maps=MAPS)
    assert ur.container_maps(None, {}) is None
    assert ur.container_maps(remap, {"UsernsMode": "host", "Privileged": True}) is None
    assert ur.container_maps(remap, {"NetworkMode": "none"}) == MAPS
    for host, words in (({"Privileged": True}, "privileged mode is incompatible"),
                        ({"NetworkMode": "host"}, "host's network namespace"),
                        ({"PidMode": "host"}, "host PID namespace")):
        with pytest.raises(InvalidArgument, match=words):
            ur.container_maps(remap, host)
    assert ur.maps_of({"IdMaps": ur.maps_doc(MAPS)}) == MAPS and ur.maps_of({}) is None


def test_spec_of_a_remapped_container() -> None:
    from skiff.engine.container_config import parse_create

    req = parse_create({"Image": "busybox", "Cmd": ["true"]}, None, cgroup_v2=False)
    doc = compose_spec_json("c" * 64, req.config, req.host_config, rootfs="/r",
                            known_caps=["CAP_CHOWN"], bounding=None, netns=None,
                            sysctl_exists=lambda _: True, idmaps=MAPS)
    linux = doc["linux"]
    assert linux["namespaces"][0] == {"type": "user"}
    assert {"type": "network"} in linux["namespaces"]  # made in the container's userns
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert linux["sysctl"]["net.ipv4.ping_group_range"] == "0 65535"
    assert doc["hooks"]["createRuntime"][0]["args"][-2].endswith("loopback_hook()")


def test_a_remapped_containers_hook_asks_skiffd_to_wire_its_namespace() -> None:
    from skiff.engine.container_config import parse_create

    req = parse_create({"Image": "busybox", "Cmd": ["true"]}, None, cgroup_v2=False)
    doc = compose_spec_json("c" * 64, req.config, req.host_config, rootfs="/r",
                            known_caps=["CAP_CHOWN"], bounding=None, netns=None,
                            sysctl_exists=lambda _: True, idmaps=MAPS,
                            wiring_socket="/run/x/netns.sock")
    hook = doc["hooks"]["createRuntime"][0]
    assert hook["args"][-2:] == ["/run/x/netns.sock", "c" * 64]
    assert hook["args"][-4].endswith("loopback_hook()") and hook["timeout"] > 0
