"""Restart policies and health checks on the engine's side: checked at create, handed to
the monitor, and read back from it.

`check_restart_policy` and `check_healthcheck` are dockerd's validation, with its words. The monitor applies both while skiffd may be away, so the engine hands
them over as files in the run's bundle, in line formats the monitor reads without a JSON
parser (it loads built-in modules only): ``restart`` — ``NAME MAX CANCELLED STOPPED``
(`write_policy`; rewritten by a stop, a kill, or ``update --restart``, after which the
monitor is poked with SIGUSR1 so that a back-off under way ends at once) and
``healthcheck`` — ``INTERVAL_NS TIMEOUT_NS RETRIES START_PERIOD_NS`` then the probe's argv
NUL-separated (`write_healthcheck`). The monitor answers in ``runs.jsonl`` (a line per
run's exit and per restart, each with a sequence number, so a skiffd that was away reads
what it missed: `read_runs`) and ``health.json`` (Docker's Health object, whole).
"""

from __future__ import annotations

import os

from skiff import jsonfast
from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

POLICY_FILE = "restart"
HEALTHCHECK_FILE = "healthcheck"
RUNS_FILE = "runs.jsonl"
HEALTH_FILE = "health.json"
POLICIES = ("no", "always", "unless-stopped", "on-failure")
MINIMUM_DURATION = 1_000_000  # ns: moby's containertypes.MinimumDuration (1ms)
DEFAULT_INTERVAL = 30_000_000_000
DEFAULT_TIMEOUT = 30_000_000_000
DEFAULT_RETRIES = 3
AUTO_REMOVE_CONFLICT = "can't create 'AutoRemove' container with restart policy"


def check_restart_policy(policy: Any, auto_remove: bool) -> dict[str, Any]:
    """moby's ValidateRestartPolicy (and its AutoRemove rule): the policy as stored,
    ``{"Name": "no", ...}`` for none."""
    if policy is None:
        policy = {}
    if not isinstance(policy, dict):
        raise InvalidArgument("json: cannot unmarshal into Go struct field "
                              "HostConfig.RestartPolicy of type container.RestartPolicy")
    name = policy.get("Name") or ""
    count = policy.get("MaximumRetryCount") or 0
    if not isinstance(name, str):
        raise InvalidArgument("json: cannot unmarshal into Go struct field RestartPolicy.Name "
                              "of type string")
    if not isinstance(count, int) or isinstance(count, bool):
        raise InvalidArgument("json: cannot unmarshal into Go struct field "
                              "RestartPolicy.MaximumRetryCount of type int")
    if name in ("always", "unless-stopped", "no"):
        if count != 0:
            raise InvalidArgument("invalid restart policy: maximum retry count can only be "
                                  "used with 'on-failure'" +
                                  (" and cannot be negative" if count < 0 else ""))
    elif name == "on-failure":
        if count < 0:
            raise InvalidArgument("invalid restart policy: maximum retry count cannot be "
                                  "negative")
    elif name:
        raise InvalidArgument(f"invalid restart policy: unknown policy '{name}'; use one of "
                              f"'no', 'always', 'on-failure', or 'unless-stopped'")
    if auto_remove and name not in ("", "no"):
        raise InvalidArgument(AUTO_REMOVE_CONFLICT)
    return {"Name": name or "no", "MaximumRetryCount": count}


def check_healthcheck(health: Any) -> None:
    """moby's checks of Config.Healthcheck (durations in nanoseconds)."""
    if health is None:
        return
    if not isinstance(health, dict):
        raise InvalidArgument("json: cannot unmarshal into Go struct field Config.Healthcheck "
                              "of type container.HealthConfig")
    test = health.get("Test")
    if test is not None and not (isinstance(test, list)
                                 and all(isinstance(t, str) for t in test)):
        raise InvalidArgument("json: cannot unmarshal into Go struct field "
                              "HealthConfig.Healthcheck.Test of type []string")
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise InvalidArgument(f"unknown health check type {test[0]!r}: use CMD, CMD-SHELL "
                              f"or NONE")
    for key in ("Interval", "Timeout", "StartPeriod", "Retries"):
        value = health.get(key) or 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgument(f"json: cannot unmarshal into Go struct field "
                                  f"HealthConfig.Healthcheck.{key} of type int64")
        if key == "Retries":
            if value < 0:
                raise InvalidArgument("Retries in Healthcheck cannot be negative")
        elif value != 0 and value < MINIMUM_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")


def probe_command(health: dict[str, Any] | None, shell: list[str] | None) -> list[str]:
    """The probe's argv (moby's: CMD as given, CMD-SHELL through the container's Shell or
    ``/bin/sh -c``); [] when there is no probe to run (none, or NONE)."""
    test = (health or {}).get("Test") or []
    if not test or test[0] == "NONE" or len(test) < 2:
        return []
    if test[0] == "CMD-SHELL":
        return [*(shell or ["/bin/sh", "-c"]), " ".join(test[1:])]
    return list(test[1:])


def _write(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_policy(bundle: str, policy: dict[str, Any], *, cancelled: bool = False,
                 stopped: bool = False) -> None:
    """The restart policy the monitor of `bundle` applies at its run's next exit:
    `cancelled` (moby's ExitOnNext: no restart whatever the policy), `stopped` (moby's
    HasBeenManuallyStopped: no restart for unless-stopped)."""
    name = str(policy.get("Name") or "no")
    count = int(policy.get("MaximumRetryCount") or 0)
    _write(os.path.join(bundle, POLICY_FILE),
           f"{name} {count} {int(cancelled)} {int(stopped)}\n".encode())


def write_healthcheck(bundle: str, config: dict[str, Any]) -> bool:
    """The probe the monitor of `bundle` runs, with Docker's defaults; False (and no file)
    when the container has none."""
    path = os.path.join(bundle, HEALTHCHECK_FILE)
    health = config.get("Healthcheck") or {}
    argv = probe_command(health, config.get("Shell"))
    if not argv:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return False
    head = (f"{health.get('Interval') or DEFAULT_INTERVAL} "
            f"{health.get('Timeout') or DEFAULT_TIMEOUT} "
            f"{DEFAULT_RETRIES if not health.get('Retries') else health['Retries']} "
            f"{health.get('StartPeriod') or 0}\n")
    _write(path, head.encode() + "\0".join(argv).encode())
    return True


def read_runs(bundle: str, after: int) -> list[dict[str, Any]]:
    """The monitor's records of exits and restarts with a sequence number above `after`,
    oldest first (a line still being written is left for the next read)."""
    try:
        with open(os.path.join(bundle, RUNS_FILE), "rb") as f:
            data = f.read()
    except OSError:
        return []
    out = []
    for line in data.split(b"\n")[:-1]:
        try:
            doc = jsonfast.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and int(doc.get("Seq") or 0) > after:
            out.append(doc)
    return out


def read_health(bundle: str) -> dict[str, Any] | None:
    """Docker's Health object as the monitor last wrote it; None without one."""
    try:
        with open(os.path.join(bundle, HEALTH_FILE), "rb") as f:
            doc = jsonfast.loads(f.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def restarts_on_daemon_start(policy: dict[str, Any], state: dict[str, Any]) -> bool:
    """Docker's rule at daemon start for a container that is not running: `always`
    restarts, `unless-stopped` unless stopped by the user, `on-failure` after a failure, while
    its restarts are fewer than its maximum."""
    name = policy.get("Name") or "no"
    if name == "always":
        return True
    if name == "unless-stopped":
        return not state.get("ManuallyStopped")
    if name == "on-failure":  # the count goes on from the container's RestartCount
        maximum = int(policy.get("MaximumRetryCount") or 0)
        return int(state.get("ExitCode") or 0) != 0 and (
            maximum == 0 or int(state.get("RestartCount") or 0) < maximum)
    return False
