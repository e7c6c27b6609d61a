"""`ps`: the processes of a container: their pids as JSON, or `ps(1)`'s table filtered
to them (with any `ps` options the caller passes), as runc prints it."""

from __future__ import annotations

import subprocess

from skiff.errors import RuntimeError_
from skiff.runtime.container import open_container
from skiff.runtime.state import StateStore


def container_pids(store: StateStore, container_id: str) -> list[int]:
    c = open_container(store, container_id)
    c.require("ps")
    return sorted(c.cgroup.pids())


def ps_table(pids: list[int], ps_args: list[str]) -> str:
    try:
        out = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError_(f"ps: {e}") from None
    lines = out.splitlines()
    if not lines:
        return ""
    header, rows = lines[0], lines[1:]
    try:
        col = header.split().index("PID")
    except ValueError:
        raise RuntimeError_("ps output has no PID column") from None
    wanted = set(pids)
    kept = [r for r in rows if len(r.split()) > col and r.split()[col].isdigit()
            and int(r.split()[col]) in wanted]
    return "\n".join([header, *kept]) + "\n"
