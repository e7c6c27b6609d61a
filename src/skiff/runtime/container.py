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
from skiff.runtime.state import ContainerState, StateStore, check_move, process_start_time

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from skiff.oci.runtime_spec import Linux, Spec
    from skiff.runtime.cgroups import Cgroup


class Container(Record, mutable=True):
    store: StateStore
    state: ContainerState
    _cgroup: Cgroup | None = None
    _spec: Spec | None = None
    _linux: Linux | None = None

    @property
    def id(self) -> str:
        return self.state.id

    # both loaded only when an operation needs them (`state` and `start` do not), and
    # cached by hand: functools' cached_property costs `start` 2 ms of imports
    @property
    def cgroup(self) -> Cgroup:
        if self._cgroup is None:
            from skiff.runtime.cgroups import KEEP_PARENTS, SKIFF_PARENT, open_cgroup
            keep = self.state.annotations.get(KEEP_PARENTS) == "true"
            self._cgroup = open_cgroup(self.state.cgroup_path, root=self.state.cgroup_root,
                                       owned_prefix=None if keep else SKIFF_PARENT)
        return self._cgroup

    @property
    def spec(self) -> Spec:
        if self._spec is None:
            from skiff.oci.codec import decode_object
            from skiff.oci.runtime_spec import Spec
            self._spec = decode_object(Spec, self.state.config)
        return self._spec

    @property
    def linux(self) -> Linux:
        """The spec's `linux` alone (what exec needs of it), without decoding the rest."""
        if self._linux is None:
            if self._spec is not None:
                assert self._spec.linux is not None
                self._linux = self._spec.linux
            else:
                from skiff.errors import SpecError
                from skiff.oci.codec import decode_object
                from skiff.oci.runtime_spec import Linux
                raw = self.state.config.get("linux")
                if raw is None:  # (create refuses such a spec; a state file edited by hand)
                    raise SpecError("linux", "is required on Linux")
                self._linux = decode_object(Linux, raw, "linux")
        return self._linux

    def join_cgroup(self, pid: int) -> None:
        """Move `pid` into the container's cgroup, in every hierarchy: by the cgroup.procs
        files create kept, or through the driver for a state from before it kept them."""
        if self.state.cgroup_procs is None:
            self.cgroup.add(pid)
        else:
            from skiff.runtime.cgroup_files import join
            join(self.state.cgroup_procs, pid)

    def has_hooks(self, phase: str) -> bool:
        return bool(self.state.config.get("hooks", {}).get(phase))

    def status(self) -> str:
        return self.store.status(self.state)

    def require(self, operation: str) -> str:
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
