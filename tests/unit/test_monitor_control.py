"""The attach socket's frames (encoded, decoded from pieces of any size, refused when they
cannot be skiffd's) and the monitor's AttachServer in process over a real unix socket and
pipe: several attachers' stdin in order, close stdin after what is pending, a resize of a
real pty, a stdin the container does not read holding the connections back, and the monitor's
loop going on past an event of a stdin that an earlier event of the same poll closed."""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import signal
import socket
import struct
import termios
import time
from pathlib import Path

import pytest

from conftest import run_in_child

from skiff.engine.monitor import control
from skiff.engine.monitor.attach_server import AttachServer
from skiff.engine.monitor.logfile import LogWriter
from skiff.engine.monitor.main import Monitor, Options


def test_frames_round_trip_in_pieces_of_any_size() -> None:
    wire = control.stdin(b"abc") + control.resize(24, 80) + control.close() + control.stdin(b"")
    assert wire[:5] == b"i\0\0\0\x03"
    for step in (1, 2, 5, 7, len(wire)):
        d = control.Decoder()
        frames = []
        for at in range(0, len(wire), step):
            frames += d.feed(wire[at:at + step])
        assert frames == [(b"i", b"abc"), (b"w", b"\0\x18\0\x50"), (b"c", b""), (b"i", b"")]
        assert d.buffer == b""
    assert control.size_of(b"\0\x18\0\x50") == (24, 80)


def test_frames_that_cannot_be_skiffds_are_refused() -> None:
    with pytest.raises(ValueError):
        control.Decoder().feed(b"x\0\0\0\0")
    with pytest.raises(ValueError):
        control.Decoder().feed(b"i" + (control.MAX_PAYLOAD + 1).to_bytes(4, "big"))
    with pytest.raises(ValueError):
        control.resize(1 << 16, 1)
    with pytest.raises(ValueError):
        control.size_of(b"\0")


def pump(server: AttachServer, poller: select.poll, rounds: int = 20) -> None:
    for _ in range(rounds):
        for fd, _ in poller.poll(20):
            if server.owns(fd):
                server.handle(fd)


def test_attach_server_feeds_stdin_in_order_and_closes_it(tmp_path: Path) -> None:
    r, w = os.pipe()
    poller = select.poll()
    server = AttachServer(str(tmp_path / "attach.sock"), poller, w, -1)
    assert (tmp_path / "attach.sock").stat().st_mode & 0o777 == 0o600
    a, b = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
    try:
        a.connect(str(tmp_path / "attach.sock"))
        b.connect(str(tmp_path / "attach.sock"))
        a.sendall(control.stdin(b"one "))
        pump(server, poller)
        b.sendall(control.stdin(b"two ") + control.resize(3, 4))  # no TTY: ignored
        pump(server, poller)
        a.close()  # an attacher leaving closes nothing
        pump(server, poller)
        b.sendall(control.stdin(b"three") + control.close())
        pump(server, poller)
        assert os.read(r, 100) == b"one two three"
        assert os.read(r, 100) == b""  # closed: EOF
    finally:
        b.close()
        server.close()
        os.close(r)
    assert not (tmp_path / "attach.sock").exists()


def test_a_stdin_nobody_reads_holds_the_attachers_back(tmp_path: Path) -> None:
    r, w = os.pipe()
    poller = select.poll()
    server = AttachServer(str(tmp_path / "a.sock"), poller, w, -1)
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect(str(tmp_path / "a.sock"))
        data = bytes(range(256)) * 1024  # 256 KiB: four times a pipe's room
        c.sendall(control.stdin(data[:65536]) + control.stdin(data[65536:131072]))
        pump(server, poller)
        assert server.blocked and server.pending
        got = b""
        c.sendall(control.stdin(data[131072:]))
        while len(got) < len(data):
            got += os.read(r, 65536)
            pump(server, poller, 2)
        assert got == data and not server.blocked
    finally:
        c.close()
        server.close()
        os.close(r)


def test_resize_sets_the_ptys_size(tmp_path: Path) -> None:
    master, slave = os.openpty()
    poller = select.poll()
    server = AttachServer(str(tmp_path / "t.sock"), poller, -1, master)
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect(str(tmp_path / "t.sock"))
        c.sendall(control.resize(33, 121) + control.stdin(b"ignored: -i was not given"))
        pump(server, poller)
        size = struct.unpack("HHHH", fcntl.ioctl(slave, termios.TIOCGWINSZ, b"\0" * 8))
        assert size[:2] == (33, 121)
    finally:
        c.close()
        server.close()
        os.close(master)
        os.close(slave)


def _unread(fd: int) -> int:
    """How many bytes wait in the pipe whose reading end is `fd`."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def test_the_monitor_goes_on_when_a_close_frame_closes_a_stdin_polled_for_room(
        tmp_path: Path) -> None:
    # `docker run -i` with more input than the pipe holds: the stdin is polled for room,
    # the attacher's connection not (its hang-up is told all the same). When the reader
    # makes room as the attacher sends its close and hangs up, one poll tells both: the
    # connection's event writes the rest, closes the stdin — and the stdin's event that
    # follows in the same batch is of an fd that is gone, not a stream's
    def monitored() -> tuple[int, str]:
        r, w = os.pipe()
        monitor = Monitor(Options())
        monitor.log = LogWriter(str(tmp_path / "log"))
        monitor.attach = AttachServer(str(tmp_path / "a.sock"), monitor.poller, w, -1)
        c = socket.socket(socket.AF_UNIX)
        c.connect(str(tmp_path / "a.sock"))
        data = bytes(range(256)) * 400  # 100 KiB: more than the pipe's 64 KiB
        c.sendall(control.stdin(data))
        pump(monitor.attach, monitor.poller)
        assert monitor.attach.blocked
        out_r, out_w = os.pipe()
        init = os.fork()
        if init == 0:  # the container: reads its stdin to the end, says how much
            c.close()  # (the attacher's hang-up must be the test's alone)
            os.close(w)
            got = b""
            while chunk := os.read(r, 65536):
                got += chunk
            os.write(out_w, b"%d" % len(got))
            os._exit(4)
        os.close(out_w)
        monitor.init_pid = init
        try:
            while _unread(r):  # the container has taken what the pipe held: it has room
                time.sleep(0.001)
            os.close(r)
            c.sendall(control.close())
            c.close()
            status, _ = monitor.run()  # (which reaps the container)
        except BaseException:
            os.kill(init, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(init, 0)
            raise
        return os.waitstatus_to_exitcode(status), os.read(out_r, 100).decode()

    assert run_in_child(lambda: list(monitored())) == [4, "102400"]
