"""The engine's side of restart policies and health checks, which the monitors apply.

`Supervisor` belongs to a `ContainerService`. Before a run it hands the monitor the
container's policy and probe (`prepare`, files of `supervision`); while the run goes on it
reads what the monitor tells — the ``runs.jsonl`` records of each exit followed by a
restart and of each restart (`catch_up`: State.Restarting and Status ``restarting``
during the back-off, RestartCount, Pid and StartedAt of the new run, the events ``die``
and ``start`` as dockerd logs them for a restart) and the health state (`health_changed`:
``health_status: healthy|unhealthy`` events, and the status ``ps`` shows). Both are told by
the exit watcher's folder watch, and read again at `catch_up` from the last record seen
(``RunsSeen`` in the state), so a skiffd that was away across restarts misses none. A
user's stop or kill `cancel`s what the policy would do next (moby's ExitOnNext and
HasBeenManuallyStopped), telling the monitor at once (SIGUSR1), and `restart_on_start` is
Docker's rule for containers that are not running when the daemon starts.
"""

from __future__ import annotations

import os
import signal

from skiff.engine.supervision import (
    HEALTH_FILE,
    POLICY_FILE,
    RUNS_FILE,
    probe_command,
    read_health,
    read_runs,
    restarts_on_daemon_start,
    write_healthcheck,
    write_policy,
)
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.engine.containers import ContainerService
    from skiff.engine.state_db import ContainerRow

_log = logger("skiff.engine.supervision")


def event_attributes(row: ContainerRow, **more: str) -> dict[str, str]:
    """A container event's attributes as dockerd gives them: its labels, image and name."""
    config = row.doc["Config"]
    attrs = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    attrs.update(image=str(config.get("Image") or row.image_id), name=row.name, **more)
    return attrs


class Supervisor:
    def __init__(self, service: ContainerService) -> None:
        self.service = service

    # -- before a run ---------------------------------------------------------------------
    def prepare(self, row: ContainerRow, bundle: str) -> dict[str, Any]:
        """Write the run's policy and probe for its monitor; the state a fresh start
        begins with (a user's start resets the restart count, as moby's)."""
        try:
            os.unlink(os.path.join(bundle, RUNS_FILE))  # (the health file's Log is kept)
        except FileNotFoundError:
            pass
        write_policy(bundle, row.doc["HostConfig"].get("RestartPolicy") or {})
        probed = write_healthcheck(bundle, row.doc["Config"])
        return {"RestartCount": 0, "ManuallyStopped": False, "RunsSeen": 0,
                "HealthStatus": "starting" if probed else ""}

    # -- what a monitor tells -------------------------------------------------------------
    def on_file(self, cid: str, monitor_pid: int, name: str) -> None:
        if name == RUNS_FILE:
            self.catch_up(cid, monitor_pid)
        elif name == HEALTH_FILE:
            self.health_changed(cid)

    def catch_up(self, cid: str, monitor_pid: int) -> None:
        """Record the exits and restarts of the run under `monitor_pid` not recorded yet."""
        svc = self.service
        bundle = svc.bundle_dir(cid)
        with svc._cond:
            row = svc.db.get(cid)
            if row is None or not row.state.get("Running") or \
                    int(row.state.get("MonitorPid") or 0) != monitor_pid:
                return
            state = row.state
            records = read_runs(bundle, int(state.get("RunsSeen") or 0))
            if not records:
                return
            live = svc._live.get(cid)
            for record in records:
                count = int(record.get("RestartCount") or 0)
                if record.get("Event") == "die":
                    code = int(record.get("ExitCode") or 0)
                    state.update(Status="restarting", Restarting=True, Pid=0, ExitCode=code,
                                 FinishedAt=str(record.get("FinishedAt") or ""),
                                 OOMKilled=bool(record.get("OOMKilled")), Error="",
                                 RestartCount=count)
                    if live is not None:
                        live.exits += 1
                        live.exit_code, live.error = code, ""
                    svc.events.emit("container", "die", cid,
                                    event_attributes(row, exitCode=str(code)))
                else:
                    state.update(Status="running", Restarting=False,
                                 Pid=int(record.get("Pid") or 0),
                                 StartedAt=str(record.get("StartedAt") or ""),
                                 RestartCount=count,
                                 HealthStatus="starting" if state.get("HealthStatus") else "")
                    svc.events.emit("container", "start", cid, event_attributes(row))
                state["RunsSeen"] = int(record.get("Seq") or 0)
            svc.db.set_state(cid, state)
            svc._cond.notify_all()
        _log.debug("container %s: %d restart records, %d restarts", cid[:12], len(records),
                   state.get("RestartCount"))

    def health_changed(self, cid: str) -> None:
        """The monitor's health state changed: ``ps`` shows it, and a new status is an
        event."""
        svc = self.service
        health = read_health(svc.bundle_dir(cid))
        if health is None:
            return
        status = str(health.get("Status") or "")
        with svc._cond:
            row = svc.db.get(cid)
            if row is None or not row.state.get("Running") or \
                    row.state.get("HealthStatus") == status:
                return
            row.state["HealthStatus"] = status
            svc.db.set_state(cid, row.state)
        if status != "starting":  # moby tells only what a probe's result changed
            svc.events.emit("container", f"health_status: {status}", cid,
                            event_attributes(row))

    def health(self, row: ContainerRow) -> dict[str, Any] | None:
        """State.Health of inspect: the monitor's, for a container with a probe."""
        config = row.doc["Config"]
        if not probe_command(config.get("Healthcheck"), config.get("Shell")):
            return None
        found = read_health(self.service.bundle_dir(row.id))
        if found is not None:
            return found
        if not row.state.get("HealthStatus"):
            return None
        return {"Status": row.state["HealthStatus"], "FailingStreak": 0, "Log": []}

    # -- the user's word ------------------------------------------------------------------
    def cancel(self, row: ContainerRow, signal_number: int | None = None) -> None:
        """A stop (`signal_number` None) or kill of a running container: moby's kill rules
        — any kill marks the container stopped by hand (unless-stopped then no longer
        restarts); a stop, a SIGKILL, or the container's own stop signal (any signal when
        it has none) also cancels the next restart whatever the policy."""
        stop_signal = row.doc["Config"].get("StopSignal")
        cancelled = signal_number is None or signal_number == signal.SIGKILL
        if not cancelled:
            from skiff.engine.container_config import parse_signal

            cancelled = not stop_signal or parse_signal(stop_signal) == signal_number
        self._rewrite(row, cancelled=cancelled, stopped=True)

    def set_policy(self, row: ContainerRow) -> None:
        """The stored HostConfig's RestartPolicy changed (``update --restart``): the
        monitor applies the new one from the run's next exit (or back-off) on."""
        self._rewrite(row, cancelled=False, stopped=bool(row.state.get("ManuallyStopped")))

    def _rewrite(self, row: ContainerRow, cancelled: bool, stopped: bool) -> None:
        svc = self.service
        bundle = svc.bundle_dir(row.id)
        with svc._cond:
            fresh = svc.db.get(row.id)
            if fresh is not None and bool(fresh.state.get("ManuallyStopped")) != stopped:
                fresh.state["ManuallyStopped"] = stopped
                svc.db.set_state(row.id, fresh.state)
        # a run without the file is an older monitor's, which knows no policy (and which
        # SIGUSR1 would end)
        if os.path.exists(os.path.join(bundle, POLICY_FILE)):
            write_policy(bundle, row.doc["HostConfig"].get("RestartPolicy") or {},
                         cancelled=cancelled, stopped=stopped)
            self.poke(row)

    def poke(self, row: ContainerRow) -> None:
        """Tell the run's monitor its policy file changed (a back-off under way ends)."""
        from skiff.engine.monitor.launch import monitor_alive

        monitor_pid = int(row.state.get("MonitorPid") or 0)
        if row.state.get("Running") and monitor_alive(monitor_pid, row.id):
            try:
                os.kill(monitor_pid, signal.SIGUSR1)
            except ProcessLookupError:
                pass

    # -- daemon start ---------------------------------------------------------------------
    def restart_on_start(self, rows: list[ContainerRow]) -> None:
        """Start the stopped containers Docker's daemon start restarts (`always`;
        `unless-stopped` unless the user stopped it; `on-failure` after a failure)."""
        from skiff.errors import SkiffError

        for row in rows:
            fresh = self.service.db.get(row.id)
            if fresh is None or fresh.state.get("Running") or \
                    fresh.state.get("Status") != "exited":
                continue
            if not restarts_on_daemon_start(fresh.doc["HostConfig"].get("RestartPolicy") or {},
                                            fresh.state):
                continue
            _log.info("container %s: restarted by its policy at daemon start", row.id[:12])
            try:
                self.service.start(row.id)
            except SkiffError as e:
                _log.warning("container %s: restart at daemon start: %s", row.id[:12], e)
