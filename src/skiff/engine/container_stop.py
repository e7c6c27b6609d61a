"""``docker stop``, ``kill``, ``restart`` and ``wait``: signals to a running container and
waiting for what follows, over the `ContainerService` that holds it.

Signals go through the runtime library on ``$SKIFF_RUN/runtime``, each told as dockerd's
``kill`` event before it is sent (so that the ``die`` it may cause comes after), and a paused
container is thawed afterwards so that it gets them (`container_control.thaw_for_signal`). A
user's stop or kill cancels what the restart policy would do next (`Supervisor.cancel`).
`stop` sends the stop signal, then SIGKILL after the timeout; `kill_run` SIGKILLs one run
and, should its monitor not report the end within `KILL_WAIT` seconds, kills the monitor
too. `wait` blocks until one of Docker's conditions holds. Every wait sleeps on the
service's condition, which each state change notifies, and checks every `RECHECK` seconds
that the run under way still has its monitor, so that an exit the watcher missed is found
all the same.
"""

from __future__ import annotations

import os
import time

from skiff.engine.container_config import DEFAULT_STOP_TIMEOUT, parse_signal
from skiff.engine.containers import _never
from skiff.errors import ContainerConflict, InvalidArgument, RuntimeError_
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from skiff.engine.containers import ContainerService, _Live

_log = logger("skiff.engine.containers")
KILL_WAIT = 10.0  # seconds a SIGKILLed container may take to be reported gone
RECHECK = 0.5  # seconds between checks, while waiting, that a run is still supervised
_SIGKILL = 9


def _signal(svc: ContainerService, cid: str, sig: int) -> None:
    from skiff.runtime.kill import kill
    from skiff.runtime.state import StateStore

    row = svc.db.get(cid)
    if row is not None:
        # told whether or not the signal lands, as dockerd does; before it is sent, so
        # that the die it may cause (told by the exit watcher's thread) comes after
        svc._event(row, "kill", {"signal": str(sig)})
    try:
        kill(StateStore(svc.runtime_root), cid, sig)
    except RuntimeError_ as e:
        # it is exiting (or just exited) meanwhile: its monitor will tell
        _log.debug("container %s: signal %d: %s", cid[:12], sig, e)
    from skiff.engine.container_control import thaw_for_signal

    thaw_for_signal(svc, cid)  # a frozen container gets the signal once thawed


def stop(svc: ContainerService, ref: str, timeout: int | None = None,
         signal: str | None = None) -> bool:
    """``POST /containers/{id}/stop``: the stop signal, then SIGKILL after `timeout`
    seconds (the container's StopTimeout, else 10; -1 waits for ever). False when it
    was not running (Docker's 304)."""
    cid = svc.resolve(ref)
    live = svc._live_of(cid)
    with live.lock:
        row = svc._row(cid)
        if not svc._running(row):
            return False
        config = row.doc["Config"]
        sig = parse_signal(signal or config.get("StopSignal") or "SIGTERM")
        if timeout is None:
            given = config.get("StopTimeout")
            timeout = DEFAULT_STOP_TIMEOUT if given is None else int(given)
        run = live.run
        svc.supervisor.cancel(row)
        _signal(svc, cid, sig)
    if not _wait_run_over(svc, cid, run, None if timeout < 0 else float(timeout)):
        _log.debug("container %s: no exit %ds after signal %d; killing it", cid[:12],
                   timeout, sig)
        kill_run(svc, cid, live, run)
    svc._event(row, "stop")
    return True


def kill_run(svc: ContainerService, cid: str, live: _Live, run: int) -> None:
    """SIGKILL the run `run` and wait for its end; a monitor that does not report it in
    time is killed too, and the container reported gone."""
    with live.lock:
        if live.run != run:
            return
        row = svc.db.get(cid)
        if row is not None:
            svc.supervisor.cancel(row, _SIGKILL)
        _signal(svc, cid, _SIGKILL)
    if _wait_run_over(svc, cid, run, KILL_WAIT):
        return
    from skiff.engine.monitor.launch import monitor_alive

    if run > 0 and monitor_alive(run, cid):
        try:
            os.kill(run, _SIGKILL)
        except ProcessLookupError:
            pass
    _wait_run_over(svc, cid, run, KILL_WAIT)
    if live.run == run:
        raise RuntimeError_(f"container {cid}: did not exit after SIGKILL")


def kill(svc: ContainerService, ref: str, signal: str = "KILL") -> None:
    """``POST /containers/{id}/kill``: send `signal` (a name or number); for SIGKILL,
    return once the container is reported gone."""
    sig = parse_signal(signal)
    cid = svc.resolve(ref)
    live = svc._live_of(cid)
    with live.lock:
        row = svc._row(cid)
        if not svc._running(row):
            raise ContainerConflict(f"Container {cid} is not running")
        run = live.run
        if sig != _SIGKILL:
            svc.supervisor.cancel(row, sig)
            _signal(svc, cid, sig)
            return
    kill_run(svc, cid, live, run)


def restart(svc: ContainerService, ref: str, timeout: int | None = None,
            signal: str | None = None) -> None:
    """``POST /containers/{id}/restart``: stop (if running), then start."""
    from skiff.engine.container_run import start

    row = svc._find(ref)
    stop(svc, row.id, timeout, signal)
    start(svc, row.id)
    svc._event(row, "restart")


def wait(svc: ContainerService, ref: str, condition: str = "not-running",
         ready: Callable[[], None] | None = None,
         cancelled: Callable[[], bool] = _never) -> dict[str, Any]:
    """``POST /containers/{id}/wait``: block until `condition` holds — ``not-running``
    (at once for a container that does not run), ``next-exit`` (its next exit, or failed
    start), ``removed`` — and give its exit code. `ready` is called once the waiter is
    in place (the API sends its head then). `cancelled` (asked every RECHECK seconds)
    ends the wait early, its answer then meaningless: the waiter went away."""
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidArgument(f'invalid condition: "{condition}"')
    cid = svc.resolve(ref)
    live = svc._live_of(cid)
    with svc._cond:
        seen = live.exits
        if ready is not None:
            ready()
    if condition == "not-running":
        # a restart's exit ends it too: moby's waitStop closes at SetRestarting
        _await(svc, cid, live, lambda: not live.running or live.exits > seen or
               live.removed or cancelled(), None)
    elif condition == "next-exit":
        _await(svc, cid, live, lambda: live.exits > seen or live.removed or cancelled(), None)
    else:
        _await(svc, cid, live, lambda: live.removed or cancelled(), None)
    with svc._cond:
        code, error = live.exit_code, live.error
    return {"StatusCode": code, "Error": {"Message": error} if error else None}


def _await(svc: ContainerService, cid: str, live: _Live, done: Callable[[], bool],
           timeout: float | None) -> bool:
    """Wait until `done()` (checked under the condition); False on timeout. Every
    RECHECK seconds the run under way is checked to still have its monitor, so that an
    exit the watcher missed is found all the same."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with svc._cond:
            left = None if deadline is None else deadline - time.monotonic()
            step = RECHECK if left is None else max(0.0, min(RECHECK, left))
            if svc._cond.wait_for(done, step):
                return True
            if left is not None and left <= step:
                return done()
            run = live.run
        if run > 0:
            from skiff.engine.container_run import monitor_ended
            from skiff.engine.monitor.launch import monitor_alive

            if not monitor_alive(run, cid):
                monitor_ended(svc, cid, run)


def _wait_run_over(svc: ContainerService, cid: str, run: int,
                   timeout: float | None) -> bool:
    """Wait until the run `run` of `cid` has ended; False on timeout."""
    live = svc._live_of(cid)
    return _await(svc, cid, live, lambda: live.run != run or live.removed, timeout)
