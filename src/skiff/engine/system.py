"""The system half of the engine: ``/version``, ``/info`` and ``/auth`` in Docker's shapes.

`version` is Docker's SystemVersion (the skiff engine as its one component, with the API
versions the server speaks, and Python where Docker names Go); `info` is SystemInfo, read
from the host as dockerd reads it (kernel, OS release, CPUs, memory, cgroup version, the
store's backing filesystem) and from the engine (images, registry settings). Containers are
counted through the `containers` hook the container service fills; until it does there are
none. `login` checks credentials against a registry through the registry client.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time

import skiff
from skiff.engine.times import rfc3339_nano
from skiff.errors import InvalidArgument
from skiff.reference import INDEX_SERVER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from skiff.engine import Engine

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


class ContainerCounts:
    """What /info says of containers: total, running, paused, stopped."""

    def __init__(self, running: int = 0, paused: int = 0, stopped: int = 0) -> None:
        self.running, self.paused, self.stopped = running, paused, stopped

    @property
    def total(self) -> int:
        return self.running + self.paused + self.stopped


class SystemService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.containers: Callable[[], ContainerCounts] = ContainerCounts

    def version(self, api_version: str, min_api_version: str) -> dict[str, Any]:
        """``GET /version``."""
        uname = os.uname()
        arch = _GOARCH.get(uname.machine, uname.machine)
        python = f"python{platform.python_version()}"
        details = {
            "ApiVersion": api_version,
            "Arch": arch,
            "BuildTime": "",
            "Experimental": "false",
            "GitCommit": "",
            "GoVersion": python,
            "KernelVersion": uname.release,
            "MinAPIVersion": min_api_version,
            "Os": "linux",
        }
        return {
            "Platform": {"Name": "skiff"},
            "Components": [{"Name": "Engine", "Version": skiff.__version__, "Details": details}],
            "Version": skiff.__version__,
            "ApiVersion": api_version,
            "MinAPIVersion": min_api_version,
            "GitCommit": "",
            "GoVersion": python,
            "Os": "linux",
            "Arch": arch,
            "KernelVersion": uname.release,
            "BuildTime": "",
        }

    def info(self) -> dict[str, Any]:
        """``GET /info``."""
        engine = self.engine
        counts = self.containers()
        release = _os_release()
        uname = os.uname()
        cgroup_version = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
        return {
            "ID": engine.id,
            "Containers": counts.total,
            "ContainersRunning": counts.running,
            "ContainersPaused": counts.paused,
            "ContainersStopped": counts.stopped,
            "Images": len(engine.store.list()),
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", _filesystem_of(engine.root)],
                             ["Supports d_type", "true"]],
            "DockerRootDir": engine.root,
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": None, "Log": []},
            "MemoryLimit": True,
            "SwapLimit": cgroup_version == "2" or os.path.exists(
                "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
            "KernelMemory": False,
            "KernelMemoryTCP": False,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "IPv4Forwarding": _read("/proc/sys/net/ipv4/ip_forward") == "1",
            "BridgeNfIptables": _read("/proc/sys/net/bridge/bridge-nf-call-iptables") == "1",
            "BridgeNfIp6tables": _read("/proc/sys/net/bridge/bridge-nf-call-ip6tables") == "1",
            "Debug": engine.options.debug,
            "NFd": _count("/proc/self/fd"),
            "OomKillDisable": cgroup_version == "1",
            "NGoroutines": threading.active_count(),
            "SystemTime": rfc3339_nano(time.time()),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version,
            "NEventsListener": engine.events.listeners(),
            "KernelVersion": uname.release,
            "OperatingSystem": release.get("PRETTY_NAME", "Linux"),
            "OSVersion": release.get("VERSION_ID", ""),
            "OSType": "linux",
            "Architecture": uname.machine,
            "IndexServerAddress": INDEX_SERVER,
            "RegistryConfig": self._registry_config(),
            "NCPU": os.cpu_count() or 1,
            "MemTotal": _mem_total(),
            "GenericResources": None,
            "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
            "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
            "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
            "Name": uname.nodename,
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": skiff.__version__,
            "Runtimes": {"skiff-runtime": {"path": _runtime_path()}},
            "DefaultRuntime": "skiff-runtime",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": False,
            "Isolation": "",
            "InitBinary": "docker-init",  # what --init runs (engine.container_init)
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": _security_options(self.engine.options.userns_remap),
            "Warnings": self._warnings(),
        }

    def _warnings(self) -> list[str] | None:
        """What the firewall found in the way (another engine's forward DROP), as dockerd's."""
        ports = getattr(getattr(self.engine, "networks", None), "ports", None)
        return list(ports.warnings) if ports is not None and ports.warnings else None

    def login(self, body: dict[str, Any]) -> dict[str, str]:
        """``POST /auth``: check the credentials in `body` (Docker's AuthConfig JSON) with
        the registry they name; AuthenticationFailed when it refuses them."""
        from skiff.registry.auth import AuthConfig
        from skiff.registry.session import login

        if not isinstance(body, dict):
            raise InvalidArgument("the auth request body must be a JSON object")
        auth = AuthConfig.from_json(body)
        token = login(auth.serveraddress or "", auth, self.engine.registry_options())
        answer = {"Status": "Login Succeeded"}
        if token:
            answer["IdentityToken"] = token
        return answer

    def _registry_config(self) -> dict[str, Any]:
        cidrs = ["127.0.0.0/8"]
        index = {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True,
                               "Official": True}}
        for entry in self.engine.options.insecure_registries:
            if "/" in entry:
                if entry not in cidrs:
                    cidrs.append(entry)
            else:
                index[entry] = {"Name": entry, "Mirrors": [], "Secure": False,
                                "Official": False}
        return {"AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": cidrs, "IndexConfigs": index, "Mirrors": []}


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _count(path: str) -> int:
    try:
        return len(os.listdir(path))
    except OSError:
        return 0


def _os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (_read("/etc/os-release") or _read("/usr/lib/os-release")).splitlines():
        key, eq, value = line.partition("=")
        if eq:
            out[key.strip()] = value.strip().strip('"')
    return out


def _mem_total() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _filesystem_of(path: str) -> str:
    """The type of the filesystem `path` is on (the longest mount point above it)."""
    best, kind = "", "unknown"
    real = os.path.realpath(path)
    for line in _read("/proc/self/mounts").splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        target = parts[1].replace("\\040", " ")
        if (real == target or real.startswith(target.rstrip("/") + "/")) and len(target) >= len(best):
            best, kind = target, parts[2]
    return kind


def _runtime_path() -> str:
    beside = os.path.join(os.path.dirname(sys.executable), "skiff-runtime")
    return beside if os.path.exists(beside) else "skiff-runtime"


def _security_options(userns_remap: str) -> list[str]:
    """What /info says of the containers' confinement: the seccomp profile when the host
    can apply one, and user namespaces when remapping is on."""
    from skiff.kernel import seccomp

    return [*(["name=seccomp,profile=builtin"] if seccomp.available() else []),
            *(["name=userns"] if userns_remap else [])]
