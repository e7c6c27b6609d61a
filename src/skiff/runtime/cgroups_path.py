"""Where a container's cgroup goes: skiff's own absolute paths, never the caller's.

runc puts a relative `cgroupsPath` under the caller's cgroup; skiff puts every path under
the hierarchy root (the drivers normalise and check it), so a container never lands inside
the cgroup of whoever ran the command (a CI job, a login session). No path at all means
`/skiff/<id>`. The systemd form `slice:prefix:name` (what `--systemd-cgroup` callers such
as containerd and Kubernetes pass) becomes the path systemd itself would use: the slice
expanded into its parents (`kubepods-burstable-pod1.slice` is
`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice`), then
`prefix-name.scope`.
"""

from __future__ import annotations

from skiff.errors import SpecError


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
    if ":" in spec_path and not spec_path.startswith("/"):
        slice_, prefix, name = (spec_path.split(":") + ["", ""])[:3]
        scope = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
        return (expand_slice(slice_) or "") + "/" + scope
    return spec_path
