"""What of a well-formed config.json skiff-runtime does not do, refused by the field's name.

The runtime spec's "Valid values" rule: runtimes MUST generate an error when they meet an
unsupported value. Each field here is one the spec defines and skiff does not act on;
ignoring it would run a container other than the one asked for, so `create` stops before it
makes anything and says which field it is. (Properties the spec does not define are
another matter: those the spec's extensibility rule says to ignore, and the codec does.)
Mount options are checked here too (and what an idmapped mount needs), so a bad word fails
the create before the init forks.
"""

from __future__ import annotations

from skiff.errors import SpecError
from skiff.oci.runtime_spec import Spec
from skiff.runtime import mount_options


def refuse_unsupported(spec: Spec) -> None:
    assert spec.process is not None and spec.linux is not None
    lx = spec.linux
    res = lx.resources
    fields = (
        ("linux.intelRdt", lx.intel_rdt, "Intel RDT (resctrl)"),
        ("linux.memoryPolicy", lx.memory_policy, "NUMA memory policies (set_mempolicy)"),
        ("linux.netDevices", lx.net_devices, "moving network devices into the container"),
        ("linux.resources.network", res.network if res else None, "the net_cls/net_prio cgroups"),
        ("linux.resources.rdma", res.rdma if res else None, "the rdma cgroup"),
    )
    for where, value, what in fields:
        if value is not None:
            raise SpecError(where, f"{what}: not supported by skiff-runtime")
    for i, m in enumerate(spec.mounts):
        opts = mount_options.check(m.options, f"mounts[{i}]", m.type)
        if m.idmapped:
            if not opts.is_bind:
                raise SpecError(f"mounts[{i}].options", "only a bind mount can be idmapped")
            # config.md idmap: without a mapping of its own the container's user namespace
            # mapping MAY be used, "otherwise an error MUST be returned"
            if m.uid_mappings is None and not (lx.uid_mappings and lx.gid_mappings):
                raise SpecError(f"mounts[{i}].uidMappings",
                                "an idmapped mount needs uidMappings and gidMappings, its own "
                                "or the container's user namespace's")
    if lx.time_offsets:
        ns = lx.namespace("time")
        if ns is None or ns.path:  # offsets can only be written into a namespace still empty
            raise SpecError("linux.timeOffsets", "needs a new time namespace (type time, no path)")
