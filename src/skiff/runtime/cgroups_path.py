"""Where a container's cgroup goes: skiff's own absolute paths, never the caller's.

runc puts a relative `cgroupsPath` under the caller's cgroup; skiff puts every path under
the hierarchy root (the drivers normalise and check it), so a container never lands inside
the cgroup of whoever ran the command (a CI job, a login session). No path at all means
`/skiff/<id>`. The systemd form `slice:prefix:name` (what `--systemd-cgroup` callers such
as containerd and Kubernetes pass) becomes the path systemd itself would use: the slice
expanded into its parents (`kubepods-burstable-pod1.slice` is
`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice`), then
`prefix-name.scope`.

`--systemd-cgroup` itself (runc's systemd driver, which asks systemd over D-Bus for a scope
unit) is refused by `create` and `run`: skiff has no systemd driver, and making directories
in systemd's tree behind its back would be worse than a clear no. runc refuses it too where
systemd is not running (as on these machines) and for a path not in the slice form. The
other verbs take the flag, since containerd's shim passes it to every call.
"""

from __future__ import annotations

from skiff.errors import RuntimeError_, SpecError

SYSTEMD_DRIVER_REFUSED = (
    "--systemd-cgroup: skiff-runtime has no systemd cgroup driver, it makes cgroups through "
    "cgroupfs; leave the flag out (containerd: SystemdCgroup = false): a cgroupsPath of the "
    "form slice:prefix:name is still placed where systemd would put it")


def refuse_systemd_driver(verb: str, systemd_cgroup: bool) -> None:
    """RuntimeError_ for a verb that would make a cgroup through systemd (create, run)."""
    if systemd_cgroup and verb in ("create", "run"):
        raise RuntimeError_(SYSTEMD_DRIVER_REFUSED)


def expand_slice(slice_: str) -> str:
    """systemd's slice nesting: every dash-separated prefix is a parent slice."""
    if slice_ in ("", "-.slice"):
        return ""
    if not slice_.endswith(".slice") or "/" in slice_:
        raise SpecError("linux.cgroupsPath", f"{slice_!r} is not a systemd slice name")
    name = slice_[: -len(".slice")]
    if not name or name.startswith("-") or name.endswith("-") or "--" in name:
        raise SpecError("linux.cgroupsPath", f"{slice_!r} is not a valid slice name")
    parts = name.split("-")
    return "".join("/" + "-".join(parts[:i + 1]) + ".slice" for i in range(len(parts)))


def cgroup_path(spec_path: str | None, container_id: str) -> str:
    if not spec_path:
        return f"/skiff/{container_id}"
    if ".." in spec_path.split("/") or "\0" in spec_path:
        # joined below each hierarchy's mount point, `..` would climb out of it (to /sys);
        # config-linux.md lets a runtime call such a value invalid, with an error
        raise SpecError("linux.cgroupsPath", f"{spec_path!r}: `..` is not allowed")
    if ":" in spec_path and not spec_path.startswith("/"):
        slice_, prefix, name = (spec_path.split(":") + ["", ""])[:3]
        scope = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
        return (expand_slice(slice_) or "") + "/" + scope
    return spec_path
