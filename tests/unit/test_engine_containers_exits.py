"""The exit watcher (`engine.exit_watch`): a run's end told when its exit file arrives and
when its monitor ends, once per moment, never for a process that only has the pid.

The monitors here are stand-ins: plain processes named as a container's monitor is (what
`monitor_alive` looks for), each killed by the test."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from conftest import stand_in_monitor

from skiff.engine.exit_watch import ExitWatcher
from skiff.engine.monitor.launch import monitor_alive

CID = "e" * 64


class Told:
    def __init__(self) -> None:
        self.runs: list[tuple[str, int]] = []
        self.event = threading.Event()

    def __call__(self, cid: str, pid: int) -> None:
        self.runs.append((cid, pid))
        self.event.set()

    def wait(self, count: int = 1, timeout: float = 5) -> list[tuple[str, int]]:
        deadline = time.monotonic() + timeout
        while len(self.runs) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.runs


@pytest.fixture
def monitor() -> Iterator[subprocess.Popen[bytes]]:
    with stand_in_monitor(CID) as p:
        assert monitor_alive(p.pid, CID)
        yield p


@pytest.fixture
def told() -> Iterator[tuple[ExitWatcher, Told]]:
    t = Told()
    w = ExitWatcher(t)
    yield w, t
    w.close()


def test_the_monitors_end_is_told(monitor: subprocess.Popen[bytes],
                                  told: tuple[ExitWatcher, Told]) -> None:
    watcher, t = told
    watcher.watch(CID, monitor.pid)
    assert watcher.watching() == [(CID, monitor.pid)]
    time.sleep(0.05)
    assert t.runs == []
    began = time.monotonic()
    monitor.kill()
    assert t.wait() == [(CID, monitor.pid)]
    assert time.monotonic() - began < 1
    assert watcher.watching() == []


def test_the_exit_file_is_told_before_the_monitor_ends(
        monitor: subprocess.Popen[bytes], told: tuple[ExitWatcher, Told],
        tmp_path: Path) -> None:
    watcher, t = told
    watcher.watch(CID, monitor.pid, str(tmp_path))
    (tmp_path / "other").write_text("x")  # not the exit file: nothing told
    time.sleep(0.05)
    assert t.runs == []
    tmp = tmp_path / "exit.json.tmp"
    tmp.write_text('{"ExitCode": 0}')
    os.rename(tmp, tmp_path / "exit.json")
    assert t.wait() == [(CID, monitor.pid)]
    monitor.kill()  # then the monitor's end, told too (the service tells them apart)
    assert t.wait(2) == [(CID, monitor.pid)] * 2


def test_an_exit_file_there_already_is_told_at_once(
        monitor: subprocess.Popen[bytes], told: tuple[ExitWatcher, Told],
        tmp_path: Path) -> None:
    watcher, t = told
    (tmp_path / "exit.json").write_text("{}")
    watcher.watch(CID, monitor.pid, str(tmp_path))
    assert t.runs == [(CID, monitor.pid)]


def test_a_gone_or_foreign_pid_is_told_at_once(told: tuple[ExitWatcher, Told]) -> None:
    watcher, t = told
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    watcher.watch(CID, p.pid)  # gone
    watcher.watch(CID, os.getpid())  # alive, but no monitor of this container
    assert t.runs == [(CID, p.pid), (CID, os.getpid())]
    assert watcher.watching() == []


def test_close_stops_watching(monitor: subprocess.Popen[bytes],
                              told: tuple[ExitWatcher, Told]) -> None:
    watcher, t = told
    watcher.watch(CID, monitor.pid)
    watcher.close()
    monitor.kill()
    monitor.wait()
    time.sleep(0.05)
    assert t.runs == []
    watcher.watch(CID, os.getpid())  # closed: a watch is a no-op now, or told at once
    assert t.runs in ([], [(CID, os.getpid())])


def test_news_files_are_told_each_time_until_the_exit_file(
        monitor: subprocess.Popen[bytes], tmp_path: Path) -> None:
    t = Told()
    news: list[tuple[str, int, str]] = []
    w = ExitWatcher(t, lambda cid, pid, name: news.append((cid, pid, name)))
    try:
        w.watch(CID, monitor.pid, str(tmp_path))
        for _ in range(2):
            with open(tmp_path / "runs.jsonl", "a") as f:
                f.write("{}\n")
        (tmp_path / "health.json.tmp").write_text("{}")
        os.rename(tmp_path / "health.json.tmp", tmp_path / "health.json")
        (tmp_path / "other").write_text("x")
        deadline = time.monotonic() + 5
        while (CID, monitor.pid, "health.json") not in news and time.monotonic() < deadline:
            time.sleep(0.005)
        # (inotify merges a second event like one not read yet: news may come once for two)
        assert set(news) == {(CID, monitor.pid, "runs.jsonl"), (CID, monitor.pid, "health.json")}
        assert news[-1][2] == "health.json"
        assert t.runs == []
        (tmp_path / "exit.json").write_text("{}")
        assert t.wait() == [(CID, monitor.pid)]
        with open(tmp_path / "runs.jsonl", "a") as f:
            f.write("{}\n")  # the run is over: no more news of it
        told = len(news)
        time.sleep(0.1)
        assert len(news) == told
    finally:
        w.close()
