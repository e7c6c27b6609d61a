"""The monitor's logic without a container: its command line, exit records with Docker's
exit-code rules, the start errors' codes, the files the engine reads, and the small kernel
pieces it and the engine use (the lean prctl, inotify)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import run_in_child, stand_in_monitor

from skiff.engine.monitor import launch
from skiff.errors import KernelError
from skiff.engine.monitor.main import (Options, exit_record, oom_kills, parse_args,
                                       read_answer, write_atomic)
from skiff.engine.monitor.startup import program, start_error
from skiff.kernel import inotify, prctl

ARGS = ["--id", "c1", "--bundle", "/b", "--runtime-root", "/r", "--log", "/l", "--exit-file",
        "/e", "--pid-file", "/p", "--status-fd", "5"]


def test_parse_args_takes_the_contract_command_line():
    o = parse_args(ARGS + ["--log-max-size=1024", "--log-max-file", "3"])
    assert (o.id, o.bundle, o.runtime_root, o.log, o.exit_file, o.pid_file, o.status_fd) == (
        "c1", "/b", "/r", "/l", "/e", "/p", 5)
    assert (o.log_max_size, o.log_max_file, o.monitor_log) == (1024, 3, "")
    d = parse_args(ARGS)
    assert (d.log_max_size, d.log_max_file) == (-1, 1)


@pytest.mark.parametrize("argv, problem", [
    (ARGS[:-2], "missing --status-fd"),
    (ARGS + ["--colour", "red"], "unknown argument '--colour'"),
    (ARGS + ["--log-max-size"], "--log-max-size needs a value"),
    (ARGS + ["--log-max-file", "many"], "--log-max-file: not a number: 'many'"),
    (["c1"] + ARGS, "unknown argument 'c1'"),
])
def test_parse_args_names_what_is_wrong(argv, problem):
    with pytest.raises(ValueError) as e:
        parse_args(argv)
    assert str(e.value).startswith(problem)


def test_the_monitor_command_line_says_usage_and_exits_2():
    p = subprocess.run([sys.executable, "-S", "-m", "skiff.engine.monitor", "--id"],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=launch.src_dir()))
    assert p.returncode == 2
    assert "skiff monitor: --id needs a value" in p.stderr and "usage:" in p.stderr


def test_exit_records_follow_dockers_rules():
    def doc(status: int, oom: bool = False) -> dict:
        return json.loads(exit_record(status, 1_000_000_001_500_000_000, oom))
    assert doc(0) == {"ExitCode": 0, "FinishedAt": "2001-09-09T01:46:41.5Z", "OOMKilled": False,
                      "Signal": None}
    assert doc(3 << 8)["ExitCode"] == 3
    assert (doc(9)["ExitCode"], doc(9)["Signal"]) == (137, 9)  # killed by SIGKILL
    assert (doc(15)["ExitCode"], doc(9, oom=True)["OOMKilled"]) == (143, True)


def test_oom_kills_reads_both_cgroup_files(tmp_path):
    v1 = tmp_path / "memory.oom_control"
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    v2 = tmp_path / "memory.events"
    v2.write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n")
    assert (oom_kills(str(v1)), oom_kills(str(v2))) == (2, 1)
    assert oom_kills(str(tmp_path / "none")) == 0 and oom_kills("") == 0


@pytest.mark.parametrize("message, command, code", [
    ('exec: "foo": executable file not found in $PATH', "foo", 127),
    ('exec: "/no/such": no such file or directory', "/no/such", 127),
    ("mount `/x` on `/r/x`: ENOENT (No such file or directory)", "sh", 125),  # not the program
    ('exec: "/etc/passwd": permission denied', "/etc/passwd", 126),
    ("execve `/bin/x`: EACCES (Permission denied)", "/bin/x", 126),
    ("mount `/f` on `/r/d`: ENOTDIR (Not a directory)", "sh", 127),
    ("linux.namespaces: skiff-runtime needs a mount namespace", "sh", 125),
])
def test_start_errors_get_dockers_exit_codes(message, command, code):
    got, text = start_error(message, command)
    assert got == code
    assert text.startswith("OCI runtime create failed: unable to start container process: "
                           + message) and text.endswith(": unknown")


def test_program_is_args0_of_the_bundle(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"process": {"args": ["sleep", "1"]}}))
    assert program(str(tmp_path)) == "sleep"
    assert program(str(tmp_path / "none")) == ""


def test_read_answer_takes_the_helpers_frames():
    for frame, want in [(b"ok 42 /cg/memory.oom_control\n", ("ok", "42", "/cg/memory.oom_control")),
                        (b"err 127 5\nab\ncd", ("err", "127", "ab\ncd")),
                        (b"", ("err", "125", "monitor: the container's start ended without an answer"))]:
        r, w = os.pipe()
        os.write(w, frame)
        os.close(w)
        try:
            assert read_answer(r) == want
        finally:
            os.close(r)


def test_write_atomic_replaces_whole(tmp_path):
    path = tmp_path / "exit.json"
    path.write_text("old")
    write_atomic(str(path), b"new\n")
    assert path.read_text() == "new\n" and os.listdir(tmp_path) == ["exit.json"]


def test_monitor_args_are_the_contract_command_line_but_the_status_fd():
    argv = launch.monitor_args("c1", bundle="/b", runtime_root="/r", log_path="/l",
                               exit_file="/e", pid_file="/p", log_max_size=10, log_max_file=0)
    opts = parse_args(argv + ["--status-fd", "7"])
    assert (opts.id, opts.status_fd, opts.log_max_size, opts.log_max_file) == ("c1", 7, 10, 1)
    plain = launch.monitor_args("c1", bundle="/b", runtime_root="/r", log_path="/l",
                                exit_file="/e", pid_file="/p")
    assert "--log-max-size" not in plain and "--status-fd" not in plain


def test_the_zygote_command_boots_from_the_source_folder():
    argv = launch.zygote_command(9)
    assert argv[:4] == [sys.executable, "-S", "-I", "-c"] and "zygote" in argv[4]
    assert argv[5] == launch.src_dir() and os.path.isdir(os.path.join(argv[5], "skiff"))
    assert argv[6:] == ["--socket-fd", "9"]


def test_the_boot_line_runs_no_package_init_and_the_monitor_loads_no_os():
    code = launch.BOOT.replace("from skiff.engine.monitor.zygote import serve;serve(sys.argv[1:])",
                               "import skiff.engine.monitor.main, skiff.kernel.prctl\n"
                               "print(' '.join(sorted(sys.modules)))")
    p = subprocess.run([sys.executable, "-S", "-I", "-c", code, launch.src_dir()],
                       capture_output=True, text=True, check=True)
    loaded = set(p.stdout.split())
    assert {"skiff.engine.monitor.main", "skiff.engine.monitor.logfile", "_ctypes"} <= loaded
    assert not loaded & {"os", "json", "typing", "logging", "ctypes", "skiff.log", "skiff.record",
                         "skiff.errors", "runpy"}


def test_the_zygote_checks_a_request_before_it_forks_and_ends_at_eof():
    import socket
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote = subprocess.Popen(launch.zygote_command(theirs.fileno()), pass_fds=(theirs.fileno(),),
                              stderr=subprocess.PIPE)
    theirs.close()
    try:
        r, w = os.pipe()
        socket.send_fds(ours, [b"--id\0c1"], [w])  # a bad command line: nothing is forked
        os.close(w)
        assert ours.recv(4096) == b"bad request: missing --bundle, --runtime-root, --log, " \
                                  b"--exit-file, --pid-file"
        assert os.read(r, 100) == b""  # the status fd was closed there, unwritten
        os.close(r)
        ours.send(b"no fds")
        assert ours.recv(4096) == b"bad request: one status fd, please"
    finally:
        ours.close()
        _, err = zygote.communicate(timeout=10)
    assert zygote.returncode == 0 and err == b""


def test_exit_and_pid_files_are_read_back(tmp_path):
    (tmp_path / "exit.json").write_bytes(exit_record(9, 1_000_000_000, False))
    st = launch.read_exit_file(str(tmp_path / "exit.json"))
    assert st == launch.ExitStatus(exit_code=137, finished_at="1970-01-01T00:00:01Z",
                                   oom_killed=False, signal=9)
    (tmp_path / "bad.json").write_text("{")
    assert launch.read_exit_file(str(tmp_path / "bad.json")) is None
    assert launch.read_exit_file(str(tmp_path / "none.json")) is None
    (tmp_path / "monitor.pid").write_text("10\n11\n")
    assert launch.read_pid_file(str(tmp_path / "monitor.pid")) == (10, 11)
    (tmp_path / "half.pid").write_text("10\n")
    assert launch.read_pid_file(str(tmp_path / "half.pid")) is None


def test_monitor_alive_knows_a_monitor_by_its_process_name():
    with stand_in_monitor("c1" * 5) as p:
        assert launch.monitor_alive(p.pid, "c1" * 5)
        assert not launch.monitor_alive(p.pid, "c2" * 5)
        assert not launch.monitor_alive(os.getpid(), "c1" * 5)
    assert not launch.monitor_alive(p.pid, "c1" * 5)


def test_lean_prctl_makes_a_subreaper():
    def child() -> list[bool]:
        before = prctl.is_child_subreaper()
        prctl.set_child_subreaper()
        return [before, prctl.is_child_subreaper()]
    assert run_in_child(child) == [False, True]


def test_inotify_reports_changes_in_a_folder(tmp_path):
    with inotify.Inotify() as ino:
        wd = ino.add_watch(str(tmp_path), inotify.IN_CREATE | inotify.IN_CLOSE_WRITE)
        assert ino.read(0) == []
        (tmp_path / "exit.json").write_text("{}")
        events = ino.read(1.0)
        assert [(e.wd, e.name) for e in events][:1] == [(wd, "exit.json")]
        assert any(e.mask & inotify.IN_CLOSE_WRITE for e in events)
        ino.remove_watch(wd)
    with inotify.Inotify() as ino, pytest.raises(KernelError) as e:
        ino.add_watch(str(tmp_path / "none"), inotify.IN_CREATE)
    assert "inotify_add_watch" in str(e.value) and "ENOENT" in str(e.value)


def test_options_know_their_fields():
    assert set(Options.REQUIRED) <= set(Options.STRINGS + Options.NUMBERS)
