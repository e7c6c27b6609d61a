"""`skiff run/create -p/-P/--expose`: the create body is the docker CLI's own, caught on a
unix socket (test_net_ports' catcher), for each form."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from skiff.cli.run import _parse_container_command, container_body
from test_net_ports import docker_create_bodies

FORMS = [
    ["-p", "8080:80"], ["-p", "127.0.0.1:8080:80/udp"], ["-p", "80"], ["-p", "8000-8002:80-82"],
    ["-p", "[::1]:9000:90"], ["-p", "8080-8090:80"], ["-P", "--expose", "7000-7001/udp"],
    ["--expose", "90", "-p", "80", "-p", "127.0.0.1::81"],
    ["-p", "published=8080,target=80,protocol=udp"],
]


def skiff_body(argv: list[str]) -> dict[str, object]:
    opts = _parse_container_command(None, "skiff create", [*argv, "busybox"], "create", [])  # type: ignore[arg-type]
    return container_body(opts, "busybox", [])


def test_no_ports_no_exposed_ports() -> None:
    body = skiff_body([])
    assert "ExposedPorts" not in body
    assert body["HostConfig"]["PortBindings"] == {}  # type: ignore[index]


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_port_flags_make_the_docker_clis_body(tmp_path: Path) -> None:
    with docker_create_bodies(tmp_path) as sent:
        for argv in FORMS:
            body = sent(*argv)
            ours = skiff_body(argv)
            host, sent_host = ours["HostConfig"], body["HostConfig"]
            assert ours.get("ExposedPorts") == body.get("ExposedPorts"), argv
            assert host["PortBindings"] == sent_host["PortBindings"], argv  # type: ignore[index]
            assert host["PublishAllPorts"] == sent_host["PublishAllPorts"], argv  # type: ignore[index]
