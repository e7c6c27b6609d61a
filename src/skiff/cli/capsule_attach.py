"""``skiff capsule attach CONTAINER NAME:VERSION [--target PATH]`` and ``skiff capsule detach
CONTAINER NAME``: a capsule into a container, and out again, while it runs.

Attach prints each capsule the container has then, ``name:version  target`` (the ones that
came as dependencies say for whom), and a note when the container is not running (its next
start mounts them); detach prints the name. The daemon's errors are shown as the docker CLI
shows them, and the command exits 1.
"""

from __future__ import annotations

from skiff.cli.flags import Command, option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.cli.main import Context


def attach(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] CONTAINER NAME:VERSION",
                  "Attach a capsule to a container, live if it runs", [
                      option("target", "t", "Where the container sees it (default "
                             "/capsules/NAME/VERSION)"),
                  ], (2, 2))
    opts = cmd.parse(argv)
    container, capsule = opts.args
    body = {"Capsule": capsule, **({"Target": opts.target} if opts.target else {})}
    # (no urllib.parse: its import is a quarter of the command's start; container and
    # capsule names are path-safe by their own rules, as volume names are for `volume rm`)
    answer = ctx.client.post(f"/containers/{container}/capsules", json=body) or {}
    for c in answer.get("Capsules") or ():
        needed = f"  (for {', '.join(c['RequiredBy'])})" if c.get("RequiredBy") else ""
        ctx.out.write(f"{c['Name']}:{c['Version']}\t{c['Target']}{needed}\n")
    if not answer.get("Live"):
        ctx.out.write(f"{container} is not running: its next start mounts them\n")
    return 0


def detach(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "CONTAINER NAME", "Detach a capsule from a container", [], (2, 2))
    opts = cmd.parse(argv)
    container, name = opts.args
    ctx.client.delete(f"/containers/{container}/capsules/{name}")
    ctx.out.write(f"{name}\n")
    return 0
