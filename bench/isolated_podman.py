"""Debian's podman for a bench, on storage, configuration, network and cgroups of the bench's own.

podman has no daemon: every call is its own process, so what makes it the bench's is its
command line and environment. `IsolatedPodman` gives it ``--root``, ``--runroot`` and
``--tmpdir`` under the bench's folder, a ``containers.conf`` (``CONTAINERS_CONF``), a
``storage.conf`` (``CONTAINERS_STORAGE_CONF``) and a ``registries.conf`` with no registry
(``CONTAINERS_REGISTRIES_CONF``; with ``pull_policy = "never"`` nothing is ever fetched) of
its own, ``TMPDIR`` (``podman load`` unpacks there), ``--network-config-dir`` (else root's
podman writes /etc/containers/networks), and the cgroup parent the bench names (absolute, so
never below the caller's own cgroup). The containers.conf lowers podman's default rlimits to
the host's hard limits — root here lacks CAP_SYS_RESOURCE, and podman's nofile=1048576 makes
the runtime's setrlimit fail (see ../shared/peers/README.md). With `network` given, that
network (its name, bridge and subnet the bench's) is written as netavark JSON and made
podman's default one, DNS off like podman's own default network, so no aardvark-dns; without
it every `run` gets ``--network none`` (`run_args`), so podman's own default bridge, with its
rules in the host's firewall, is never made.

Fixed places podman uses as root whatever it is told: netavark's run folder
/run/containers/networks (its IPAM database ``ipam.db``, one bucket per network name:
`cleanup` removes the network, which drops its bucket — a default network cannot be removed,
so that call gets a containers.conf naming another default) and the blob-info cache of
containers/image at /var/lib/containers/cache (written by ``load``: when the folder exists, the
load runs in a mount namespace of its own with a tmpfs over it, so the host's cache is left as
it was; when it does not, what the load made is removed at the end). Network namespaces go to
/run/netns as ``netns-<uuid>`` and are removed with their container; one still there at the
end (recorded from ``inspect``) is unmounted and removed, as a forced clean-up.

`cleanup` removes every container (``rm -f -t 0``), waits for podman's own clean-up processes
(conmon's exit command) and kills by PID any conmon or podman process of this storage still
there, removes the network and does ``system reset``, unmounts what is left below its folder,
removes the netns files, an aardvark-dns that started for this network after all (by PID),
kills by PID what is still in the cgroup parent (a container whose removal failed outlives its
conmon), removes the cgroup parent and netavark's bridge if it is still there, and returns what
had to be forced.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import host_firewall
from daemons import remove_cgroup_tree, unmount_under

NETAVARK = "/usr/lib/podman/netavark"
# fixed paths podman as root uses whatever --root says (see the module's docstring)
NETAVARK_RUN = (Path("/run/containers"), Path("/run/containers/networks"))
BLOB_CACHE = (Path("/var/lib/containers"), Path("/var/lib/containers/cache"))


@dataclass(frozen=True)
class PodmanNetwork:
    """The bridge network the bench makes podman's default one."""

    name: str
    bridge: str
    subnet: str     # a /24

    @property
    def gateway(self) -> str:
        return self.subnet.rsplit(".", 1)[0] + ".1"


def _aardvarks() -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "aardvark-dns":
                out.append(int(pid))
        except OSError:
            pass
    return out


def _kill(pids: Iterable[int], said: str) -> list[str]:
    """SIGKILL each of `pids` by PID; for each one killed, `said` with its {comm} and {pid}."""
    forced = []
    for pid in sorted(pids):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            os.kill(pid, signal.SIGKILL)
            forced.append(said.format(comm=comm, pid=pid))
        except OSError:
            pass
    return forced


def _nproc_limit() -> int:
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    # podman lowers its own RLIMIT_NPROC to 32768 before it starts anything
    return 32768 if nproc == resource.RLIM_INFINITY or nproc > 32768 else nproc


class IsolatedPodman:
    """podman's command line and environment for one bench, and their clean-up."""

    def __init__(self, base: Path, runtime: str, cgroup_parent: str,
                 network: PodmanNetwork | None = None) -> None:
        self.base, self.runtime, self.network = base, runtime, network
        self.cgroup_parent = cgroup_parent.strip("/")
        self.argv = ["podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
                     "--tmpdir", str(base / "tmp"), "--network-config-dir", str(base / "networks"),
                     "--runtime", runtime, "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file"]
        self.env = dict(os.environ, CONTAINERS_CONF=str(base / "containers.conf"),
                        CONTAINERS_STORAGE_CONF=str(base / "storage.conf"),
                        CONTAINERS_REGISTRIES_CONF=str(base / "registries.conf"),
                        TMPDIR=str(base / "tmpdir"), DOCKER_CONFIG=str(base / "docker-config"))
        self.netns: set[str] = set()
        self.made = [d for d in (*NETAVARK_RUN, *BLOB_CACHE) if not d.exists()]
        self.aardvarks_before = set(_aardvarks())

    def run_args(self) -> list[str]:
        """What every `run` of this podman gets after ``run``: the bench's cgroup parent, and
        ``--network none`` when the bench gave no network (else podman would make its own
        default bridge and write its rules into the host's firewall)."""
        no_network = ["--network", "none"] if self.network is None else []
        return ["--cgroup-parent", f"/{self.cgroup_parent}", *no_network]

    def _conf(self, default_network: str | None) -> str:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        lines = ["# no CAP_SYS_RESOURCE for root here: podman's default rlimits cannot be set",
                 "[containers]",
                 f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={_nproc_limit()}:'
                 f'{_nproc_limit()}"]',
                 "[engine]", 'pull_policy = "never"', "[network]", 'network_backend = "netavark"',
                 f'network_config_dir = "{self.base / "networks"}"']
        if default_network is not None:
            lines.append(f'default_network = "{default_network}"')
        return "\n".join(lines) + "\n"

    def setup(self, image_tar: Path) -> None:
        """Write the configuration and the network, and load `image_tar` (a `docker save`)."""
        b = self.base
        for d in ("networks", "tmpdir", "docker-config"):
            (b / d).mkdir(parents=True, exist_ok=True)
        (b / "docker-config" / "config.json").write_text("{}")   # podman reads it for auth
        (b / "registries.conf").write_text("unqualified-search-registries = []\n")
        (b / "storage.conf").write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{b / "root"}"'
                                        f'\nrunroot = "{b / "run"}"\n')
        net = self.network
        (b / "containers.conf").write_text(self._conf(net.name if net else None))
        if net is not None:
            (b / "networks" / f"{net.name}.json").write_text(json.dumps({
                "name": net.name, "id": os.urandom(32).hex(), "driver": "bridge",
                "network_interface": net.bridge, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "subnets": [{"subnet": net.subnet, "gateway": net.gateway}],
                "ipv6_enabled": False, "internal": False, "dns_enabled": False,
                "ipam_options": {"driver": "host-local"}}, indent=1))
        load = [*self.argv, "load", "-q", "-i", str(image_tar)]
        if BLOB_CACHE[1].is_dir():   # keep containers/image's fixed cache as it was
            load = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    f'mount -t tmpfs skiff-bench-blob-cache "{BLOB_CACHE[1]}" && exec "$@"',
                    "sh", *load]
        self.call(load)

    def call(self, argv: list[str]) -> str:
        r = subprocess.run(argv, capture_output=True, text=True, env=self.env, cwd=self.base)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[-6:])}: exited {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def podman(self, *args: str) -> str:
        return self.call([*self.argv, *args])

    def remember_netns(self, container: str) -> None:
        key = self.podman("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", container).strip()
        if key:
            self.netns.add(key)

    def _processes(self) -> list[int]:
        """conmon and podman processes (``container cleanup`` among them) of this storage."""
        me, found = os.getpid(), []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if int(pid) != me and str(self.base).encode() in cmdline:
                found.append(int(pid))
        return found

    def _stop_cgroup_members(self) -> list[str]:
        """Kill by PID every process still below the cgroup parent (only this bench's
        containers and conmons are put there) and wait a little for them to leave it."""
        tops = list(Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}"))

        def members() -> set[int]:
            try:
                return {int(pid) for top in tops for procs in top.rglob("cgroup.procs")
                        for pid in procs.read_text().split()}
            except OSError:   # a cgroup went meanwhile: nothing of it left
                return set()
        left = members()
        forced = _kill(left, f"podman: killed {{comm}} {{pid}} left in /{self.cgroup_parent}")
        deadline = time.monotonic() + 5
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = members()
        return forced

    def firewall_claim(self, before: host_firewall.Snapshot) -> Callable[[str], bool]:
        """Which rules and chains that appeared since `before` netavark made for this podman:
        all ``NETAVARK`` ones — unless a rule of another netavark network appeared too (a
        port of another network's container, or another subnet's masquerade: someone else's
        podman ran meanwhile and shares the scaffolding), then only the rules that name this
        network's subnet or name."""
        net = self.network
        if net is None:
            return lambda line: False
        mine = (net.subnet.rsplit(".", 1)[0] + ".", f"dnat name: {net.name} ")   # a /24
        now = host_firewall.take()
        others = False
        for variant, tables in now.iptables.items():
            for tname, table in tables.items():
                old = before.iptables.get(variant, {}).get(tname, host_firewall.Table())
                for rule in host_firewall.added(table.rules, old.rules):
                    specific = "dnat name: " in rule or re.search(r" -s \S+ -j NETAVARK-", rule)
                    if specific and not any(m in rule for m in mine):
                        others = True
        if others:
            return lambda line: any(m in line for m in mine)
        return lambda line: "NETAVARK" in line

    def _quiet(self, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *args], capture_output=True, text=True,
                              env=env or self.env, cwd=self.base)

    def _stop_aardvark(self) -> list[str]:
        """The network has DNS off, so no aardvark-dns should start; one that did since
        `__init__` while this network's file is in its config folder (netavark's shared run
        folder) is this bench's: killed by PID, its file removed."""
        if self.network is None:
            return []
        mine = NETAVARK_RUN[1] / "aardvark-dns" / self.network.name
        if not mine.exists():
            return []
        forced = [f"podman: removed {mine}"]
        for pid in set(_aardvarks()) - self.aardvarks_before:
            try:
                os.kill(pid, signal.SIGKILL)
                forced.append(f"podman: killed aardvark-dns {pid}")
            except OSError:
                pass
        mine.unlink()
        return forced

    def cleanup(self) -> list[str]:
        forced: list[str] = []
        if not (self.base / "containers.conf").exists():
            return forced
        ids = self._quiet("ps", "-aq").stdout.split()
        for cid in ids:
            r = self._quiet("inspect", "-f", "{{.NetworkSettings.SandboxKey}}", cid)
            self.netns.update(r.stdout.split())
        if ids:
            self._quiet("rm", "-f", "-t", "0", *ids)
        deadline = time.monotonic() + 10
        while self._processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        forced += _kill(self._processes(), "podman: killed left-over {comm} {pid}")
        if self.network is not None:
            # a default network cannot be removed: this call names another default
            other = self.base / "containers-cleanup.conf"
            other.write_text(self._conf(f"{self.network.name}-none"))
            r = self._quiet("network", "rm", "-f", self.network.name,
                            env=dict(self.env, CONTAINERS_CONF=str(other)))
            if r.returncode != 0:
                forced.append(f"podman network rm {self.network.name}: {r.stderr.strip()}")
        r = self._quiet("system", "reset", "-f")
        if r.returncode != 0:
            forced.append(f"podman system reset: {r.stderr.strip()}")
        unmount_under(self.base)
        for key in sorted(self.netns):
            if Path(key).exists():
                subprocess.run(["umount", key], capture_output=True)
                try:
                    Path(key).unlink()
                    forced.append(f"podman: removed left-over netns {key}")
                except OSError as e:
                    forced.append(f"podman: netns {key}: {e}")
        forced += self._stop_aardvark()
        forced += self._stop_cgroup_members()
        forced += remove_cgroup_tree(self.cgroup_parent)
        if self.network is not None and Path(f"/sys/class/net/{self.network.bridge}").exists():
            subprocess.run(["ip", "link", "del", self.network.bridge], capture_output=True)
            forced.append(f"podman: deleted bridge {self.network.bridge} netavark left")
        for d in reversed(self.made):   # deepest first; only what the bench made
            if d in (NETAVARK_RUN[1], BLOB_CACHE[1]):   # its files are then this run's
                for f in d.glob("*"):
                    f.unlink()
            try:
                d.rmdir()
            except OSError:
                pass
        return forced
