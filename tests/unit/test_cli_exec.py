"""`skiff exec` in process against the fake engine: the ExecConfig docker 28 sends for the
flags, create then the hijacked start then the inspect, the output demultiplexed (raw with
-t), the exit code the inspect gives (126/127 included), -d's detached start, the daemon's
errors (exit 1) and a bad command line (125)."""

from __future__ import annotations

import pytest
from test_cli_commands import Cli, cli  # noqa: F401
from test_cli_containers import hijacked
from test_client_fake import Response, error, fake_engine  # noqa: F401

EID = "e" * 64


def routes(cli: Cli, code: int | None, stream: Response | None = None) -> None:
    e = cli.engine
    e.route("POST", "/containers/box/exec", Response(201, json={"Id": EID}))
    e.route("POST", f"/exec/{EID}/start", stream or hijacked((1, b"out\n"), (2, b"err\n")))
    e.route("GET", f"/exec/{EID}/json", Response(json={"ID": EID, "Running": False,
                                                       "ExitCode": code}))


def test_exec_sends_dockers_body_and_exits_with_the_code(cli: Cli) -> None:
    routes(cli, 7)
    code, out, err = cli("exec", "-e", "A=1", "-u", "nobody", "-w", "/tmp", "--privileged",
                         "box", "sh", "-c", "exit 7")
    assert (code, out, err) == (7, "out\n", "err\n")
    e = cli.engine
    assert [f"{r.method} {r.path}" for r in e.requests if r.path != "/_ping"] == [
        "POST /containers/box/exec", f"POST /exec/{EID}/start", f"GET /exec/{EID}/json"]
    assert e.last("POST", "/containers/box/exec").json() == {
        "User": "nobody", "Privileged": True, "Tty": False, "AttachStdin": False,
        "AttachStdout": True, "AttachStderr": True, "Detach": False, "DetachKeys": "",
        "Env": ["A=1"], "WorkingDir": "/tmp", "Cmd": ["sh", "-c", "exit 7"]}
    start = e.last("POST", f"/exec/{EID}/start")
    assert start.json() == {"Detach": False, "Tty": False}
    assert start.headers["Upgrade"] == "tcp"
    routes(cli, 127, hijacked((1, b'OCI runtime exec failed: exec: "nope"\r\n')))
    code, out, _ = cli("exec", "box", "nope")
    assert (code, out) == (127, 'OCI runtime exec failed: exec: "nope"\r\n')


def test_exec_tty_is_raw_and_detached_is_one_start(cli: Cli) -> None:
    raw = Response(101, body=b"\x01raw bytes\r\n", headers={
        "Content-Type": "application/vnd.docker.raw-stream", "Upgrade": "tcp"})
    routes(cli, 0, raw)
    code, out, _ = cli("exec", "-t", "box", "tty")
    assert (code, out) == (0, "\x01raw bytes\r\n")
    assert cli.engine.last("POST", "/containers/box/exec").json()["Tty"] is True
    routes(cli, None, Response(200))
    code, out, err = cli("exec", "-d", "box", "sleep", "1")
    assert (code, out, err) == (0, "", "")
    body = cli.engine.last("POST", "/containers/box/exec").json()
    assert (body["Detach"], body["AttachStdout"], body["AttachStderr"]) == (True, False, False)
    assert cli.engine.last("POST", f"/exec/{EID}/start").json() == {"Detach": True,
                                                                   "Tty": False}


def test_exec_errors(cli: Cli) -> None:
    cli.engine.route("POST", "/containers/box/exec", error(409, "Container x is not running"))
    code, _, err = cli("exec", "box", "true")
    assert (code, err) == (1, "Error response from daemon: Container x is not running\n")
    code, _, err = cli("exec", "box")
    assert code == 1 and "'skiff exec' requires at least 2 arguments" in err
    code, _, err = cli("exec", "--nope", "box", "true")
    assert code == 125
    code, _, err = cli("exec", "-it", "box", "sh")  # stdin is no terminal here
    assert (code, err) == (1, "the input device is not a TTY\n")


@pytest.mark.parametrize("flag", ["-e", "--env"])
def test_exec_env_is_checked_as_dockers(cli: Cli, flag: str) -> None:
    code, _, err = cli("exec", flag, "=x", "box", "true")
    assert code == 125 and "invalid environment variable" in err
