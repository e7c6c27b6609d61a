"""Interactive containers through skiffd with the real clients: the docker CLI in a pty of
the test's own (`Terminal`) for ``docker run -it`` (a shell typed into, its exit code),
``docker attach`` with ctrl-p ctrl-q and with --detach-keys (the container goes on),
the terminal's size seen by ``stty size`` inside, at start and after a resize; pipes into
``docker run -i`` and ``docker attach``; skiff's own ``run -it``; docker-py's
``attach_socket`` with and without a TTY. One skiffd serves the module; every test removes
its containers before it stops."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import socket
import struct
import sys
import termios
import time
from collections.abc import Iterator
from typing import Any
from pathlib import Path

import pytest

from fixtures_daemon import Skiffd, docker_py_client
from test_docker_cli import DOCKER, docker

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI")]
SKIFF = str(Path(sys.executable).parent / "skiff")
CTRL_P, CTRL_Q = b"\x10", b"\x11"


class Terminal:
    """A command in a pty of its own, as a user at a terminal runs it: its output read as
    it comes, keys typed, the window resized (the kernel tells the command SIGWINCH)."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24,
                 cols: int = 80) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the pty is its controlling terminal
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.resize(rows, cols)
        self.output = b""
        self.code: int | None = None

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait_raw(self, timeout: float = 20) -> None:
        """Until the command has put the terminal in raw mode (the docker CLI does once it
        is attached): keys typed before would be the line discipline's (echoed, ctrl-q
        taken for XON), not the container's."""
        deadline = time.monotonic() + timeout
        while termios.tcgetattr(self.fd)[3] & (termios.ICANON | termios.ECHO):
            assert time.monotonic() < deadline, f"never raw; it shows {self.output!r}"
            self._read(0.02)

    def _read(self, timeout: float) -> bool:
        if not select.select([self.fd], [], [], timeout)[0]:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the command and all it started closed the pty
            data = b""
        self.output += data
        return bool(data)

    def expect(self, wanted: bytes, timeout: float = 20) -> bytes:
        """Read until `wanted` has come (after what earlier expects took); the output up
        to its end."""
        deadline = time.monotonic() + timeout
        while wanted not in self.output:
            left = deadline - time.monotonic()
            assert left > 0, f"{wanted!r} did not come; the terminal shows {self.output!r}"
            if not self._read(min(left, 0.2)):
                assert wanted in self.output, f"EOF before {wanted!r}: {self.output!r}"
        at = self.output.index(wanted) + len(wanted)
        seen, self.output = self.output[:at], self.output[at:]
        return seen

    def wait(self, timeout: float = 20) -> int:
        """The command's exit code, once it ended (what it still printed is kept)."""
        deadline = time.monotonic() + timeout
        while self.code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
                break
            assert time.monotonic() < deadline, f"still running; it shows {self.output!r}"
            self._read(0.05)
        while self._read(0):
            pass
        return self.code

    def close(self) -> None:
        if self.code is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.code = -9
        os.close(self.fd)




@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    made: list[Terminal] = []
    yield made
    for t in made:
        t.close()


def at_terminal(terminals: list[Terminal], d: Skiffd, *argv: str, rows: int = 24,
                cols: int = 80) -> Terminal:
    t = Terminal(list(argv), d.env, rows, cols)
    terminals.append(t)
    return t


def status_of(d: Skiffd, name: str) -> str:
    return docker(d, "inspect", "-f", "{{.State.Status}}", name).stdout.strip()


def test_docker_run_it_shell_typed_into_exits_with_its_code(
        daemon: Skiffd, terminals: list[Terminal]) -> None:
    t = at_terminal(terminals, daemon, DOCKER, "run", "--rm", "-it", "busybox", "sh")
    t.expect(b"/ # ")
    t.send(b"echo hi; exit 3\r")
    assert t.expect(b"hi\r\n").endswith(b"echo hi; exit 3\r\nhi\r\n")  # echoed, then run
    assert t.wait() == 3
    assert docker(daemon, "ps", "-aq").stdout == ""  # --rm


def test_the_terminal_size_at_start_and_after_a_resize(
        daemon: Skiffd, terminals: list[Terminal]) -> None:
    t = at_terminal(terminals, daemon, DOCKER, "run", "--rm", "-it", "busybox", "sh",
                    rows=40, cols=120)
    t.expect(b"/ # ")
    t.send(b"stty size\r")
    t.expect(b"40 120\r\n")
    t.resize(30, 100)  # the CLI hears SIGWINCH and posts /resize
    deadline = time.monotonic() + 10
    while True:
        t.send(b"stty size\r")
        seen = t.expect(b"/ # ")
        if b"30 100" in seen:
            break
        assert time.monotonic() < deadline, seen
        time.sleep(0.1)
    t.send(b"exit\r")
    assert t.wait() == 0


def test_pipe_into_docker_run_i(daemon: Skiffd) -> None:
    p = docker(daemon, "run", "--rm", "-i", "busybox", "cat", input=b"data\n")
    assert (p.returncode, p.stdout) == (0, "data\n")
    # stdin ends with the client's: a program reading to EOF then goes on
    big = b"".join(b"line %d\n" % i for i in range(20000))
    p = docker(daemon, "run", "--rm", "-i", "busybox", "sh", "-c", "wc -l; exit 4",
               input=big, check=False)
    assert (p.returncode, p.stdout.split()) == (4, ["20000"])


def test_attach_then_ctrl_p_ctrl_q_detaches_and_the_container_runs_on(
        daemon: Skiffd, terminals: list[Terminal]) -> None:
    docker(daemon, "run", "-dit", "--name", "shell", "busybox", "sh")
    t = at_terminal(terminals, daemon, DOCKER, "attach", "shell")
    t.wait_raw()
    t.send(b"echo one\r")
    t.expect(b"\none\r\n")  # (its output, not the echo)
    t.send(CTRL_P)
    t.send(CTRL_Q)
    t.wait()
    assert b"read escape sequence" in t.output  # the docker CLI's words for it
    assert status_of(daemon, "shell") == "running"
    # other keys, and the same shell still there
    t = at_terminal(terminals, daemon, DOCKER, "attach", "--detach-keys", "ctrl-x,y", "shell")
    t.wait_raw()
    t.send(b"echo two\r")
    t.expect(b"\ntwo\r\n")
    t.send(CTRL_P + CTRL_Q)  # not the keys now: typed into the shell
    t.send(b"\x18y")
    t.wait()
    assert status_of(daemon, "shell") == "running"
    logs = docker(daemon, "logs", "shell").stdout
    assert "one" in logs and "two" in logs


def test_attach_with_stdin_to_cat(daemon: Skiffd) -> None:
    import subprocess
    docker(daemon, "run", "-di", "--name", "cat", "busybox", "sh", "-c",
           "read line; echo got $line; cat; exit 2")
    # docker attach waits for the container's end; its input is the container's stdin
    p = subprocess.Popen([DOCKER, "attach", "cat"], env=daemon.env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    try:
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(b"hello\n")
        p.stdin.flush()
        assert p.stdout.readline() == b"got hello\n"
        p.stdin.write(b"echoed\n")
        p.stdin.flush()
        assert p.stdout.readline() == b"echoed\n"
        # not StdinOnce (run -d): the end of the attach's input ends the attach, not the
        # container's stdin
        p.stdin.close()
        time.sleep(0.5)
        assert status_of(daemon, "cat") == "running"
        docker(daemon, "kill", "cat")
        assert p.wait(timeout=20) == 137
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()  # type: ignore[union-attr]
    assert docker(daemon, "logs", "cat").stdout == "got hello\nechoed\n"


def test_start_a_i_feeds_a_created_container_from_its_first_byte(daemon: Skiffd) -> None:
    docker(daemon, "create", "-i", "--name", "first", "busybox", "sh", "-c",
           "head -c 5; echo; exit 7")
    p = docker(daemon, "start", "-a", "-i", "first", input=b"12345tail", check=False)
    assert (p.returncode, p.stdout) == (7, "12345\n")


def test_skiff_run_it_through_a_pty(daemon: Skiffd, terminals: list[Terminal]) -> None:
    t = at_terminal(terminals, daemon, SKIFF, "run", "--rm", "-it", "busybox", "sh",
                    rows=33, cols=91)
    t.expect(b"/ # ")
    t.send(b"stty size; exit 5\r")
    t.expect(b"33 91\r\n")
    assert t.wait() == 5
    p = docker(daemon, "run", "--rm", "-i", "busybox", "cat", input=b"via docker\n")
    assert p.stdout == "via docker\n"
    p = run_skiff(daemon, "run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input=b"up\n")
    assert (p.returncode, p.stdout) == (0, b"UP\n")


def test_skiff_attach_and_start_a_i(daemon: Skiffd, terminals: list[Terminal]) -> None:
    docker(daemon, "run", "-dit", "--name", "skiffshell", "busybox", "sh")
    t = at_terminal(terminals, daemon, SKIFF, "attach", "skiffshell")
    t.wait_raw()
    t.send(b"echo one\r")
    t.expect(b"\none\r\n")
    t.send(CTRL_P + CTRL_Q)
    assert t.wait() == 1
    assert b"read escape sequence" in t.output
    assert status_of(daemon, "skiffshell") == "running"
    t = at_terminal(terminals, daemon, SKIFF, "attach", "--detach-keys", "ctrl-x,y",
                    "skiffshell")
    t.wait_raw()
    t.send(b"exit 4\r")  # the shell ends: attach gives its exit code
    assert t.wait() == 4
    p = run_skiff(daemon, "attach", "skiffshell", input=b"")
    assert p.returncode == 1 and b"You cannot attach to a stopped container" in p.stderr
    docker(daemon, "create", "-i", "--name", "skifffirst", "busybox", "sh", "-c",
           "head -c 5; echo; exit 7")
    p = run_skiff(daemon, "start", "-a", "-i", "skifffirst", input=b"12345tail")
    assert (p.returncode, p.stdout) == (7, b"12345\n")


def run_skiff(d: Skiffd, *args: str, input: bytes) -> Any:
    import subprocess
    return subprocess.run([SKIFF, *args], env=d.env, input=input, capture_output=True,
                          timeout=60)


def _read_until(sock: socket.socket, wanted: bytes, timeout: float = 20) -> bytes:
    sock.settimeout(timeout)
    out = b""
    while wanted not in out:
        chunk = sock.recv(65536)
        assert chunk, f"EOF before {wanted!r}: {out!r}"
        out += chunk
    return out


def test_docker_py_attach_socket_with_and_without_a_tty(daemon: Skiffd) -> None:
    with docker_py_client(daemon.url) as client:
        shell = client.containers.run("busybox", "sh", stdin_open=True, tty=True,
                                      detach=True, name="pyshell")
        attached = client.api.attach_socket(shell.id, params={"stdin": 1, "stream": 1,
                                                              "stdout": 1})
        try:
            sock = attached._sock
            sock.sendall(b"echo from-py $((6*7))\n")
            assert b"from-py 42" in _read_until(sock, b"from-py 42")  # raw: no frames
        finally:
            attached._sock.close()  # docker-py leaves the socket to its caller
            attached.close()
        shell.remove(force=True)
        cat = client.containers.run("busybox", "cat", stdin_open=True, detach=True,
                                    name="pycat")
        attached = client.api.attach_socket(cat.id, params={"stdin": 1, "stream": 1,
                                                            "stdout": 1})
        try:
            sock = attached._sock
            sock.sendall(b"framed\n")
            out = _read_until(sock, b"framed\n")
            assert out == struct.pack(">BxxxL", 1, 7) + b"framed\n"  # stdcopy frames
        finally:
            attached._sock.close()  # docker-py leaves the socket to its caller
            attached.close()
        cat.remove(force=True)
