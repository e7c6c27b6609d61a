"""The security, device, limit and namespace flags of `skiff run`: docker's parsing and
words, and the create body they make."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skiff.cli.run import _parse_container_command, container_body
from skiff.cli.run_security import parse_device, parse_ulimit, security_opts
from skiff.errors import InvalidArgument


def body(*argv: str) -> dict[str, object]:
    opts = _parse_container_command(None, "skiff run", [*argv, "busybox"], "run", [])  # type: ignore[arg-type]
    host = container_body(opts, "busybox", [])["HostConfig"]
    assert isinstance(host, dict)
    return host


def test_ulimits() -> None:
    assert parse_ulimit("nofile=10") == {"Name": "nofile", "Soft": 10, "Hard": 10}
    assert parse_ulimit("nproc=1:2") == {"Name": "nproc", "Soft": 1, "Hard": 2}
    for bad, words in (("nofile", "invalid ulimit argument"), ("x=1", "invalid ulimit type"),
                       ("nofile=3:2", "soft limit must be less than or equal"),
                       ("nofile=a", 'parsing "a": invalid syntax')):
        with pytest.raises(ValueError, match=words):
            parse_ulimit(bad)


def test_devices() -> None:
    assert parse_device("/dev/a") == {"PathOnHost": "/dev/a", "PathInContainer": "/dev/a",
                                      "CgroupPermissions": "rwm"}
    assert parse_device("/dev/a:r")["CgroupPermissions"] == "r"
    assert parse_device("/dev/a:/dev/b")["PathInContainer"] == "/dev/b"
    assert parse_device("/dev/a:/dev/b:mw")["CgroupPermissions"] == "mw"
    for bad, words in (("/dev/a:/dev/b:x", "invalid device mode"),
                       ("/a:/b:r:w", "bad format for path"), ("rel", "bad format")):
        with pytest.raises(ValueError, match=words):
            parse_device(bad)


def test_security_opts_read_the_profile_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    assert security_opts([f"seccomp={path}", "no-new-privileges", "systempaths=unconfined"]) \
        == (['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "no-new-privileges"], True)
    assert security_opts(["seccomp=unconfined"]) == (["seccomp=unconfined"], False)
    with pytest.raises(InvalidArgument, match="opening seccomp profile"):
        security_opts([f"seccomp={tmp_path}/none.json"])
    with pytest.raises(InvalidArgument, match='Invalid --security-opt: "label"'):
        security_opts(["label"])


def test_the_create_body() -> None:
    host = body("--ulimit", "nofile=1:2", "--device", "/dev/null:/dev/n", "--group-add",
                "tty", "--sysctl", "net.ipv4.ip_forward=1", "--shm-size", "2m", "--init",
                "--oom-kill-disable", "--oom-score-adj", "7", "--cgroupns", "private",
                "--ipc", "host", "--pid", "host", "--uts", "host", "--userns", "host",
                "--device-cgroup-rule", "c 1:3 r", "--security-opt", "no-new-privileges")
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1, "Hard": 2}]
    assert host["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n",
                                "CgroupPermissions": "rwm"}]
    assert (host["GroupAdd"], host["Sysctls"], host["ShmSize"], host["Init"]) == \
        (["tty"], {"net.ipv4.ip_forward": "1"}, 2 << 20, True)
    assert (host["OomKillDisable"], host["OomScoreAdj"], host["CgroupnsMode"], host["IpcMode"],
            host["PidMode"], host["UTSMode"], host["UsernsMode"]) == \
        (True, 7, "private", "host", "host", "host", "host")
    assert host["DeviceCgroupRules"] == ["c 1:3 r"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    plain = body()
    assert "Sysctls" not in plain and "Init" not in plain and plain["SecurityOpt"] is None
    json.dumps(plain)
