"""`features`: what this runtime supports, in the runtime-spec features document's shape."""

from __future__ import annotations


from skiff.kernel import capabilities, seccomp
from skiff.oci.runtime_spec import NAMESPACE_TYPES
from skiff.runtime import mount_options
from skiff.runtime.process import host_lsms
from skiff import __version__
from skiff.runtime.state import OCI_VERSION

TYPE_CHECKING = False  # type checkers take it as True; no typing import at run time
if TYPE_CHECKING:
    from typing import Any


def features() -> dict[str, Any]:
    lsms = host_lsms()
    words = sorted(set(mount_options._FLAGS) | mount_options.PROPAGATION_WORDS  # noqa: SLF001
                   | mount_options.RECURSIVE_WORDS | mount_options.RUNTIME_WORDS)
    sec: dict[str, Any] = {"enabled": seccomp.available()}
    if seccomp.available():
        sec.update({
            "actions": list(seccomp.ACTIONS),
            "operators": sorted(seccomp.OPERATORS),
            "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
            "supportedFlags": sorted(seccomp.FLAGS),
            "knownFlags": sorted(seccomp.FLAGS),
        })
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                  "poststop"],
        "mountOptions": words,
        "linux": {
            "namespaces": [n for n in NAMESPACE_TYPES],
            "capabilities": sorted(capabilities.CAPABILITIES, key=lambda n: capabilities.CAPABILITIES[n]),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": sec,
            "apparmor": {"enabled": "apparmor" in lsms},
            "mountExtensions": {"idmap": {"enabled": True}},
            "intelRdt": {"enabled": False},
            "selinux": {"enabled": "selinux" in lsms},
        },
        "annotations": {"io.skiff.runtime.version": __version__},
    }
