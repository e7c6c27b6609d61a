"""The container state machine and the state folder, without root.

`check_move` is checked against the `ALLOWED` table and against runc's rules written out
here (start only a created container, delete only a created or stopped one…), with the
`InvalidState` message that tells the user what to do. `StateStore` runs on tmp_path, and
the status of a saved container is read off a real child process that the test starts,
records and reaps, so "its init is gone" is a real dead pid, not a mock.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from skiff.errors import ContainerExists, ContainerNotFound, InvalidState, RuntimeError_
from skiff.runtime.state import (ALLOWED, ContainerState, StateStore, Status, check_move,
                                 process_start_time, validate_id)

S = Status


# -- check_move -------------------------------------------------------------------------
@pytest.mark.parametrize(("operation", "status"), list(itertools.product(sorted(ALLOWED), S.ALL)),
                         ids=str)
def test_check_move_follows_the_table(operation: str, status: str) -> None:
    if status in ALLOWED[operation]:
        check_move("c1", operation, status)
    else:
        with pytest.raises(InvalidState) as info:
            check_move("c1", operation, status)
        message = str(info.value)
        assert "c1" in message and operation in message and status in message
        assert info.value.status == status


@pytest.mark.parametrize(("operation", "allowed"), [
    ("start", {S.CREATED}),
    ("kill", {S.CREATED, S.RUNNING, S.PAUSED}),
    ("delete", {S.CREATED, S.STOPPED}),
    ("resume", {S.PAUSED}),
    ("exec", {S.CREATED, S.RUNNING}),
])
def test_runc_rules(operation: str, allowed: set[str]) -> None:
    assert set(ALLOWED[operation]) == allowed


def test_nothing_is_allowed_while_creating() -> None:
    assert all(S.CREATING not in statuses for statuses in ALLOWED.values())


def test_deleting_a_running_container_hints_at_force() -> None:
    with pytest.raises(InvalidState) as info:
        check_move("web", "delete", S.RUNNING)
    assert str(info.value).startswith("cannot delete container `web` in state running")
    assert "--force" in str(info.value)


def test_starting_twice_says_it_is_started() -> None:
    with pytest.raises(InvalidState, match="already started"):
        check_move("web", "start", S.RUNNING)


def test_invalid_state_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError_):
        check_move("web", "kill", S.STOPPED)


# -- ids --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["", "../x", "a/b", "with space", " lead", "..", "a..b", ".hidden",
                                 "-flag", "tab\there", "x" * 1025])
def test_validate_id_refuses(bad: str) -> None:
    with pytest.raises(RuntimeError_, match="invalid container id"):
        validate_id(bad)


@pytest.mark.parametrize("good", ["abc-1_2.3", "a", "0", "A.b+c", "x" * 1024])
def test_validate_id_accepts(good: str) -> None:
    validate_id(good)


# -- the store --------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(str(tmp_path / "state"))


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A live child process that waits on its stdin; reaped at teardown at the latest."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdin is not None
        proc.stdin.close()


def end(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def make_state(cid: str, pid: int, pid_start: int) -> ContainerState:
    return ContainerState(id=cid, bundle="/srv/b", rootfs="/srv/b/rootfs", pid=pid,
                          pid_start=pid_start, created="2024-05-01T12:00:00Z",
                          cgroup_path=f"/skiff/{cid}", config={"ociVersion": "1.2.0"},
                          annotations={"k": "v"})


def test_make_dir_twice_is_container_exists(store: StateStore) -> None:
    path = store.make_dir("c1")
    assert os.path.isdir(path)
    with pytest.raises(ContainerExists, match="c1"):
        store.make_dir("c1")


def test_make_dir_refuses_a_bad_id(store: StateStore, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError_):
        store.make_dir("../escape")
    assert not (tmp_path / "escape").exists()


def test_load_of_a_missing_id_is_container_not_found(store: StateStore) -> None:
    with pytest.raises(ContainerNotFound, match="`nosuch` does not exist"):
        store.load("nosuch")
    store.make_dir("empty")  # a folder without state.json is not a container yet
    with pytest.raises(ContainerNotFound):
        store.load("empty")


def test_save_load_round_trip(store: StateStore) -> None:
    st = make_state("c1", 1234, 5678)
    st.freezer = ["/sys/fs/cgroup/freezer/x/freezer.state", "FROZEN"]
    store.make_dir("c1")
    store.save(st)
    assert store.load("c1") == st
    assert oct(os.stat(Path(store.dir("c1")) / "state.json").st_mode & 0o777) == "0o600"
    assert not any(n.endswith(".tmp") for n in os.listdir(store.dir("c1")))


def test_ids_lists_only_folders_with_state(store: StateStore) -> None:
    assert store.ids() == []  # the root does not even exist yet
    for cid in ("b", "a", "half"):
        store.make_dir(cid)
    store.save(make_state("b", 1, 1))
    store.save(make_state("a", 1, 1))
    Path(store.root, "stray-file").write_text("")
    assert store.ids() == ["a", "b"]


def test_remove_dir(store: StateStore) -> None:
    store.make_dir("c1")
    store.save(make_state("c1", 1, 1))
    store.remove_dir("c1")
    assert store.ids() == []
    with pytest.raises(ContainerNotFound):
        store.load("c1")


WAITER = """
import sys
from skiff.errors import ContainerNotFound
from skiff.runtime.state import StateStore
print("waiting", flush=True)
try:
    with StateStore(sys.argv[1]).locked("c1"):
        print("locked")
except ContainerNotFound:
    print("gone")
"""


def test_a_waiter_for_the_lock_of_a_removed_container_finds_it_gone(store: StateStore) -> None:
    # the waiter's O_CREAT of the lock file used to make a new one in the folder being
    # emptied, so that its rmdir failed with ENOTEMPTY (seen in CI under skiffd)
    store.make_dir("c1")
    store.save(make_state("c1", 1, 1))
    with store.locked("c1"):
        waiter = subprocess.Popen([sys.executable, "-c", WAITER, store.root],
                                  stdout=subprocess.PIPE, text=True)
        assert waiter.stdout is not None
        assert waiter.stdout.readline() == "waiting\n"
        time.sleep(0.2)  # it blocks in lockf
        store.remove_dir("c1")
    out, _ = waiter.communicate(timeout=30)
    assert out == "gone\n"
    assert os.listdir(store.root) == []
    with pytest.raises(ContainerNotFound):  # and a later locker finds no folder to lock in
        with store.locked("c1"):
            pass
    assert os.listdir(store.root) == []


def test_ids_skip_a_folder_left_half_removed(store: StateStore) -> None:
    store.make_dir("c1")
    store.save(make_state("c1", 1, 1))
    os.rename(store.dir("c1"), os.path.join(store.root, ".c1.99.removing"))
    assert store.ids() == []


def test_locked_on_a_missing_container(store: StateStore) -> None:
    with pytest.raises(ContainerNotFound):
        with store.locked("nosuch"):
            pass


def test_status_follows_the_init_process(store: StateStore,
                                         child: subprocess.Popen[bytes]) -> None:
    start = process_start_time(child.pid)
    assert isinstance(start, int)
    st = make_state("c1", child.pid, start)
    store.make_dir("c1")
    store.save(st)
    assert store.status(st) == S.RUNNING
    Path(store.fifo("c1")).write_text("")  # the exec fifo still waits: not started
    assert store.status(st) == S.CREATED
    freezer = Path(store.dir("c1")) / "freezer.state"  # stands in for the cgroup's file
    freezer.write_text("THAWED\n")
    st.freezer = [str(freezer), "FROZEN"]
    assert store.status(st) == S.CREATED
    freezer.write_text("FROZEN\n")
    assert store.status(st) == S.PAUSED
    end(child)
    assert store.status(st) == S.STOPPED
    assert store.status(store.load("c1")) == S.STOPPED


def test_a_new_process_with_the_same_pid_is_not_the_init(child: subprocess.Popen[bytes]) -> None:
    start = process_start_time(child.pid)
    assert start is not None
    assert make_state("c1", child.pid, start).alive()
    assert not make_state("c1", child.pid, start + 1).alive()
    assert not make_state("c1", 0, 0).alive()


def test_process_start_time() -> None:
    mine = process_start_time(os.getpid())
    assert isinstance(mine, int) and mine > 0
    assert process_start_time(os.getpid()) == mine


def test_process_start_time_of_a_reaped_child_is_none(child: subprocess.Popen[bytes]) -> None:
    assert process_start_time(child.pid) is not None
    end(child)
    assert process_start_time(child.pid) is None


def test_process_start_time_of_a_zombie_is_none(child: subprocess.Popen[bytes]) -> None:
    assert child.stdin is not None
    child.stdin.close()
    # wait for the exit without reaping: WNOWAIT leaves the zombie in place
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    assert process_start_time(child.pid) is None
