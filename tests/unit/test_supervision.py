"""Restart policies and health checks as logic: the monitor's back-off (moby's
restartmanager), its policy file, the health state machine (moby's handleProbeResult),
Go's duration text, the engine's checks of a create's policy and probe and the CLI's
flags for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skiff.engine.container_config import merge_image_config, parse_create
from skiff.engine.monitor.health import HealthState, Probe, go_duration
from skiff.engine.monitor.restart import Backoff, Policy
from skiff.engine.supervision import (
    check_healthcheck,
    check_restart_policy,
    probe_command,
    read_runs,
    restarts_on_daemon_start,
    write_healthcheck,
    write_policy,
)
from skiff.errors import InvalidArgument

S = 1_000_000_000
MS = 1_000_000


def test_backoff_doubles_from_100ms_to_a_minute_and_resets_after_10s() -> None:
    b = Backoff()
    always = Policy("always")
    delays = []
    for _ in range(12):
        assert b.should_restart(always, 1, 1 * S)
        delays.append(b.delay_ns // MS)
    assert delays[:4] == [100, 200, 400, 800]
    assert delays[-1] == 60_000 and max(delays) == 60_000
    assert b.count == 12
    assert b.should_restart(always, 0, 10 * S)  # ran 10 s: back to the start
    assert b.delay_ns == 100 * MS


def test_on_failure_counts_and_stops_at_its_maximum() -> None:
    b = Backoff()
    policy = Policy("on-failure", 2)
    assert not b.should_restart(policy, 0, S)  # a success is not a failure
    assert b.should_restart(policy, 3, S) and b.count == 1
    assert b.should_restart(policy, 3, S) and b.count == 2
    assert not b.should_restart(policy, 3, S) and b.count == 2
    unlimited = Backoff()
    assert all(unlimited.should_restart(Policy("on-failure", 0), 1, S) for _ in range(50))


def test_unless_stopped_cancelled_and_no() -> None:
    assert Backoff().should_restart(Policy("unless-stopped"), 0, S)
    assert not Backoff().should_restart(Policy("unless-stopped", stopped=True), 0, S)
    assert Backoff().should_restart(Policy("always", stopped=True), 0, S)  # moby: kill only
    assert not Backoff().should_restart(Policy("always", cancelled=True), 1, S)
    assert not Backoff().should_restart(Policy("no"), 1, S)
    assert not Backoff().should_restart(Policy("bogus"), 1, S)


def test_policy_file_round_trip(tmp_path: Path) -> None:
    write_policy(str(tmp_path), {"Name": "on-failure", "MaximumRetryCount": 4}, stopped=True)
    p = Policy.read(str(tmp_path / "restart"))
    assert (p.name, p.maximum, p.cancelled, p.stopped) == ("on-failure", 4, False, True)
    assert Policy.read(str(tmp_path / "missing")).name == "no"
    (tmp_path / "restart").write_text("garbage")
    assert Policy.read(str(tmp_path / "restart")).name == "no"


def test_health_starting_unhealthy_after_retries_then_healthy() -> None:
    h = HealthState(retries=3, start_period_ns=0, started_ns=0)
    assert not h.record(1 * S, 1 * S, 1, b"no")
    assert not h.record(2 * S, 2 * S, 1, b"no")
    assert (h.status, h.streak) == ("starting", 2)
    assert h.record(3 * S, 3 * S, 1, b"no") and h.status == "unhealthy"
    assert h.record(4 * S, 4 * S, 0, b"ok") and (h.status, h.streak) == ("healthy", 0)
    assert not h.record(5 * S, 5 * S, 1, b"x") and (h.status, h.streak) == ("healthy", 1)
    assert len(h.log) == 5
    assert h.record(6 * S, 6 * S, -1, b"t") is False and h.record(7 * S, 7 * S, 1, b"") is True
    assert h.status == "unhealthy" and len(h.log) == 5  # the last five only


def test_health_start_period_failures_do_not_count() -> None:
    h = HealthState(retries=1, start_period_ns=5 * S, started_ns=100 * S)
    h.record(101 * S, 101 * S, 1, b"")
    h.record(104 * S, 104 * S, 1, b"")
    assert (h.status, h.streak) == ("starting", 0)
    assert h.record(105 * S, 105 * S, 1, b"") and h.status == "unhealthy"


def test_health_json_is_dockers_shape() -> None:
    import json

    h = HealthState(retries=3, start_period_ns=0, started_ns=0)
    h.record(1_500_000_000, 2 * S, 0, b"out<\n" + b"x" * 5000)
    doc = json.loads(h.json())
    assert doc["Status"] == "healthy" and doc["FailingStreak"] == 0
    entry = doc["Log"][0]
    assert entry["Start"] == "1970-01-01T00:00:01.5Z" and entry["End"] == "1970-01-01T00:00:02Z"
    assert entry["ExitCode"] == 0 and entry["Output"].startswith("out<\n")
    assert len(entry["Output"]) == 4096


@pytest.mark.parametrize("ns, text", [(30 * S, "30s"), (S, "1s"), (1_500_000_000, "1.5s"),
                                      (500 * MS, "500ms"), (60 * S, "1m0s"),
                                      (90 * S, "1m30s"), (3600 * S, "1h0m0s")])
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


def test_healthcheck_file_round_trip_and_defaults(tmp_path: Path) -> None:
    assert write_healthcheck(str(tmp_path), {"Healthcheck": {"Test": ["CMD-SHELL", "a b"]}})
    probe = Probe.read(str(tmp_path / "healthcheck"))
    assert probe is not None
    assert (probe.interval_ns, probe.timeout_ns, probe.retries, probe.start_period_ns) == \
        (30 * S, 30 * S, 3, 0)
    assert probe.argv == ["/bin/sh", "-c", "a b"]
    assert write_healthcheck(str(tmp_path), {"Healthcheck": {
        "Test": ["CMD", "x", "y z"], "Interval": S, "Timeout": 2 * S, "Retries": 1,
        "StartPeriod": 3 * S}})
    probe = Probe.read(str(tmp_path / "healthcheck"))
    assert probe is not None and probe.argv == ["x", "y z"]
    assert (probe.interval_ns, probe.timeout_ns, probe.retries, probe.start_period_ns) == \
        (S, 2 * S, 1, 3 * S)
    assert not write_healthcheck(str(tmp_path), {"Healthcheck": {"Test": ["NONE"]}})
    assert not (tmp_path / "healthcheck").exists()


def test_probe_command() -> None:
    assert probe_command({"Test": ["CMD-SHELL", "x"]}, ["/bin/bash", "-c"]) == \
        ["/bin/bash", "-c", "x"]
    assert probe_command({"Test": ["NONE"]}, None) == []
    assert probe_command(None, None) == []


def test_runs_file_reads_whole_lines_after_a_sequence(tmp_path: Path) -> None:
    (tmp_path / "runs.jsonl").write_bytes(b'{"Seq": 1, "Event": "die"}\n'
                                          b'{"Seq": 2, "Event": "start"}\n{"Seq": 3, "Ev')
    assert [r["Seq"] for r in read_runs(str(tmp_path), 0)] == [1, 2]
    assert [r["Seq"] for r in read_runs(str(tmp_path), 1)] == [2]
    assert read_runs(str(tmp_path / "none"), 0) == []


@pytest.mark.parametrize("policy, auto_remove, message", [
    ({"Name": "bogus"}, False, "invalid restart policy: unknown policy 'bogus'; use one of "
                               "'no', 'always', 'on-failure', or 'unless-stopped'"),
    ({"Name": "on-failure", "MaximumRetryCount": -1}, False,
     "invalid restart policy: maximum retry count cannot be negative"),
    ({"Name": "always", "MaximumRetryCount": 2}, False,
     "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    ({"Name": "no", "MaximumRetryCount": -2}, False,
     "invalid restart policy: maximum retry count can only be used with 'on-failure' and "
     "cannot be negative"),
    ({"Name": "always"}, True, "can't create 'AutoRemove' container with restart policy"),
])
def test_bad_restart_policies(policy: dict[str, Any], auto_remove: bool, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_restart_policy(policy, auto_remove)
    assert str(info.value) == message


def test_good_restart_policies() -> None:
    assert check_restart_policy(None, True) == {"Name": "no", "MaximumRetryCount": 0}
    assert check_restart_policy({"Name": "", "MaximumRetryCount": 5}, False)["Name"] == "no"
    assert check_restart_policy({"Name": "on-failure", "MaximumRetryCount": 3}, False) == \
        {"Name": "on-failure", "MaximumRetryCount": 3}
    body = {"Image": "x", "Cmd": ["true"], "HostConfig": {"RestartPolicy": {"Name": "always"}}}
    request = parse_create(body, None, ncpu=2, known_caps=(), cgroup_v2=False)
    assert request.host_config["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}


@pytest.mark.parametrize("health, message", [
    ({"Test": ["CMD", "x"], "Interval": -1}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Test": ["CMD", "x"], "Timeout": 10}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"Test": ["CMD", "x"], "StartPeriod": 5}, "StartPeriod in Healthcheck cannot be less"),
    ({"Test": ["CMD", "x"], "Retries": -1}, "Retries in Healthcheck cannot be negative"),
])
def test_bad_healthchecks(health: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_healthcheck(health)
    assert message in str(info.value)


def test_image_healthcheck_merged_under_the_users() -> None:
    image = {"Healthcheck": {"Test": ["CMD", "img"], "Interval": 5 * S, "Retries": 2}}
    merged = merge_image_config({"Healthcheck": {"Interval": S}}, image)
    assert merged["Healthcheck"] == {"Test": ["CMD", "img"], "Interval": S, "Retries": 2}
    assert merge_image_config({"Healthcheck": {"Test": ["NONE"]}}, image)["Healthcheck"][
        "Test"] == ["NONE"]
    assert merge_image_config({}, image)["Healthcheck"]["Test"] == ["CMD", "img"]


def test_daemon_start_rule() -> None:
    assert restarts_on_daemon_start({"Name": "always"}, {"ManuallyStopped": True})
    assert not restarts_on_daemon_start({"Name": "unless-stopped"}, {"ManuallyStopped": True})
    assert restarts_on_daemon_start({"Name": "unless-stopped"}, {})
    failed = {"ExitCode": 3, "RestartCount": 1}
    assert restarts_on_daemon_start({"Name": "on-failure", "MaximumRetryCount": 2}, failed)
    assert not restarts_on_daemon_start({"Name": "on-failure", "MaximumRetryCount": 1}, failed)
    assert not restarts_on_daemon_start({"Name": "on-failure"}, {"ExitCode": 0})
    assert not restarts_on_daemon_start({"Name": "no"}, failed)


def test_a_restart_keeps_the_health_log(tmp_path: Path) -> None:
    import json

    from skiff.engine.monitor.health import _kept_log

    h = HealthState(retries=1, start_period_ns=0, started_ns=0)
    h.record(S, S, 1, b'a "quoted" }] output')
    path = tmp_path / "health.json"
    path.write_bytes(h.json())
    fresh = HealthState(retries=1, start_period_ns=0, started_ns=0)
    doc = json.loads(fresh.json(_kept_log(str(path))))
    assert doc["Status"] == "starting" and doc["FailingStreak"] == 0
    assert doc["Log"] == json.loads(h.json())["Log"]
    assert _kept_log(str(tmp_path / "none")) == b""
    loaded = HealthState(retries=1, start_period_ns=0, started_ns=0)
    loaded.load(str(path))
    assert (loaded.status, loaded.streak, len(loaded.log)) == ("unhealthy", 1, 1)
    assert json.loads(loaded.json()) == json.loads(h.json())
