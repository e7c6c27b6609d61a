"""The verbs that objects known by a name share in the CLI (volumes, capsules): inspect
each name, remove each name, and print what a prune took.

Each name is asked of the daemon on its own and its error collected, so that one unknown
name does not stop the others (docker's way): the answers are printed, then the errors, and
the command exits 1 when there was any.
"""

from __future__ import annotations

from skiff.errors import APIError, SkiffError
from skiff.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from skiff.cli.main import Context


def inspect_each(ctx: Context, names: list[str], url_of: Callable[[str], str],
                 source: str) -> int:
    """``GET url_of(name)`` for each name, printed as docker's inspect prints."""
    from skiff.cli.images import print_inspected

    found: list[str] = []
    errors: list[str] = []
    for name in names:
        try:
            found.append(ctx.client.open("GET", url_of(name)).read().decode().strip())
        except APIError as exc:
            errors.append(str(exc))
    return print_inspected(ctx, found, errors, source)


def remove_each(ctx: Context, names: list[str], url_of: Callable[[str], str],
                query: dict[str, Any]) -> int:
    """``DELETE url_of(name)`` for each name, each name printed once it is gone."""
    errors = []
    for name in names:
        try:
            ctx.client.delete(url_of(name), query)
        except APIError as exc:
            errors.append(str(exc))
            continue
        ctx.out.write(f"{name}\n")
    if errors:
        ctx.out.flush()
        raise SkiffError("\n".join(errors))
    return 0


def print_pruned(ctx: Context, title: str, deleted: list[str], reclaimed: int) -> int:
    """``Deleted <title>:`` and the names (when any went), then the space reclaimed."""
    if deleted:
        ctx.out.write(f"Deleted {title}:\n" + "".join(f"{n}\n" for n in deleted) + "\n")
    ctx.out.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0
