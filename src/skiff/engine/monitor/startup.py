"""The monitor's helper: create and start the container with the runtime library, in a
forked child of the monitor, and answer with init's pid or with Docker's error.

It runs with stdin /dev/null (or the monitor's stdin pipe) and stdout/stderr the monitor's
pipes (or /dev/null, with a TTY), which the container's init inherits; the runtime's own warnings go to the monitor's stderr instead, never into
the container's log. It answers on a pipe — ``ok PID OOMFILE`` (the cgroup file whose
``oom_kill`` count tells an OOM kill at exit, so the monitor need not load a cgroup driver)
or ``err CODE LENGTH`` and the message — and exits, which hands init to the monitor (its
subreaper). A failure maps to the exit code Docker gives it (`start_error`): 127 for a
program that is not there, 126 for one that cannot be run, 125 for anything else.
"""

from __future__ import annotations

import os

from skiff.engine.monitor.main import write_all

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def start_error(message: str, command: str, operation: str = "create") -> tuple[int, str]:
    """The exit code and text Docker gives a container whose start failed with the
    runtime's `message`: moby's translateContainerdStartErr, on runc's wording (which
    skiff.runtime shares: ``exec: "foo": executable file not found in $PATH``).
    `operation` "exec": the words of a process that could not join a running one."""
    low = message.lower()
    code = 125
    if command and command.lower() in low and (
            "executable file not found" in low or "no such file or directory" in low):
        code = 127
    if "permission denied" in low or "is a directory" in low:
        code = 126
    if "not a directory" in low:
        message += (": Are you trying to mount a directory onto a file (or vice-versa)? "
                    "Check if the specified host path exists and is the expected type")
        code = 127
    if operation == "exec":
        message = f"exec failed: unable to start container process: {message}"
    else:
        message = f"unable to start container process: {message}"
    return code, f"OCI runtime {operation} failed: {message}: unknown"


def describe(exc: BaseException) -> str:
    from skiff.errors import SkiffError
    if isinstance(exc, SkiffError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror or exc)
    return f"{type(exc).__name__}: {exc}"


def program(bundle: str) -> str:
    """args[0] of the bundle's process, for the error rules ("" if unreadable)."""
    from skiff import jsonfast
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            return str(jsonfast.loads(f.read())["process"]["args"][0])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return ""


def oom_file(cgroup_path: str, cgroup_root: str) -> str:
    """The file of the container's cgroup with its `oom_kill` count."""
    from skiff.runtime.cgroups import open_cgroup
    from skiff.runtime.cgroups.v1 import V1Cgroup
    from skiff.runtime.cgroups.v2 import V2Cgroup
    cg = open_cgroup(cgroup_path, root=cgroup_root)
    if isinstance(cg, V1Cgroup):
        memory = cg.dir("memory")
        if memory is not None:
            return os.path.join(memory, "memory.oom_control")
        if cg.unified is None:
            return ""
        return os.path.join(cg.unified.dir, "memory.events")
    if isinstance(cg, V2Cgroup):
        return os.path.join(cg.dir, "memory.events")
    return ""


def create_and_start(container_id: str, bundle: str, runtime_root: str,
                     console_socket: str = "") -> bytes:
    from skiff.runtime import cgroup_warmup
    cgroup_warmup.start()  # the migration toll, for a restart the engine did not start
    from skiff.runtime.container import Container
    from skiff.runtime.create import CreateOptions, create
    from skiff.runtime.start import poststart
    from skiff.runtime.state import StateStore
    store = StateStore(runtime_root)
    # no exec fifo (as `run`): init goes on to the program once it is ready, and what would
    # stop it before (a missing program, a bad cwd, a hook) is reported by create itself
    st = create(store, container_id, CreateOptions(bundle=bundle, start_at_once=True,
                                                   console_socket=console_socket or None))
    poststart(Container(store, st))
    return f"ok {st.pid} {oom_file(st.cgroup_path, st.cgroup_root)}\n".encode()


def helper_main(container_id: str, bundle: str, runtime_root: str, theirs: tuple[int, ...],
                out_w: int, err_w: int, res_w: int, stdin_r: int = -1,
                console_socket: str = "") -> NoReturn:
    """The forked child's whole life (never returns). `theirs`: the monitor's fds (-1 for
    none); `out_w`, `err_w`, `stdin_r`: the container's stdio (-1: /dev/null); with a
    `console_socket`, init's pty master goes there."""
    code = 1
    try:
        for fd in theirs:
            if fd >= 0:
                os.close(fd)
        own_stderr = os.dup(2)
        null = os.open("/dev/null", os.O_RDWR)
        for fd, target in ((stdin_r, 0), (out_w, 1), (err_w, 2)):
            os.dup2(fd if fd >= 0 else null, target)
        for fd in {null, stdin_r, out_w, err_w} - {-1, 0, 1, 2}:
            os.close(fd)
        import sys
        sys.stderr = open(own_stderr, "w", buffering=1)  # the runtime's warnings: not the log's
        answer = create_and_start(container_id, bundle, runtime_root, console_socket)
        code = 0
    except BaseException as e:  # noqa: BLE001 - every failure is an answer
        status, text = start_error(describe(e), program(bundle))
        raw = text.encode("utf-8", "replace")
        answer = f"err {status} {len(raw)}\n".encode() + raw
    try:
        write_all(res_w, answer)
    finally:
        os._exit(code)
