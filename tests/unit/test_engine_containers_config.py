"""The create request, checked and completed as dockerd does it (`container_config`): the
merge with the image's config, HostConfig's defaults, Docker's error texts for what is
malformed, and a clear refusal of every option skiff does not do yet."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.engine.container_config import (HOST_CONFIG_FIELDS, NOT_YET,
                                           CreateRequest, log_limits, merge_image_config,
                                           parse_create, ram_in_bytes)
from skiff.errors import InvalidArgument

IMAGE = {"Cmd": ["sh"], "Env": ["PATH=/bin", "LANG=C"], "Labels": {"from": "image", "x": "1"},
         "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT", "WorkingDir": "/app",
         "User": "app", "Volumes": {"/data": {}}}


def parse(body: dict[str, Any], image: dict[str, Any] | None = None, **kw: Any) -> CreateRequest:
    return parse_create({"Image": "busybox", **body}, IMAGE if image is None else image,
                        ncpu=2, known_caps=["CAP_NET_ADMIN", "CAP_SYS_ADMIN"], **kw)


def refused(body: dict[str, Any], text: str, image: dict[str, Any] | None = None) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse(body, image)
    assert text in str(info.value), str(info.value)


def test_merge_with_the_image() -> None:
    r = parse({"Env": ["LANG=fr", "A=1"], "Labels": {"x": "2"}})
    c = r.config
    assert c["Env"] == ["LANG=fr", "A=1", "PATH=/bin"]
    assert c["Labels"] == {"from": "image", "x": "2"}
    assert c["Cmd"] == ["sh"] and c["User"] == "app" and c["WorkingDir"] == "/app"
    assert c["StopSignal"] == "SIGQUIT" and c["ExposedPorts"] == {"80/tcp": {}}
    assert c["Volumes"] == {"/data": {}}
    assert (r.path, r.args) == ("sh", ())
    assert parse({"Cmd": ["echo", "a b"], "User": "root"}).config["User"] == "root"
    assert parse({"Cmd": ["x"]}, {}).config["Labels"] == {}  # always a map, as Docker's merge leaves it


def test_entrypoint_rules() -> None:
    image = {"Entrypoint": ["/e"], "Cmd": ["default"]}
    assert merge_image_config({}, image)["Cmd"] == ["default"]
    assert merge_image_config({"Cmd": ["mine"]}, image) == {"Cmd": ["mine"], "Entrypoint": ["/e"],
                                                            "Env": None, "Labels": {}}
    # an explicit empty entrypoint list keeps the image's out, and its Cmd in
    assert merge_image_config({"Entrypoint": []}, image)["Entrypoint"] == []
    assert parse({"Entrypoint": "/bin/echo"}, {}).path == "/bin/echo"  # a strslice string
    refused({}, "No command specified", {})


def test_host_config_defaults() -> None:
    host = parse({}).host_config
    assert [k for k, _, _ in HOST_CONFIG_FIELDS] == list(host)
    assert host["NetworkMode"] == "default"
    assert host["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert host["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    assert host["ShmSize"] == 64 << 20 and host["IpcMode"] == "private"
    assert host["Runtime"] == "skiff-runtime"
    assert "/proc/kcore" in host["MaskedPaths"] and "/proc/sys" in host["ReadonlyPaths"]
    assert parse({"HostConfig": {"Privileged": True}}).host_config["MaskedPaths"] is None
    # what the docker CLI sends with every run, zero-valued, is taken
    cli = {"HostConfig": {"Binds": None, "PortBindings": {}, "RestartPolicy": {"Name": "no"},
                          "Devices": [], "Mounts": None, "ConsoleSize": [24, 80],
                          "LogConfig": {"Type": "", "Config": {}}, "NetworkMode": "default",
                          "Runtime": "runc", "Tmpfs": None, "PublishAllPorts": False},
           "AttachStdout": True, "AttachStderr": True, "Tty": False, "OpenStdin": False,
           "NetworkingConfig": {"EndpointsConfig": {}}, "SomeFutureField": {"x": 1}}
    assert parse(cli).host_config["ConsoleSize"] == [24, 80]


def test_memory_swap_and_cpu_rules() -> None:
    host = parse({"HostConfig": {"Memory": 8 << 20}}).host_config
    assert host["MemorySwap"] == 16 << 20
    r = parse({"HostConfig": {"Memory": 8 << 20}}, swap_limit=False)
    assert r.host_config["MemorySwap"] == -1 and "swap limit" in r.warnings[0]
    refused({"HostConfig": {"Memory": 1 << 20}}, "Minimum memory limit allowed is 6MB")
    refused({"HostConfig": {"MemorySwap": 8 << 20}}, "always set the Memory limit")
    refused({"HostConfig": {"Memory": 16 << 20, "MemorySwap": 8 << 20}},
            "memoryswap limit should be larger than memory limit")
    refused({"HostConfig": {"MemoryReservation": 1}}, "Minimum memory reservation allowed")
    refused({"HostConfig": {"MemorySwappiness": 101}}, "valid memory swappiness range is 0-100")
    refused({"HostConfig": {"NanoCpus": 3_000_000_000}},
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available")
    refused({"HostConfig": {"NanoCpus": 10**9, "CpuQuota": 5000}},
            "Nano CPUs and CPU Quota cannot both be set")
    refused({"HostConfig": {"CpuPeriod": 10}}, "CPU cfs period can not be less than 1ms")
    refused({"HostConfig": {"BlkioWeight": 5}}, "Range of blkio weight is from 10 to 1000")
    assert parse({"HostConfig": {"PidsLimit": -1}}).host_config["PidsLimit"] is None


def test_networks() -> None:
    assert parse({"HostConfig": {"NetworkMode": "none"}}).network_mode == "none"
    assert parse({"HostConfig": {"NetworkMode": "host"},
                  "NetworkingConfig": {"EndpointsConfig": {"host": {}}}}).network_mode == "host"
    assert parse({}).network_mode == "default"  # Docker's: the default bridge
    for mode in ("bridge", "mynet", "container:abc"):  # which networks exist is checked later
        assert parse({"HostConfig": {"NetworkMode": mode}}).network_mode == mode
    refused({"HostConfig": {"NetworkMode": "container:"}}, "invalid container format")
    refused({"HostConfig": {"NetworkMode": "container:abc"},
             "NetworkingConfig": {"EndpointsConfig": {"bridge": {}}}},
            "container type network can't be used with other networks")
    refused({"Hostname": "h", "HostConfig": {"NetworkMode": "container:abc"}},
            "conflicting options: hostname and the network mode")
    refused({"HostConfig": {"NetworkMode": "container:abc", "Dns": ["10.0.0.1"]}},
            "conflicting options: dns and the network mode")
    refused({"NetworkingConfig": {"EndpointsConfig": ["x"]}}, "EndpointsConfig")


@pytest.mark.parametrize("body, what", [
    ({"HostConfig": {"Links": ["a:b"]}}, "links"),
    ({"HostConfig": {"UsernsMode": "private"}}, "UsernsMode"),
    ({"HostConfig": {"PidMode": "container:x"}}, "PidMode"),
    ({"HostConfig": {"LogConfig": {"Type": "syslog"}}}, "logging driver 'syslog'"),
    ({"HostConfig": {"LogConfig": {"Config": {"tag": "x"}}}}, "the log option 'tag'"),
    ({"Volumes": {"/anon": {}}}, None),  # an anonymous volume (engine.mounts reads it)
])
def test_not_yet_supported_is_refused_by_name(body: dict[str, Any], what: str | None) -> None:
    if what is None:
        # Config.Volumes alone is what an image's VOLUME gives: an anonymous volume
        request = parse(body)
        assert request.config["Volumes"]["/anon"] == {}
        assert [(m["Type"], m["Destination"], m["Anonymous"]) for m in request.mounts] == \
            [("volume", "/data", True), ("volume", "/anon", True)]  # image's, user's
        return
    with pytest.raises(InvalidArgument) as info:
        parse(body)
    assert what in str(info.value) and "not supported" in str(info.value)


def test_harmless_security_options_are_taken() -> None:
    host = parse({"HostConfig": {"SecurityOpt": ["seccomp=unconfined", "label=disable",
                                                 "no-new-privileges:true"]}}).host_config
    assert len(host["SecurityOpt"]) == 3
    refused({"HostConfig": {"SecurityOpt": ["no-new-privileges=maybe"]}}, "security-opt")
    refused({"HostConfig": {"SecurityOpt": ["seccomp=/x.json"]}},
            "Decoding seccomp profile failed")
    refused({"HostConfig": {"SecurityOpt": ["apparmor=myprofile"]}}, "not supported")


def test_malformed_fields_get_gos_texts() -> None:
    refused({"Cmd": 5}, "json: cannot unmarshal number into Go struct field Config.Cmd")
    refused({"Env": "A=1"}, "cannot unmarshal string into Go struct field Config.Env")
    refused({"HostConfig": {"Memory": "1g"}}, "Go struct field HostConfig.Memory of type int64")
    refused({"HostConfig": []}, "Go struct field ContainerConfigWrapper.HostConfig")
    refused({"Labels": {"a": 1}}, "Go struct field Config.Labels")
    with pytest.raises(InvalidArgument, match="config cannot be empty"):
        parse_create({}, None)
    with pytest.raises(InvalidArgument, match="No image specified"):
        parse_create({"Cmd": ["x"]}, None)


def test_other_checks() -> None:
    refused({"WorkingDir": "rel"}, "the working directory 'rel' is invalid, it needs to be an "
                                   "absolute path")
    assert parse({"WorkingDir": "/a/../b/"}).config["WorkingDir"] == "/b"
    refused({"StopSignal": "SIGNOPE"}, "Invalid signal: SIGNOPE")
    refused({"Hostname": "h" * 64}, "invalid hostname")
    refused({"HostConfig": {"OomScoreAdj": 2000}}, "range for oom score adj is [-1000, 1000]")
    refused({"HostConfig": {"Ulimits": [{"Name": "nofiles", "Soft": 1, "Hard": 1}]}},
            "invalid ulimit type: nofiles")
    refused({"HostConfig": {"ExtraHosts": ["nocolon"]}}, "invalid extra host")
    assert parse({"HostConfig": {"ExtraHosts": ["h:host-gateway"]}}).host_config["ExtraHosts"] \
        == ["h:host-gateway"]  # the gateway is known at start
    refused({"HostConfig": {"Runtime": "kata"}}, "unknown or invalid runtime name: kata")
    refused({"HostConfig": {"IpcMode": "weird"}}, "invalid IPC mode: weird")
    refused({"HostConfig": {"ShmSize": -1}}, "SHM size can not be less than 0")


def test_sysctls_must_be_the_containers_own() -> None:
    assert parse({"HostConfig": {"Sysctls": {"net.ipv4.ip_forward": "1",
                                             "kernel.shmmax": "1000"}}}).host_config["Sysctls"]
    refused({"HostConfig": {"NetworkMode": "host", "Sysctls": {"net.core.somaxconn": "9"}}},
            'sysctl "net.core.somaxconn" not allowed in host network namespace')
    refused({"HostConfig": {"IpcMode": "host", "Sysctls": {"kernel.sem": "1"}}},
            "host IPC namespace")
    refused({"HostConfig": {"Sysctls": {"vm.swappiness": "1"}}},
            'sysctl "vm.swappiness" is not in a separate kernel namespace')


def test_log_options() -> None:
    host = parse({"HostConfig": {"LogConfig": {"Type": "json-file",
                                               "Config": {"max-size": "10k",
                                                          "max-file": "3"}}}}).host_config
    assert log_limits(host) == (10240, 3)
    assert log_limits(parse({}).host_config) == (-1, 1)
    refused({"HostConfig": {"LogConfig": {"Config": {"max-file": "0"}}}},
            "max-file cannot be less than 1")
    refused({"HostConfig": {"LogConfig": {"Config": {"max-size": "lots"}}}}, "invalid size")
    refused({"HostConfig": {"LogConfig": {"Config": {"bogus": "1"}}}},
            "unknown log opt 'bogus' for json-file log driver")
    assert [ram_in_bytes(t) for t in ("100", "1k", "1.5m", "2g", "3MB", "1KiB")] == \
        [100, 1024, 1572864, 2 << 30, 3 << 20, 1024]


def test_ports_are_taken_checked_and_refused_as_moby_does() -> None:
    request = parse({"ExposedPorts": {"80/tcp": {}},
                     "HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1",
                                                                 "HostPort": "8080"}]},
                                    "PublishAllPorts": True}})
    assert request.host_config["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1",
                                                               "HostPort": "8080"}]}
    assert request.host_config["PublishAllPorts"] is True
    for body, words in (
            ({"HostConfig": {"PortBindings": {"80/xyz": []}}}, "invalid proto: xyz"),
            ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "x"}]}}},
             "invalid hostPort: x"),
            ({"HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "1.2.3"}]}}},
             "invalid IP address: 1.2.3"),
            ({"ExposedPorts": {"80/tcp": {}}, "HostConfig": {"NetworkMode": "container:x"}},
             "conflicting options: port exposing and the container type network mode"),
            ({"HostConfig": {"NetworkMode": "container:x", "PublishAllPorts": True}},
             "conflicting options: port publishing and the container type network mode"),
            ({"ExposedPorts": {"80/tcp": {}}, "HostConfig": {  # what `run -p` sends: publishing
                "NetworkMode": "container:x", "PortBindings": {"80/tcp": [{"HostPort": "1"}]}}},
             "conflicting options: port publishing and the container type network mode")):
        with pytest.raises(InvalidArgument, match=words):
            parse(body)
    host = parse({"HostConfig": {"NetworkMode": "host",
                                 "PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}})
    assert "Published ports are discarded when using host network mode" in host.warnings
