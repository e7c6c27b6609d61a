"""The container commands of `skiff` in process against the fake engine: the requests they
send (docker 28's, recorded from the real docker CLI against the same fake — the create body
below is one of them), in docker's order for `run` (create, attach, wait, start), and what
they print: the ps table docker prints for the same rows, names, exit codes and texts."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
from test_cli_commands import Cli, cli  # noqa: F401
from test_client_fake import Request, Response, error, fake_engine  # noqa: F401

from skiff.cli.containers import api_timestamp, displayable_ports, go_quote
from skiff.cli.run import effective_caps, nano_cpus, ram_in_bytes, start_exit_code
from skiff.client.stdcopy import copy, frames
from skiff.errors import DaemonUnreachable, SkiffError
from skiff.units import go_duration_seconds

NOW = int(time.time())
CID = "a" * 64
OTHER = "c" * 64
IMAGE_ID = "sha256:" + "b" * 64
# what `docker run -d --name x -e A=1 -e B -w /tmp -u 1000 --entrypoint sh -h host --label a=b
# --label c --memory 64m --cpus 1.5 --cpu-shares 512 --pids-limit 10 --read-only --cap-add
# NET_ADMIN --cap-drop CHOWN --privileged --network none --stop-signal SIGUSR1 --stop-timeout 5
# --rm busybox echo hi` (docker 28.2, B unset) sent to POST /containers/create?name=x
DOCKER_BODY = json.loads(
    '{"AttachStderr":false,"AttachStdin":false,"AttachStdout":false,"Cmd":["echo","hi"],'
    '"Domainname":"","Entrypoint":["sh"],"Env":["A=1","B"],"HostConfig":{"AutoRemove":true,'
    '"Binds":null,"BlkioDeviceReadBps":[],"BlkioDeviceReadIOps":[],"BlkioDeviceWriteBps":[],'
    '"BlkioDeviceWriteIOps":[],"BlkioWeight":0,"BlkioWeightDevice":[],"CapAdd":'
    '["CAP_NET_ADMIN"],"CapDrop":["CAP_CHOWN"],"Cgroup":"","CgroupParent":"","CgroupnsMode":"",'
    '"ConsoleSize":[0,0],"ContainerIDFile":"","CpuCount":0,"CpuPercent":0,"CpuPeriod":0,'
    '"CpuQuota":0,"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpuShares":512,"CpusetCpus":"",'
    '"CpusetMems":"","DeviceCgroupRules":null,"DeviceRequests":null,"Devices":[],"Dns":[],'
    '"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,"IOMaximumBandwidth":0,'
    '"IOMaximumIOps":0,"IpcMode":"","Isolation":"","Links":null,"LogConfig":{"Config":{},'
    '"Type":""},"MaskedPaths":null,"Memory":67108864,"MemoryReservation":0,"MemorySwap":0,'
    '"MemorySwappiness":-1,"NanoCpus":1500000000,"NetworkMode":"none","OomKillDisable":false,'
    '"OomScoreAdj":0,"PidMode":"","PidsLimit":10,"PortBindings":{},"Privileged":true,'
    '"PublishAllPorts":false,"ReadonlyPaths":null,"ReadonlyRootfs":true,"RestartPolicy":'
    '{"MaximumRetryCount":0,"Name":"no"},"SecurityOpt":null,"ShmSize":0,"UTSMode":"",'
    '"Ulimits":[],"UsernsMode":"","VolumeDriver":"","VolumesFrom":null},"Hostname":"host",'
    '"Image":"busybox","Labels":{"a":"b","c":""},"NetworkingConfig":{"EndpointsConfig":{}},'
    '"OnBuild":null,"OpenStdin":false,"StdinOnce":false,"StopSignal":"SIGUSR1",'
    '"StopTimeout":5,"Tty":false,"User":"1000","Volumes":{},"WorkingDir":"/tmp"}')
ROWS = [
    {"Id": CID, "Names": ["/web"], "Image": "busybox", "ImageID": IMAGE_ID,
     "Command": "sh -c 'while true; do echo hi; sleep 1; done'", "Created": NOW - 7200,
     "Ports": [], "Labels": {"z": "1", "a": "2"}, "State": "running", "Status": "Up 2 hours",
     "HostConfig": {"NetworkMode": "none"}, "NetworkSettings": {"Networks": {"none": {}}},
     "Mounts": [], "SizeRw": 12, "SizeRootFs": 4261550},
    {"Id": OTHER, "Names": ["/other", "/web/link"], "Image": IMAGE_ID, "ImageID": IMAGE_ID,
     "Command": "echo", "Created": NOW - 20 * 86400, "Ports": [], "Labels": {},
     "State": "exited", "Status": "Exited (0) 10 seconds ago",
     "HostConfig": {"NetworkMode": "default"}, "NetworkSettings": {"Networks": {}},
     "Mounts": []},
]


def framed(*items: tuple[int, bytes]) -> bytes:
    return b"".join(struct.pack(">BxxxL", k, len(d)) + d for k, d in items)


def hijacked(*items: tuple[int, bytes]) -> Response:
    """The fake's answer to an attach: a 101 head, the frames, and the connection closed."""
    return Response(101, body=framed(*items), headers={
        "Content-Type": "application/vnd.docker.raw-stream", "Connection": "close",
        "Upgrade": "tcp"})


def paths(cli: Cli) -> list[str]:
    return [f"{r.method} {r.path}" for r in cli.engine.requests if r.path != "/_ping"]


# -- values ----------------------------------------------------------------------------------------
def test_values_read_as_docker_reads_them() -> None:
    assert ram_in_bytes("64m") == 64 << 20 and ram_in_bytes("1.5GiB") == 3 << 29
    assert ram_in_bytes("512") == 512 and ram_in_bytes("10 kb") == 10240
    for bad in ("", "abc", "64mm", "1.", "-1m", "1.2.3"):
        with pytest.raises(ValueError, match="invalid size"):
            ram_in_bytes(bad)
    assert nano_cpus("1.5") == 1_500_000_000 and nano_cpus("3/2") == 1_500_000_000
    with pytest.raises(ValueError, match="too precise"):
        nano_cpus("0.0000000001")
    with pytest.raises(ValueError, match="rational number"):
        nano_cpus("many")
    assert effective_caps(["net_admin", "CAP_CHOWN", "chown"], ["chown", "all"]) == \
        (["CAP_CHOWN", "CAP_NET_ADMIN"], ["ALL"])
    assert effective_caps([], []) == (None, None)
    assert go_quote("sh -c 'x'") == "\"sh -c 'x'\""
    assert go_quote('a"b\\c\n\x01é…') == '"a\\"b\\\\c\\n\\x01é…"'
    assert go_duration_seconds("1h30m") == 5400 and go_duration_seconds("300ms") == 0.3
    assert go_duration_seconds("-1.5s") == -1.5 and go_duration_seconds("10") is None
    assert go_duration_seconds("2024-01-02") is None


def test_timestamps_as_the_docker_client_sends_them() -> None:
    now = 1_700_000_000.25
    assert api_timestamp("10m", now) == "1699999400"
    assert api_timestamp("2024-01-02T03:04:05Z") == "1704164645.000000000"
    assert api_timestamp("2024-01-02T03:04:05.5+01:00") == "1704161045.500000000"
    assert api_timestamp("1700000000.5") == "1700000000.5"
    assert api_timestamp("0") == "0"
    with pytest.raises(SkiffError, match="failed to parse value as time or duration"):
        api_timestamp("yesterday")


def test_exit_codes_read_off_the_start_error() -> None:
    assert start_exit_code('Error response from daemon: exec: "nope": executable file not '
                           "found in $PATH") == 127
    assert start_exit_code("open /x: no such file or directory") == 127
    assert start_exit_code("exec /etc: permission denied") == 126
    assert start_exit_code("cgroup: something broke") == 125


def test_displayable_ports_group_as_docker() -> None:
    ports = [{"PrivatePort": 80, "Type": "tcp"}, {"PrivatePort": 81, "Type": "tcp"},
             {"PrivatePort": 53, "Type": "udp"},
             {"IP": "0.0.0.0", "PrivatePort": 443, "PublicPort": 8443, "Type": "tcp"},
             {"IP": "0.0.0.0", "PrivatePort": 22, "PublicPort": 22, "Type": "tcp"}]
    assert displayable_ports(ports) == \
        "0.0.0.0:22->22/tcp, 53/udp, 80-81/tcp, 0.0.0.0:8443->443/tcp"
    assert displayable_ports([]) == ""


def test_stdcopy_frames_across_chunk_boundaries() -> None:
    data = framed((1, b"hello\n"), (2, b"oops\n"), (1, b""), (1, b"x" * 70000))
    pieces = [data[i:i + 3] for i in range(0, len(data), 3)]
    assert list(frames(pieces)) == [(1, b"hello\n"), (2, b"oops\n"), (1, b""),
                                    (1, b"x" * 70000)]
    with pytest.raises(DaemonUnreachable, match="mid-frame"):
        list(frames([data[:10]]))
    import io

    out, err = io.BytesIO(), io.BytesIO()
    assert copy([framed((0, b"in"), (1, b"out"), (2, b"err"))], out, err) == 8
    assert (out.getvalue(), err.getvalue()) == (b"inout", b"err")
    with pytest.raises(SkiffError, match="error from daemon in stream: broken"):
        copy([framed((3, b"broken"))], out, err)
    with pytest.raises(SkiffError, match="Unrecognized input header: 7"):
        copy([framed((7, b"?"))], out, err)


# -- ps --------------------------------------------------------------------------------------------
def test_ps_prints_dockers_table(cli: Cli) -> None:
    cli.engine.route("GET", "/containers/json", ROWS)
    code, out, err = cli("ps")
    assert (code, err) == (0, "")
    # byte for byte what docker 28 prints for these rows
    assert out.splitlines() == [
        "CONTAINER ID   IMAGE          COMMAND                  CREATED       STATUS                      PORTS     NAMES",
        "aaaaaaaaaaaa   busybox        \"sh -c 'while true; …\"   2 hours ago   Up 2 hours                            web",
        "cccccccccccc   bbbbbbbbbbbb   \"echo\"                   2 weeks ago   Exited (0) 10 seconds ago             other",
    ]
    assert cli.engine.last("GET", "/containers/json").query == {}
    out = cli("ps", "-a", "--no-trunc")[1].splitlines()
    assert out[1].startswith(CID + "   busybox ")
    assert "\"sh -c 'while true; do echo hi; sleep 1; done'\"" in out[1]
    assert out[2].startswith(OTHER + "   " + IMAGE_ID) and out[2].endswith("other,web/link")
    assert cli.engine.last("GET", "/containers/json").q("all") == "1"
    assert cli("ps", "-q")[1] == "aaaaaaaaaaaa\ncccccccccccc\n"
    assert cli("container", "ls", "-q", "--no-trunc")[1] == f"{CID}\n{OTHER}\n"
    sized = cli("ps", "-s")[1].splitlines()
    assert sized[0].endswith("NAMES     SIZE") and sized[1].endswith("web       12B (virtual 4.26MB)")
    assert sized[2].endswith("0B") and cli.engine.last("GET", "/containers/json").q("size") == "1"


def test_ps_format_fields_and_json(cli: Cli) -> None:
    cli.engine.route("GET", "/containers/json", ROWS[:1])
    code, out, _ = cli("ps", "--format", "{{json .}}")
    assert code == 0
    assert json.loads(out) == {
        "Command": "\"sh -c 'while true; …\"", "CreatedAt": json.loads(out)["CreatedAt"],
        "ID": "aaaaaaaaaaaa", "Image": "busybox", "Labels": "a=2,z=1", "LocalVolumes": "0",
        "Mounts": "", "Names": "web", "Networks": "none", "Platform": None, "Ports": "",
        "RunningFor": "2 hours ago", "Size": "12B (virtual 4.26MB)", "State": "running",
        "Status": "Up 2 hours"}
    # the keys come sorted, as docker's MarshalJSON of a map writes them
    assert out.startswith('{"Command":') and cli.engine.last("GET", "/containers/json").q("size") == "1"
    out = cli("ps", "--format", "{{.Names}}|{{.Labels}}|{{.State}}")[1]
    assert out == "web|a=2,z=1|running\n"
    assert "size" not in cli.engine.last("GET", "/containers/json").query  # .Size unused
    out = cli("ps", "--format", "table {{.ID}}\\t{{.Size}}")[1].splitlines()
    assert out == ["CONTAINER ID   SIZE", "aaaaaaaaaaaa   12B (virtual 4.26MB)"]
    code, out, err = cli("ps", "-q", "--format", "{{.Names}}")
    assert out == "aaaaaaaaaaaa\n" and "Ignoring custom format" in err
    cli("ps", "-n", "2")
    assert cli.engine.last("GET", "/containers/json").q("limit") == "2"
    cli("ps", "-l")
    assert cli.engine.last("GET", "/containers/json").q("limit") == "1"
    cli("ps", "-f", "status=exited", "--filter", "name=web")
    assert json.loads(cli.engine.last("GET", "/containers/json").q("filters") or "") == \
        {"name": {"web": True}, "status": {"exited": True}}
    cli.config.mkdir()
    (cli.config / "config.json").write_text('{"psFormat": "{{.ID}} {{.Status}}"}')
    assert cli("ps")[1] == "aaaaaaaaaaaa Up 2 hours\n"
    raw = cli("ps", "--format", "raw")[1]
    assert raw.startswith("container_id: aaaaaaaaaaaa\nimage: busybox\n")
    assert "state: running\nstatus: Up 2 hours\nnames: web\nlabels: a=2,z=1\nports:\n" in raw


# -- run and create --------------------------------------------------------------------------------
def test_create_sends_dockers_body(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("B", raising=False)
    cli.engine.route("POST", "/containers/create", Response(201, json={"Id": CID, "Warnings": []}))
    cli.engine.route("POST", f"/containers/{CID}/start", Response(204))
    code, out, err = cli("run", "-d", "--name", "x", "-e", "A=1", "-e", "B", "-w", "/tmp", "-u",
                         "1000", "--entrypoint", "sh", "-h", "host", "--label", "a=b",
                         "--label", "c", "--memory", "64m", "--cpus", "1.5", "--cpu-shares",
                         "512", "--pids-limit", "10", "--read-only", "--cap-add", "NET_ADMIN",
                         "--cap-drop", "CHOWN", "--privileged", "--network", "none",
                         "--stop-signal", "SIGUSR1", "--stop-timeout", "5", "--rm", "busybox",
                         "echo", "hi")
    assert (code, out, err) == (0, CID + "\n", "")
    req = cli.engine.last("POST", "/containers/create")
    assert req.q("name") == "x" and req.headers["Content-Type"] == "application/json"
    assert req.json() == DOCKER_BODY
    assert paths(cli) == ["POST /containers/create", f"POST /containers/{CID}/start"]
    # create prints the ID and starts nothing; flags after the image are the command's
    code, out, _ = cli("create", "--entrypoint=", "busybox", "ls", "-l", "--rm")
    assert (code, out) == (0, CID + "\n")
    body = cli.engine.last("POST", "/containers/create").json()
    assert body["Entrypoint"] == [""] and body["Cmd"] == ["ls", "-l", "--rm"]
    assert body["AttachStdout"] and body["AttachStderr"]
    assert body["HostConfig"]["NetworkMode"] == "default" and body["Env"] is None
    assert "StopSignal" not in body and "StopTimeout" not in body
    assert paths(cli)[-1] == "POST /containers/create"


def test_run_flags_refused_as_docker_refuses_them(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("run", "--memory", "lots", "busybox")
    assert code == 125
    assert err.startswith('invalid argument "lots" for "-m, --memory" flag: invalid size: '
                          "'lots'") or "invalid size: 'lots'" in err
    code, _, err = cli("run", "-e", "=x", "busybox")
    assert code == 125 and "invalid environment variable: =x" in err
    code, _, err = cli("run", "--pull", "sometimes", "busybox")
    assert code == 125
    code, _, err = cli("run", "-d", "-a", "stdout", "busybox")
    assert (code, err) == (125, "skiff: Conflicting options: -a and -d\n\n"
                                "Run 'skiff run --help' for more information\n")
    code, _, err = cli("run", "-a", "stdfoo", "busybox")
    assert code == 125 and "valid streams are STDIN, STDOUT and STDERR" in err
    code, _, err = cli("run", "--network", "name=x,alias=y", "busybox")
    assert code == 125 and "advanced network syntax" in err
    code, out, _ = cli("run", "--help")
    assert code == 0 and "-h, --hostname string" in out and "      --help " in out
    assert not [r for r in cli.engine.requests if r.path.startswith("/containers")]


def test_run_attaches_waits_starts_and_exits_with_the_code(cli: Cli) -> None:
    e = cli.engine
    e.route("POST", "/containers/create", Response(201, json={"Id": CID, "Warnings": ["low"]}))
    e.route("POST", f"/containers/{CID}/attach", hijacked((1, b"hi\n"), (2, b"warn\n"),
                                                          (1, b"bye\n")))
    e.route("POST", f"/containers/{CID}/wait", Response(json={"StatusCode": 3, "Error": None}))
    e.route("POST", f"/containers/{CID}/start", Response(204))
    code, out, err = cli("run", "busybox", "sh", "-c", "echo hi; exit 3")
    assert (code, out, err) == (3, "hi\nbye\n", "WARNING: low\nwarn\n")
    # docker's order: the wait is in place before the start
    assert paths(cli) == ["POST /containers/create", f"POST /containers/{CID}/attach",
                          f"POST /containers/{CID}/wait", f"POST /containers/{CID}/start"]
    attach = e.last("POST", f"/containers/{CID}/attach")
    assert attach.query == {"stream": ["1"], "stdout": ["1"], "stderr": ["1"]}
    assert attach.headers["Connection"] == "Upgrade" and attach.headers["Upgrade"] == "tcp"
    assert e.last("POST", f"/containers/{CID}/wait").q("condition") == "next-exit"
    e.route("POST", f"/containers/{CID}/wait", Response(json={"StatusCode": 0, "Error": None}))
    assert cli("run", "--rm", "busybox")[0] == 0
    assert e.last("POST", f"/containers/{CID}/wait").q("condition") == "removed"
    code, out, err = cli("run", "-a", "stderr", "busybox")
    assert (out, err) == ("", "WARNING: low\nwarn\n")
    assert e.last("POST", f"/containers/{CID}/attach").q("stdout") is None
    e.route("POST", f"/containers/{CID}/wait",
            Response(json={"StatusCode": -1, "Error": {"Message": "lost"}}))
    code, _, err = cli("run", "busybox")
    assert code == 125 and "Error waiting for container: lost" in err


def test_run_start_failures_exit_125_126_127(cli: Cli) -> None:
    e = cli.engine
    e.route("POST", "/containers/create", Response(201, json={"Id": CID, "Warnings": []}))
    e.route("POST", f"/containers/{CID}/attach", hijacked())
    e.route("POST", f"/containers/{CID}/wait", Response(json={"StatusCode": 0, "Error": None}))
    for text, expected in (('exec: "nope": executable file not found in $PATH', 127),
                           ("exec /etc: permission denied", 126),
                           ("cgroup trouble", 125)):
        e.route("POST", f"/containers/{CID}/start", error(400, text))
        code, out, err = cli("run", "--rm", "busybox", "nope")
        assert (code, out) == (expected, "")
        assert err == (f"skiff: Error response from daemon: {text}\n\n"
                       "Run 'skiff run --help' for more information\n")
        code, out, err = cli("run", "-d", "busybox", "nope")
        assert code == expected and out == CID + "\n"


def test_run_pulls_a_missing_image(cli: Cli) -> None:
    e = cli.engine
    created: list[Request] = []

    def create(req: Request) -> Response:
        created.append(req)
        if len(created) == 1:
            return error(404, "No such image: alpine:latest")
        return Response(201, json={"Id": CID, "Warnings": []})

    e.route("POST", "/containers/create", create)
    e.route("POST", "/images/create", Response(chunks=[
        b'{"status":"Pulling from library/alpine","id":"latest"}\r\n',
        b'{"status":"Status: Downloaded newer image for alpine:latest"}\r\n']))
    e.route("POST", f"/containers/{CID}/start", Response(204))
    code, out, err = cli("run", "-d", "alpine")
    assert (code, out) == (0, CID + "\n")
    assert err == ("Unable to find image 'alpine:latest' locally\n"
                   "latest: Pulling from library/alpine\n"
                   "Status: Downloaded newer image for alpine:latest\n")
    pull = e.last("POST", "/images/create")
    assert (pull.q("fromImage"), pull.q("tag")) == ("alpine", "latest")
    assert len(created) == 2
    # the pull fails: docker's words, exit 125
    created.clear()
    e.route("POST", "/images/create", Response(chunks=[
        b'{"errorDetail":{"message":"pull access denied for alpine"},'
        b'"error":"pull access denied for alpine"}\r\n']))
    code, out, err = cli("run", "alpine")
    assert (code, out) == (125, "")
    assert err.endswith("skiff: pull access denied for alpine\n\n"
                        "Run 'skiff run --help' for more information\n")
    # --pull never: the daemon's 404, no pull
    created.clear()
    code, _, err = cli("run", "--pull", "never", "alpine")
    # docker 28's words, byte for byte
    assert (code, err) == (125, "skiff: Error response from daemon: No such image: "
                                "alpine:latest\n\nRun 'skiff run --help' for more information\n")
    created.clear()
    code, _, err = cli("create", "--pull", "never", "alpine")
    assert (code, err) == (1, "Error response from daemon: No such image: alpine:latest\n")


def test_run_cidfile(cli: Cli, tmp_path: Path) -> None:
    cli.engine.route("POST", "/containers/create", Response(201, json={"Id": CID, "Warnings": []}))
    cidfile = tmp_path / "cid"
    assert cli("create", "--cidfile", str(cidfile), "busybox")[0] == 0
    assert cidfile.read_text() == CID
    code, _, err = cli("create", "--cidfile", str(cidfile), "busybox")
    assert code == 1 and "container ID file found" in err


# -- one call per container ---------------------------------------------------------------------
def test_stop_kill_restart_rm_print_names_and_gather_errors(cli: Cli) -> None:
    e = cli.engine
    for verb in ("stop", "kill", "restart"):
        e.route("POST", f"/containers/web/{verb}", Response(204))
        e.route("POST", f"/containers/nope/{verb}", error(404, "No such container: nope"))
    e.route("DELETE", "/containers/web", Response(204))
    e.route("DELETE", "/containers/nope", error(404, "No such container: nope"))
    code, out, err = cli("stop", "-t", "3", "web", "nope")
    assert (code, out, err) == (1, "web\n", "Error response from daemon: No such container: nope\n")
    assert e.last("POST", "/containers/web/stop").query == {"t": ["3"]}
    assert cli("stop", "web")[0] == 0 and e.last("POST", "/containers/web/stop").query == {}
    assert cli("container", "stop", "-s", "SIGINT", "web")[1] == "web\n"
    assert e.last("POST", "/containers/web/stop").query == {"signal": ["SIGINT"]}
    assert cli("kill", "-s", "HUP", "web")[1] == "web\n"
    assert e.last("POST", "/containers/web/kill").query == {"signal": ["HUP"]}
    assert cli("kill", "web")[0] == 0 and e.last("POST", "/containers/web/kill").query == {}
    assert cli("restart", "-t", "0", "web")[1] == "web\n"
    assert e.last("POST", "/containers/web/restart").query == {"t": ["0"]}
    code, out, err = cli("rm", "web", "nope")
    assert (code, out) == (1, "web\n") and "No such container: nope" in err
    code, out, err = cli("rm", "-f", "-v", "nope", "web")  # -f: errors only reported
    assert (code, out, err) == (0, "web\n", "Error response from daemon: No such container: nope\n")
    assert e.last("DELETE", "/containers/web").query == {"force": ["1"], "v": ["1"]}
    code, _, err = cli("stop")
    assert code == 1 and "'skiff stop' requires at least 1 argument" in err


def test_start_wait_and_start_attached(cli: Cli) -> None:
    e = cli.engine
    e.route("POST", "/containers/web/start", Response(304))  # started already: fine
    e.route("POST", "/containers/nope/start", error(404, "No such container: nope"))
    code, out, err = cli("start", "web", "nope")
    assert (code, out) == (1, "web\n")
    assert err == ("Error response from daemon: No such container: nope\n"
                   "Error: failed to start containers: nope\n")
    e.route("POST", "/containers/web/wait", Response(json={"StatusCode": 137, "Error": None}))
    assert cli("wait", "web")[:2] == (0, "137\n")
    e.route("GET", "/containers/web/json", {"Id": CID, "HostConfig": {"AutoRemove": True},
                                            "Config": {"Tty": False}})
    e.route("POST", f"/containers/{CID}/attach", hijacked((1, b"again\n")))
    e.route("POST", f"/containers/{CID}/wait", Response(json={"StatusCode": 4, "Error": None}))
    e.route("POST", f"/containers/{CID}/start", Response(204))
    code, out, _ = cli("start", "-a", "web")
    assert (code, out) == (4, "again\n")
    assert e.last("POST", f"/containers/{CID}/wait").q("condition") == "removed"


def test_logs_demultiplex_and_send_dockers_query(cli: Cli) -> None:
    import io

    e = cli.engine
    e.route("GET", "/containers/web/json", {"Id": CID, "Config": {"Tty": False}})
    e.route("GET", f"/containers/{CID}/logs", Response(chunks=[
        framed((1, b"out\n")), framed((2, b"err\n"), (1, b"more"))],
        headers={"Content-Type": "application/vnd.docker.raw-stream"}))
    code, out, err = cli("logs", "-t", "--tail", "5", "--since", "2024-01-02T03:04:05Z", "web")
    assert (code, out, err) == (0, "out\nmore", "err\n")
    assert cli.raw == b"out\nmore"
    req = e.last("GET", f"/containers/{CID}/logs")
    assert req.query == {"stdout": ["1"], "stderr": ["1"], "timestamps": ["1"], "tail": ["5"],
                         "since": ["1704164645.000000000"]}
    cli("container", "logs", "-f", "-n", "1", "--until", "1700000000", "web")
    assert e.last("GET", f"/containers/{CID}/logs").query == {
        "stdout": ["1"], "stderr": ["1"], "follow": ["1"], "tail": ["1"],
        "until": ["1700000000"]}
    assert io  # the raw bytes went out unchanged
    e.route("GET", "/containers/nope/json", error(404, "No such container: nope"))
    assert cli("logs", "nope")[::2] == (1, "Error response from daemon: No such container: nope\n")


def test_inspect_finds_a_container_before_an_image(cli: Cli) -> None:
    e = cli.engine
    e.route("GET", "/containers/web/json", {"Id": CID, "Name": "/web"})
    e.route("GET", "/containers/busybox/json", error(404, "No such container: busybox"))
    e.route("GET", "/images/busybox/json", {"Id": IMAGE_ID})
    e.route("GET", "/containers/nope/json", error(404, "No such container: nope"))
    e.route("GET", "/images/nope/json", error(404, "No such image: nope:latest"))
    assert cli("inspect", "-f", "{{.Name}}", "web")[1] == "/web\n"
    assert e.last("GET", "/containers/web/json").query == {}
    assert cli("inspect", "-f", "{{.Id}}", "busybox")[1] == f"{IMAGE_ID}\n"
    assert cli("inspect", "--type", "image", "-f", "{{.Id}}", "busybox")[1] == f"{IMAGE_ID}\n"
    code, out, err = cli("inspect", "--type", "container", "busybox")
    assert (code, out, err) == (1, "[]\n", "Error: No such object: busybox\n")
    code, out, err = cli("container", "inspect", "web", "nope")
    assert code == 1 and json.loads(out) == [{"Id": CID, "Name": "/web"}]
    assert err == "Error response from daemon: No such container: nope\n"
    cli("container", "inspect", "-s", "web")
    assert e.last("GET", "/containers/web/json").query == {"size": ["1"]}
    code, _, err = cli("inspect", "--type", "volume", "x")
    assert code == 1 and "not a valid value for --type" in err


def test_container_prune(cli: Cli) -> None:
    e = cli.engine
    e.route("POST", "/containers/prune", {"ContainersDeleted": [CID], "SpaceReclaimed": 1234})
    code, out, _ = cli("container", "prune", "-f", "--filter", "until=24h")
    assert (code, out) == (0, f"Deleted Containers:\n{CID}\n\nTotal reclaimed space: 1.234kB\n")
    assert json.loads(e.last("POST", "/containers/prune").q("filters") or "") == \
        {"until": {"24h": True}}
    code, out, _ = cli("container", "prune", stdin=b"n\n")
    assert (code, out) == (0, "WARNING! This will remove all stopped containers.\n"
                              "Are you sure you want to continue? [y/N] ")
    e.route("POST", "/containers/prune", {"ContainersDeleted": None, "SpaceReclaimed": 0})
    assert cli("container", "prune", stdin=b"y\n")[1].endswith("Total reclaimed space: 0B\n")


def test_help_lists_the_container_commands(cli: Cli) -> None:
    out = cli("--help")[1]
    assert "  run         Create and run a new container from an image" in out
    assert "  container   Manage containers" in out
    out = cli("container", "--help")[1]
    for name in ("create", "inspect", "kill", "logs", "ls", "prune", "restart", "rm", "run",
                 "start", "stop", "wait"):
        assert f"\n  {name} " in out
    assert cli("container", "list", "-q")[0] in (0, 1)


def test_restart_and_health_flags_as_docker_sends_them(cli: Cli) -> None:
    cli.engine.route("POST", "/containers/create", Response(201, json={"Id": CID, "Warnings": []}))
    code, _, err = cli("create", "--restart", "on-failure:3", "--health-cmd", "test -e /ok",
                       "--health-interval", "1s", "--health-timeout", "1m30s",
                       "--health-retries", "2", "--health-start-period", "500ms", "busybox")
    assert code == 0, err
    body = cli.engine.last("POST", "/containers/create").json()
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert body["Healthcheck"] == {"Test": ["CMD-SHELL", "test -e /ok"], "Interval": 10**9,
                                   "Timeout": 90 * 10**9, "StartPeriod": 500 * 10**6,
                                   "Retries": 2}
    cli("create", "--no-healthcheck", "busybox")
    assert cli.engine.last("POST", "/containers/create").json()["Healthcheck"] == \
        {"Test": ["NONE"]}
    cli("create", "busybox")
    body = cli.engine.last("POST", "/containers/create").json()
    assert "Healthcheck" not in body
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
    made = len(cli.engine.requests)
    for argv, words in ((["--health-interval", "-1s"], "--health-interval cannot be negative"),
                        (["--health-retries", "-1"], "--health-retries cannot be negative"),
                        (["--no-healthcheck", "--health-cmd", "x"],
                         "--no-healthcheck conflicts with --health-* options"),
                        (["--restart", "always", "--rm"],
                         "conflicting options: cannot specify both --restart and --rm"),
                        (["--restart", "on-failure:x"], "maximum retry count must be an integer"),
                        (["--health-timeout", "soon"], 'time: invalid duration "soon"')):
        code, _, err = cli("create", *argv, "busybox")
        assert code == 125 and words in err, (argv, err)
    assert len(cli.engine.requests) == made
