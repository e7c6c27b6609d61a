"""Host choice (-H, DOCKER_HOST, skiff's socket) and skiffd started on demand — detached, in
its own session, stdin from /dev/null, output to $SKIFF_RUN/skiffd.log, the caller's
environment — only for skiff's default socket. A stand-in skiffd (a small Python server)
plays the daemon; every one started is stopped by its pid."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from skiff.client import connect
from skiff.errors import DaemonUnreachable, InvalidArgument

FAKE_SKIFFD = f"""#!{sys.executable}
import os, signal, socket, sys, time
run = os.environ["SKIFF_RUN"]
with open(os.path.join(run, "starts"), "a") as f:
    f.write("x")
mode = os.environ.get("FAKE_SKIFFD_MODE", "serve")
if mode == "fail":
    print("boom: the socket is taken", file=sys.stderr, flush=True)
    sys.exit(3)
if mode == "hang":
    time.sleep(60)
    sys.exit(0)
time.sleep(float(os.environ.get("FAKE_SKIFFD_DELAY", "0")))
path = os.path.join(run, "skiff.sock")
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(8)
with open(os.path.join(run, "skiffd.pid"), "w") as f:
    f.write(str(os.getpid()))
def stop(*_):
    os.unlink(path)
    os.unlink(os.path.join(run, "skiffd.pid"))
    os._exit(0)
signal.signal(signal.SIGTERM, stop)
print("fake skiffd listening", flush=True)
while True:
    conn, _ = srv.accept()
    data = b""
    while b"\\r\\n\\r\\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    conn.sendall(b"HTTP/1.1 200 OK\\r\\nApi-Version: 1.41\\r\\nContent-Length: 2\\r\\n\\r\\nOK")
    conn.close()
"""


@pytest.fixture
def skiff_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    run = tmp_path / "run"
    monkeypatch.setenv("SKIFF_RUN", str(run))
    monkeypatch.setenv("SKIFF_ROOT", str(tmp_path / "root"))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    script = tmp_path / "skiffd"
    script.write_text(FAKE_SKIFFD)
    script.chmod(0o755)
    monkeypatch.setattr(connect, "find_skiffd", lambda: str(script))
    yield run
    pid_file = run / "skiffd.pid"  # the stand-in that serves writes one; stop it by it
    if pid_file.exists():
        _stop(int(pid_file.read_text()))


def _stop(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)  # our child (posix_spawn): reap it
    except ChildProcessError:
        pass


def test_host_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIFF_RUN", "/tmp/r")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert connect.choose_host() == ("unix:///tmp/r/skiff.sock", True)
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
    assert connect.choose_host() == ("tcp://127.0.0.1:1", False)
    assert connect.choose_host(["unix:///x.sock"]) == ("unix:///x.sock", False)
    monkeypatch.delenv("SKIFF_RUN")
    monkeypatch.delenv("DOCKER_HOST")
    assert connect.choose_host() == ("unix:///run/skiff/skiff.sock", True)
    with pytest.raises(InvalidArgument, match="Specify only one -H"):
        connect.choose_host(["unix:///a", "unix:///b"])


def test_the_default_socket_starts_skiffd_detached(skiff_run: Path) -> None:
    client = connect.connect()
    assert client.ping()["api-version"] == "1.41"
    pid = int((skiff_run / "skiffd.pid").read_text())
    assert os.getsid(pid) == pid  # a session of its own: a terminal's hang-up misses it
    assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{pid}/fd/1") == str(skiff_run / "skiffd.log")
    assert os.readlink(f"/proc/{pid}/fd/2") == str(skiff_run / "skiffd.log")
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"SKIFF_RUN={skiff_run}".encode() in environ
    assert f"SKIFF_ROOT={skiff_run.parent / 'root'}".encode() in environ
    assert "fake skiffd listening" in (skiff_run / "skiffd.log").read_text()
    # a second CLI finds it running and starts nothing
    connect.connect().ping()
    assert (skiff_run / "starts").read_text() == "x"


def test_an_explicit_host_is_never_started(skiff_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = skiff_run.parent / "elsewhere.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    client = connect.connect()
    with pytest.raises(DaemonUnreachable, match="Is the docker daemon running"):
        client.get("/images/json")
    default = f"unix://{skiff_run}/skiff.sock"
    with pytest.raises(DaemonUnreachable):
        connect.connect([default]).get("/images/json")  # -H naming the default is explicit too
    assert not (skiff_run / "starts").exists()


def test_a_skiffd_that_dies_is_reported_with_its_log(skiff_run: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SKIFFD_MODE", "fail")
    with pytest.raises(DaemonUnreachable) as exc:
        connect.connect()
    text = str(exc.value)
    assert "skiffd exited (status 3)" in text
    assert str(skiff_run / "skiffd.log") in text and "boom: the socket is taken" in text


def test_a_skiffd_that_never_answers_times_out(skiff_run: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SKIFFD_MODE", "hang")
    client = connect.EngineClient(connect.default_host())
    with pytest.raises(DaemonUnreachable) as exc:
        connect.start_daemon(client, timeout=0.3)
    found = re.search(r"pid (\d+)", str(exc.value))
    assert found and "within 0.3 s" in str(exc.value)
    _stop(int(found.group(1)))


def test_two_clis_at_once_start_one_skiffd(skiff_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SKIFFD_DELAY", "0.2")
    errors: list[BaseException] = []

    def one() -> None:
        try:
            connect.connect().ping()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert not errors
    assert (skiff_run / "starts").read_text() == "x"


def test_no_skiffd_anywhere(skiff_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    monkeypatch.setenv("SKIFF_RUN", str(skiff_run))
    monkeypatch.setenv("PATH", str(skiff_run.parent / "empty"))
    monkeypatch.setattr(sys, "executable", str(skiff_run.parent / "nopython" / "python"))
    with pytest.raises(DaemonUnreachable, match="no `skiffd` next to"):
        connect.find_skiffd()


def test_tls_hosts_are_refused_not_sent_in_the_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2376")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    with pytest.raises(InvalidArgument, match="TLS"):
        connect.connect()
