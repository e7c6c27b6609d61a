"""The devices every container gets, and the device-cgroup rules that let it use them.

runc always creates a few nodes (null, zero, full, random, urandom, tty) and always allows,
after the spec's own rules, mknod of any node plus read/write of those, the console, the
pty devices and /dev/net/tun; every `linux.devices` entry is allowed too. The spec's rules
(typically "deny all") come first, so these are the exceptions to them.
"""

from __future__ import annotations

from skiff.oci.runtime_spec import Device, DeviceRule, Spec

DEFAULT_DEVICES = (
    Device("c", "/dev/null", 1, 3, 0o666, 0, 0),
    Device("c", "/dev/zero", 1, 5, 0o666, 0, 0),
    Device("c", "/dev/full", 1, 7, 0o666, 0, 0),
    Device("c", "/dev/random", 1, 8, 0o666, 0, 0),
    Device("c", "/dev/urandom", 1, 9, 0o666, 0, 0),
    Device("c", "/dev/tty", 5, 0, 0o666, 0, 0),
)

ALWAYS_ALLOWED = (
    DeviceRule(True, "c", None, None, "m"),
    DeviceRule(True, "b", None, None, "m"),
    *(DeviceRule(True, d.type, d.major, d.minor, "rwm") for d in DEFAULT_DEVICES),
    DeviceRule(True, "c", 5, 1, "rwm"),     # /dev/console
    DeviceRule(True, "c", 136, None, "rwm"),  # /dev/pts/*
    DeviceRule(True, "c", 5, 2, "rwm"),     # /dev/ptmx
    DeviceRule(True, "c", 10, 200, "rwm"),  # /dev/net/tun
)


def cgroup_rules(spec: Spec) -> tuple[DeviceRule, ...]:
    """The device rules to write to the cgroup: the spec's, then what is always allowed."""
    assert spec.linux is not None
    res = spec.linux.resources
    own = res.devices if res is not None else ()
    listed = tuple(DeviceRule(True, "c" if d.type == "u" else d.type, d.major, d.minor, "rwm")
                   for d in spec.linux.devices if d.type != "p")
    return own + ALWAYS_ALLOWED + listed
