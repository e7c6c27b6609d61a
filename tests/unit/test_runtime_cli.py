"""`skiff-runtime` argument shapes and the verbs that need no root: version, spec, state,
list, and kill's signal names.

`main` runs in-process with capsys capturing its output, on a `--root` in tmp_path, so
nothing touches /run. A container "left behind" is a state.json whose init is a child the
test started and reaped, which `state` and `list` must report as stopped. Each test puts
skiff's log sink back as it found it, since `main` points it at the current stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from skiff.errors import RuntimeError_
from skiff.oci.runtime_spec import load_config
from skiff.runtime.cli import main
from skiff.runtime.kill import parse_signal
from skiff.runtime.state import ContainerState, StateStore


@pytest.fixture(autouse=True)
def restore_log_sink(tmp_path: Path) -> Iterator[None]:
    """`main` points skiff's log at this test's stderr (or a --log file); undo that after."""
    from skiff import log
    sink = getattr(log, "_Sink", None)
    saved = {k: getattr(sink, k) for k in ("level", "stream", "json") if hasattr(sink, k)}
    yield
    stream = getattr(sink, "stream", None)
    if str(getattr(stream, "name", "")).startswith(str(tmp_path)):
        stream.close()  # type: ignore[union-attr]
    for key, value in saved.items():
        setattr(sink, key, value)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("skiff-runtime version ")
    assert "spec: 1." in out


def test_no_verb_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "usage: skiff-runtime" in capsys.readouterr().out


def test_unknown_verb(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) != 0  # a usage error: the exact code is argument-parser lore
    captured = capsys.readouterr()
    assert "unknown command 'frobnicate'" in captured.err
    assert captured.out == ""


# -- spec -------------------------------------------------------------------------------
def test_spec_writes_a_config_that_parses(tmp_path: Path) -> None:
    assert main(["spec", "--bundle", str(tmp_path)]) == 0
    spec = load_config(str(tmp_path / "config.json"))
    assert spec.root.path == "rootfs"
    assert tuple(spec.process.args) == ("sh",)
    assert spec.linux.namespace("user") is None


def test_spec_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["spec", "--bundle", str(tmp_path)]) == 0
    first = (tmp_path / "config.json").read_bytes()
    capsys.readouterr()
    assert main(["spec", "--bundle", str(tmp_path), "--rootless"]) == 1
    captured = capsys.readouterr()
    assert "exists" in captured.err
    assert str(tmp_path / "config.json") in captured.err
    assert captured.out == ""
    assert (tmp_path / "config.json").read_bytes() == first


def test_spec_rootless_maps_the_caller(tmp_path: Path) -> None:
    assert main(["spec", "--bundle", str(tmp_path), "--rootless"]) == 0
    spec = load_config(str(tmp_path / "config.json"))
    assert spec.linux.namespace("user") is not None
    assert spec.linux.namespace("network") is None
    (uid_map,) = spec.linux.uid_mappings
    (gid_map,) = spec.linux.gid_mappings
    assert (uid_map.container_id, uid_map.host_id, uid_map.size) == (0, os.geteuid(), 1)
    assert (gid_map.container_id, gid_map.host_id, gid_map.size) == (0, os.getegid(), 1)


# -- state and list ---------------------------------------------------------------------
def test_state_of_a_missing_container(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "state", "nosuch"]) == 1
    captured = capsys.readouterr()
    assert "does not exist" in captured.err
    assert "nosuch" in captured.err
    assert captured.out == ""


def test_state_of_an_invalid_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "state", "../etc"]) == 1
    assert "invalid container id" in capsys.readouterr().err


HEADER = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]


@pytest.mark.parametrize("made", [False, True], ids=["no-root-folder", "empty-root-folder"])
def test_list_of_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], made: bool) -> None:
    root = tmp_path / "state"
    if made:
        root.mkdir()
        (root / "half-made").mkdir()  # no state.json: not listed
    assert main(["--root", str(root), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert lines[0].split() == HEADER
    assert main(["--root", str(root), "list", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["--root", str(root), "list", "-q"]) == 0
    assert capsys.readouterr().out == ""


@pytest.fixture
def stopped_container(tmp_path: Path) -> tuple[Path, str]:
    """A state root holding one container whose init has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    root = tmp_path / "state"
    store = StateStore(str(root))
    store.make_dir("gone")
    store.save(ContainerState(id="gone", bundle=str(tmp_path / "bundle"),
                              rootfs=str(tmp_path / "bundle" / "rootfs"), pid=proc.pid,
                              pid_start=1, created="2024-05-01T12:00:00Z",
                              cgroup_path="/skiff/gone", config={}))
    return root, "gone"


def test_state_of_a_stopped_container(stopped_container: tuple[Path, str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    root, cid = stopped_container
    assert main(["--root", str(root), "state", cid]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["id"] == cid
    assert doc["status"] == "stopped"
    assert doc["pid"] == 0


def test_list_shows_a_stopped_container(stopped_container: tuple[Path, str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    root, cid = stopped_container
    assert main(["--root", str(root), "list", "-f", "json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)
    assert (doc["id"], doc["status"]) == (cid, "stopped")
    assert main(["--root", str(root), "list"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == HEADER
    assert row.split()[:3] == [cid, "0", "stopped"]
    assert row.split()[-1] == "root"  # no owner recorded
    assert main(["--root", str(root), "list", "--quiet"]) == 0
    assert capsys.readouterr().out == f"{cid}\n"


# -- kill -------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["KILL", "SIGKILL", "9", "kill", "sigkill"])
def test_parse_signal_accepts(text: str) -> None:
    assert parse_signal(text) == 9


def test_parse_signal_other_names() -> None:
    assert parse_signal("TERM") == 15
    assert parse_signal("SIGHUP") == 1
    assert parse_signal("64") == 64  # the last real-time signal


@pytest.mark.parametrize("text", ["NOPE", "SIGNOPE", "0", "99", "65", "-9", "", "9x"])
def test_parse_signal_refuses(text: str) -> None:
    with pytest.raises(RuntimeError_, match="unknown signal"):
        parse_signal(text)


def test_kill_with_a_bad_signal_fails_before_looking(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "kill", "nosuch", "NOPE"]) == 1
    assert "unknown signal 'NOPE'" in capsys.readouterr().err


def test_kill_of_a_missing_container(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "kill", "nosuch", "KILL"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_kill_of_a_stopped_container_is_refused(stopped_container: tuple[Path, str],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root, cid = stopped_container
    assert main(["--root", str(root), "kill", cid, "KILL"]) == 1
    assert f"container `{cid}`: container not running" in capsys.readouterr().err


# -- logging ----------------------------------------------------------------------------
def test_errors_go_to_the_json_log_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "log.json"
    argv = ["--root", str(tmp_path), "--log", str(log_file), "--log-format", "json",
            "state", "nosuch"]
    assert main(argv) == 1
    assert "does not exist" in capsys.readouterr().err
    (line,) = log_file.read_text().splitlines()
    record = json.loads(line)
    assert record["level"] == "error"
    assert "does not exist" in record["msg"]
    assert "time" in record


# -- --systemd-cgroup -------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["create", "run"])
def test_systemd_cgroup_driver_is_refused_before_anything_is_made(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: str) -> None:
    # containerd's shim passes --systemd-cgroup to every call when SystemdCgroup = true;
    # skiff has no systemd driver, so a create says so (in the JSON log the shim reports)
    bundle, root, log_file = tmp_path / "bundle", tmp_path / "state", tmp_path / "log.json"
    bundle.mkdir()
    assert main(["spec", "--bundle", str(bundle)]) == 0
    argv = ["--root", str(root), "--log", str(log_file), "--log-format", "json",
            "--systemd-cgroup", verb, "--bundle", str(bundle), "c1"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--systemd-cgroup: skiff-runtime has no systemd cgroup driver" in err
    assert "SystemdCgroup = false" in json.loads(log_file.read_text().splitlines()[-1])["msg"]
    assert not root.exists() or os.listdir(root) == []


def test_systemd_cgroup_flag_is_taken_by_the_other_verbs(
        stopped_container: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    root, cid = stopped_container
    assert main(["--root", str(root), "--systemd-cgroup", "state", cid]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "stopped"


@pytest.mark.parametrize("argv, verb", [
    (["exec", "c1", "true"], "exec"),
    (["--root", "/run/x", "--log", "exec", "--log-format", "json", "create", "c1"], "create"),
    (["-root=/r", "--debug", "run", "-b", "b", "c1"], "run"),
    (["--systemd-cgroup", "state", "c1"], "state"),
    (["--", "delete", "c1"], "delete"),
    (["--root", "/r"], None),
    ([], None),
])
def test_the_launcher_finds_the_verb_before_the_cli_loads(argv: list[str], verb: str | None) -> None:
    from skiff.runtime.launcher import verb_of
    assert verb_of(argv) == verb


def test_the_launchers_value_flags_are_the_clis() -> None:
    from skiff.runtime.cli import GLOBAL_OPTS
    from skiff.runtime.launcher import GLOBAL_VALUE_FLAGS
    assert GLOBAL_VALUE_FLAGS == {n for o in GLOBAL_OPTS if o.kind != "bool" for n in o.names}


def test_exec_joins_by_the_cgroup_files_create_kept(tmp_path: Path) -> None:
    """A state that lists its cgroup.procs files is joined through them alone (no driver,
    no mount table); here they are plain files, which keep what was written."""
    from skiff.runtime.container import Container
    files = [tmp_path / "memory.procs", tmp_path / "unified.procs"]
    for f in files:
        f.write_text("")
    st = ContainerState(id="c1", bundle="/b", rootfs="/b/rootfs", pid=1, pid_start=1,
                        created="2024-05-01T12:00:00Z", cgroup_path="/skiff/c1", config={},
                        cgroup_procs=[str(f) for f in files])
    c = Container(StateStore(str(tmp_path / "state")), st)
    c.join_cgroup(4242)
    assert [f.read_text() for f in files] == ["4242\n", "4242\n"]
    assert c._cgroup is None  # the driver was never loaded
    (tmp_path / "memory.procs").unlink()
    from skiff.errors import CgroupError
    with pytest.raises(CgroupError, match=r"write `4242` to `.*memory.procs`: ENOENT"):
        c.join_cgroup(4242)
