"""Where a container's cgroup goes: skiff's own absolute paths, never the caller's.

runc puts a relative `cgroupsPath` under the caller's cgroup; skiff puts every path under
the hierarchy root, so a container never lands inside the cgroup of whoever ran the
command (a CI job, a login session). No path at all means `/skiff/<id>`; the systemd form
`slice:prefix:name` (what `--systemd-cgroup` callers pass) becomes `/slice/prefix-name.scope`.
"""

from __future__ import annotations


def cgroup_path(spec_path: str | None, container_id: str) -> str:
    if not spec_path:
        return f"/skiff/{container_id}"
    if ":" in spec_path and not spec_path.startswith("/"):
        slice_, prefix, name = (spec_path.split(":") + ["", ""])[:3]
        scope = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
        return "/" + "/".join(p for p in (slice_, scope) if p)
    return "/" + spec_path.strip("/")
