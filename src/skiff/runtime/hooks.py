"""Run the spec's lifecycle hooks: each gets the state JSON on stdin and its own timeout.

A hook that fails or times out in prestart, createRuntime, createContainer or
startContainer fails the operation (`HookFailed`, with the hook's path, status and stderr);
poststart and poststop failures are only warnings, each hook on its own, as the runtime
spec says. A hook runs in a session of its own, so one past its timeout is killed with
everything it started.
"""

from __future__ import annotations

import os
import signal
import subprocess

from skiff.errors import HookFailed
from skiff.oci.runtime_spec import Hook
from skiff import jsonfast
from skiff.log import logger

log = logger("skiff.runtime")

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import Any


def run_hooks(phase: str, hooks: tuple[Hook, ...], state: dict[str, Any]) -> None:
    payload = jsonfast.dumps(state).encode()
    for hook in hooks:
        # no env of its own: the runtime's, as runc (Go's exec with a nil Env) gives
        env = dict(e.split("=", 1) for e in hook.env if "=" in e) if hook.env else None
        argv = list(hook.args) or [hook.path]
        try:
            # a session of its own: a hook past its timeout is killed with all it started
            done = subprocess.Popen(argv, executable=hook.path, stdin=subprocess.PIPE, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    close_fds=True, start_new_session=True)
        except OSError as e:
            raise HookFailed(f"{phase} hook {hook.path}: {e.strerror}") from None
        try:
            _, stderr = done.communicate(payload, timeout=hook.timeout)
        except subprocess.TimeoutExpired:
            _kill_session(done)
            raise HookFailed(f"{phase} hook {hook.path}: timed out after {hook.timeout}s") from None
        except BaseException:
            _kill_session(done)
            raise
        if done.returncode != 0:
            err = stderr.decode(errors="replace").strip()
            raise HookFailed(f"{phase} hook {hook.path}: exit status {done.returncode}"
                             + (f": {err}" if err else ""))


def _kill_session(p: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.communicate()


def run_hooks_warning(phase: str, hooks: tuple[Hook, ...], state: dict[str, Any]) -> None:
    """poststart and poststop: a failing hook is logged as a warning and the rest still run
    ("the remaining hooks and lifecycle continue as if the hook had succeeded")."""
    for hook in hooks:
        try:
            run_hooks(phase, (hook,), state)
        except HookFailed as e:
            log.warning("%s", e)
