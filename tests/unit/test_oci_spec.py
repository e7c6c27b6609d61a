"""A Docker container's settings → its OCI runtime spec, as dockerd composes it.

Pure: an image config and a create body go through `parse_create` and `compose_spec` with
the host's facts given (the capabilities a kernel knows, its devices, its sysctls), and the
result is checked field by field against what moby's createSpec makes, and as a whole
against the OCI runtime spec's JSON schema (the oracle `test_runtime_spec` sets up).
`resolve_user` is runc's GetExecUser over passwd and group texts.
"""

from __future__ import annotations

from typing import Any

import pytest

from test_runtime_spec import schemas, validate  # noqa: F401 - the schema oracle's fixtures

from skiff.engine.container_config import parse_create
from skiff.engine.oci_spec import (DEFAULT_CAPABILITIES, ContainerFiles, ProcessUser,
                                   compose_spec, compose_spec_json, container_env,
                                   normalize_capabilities, replace_or_append_env,
                                   resolve_user_from, tweak_capabilities)
from skiff.errors import InvalidArgument
from skiff.oci.runtime_spec import to_json

CID = "c0ffee" + "0" * 58
KNOWN = [f"CAP_{n}" for n in (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP")]
BUSYBOX = {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]}
FILES = ContainerFiles("/var/lib/skiff/containers/c/hostname",
                       "/var/lib/skiff/containers/c/hosts",
                       "/var/lib/skiff/containers/c/resolv.conf")
DEVICE = {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660,
          "uid": 0, "gid": 6}


def spec(body: dict[str, Any], image: dict[str, Any] | None = None,
         user: ProcessUser = ProcessUser(), sysctls: bool = True,
         bounding: int | None = None) -> dict[str, Any]:
    request = parse_create({"Image": "busybox", **body}, BUSYBOX if image is None else image,
                           ncpu=4, known_caps=KNOWN, host_hostname=lambda: "thehost")
    config = dict(request.config)
    config["Hostname"] = config.get("Hostname") or CID[:12]
    return compose_spec_json(CID, config, request.host_config, rootfs="/snap/rootfs",
                             user=user, files=FILES, known_caps=KNOWN, bounding=bounding,
                             devices=lambda: [DEVICE], sysctl_exists=lambda name: sysctls)


def mount(doc: dict[str, Any], destination: str) -> dict[str, Any] | None:
    return next((m for m in doc["mounts"] if m["destination"] == destination), None)


def namespaces(doc: dict[str, Any]) -> list[str]:
    return [n["type"] for n in doc["linux"]["namespaces"]]


# -- Docker's defaults ----------------------------------------------------------------------
def test_defaults_are_dockers(validate: Any) -> None:
    doc = spec({"Cmd": ["echo", "hi"]})
    assert validate("config-schema.json", doc) == []
    process = doc["process"]
    assert process["args"] == ["echo", "hi"]
    assert process["cwd"] == "/"
    assert process["terminal"] is False
    assert process["user"] == {"uid": 0, "gid": 0, "additionalGids": []}
    assert process["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                              f"HOSTNAME={CID[:12]}"]
    caps = process["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"] == list(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) == 14 and "inheritable" not in caps
    assert "noNewPrivileges" not in process
    assert doc["root"] == {"path": "/snap/rootfs", "readonly": False}
    assert doc["hostname"] == CID[:12]
    assert [m["destination"] for m in doc["mounts"]] == [
        "/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm",
        "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
    assert mount(doc, "/dev/shm")["options"][-1] == "size=67108864"  # type: ignore[index]
    assert mount(doc, "/etc/hosts") == {"destination": "/etc/hosts", "type": "bind",
                                        "source": FILES.hosts, "options": ["rbind", "rprivate"]}
    linux = doc["linux"]
    assert namespaces(doc) == ["mount", "network", "uts", "pid", "ipc"]
    assert linux["cgroupsPath"] == f"/skiff/{CID}"
    assert "/proc/kcore" in linux["maskedPaths"] and "/sys/firmware" in linux["maskedPaths"]
    assert linux["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                                      "/proc/sysrq-trigger"]
    assert linux["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"} \
        in linux["resources"]["devices"]  # fuse stays denied
    assert linux["sysctl"] == {"net.ipv4.ping_group_range": "0 2147483647",
                               "net.ipv4.ip_unprivileged_port_start": "0"}
    assert "devices" not in linux
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"  # skiff's default profile


def test_the_spec_decodes_into_skiffs_records(validate: Any) -> None:
    request = parse_create({"Image": "busybox", "Cmd": ["true"]}, BUSYBOX, known_caps=KNOWN)
    record = compose_spec(CID, request.config, request.host_config, rootfs="/r",
                          known_caps=KNOWN, sysctl_exists=lambda name: False)
    assert record.process is not None and record.process.args == ("true",)
    assert record.linux is not None and record.linux.cgroups_path == f"/skiff/{CID}"
    assert validate("config-schema.json", to_json(record)) == []


def test_absent_sysctls_are_not_set() -> None:
    assert "sysctl" not in spec({}, sysctls=False)["linux"]


# -- the process ----------------------------------------------------------------------------
def test_entrypoint_cmd_env_workdir_and_hostname() -> None:
    image = {"Entrypoint": ["/entry.sh"], "Cmd": ["serve"], "Env": ["PATH=/opt/bin", "A=image"],
             "WorkingDir": "/srv"}
    doc = spec({"Env": ["A=user", "B=2"], "Hostname": "box", "Domainname": "example.org"}, image)
    assert doc["process"]["args"] == ["/entry.sh", "serve"]
    assert doc["process"]["env"] == ["PATH=/opt/bin", "HOSTNAME=box", "A=user", "B=2"]
    assert doc["process"]["cwd"] == "/srv"
    assert (doc["hostname"], doc["domainname"]) == ("box", "example.org")
    # a user's Cmd goes after the image's Entrypoint; a user's Entrypoint drops the image Cmd
    assert spec({"Cmd": ["x"]}, image)["process"]["args"] == ["/entry.sh", "x"]
    assert spec({"Entrypoint": ["/bin/echo"]}, image)["process"]["args"] == ["/bin/echo"]
    # --entrypoint "" resets it, and the image's Cmd alone is not taken then
    with pytest.raises(InvalidArgument, match="No command specified"):
        spec({"Entrypoint": [""]}, image)
    assert spec({"Entrypoint": [""], "Cmd": ["ls"]}, image)["process"]["args"] == ["ls"]


def test_env_rules() -> None:
    assert replace_or_append_env(["PATH=/a", "HOSTNAME=h"], ["PATH=/b", "X=1", "HOSTNAME"]) == \
        ["PATH=/b", "X=1"]
    assert container_env({"Hostname": "h", "Tty": True})[-1] == "TERM=xterm"


def test_users_and_capabilities_of_a_non_root_process() -> None:
    doc = spec({"User": "nobody"}, user=ProcessUser(65534, 65534, (65534,)))
    assert doc["process"]["user"] == {"uid": 65534, "gid": 65534, "additionalGids": [65534]}
    # as execve does for a non-root program: only the bounding set
    assert doc["process"]["capabilities"] == {"bounding": list(DEFAULT_CAPABILITIES)}


def test_no_new_privileges_and_ulimits_and_oom_score() -> None:
    doc = spec({"HostConfig": {"SecurityOpt": ["no-new-privileges"], "OomScoreAdj": 500,
                               "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]}})
    assert doc["process"]["noNewPrivileges"] is True
    assert doc["process"]["oomScoreAdj"] == 500
    assert doc["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}]


# -- capabilities ---------------------------------------------------------------------------
def test_cap_add_and_drop() -> None:
    assert normalize_capabilities(["sys_admin", "CAP_NET_ADMIN", "all"], KNOWN) == \
        ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "ALL"]
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_BOGUS"'):
        normalize_capabilities(["bogus"], KNOWN)
    basics = list(DEFAULT_CAPABILITIES)
    assert tweak_capabilities(basics, ["NET_ADMIN"], ["MKNOD"], False, KNOWN) == \
        [c for c in basics if c != "CAP_MKNOD"] + ["CAP_NET_ADMIN"]
    assert tweak_capabilities(basics, ["ALL"], ["SYS_ADMIN"], False, KNOWN) == \
        [c for c in KNOWN if c != "CAP_SYS_ADMIN"]
    assert tweak_capabilities(basics, ["CHOWN"], ["ALL"], False, KNOWN) == ["CAP_CHOWN"]
    assert tweak_capabilities(basics, [], [], True, KNOWN) == KNOWN
    doc = spec({"HostConfig": {"CapAdd": ["SYS_PTRACE"], "CapDrop": ["ALL"]}})
    assert doc["process"]["capabilities"]["bounding"] == ["CAP_SYS_PTRACE"]


def test_cap_add_is_stored_normalised_and_checked_at_create() -> None:
    request = parse_create({"Image": "b", "Cmd": ["x"], "HostConfig": {"CapAdd": ["net_raw"]}},
                           None, known_caps=KNOWN)
    assert request.host_config["CapAdd"] == ["CAP_NET_RAW"]
    assert request.host_config["CapDrop"] is None
    with pytest.raises(InvalidArgument, match="unknown capability"):
        parse_create({"Image": "b", "Cmd": ["x"], "HostConfig": {"CapDrop": ["nope"]}}, None,
                     known_caps=KNOWN)


# -- privileged, read-only ------------------------------------------------------------------
def test_privileged(validate: Any) -> None:
    doc = spec({"HostConfig": {"Privileged": True}})
    assert validate("config-schema.json", doc) == []
    assert doc["process"]["capabilities"]["bounding"] == KNOWN
    assert doc["linux"]["maskedPaths"] == [] and doc["linux"]["readonlyPaths"] == []
    assert "ro" not in mount(doc, "/sys")["options"]  # type: ignore[index]
    assert "ro" not in mount(doc, "/sys/fs/cgroup")["options"]  # type: ignore[index]
    assert doc["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert doc["linux"]["devices"] == [DEVICE]


def test_all_is_what_skiffd_holds_itself() -> None:
    # a host that took CAP_SYS_RESOURCE (24) from skiffd: privileged cannot hand it on
    mask = ((1 << 32) - 1) & ~(1 << 24)
    everything = [c for c in KNOWN if c != "CAP_SYS_RESOURCE"]
    doc = spec({"HostConfig": {"Privileged": True}}, bounding=mask)
    assert doc["process"]["capabilities"]["bounding"] == everything
    doc = spec({"HostConfig": {"CapAdd": ["ALL"], "CapDrop": ["MKNOD"]}}, bounding=mask)
    assert doc["process"]["capabilities"]["bounding"] == [c for c in everything
                                                          if c != "CAP_MKNOD"]


def test_read_only_rootfs() -> None:
    doc = spec({"HostConfig": {"ReadonlyRootfs": True}})
    assert doc["root"]["readonly"] is True
    for dest in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"):
        assert "ro" not in mount(doc, dest)["options"], dest  # type: ignore[index]
    for dest in ("/sys", "/sys/fs/cgroup"):
        assert "ro" in mount(doc, dest)["options"], dest  # type: ignore[index]
    assert mount(doc, "/etc/resolv.conf")["options"] == ["rbind", "ro", "rprivate"]  # type: ignore[index]


def test_ipc_none_has_no_dev_shm_and_shm_size_is_taken() -> None:
    assert mount(spec({"HostConfig": {"IpcMode": "none"}}), "/dev/shm") is None
    shm = mount(spec({"HostConfig": {"ShmSize": 1 << 20}}), "/dev/shm")
    assert shm is not None and shm["options"][-1] == "size=1048576"


# -- namespaces -----------------------------------------------------------------------------
def test_network_host_shares_the_hosts_namespace_and_hostname() -> None:
    doc = spec({"HostConfig": {"NetworkMode": "host"}})
    assert "network" not in namespaces(doc)
    assert doc["hostname"] == "thehost"
    assert "sysctl" not in doc["linux"]  # the host's network: Docker sets none of its sysctls


def test_network_none_and_default_get_a_namespace_of_their_own() -> None:
    for mode in ("none", "default", ""):
        assert "network" in namespaces(spec({"HostConfig": {"NetworkMode": mode}}))


def test_a_namespace_the_engine_made_is_joined_by_path(validate: Any) -> None:
    request = parse_create({"Image": "b", "Cmd": ["x"], "HostConfig": {"NetworkMode": "none"}},
                           None, known_caps=KNOWN)
    doc = compose_spec_json(CID, request.config, request.host_config, rootfs="/r",
                            known_caps=KNOWN, bounding=None, netns="/run/skiff/netns/c")
    assert doc["linux"]["namespaces"][:2] == [{"type": "mount"},
                                              {"type": "network", "path": "/run/skiff/netns/c"}]
    assert validate("config-schema.json", doc) == []


def test_pid_uts_ipc_host_and_private_cgroupns() -> None:
    doc = spec({"HostConfig": {"PidMode": "host", "UTSMode": "host", "IpcMode": "host",
                               "CgroupnsMode": "private"}})
    assert namespaces(doc) == ["mount", "network", "cgroup"]
    assert "hostname" not in doc


# -- resources ------------------------------------------------------------------------------
def test_resources(validate: Any) -> None:
    doc = spec({"HostConfig": {"Memory": 64 << 20, "MemoryReservation": 32 << 20,
                               "NanoCpus": 1_500_000_000, "CpuShares": 512,
                               "CpusetCpus": "0-1", "PidsLimit": 100, "BlkioWeight": 300,
                               "MemorySwappiness": 10, "OomKillDisable": True}})
    assert validate("config-schema.json", doc) == []
    res = doc["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20,
                             "swappiness": 10, "disableOOMKiller": True}
    assert res["cpu"] == {"shares": 512, "period": 100000, "quota": 150000, "cpus": "0-1"}
    assert res["pids"] == {"limit": 100}
    assert res["blockIO"] == {"weight": 300}
    plain = spec({})["linux"]["resources"]
    assert set(plain) == {"devices"}


def test_unlimited_pids_and_cgroup_parent() -> None:
    for limit in (0, -1):
        assert "pids" not in spec({"HostConfig": {"PidsLimit": limit}})["linux"]["resources"]
    assert spec({"HostConfig": {"CgroupParent": "mine/sub"}})["linux"]["cgroupsPath"] == \
        f"/mine/sub/{CID}"


# -- users ----------------------------------------------------------------------------------
PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
          b"# a comment\n"
          b"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
          b"app:x:1000:1000:app:/home/app:/bin/sh\n")
GROUP = (b"root:x:0:\n"
         b"bin:x:1:root,daemon\n"
         b"wheel:x:10:root,app\n"
         b"app:x:1000:\n"
         b"staff:x:50:\n")


@pytest.mark.parametrize("user, expected", [
    ("", (0, 0, (0, 1, 10))),
    ("root", (0, 0, (0, 1, 10))),
    ("app", (1000, 1000, (1000, 10))),
    ("1000", (1000, 1000, (1000, 10))),
    ("app:staff", (1000, 50, (50,))),
    ("app:50", (1000, 50, (50,))),
    ("4242", (4242, 0, (0,))),
    ("4242:4343", (4242, 4343, (4343,))),
    ("daemon:root", (1, 0, (0,))),
])
def test_users_resolve_as_runc_does(user: str, expected: tuple[int, int, tuple[int, ...]]) -> None:
    got = resolve_user_from(PASSWD, GROUP, user)
    assert (got.uid, got.gid, got.additional_gids) == expected


def test_unknown_users_and_groups_are_dockers_errors() -> None:
    with pytest.raises(InvalidArgument, match="unable to find user nobody: no matching "
                                              "entries in passwd file"):
        resolve_user_from(PASSWD, GROUP, "nobody")
    with pytest.raises(InvalidArgument, match="unable to find group nogroup: no matching "
                                              "entries in group file"):
        resolve_user_from(PASSWD, GROUP, "app:nogroup")
    assert resolve_user_from(None, None, "").additional_gids == (0,)


def test_group_add() -> None:
    got = resolve_user_from(PASSWD, GROUP, "app", ["staff", "77"])
    assert got.additional_gids == (1000, 10, 50, 77)
    with pytest.raises(InvalidArgument, match="Unable to find group video"):
        resolve_user_from(PASSWD, GROUP, "app", ["video"])
