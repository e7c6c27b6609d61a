"""One existing container as the operations see it: its saved state, live status and cgroup.

`open_container` is how every verb after `create` starts; `wait_gone` is how those that
end processes learn that they really ended (a pidfd when the kernel has it, else polling
/proc), since the container's init is usually not our child.
"""

from __future__ import annotations

import os
import select
import time
from skiff.record import Record
from functools import cached_property

from skiff.oci.runtime_spec import Spec
from skiff.oci.codec import decode_object
from skiff.runtime.cgroups import Cgroup, open_cgroup
from skiff.runtime.state import (ContainerState, StateStore, Status, check_move,
                                 process_start_time)


class Container(Record, mutable=True):
    store: StateStore
    state: ContainerState

    @property
    def id(self) -> str:
        return self.state.id

    @cached_property
    def cgroup(self) -> Cgroup:
        return open_cgroup(self.state.cgroup_path)

    @cached_property
    def spec(self) -> Spec:
        return decode_object(Spec, self.state.config)

    def status(self) -> Status:
        if not self.state.alive():
            return Status.STOPPED
        frozen = self.cgroup.exists() and self.cgroup.frozen()
        return self.store.status(self.state, frozen)

    def require(self, operation: str) -> Status:
        status = self.status()
        check_move(self.id, operation, status)
        return status

    def oci_state(self) -> dict:
        return self.state.oci(self.status())


def open_container(store: StateStore, container_id: str) -> Container:
    return Container(store, store.load(container_id))


def wait_gone(pid: int, start_time: int, timeout: float) -> bool:
    """True once the process (pid, by its start time) no longer runs."""
    deadline = time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = -1
    try:
        while process_start_time(pid) == start_time:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if pidfd >= 0:
                select.select([pidfd], [], [], min(left, 0.05))
            else:
                time.sleep(min(left, 0.01))
        return True
    finally:
        if pidfd >= 0:
            os.close(pidfd)
