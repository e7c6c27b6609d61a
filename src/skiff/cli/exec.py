"""`skiff exec` (`container exec`): run a command in a running container, as docker's
cli/command/container/exec.go does.

It creates the exec instance (``POST /containers/{id}/exec``), then either starts it
detached (``-d``: nothing more) or starts it attached on a hijacked connection: the output
comes raw with ``-t``, in stdcopy frames without; with ``-i`` this command's stdin goes to
the process (the terminal in raw mode when ``-i -t`` on a terminal) until its end, when the
connection is half-closed. With ``-t`` on a terminal the pty follows this terminal's size
(``POST /exec/{id}/resize`` at start and on SIGWINCH). The exit code is the process's
own, read from ``GET /exec/{id}/json`` once the stream ends — 126 or 127 when it could not
be started, as the daemon sets them; errors of the daemon exit 1 and a malformed command
line 125, as docker's. The detach keys (``--detach-keys``, else ctrl-p ctrl-q) are the
daemon's to see: a stream that ends while the process still runs was detached, which docker
reports as ``read escape sequence``, exit 1.
"""

from __future__ import annotations

import os

from skiff.cli.flags import Command, flag, option, repeated
from skiff.cli.streams import binary, isatty
from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from skiff.cli.main import Context
    from skiff.client.api import EngineClient
    from skiff.client.transport import Response


def _command(path: str) -> Command:
    from skiff.cli.run import check_env

    prog = path.split(" ", 1)[0]
    return Command(path, "[OPTIONS] CONTAINER COMMAND [ARG...]",
                   "Execute a command in a running container", [
                       flag("detach", "d", "Detached mode: run command in the background"),
                       option("detach-keys", "", "Override the key sequence for detaching "
                              "a container"),
                       repeated("env", "e", "Set environment variables", check=check_env),
                       repeated("env-file", "", "Read in a file of environment variables"),
                       flag("interactive", "i", "Keep STDIN open even if not attached"),
                       flag("privileged", "", "Give extended privileges to the command"),
                       flag("tty", "t", "Allocate a pseudo-TTY"),
                       option("user", "u", "Username or UID (format: "
                              '"<name|uid>[:<group|gid>]")'),
                       option("workdir", "w", "Working directory inside the container"),
                   ], (2, None), aliases=f"{prog} container exec, {prog} exec")


def exec_body(opts: Any) -> dict[str, Any]:
    """The ExecConfig docker's CLI sends for these options."""
    from skiff.cli.run import _env_value, _read_kv_file

    env = [v for f in opts.env_file for v in _read_kv_file(f, True)]
    env += [_env_value(v) for v in opts.env]
    body: dict[str, Any] = {
        "User": opts.user, "Privileged": opts.privileged, "Tty": opts.tty,
        "AttachStdin": opts.interactive and not opts.detach,
        "AttachStdout": not opts.detach, "AttachStderr": not opts.detach,
        "Detach": opts.detach, "DetachKeys": opts.detach_keys, "Env": env,
        "WorkingDir": opts.workdir, "Cmd": list(opts.args[1:]),
    }
    return body


def exec_(ctx: Context, path: str, argv: list[str]) -> int:
    opts = _command(path).parse(argv, interspersed=False)
    try:
        body = exec_body(opts)
    except (InvalidArgument, ValueError) as exc:
        ctx.err.write(f"{exc}\n")
        return 125
    if opts.interactive and opts.tty and not opts.detach and not isatty(ctx.stdin):
        ctx.err.write("the input device is not a TTY\n")
        return 1
    client = ctx.client
    exec_id = client.post(f"/containers/{opts.args[0]}/exec", json=body)["Id"]
    start = {"Detach": opts.detach, "Tty": opts.tty}
    if opts.detach:
        client.open("POST", f"/exec/{exec_id}/start", json=start).read()
        return 0
    stream = client.open("POST", f"/exec/{exec_id}/start", json=start, upgrade=True)
    _attached(ctx, client, exec_id, stream, opts.tty, opts.interactive)
    doc = client.get(f"/exec/{exec_id}/json")
    if opts.interactive and opts.tty and isinstance(doc, dict) and doc.get("Running"):
        # the stream ended with the process still running: the daemon saw the detach keys
        ctx.err.write("read escape sequence\n")
        return 1
    code = doc.get("ExitCode") if isinstance(doc, dict) else None
    return int(code) if isinstance(code, int) else 0


def _attached(ctx: Context, client: EngineClient, exec_id: str, stream: Response,
              tty: bool, interactive: bool) -> None:
    """The hijacked stream: output out, stdin in (with -i), the terminal's size kept."""
    from skiff.client import stdcopy

    out = binary(ctx.out)
    raw_term = _RawTerminal(ctx.stdin) if tty and interactive and isatty(ctx.stdin) else None
    resizer = _Resizer(client, exec_id, ctx.out) if tty and isatty(ctx.out) else None
    if interactive:
        _feed_stdin(ctx.stdin, stream)
    else:
        stream.close_write()  # no stdin to send
    try:
        if tty:
            for data in stream.iter_hijacked():
                out.write(data)
                out.flush()
        else:
            stdcopy.copy(stream.iter_hijacked(), out, binary(ctx.err))
    finally:
        stream.close()
        if resizer is not None:
            resizer.restore()
        if raw_term is not None:
            raw_term.restore()


def _feed_stdin(stdin: Any, stream: Response) -> None:
    """Copy stdin to the connection from a thread, half-closing it at stdin's end (the
    thread dies with the command when the process ends first)."""
    import threading

    try:
        fd = stdin.fileno()
    except (AttributeError, ValueError, OSError):
        stream.close_write()
        return

    def pump() -> None:
        try:
            while data := os.read(fd, 32768):
                stream.send(data)
        except OSError:
            return
        stream.close_write()

    threading.Thread(target=pump, name="skiff-exec-stdin", daemon=True).start()


class _RawTerminal:
    """stdin's terminal in raw mode while attached (keys go to the process as typed)."""

    def __init__(self, stdin: Any) -> None:
        import termios
        import tty

        self.fd = stdin.fileno()
        self.saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd)

    def restore(self) -> None:
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


class _Resizer:
    """The exec's pty at this terminal's size: now, and at each SIGWINCH."""

    def __init__(self, client: EngineClient, exec_id: str, out: Any) -> None:
        import signal

        self.client, self.exec_id, self.fd = client, exec_id, out.fileno()
        self.saved: Any = None
        try:
            self.saved = signal.signal(signal.SIGWINCH, lambda *_: self.resize())
        except ValueError:  # not the main thread
            pass
        self.resize()

    def resize(self) -> None:
        from skiff.errors import SkiffError

        try:
            size = os.get_terminal_size(self.fd)
            self.client.open("POST", f"/exec/{self.exec_id}/resize",
                             {"h": size.lines, "w": size.columns}).read()
        except (OSError, SkiffError):
            pass  # docker's CLI does not give up on the exec for a size

    def restore(self) -> None:
        import signal

        if self.saved is not None:
            signal.signal(signal.SIGWINCH, self.saved)
