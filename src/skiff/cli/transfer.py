"""`pull` and `push`: a registry transfer run by the daemon, its progress shown here.

As the docker CLI does: the name is checked and normalised first (``busybox`` is pulled as
``docker.io/library/busybox`` tag ``latest``, after "Using default tag: latest"), the
credentials for its registry come from config.json as X-Registry-Auth, the daemon's
streamed messages are drawn as per-layer progress bars on a terminal and as plain lines
elsewhere (`-q` shows none), and the full reference is printed last. An error message in the
stream ends the command with that message and exit code 1.
"""

from __future__ import annotations

import os

from skiff.cli.flags import Command, flag, option
from skiff.cli.progress import Display
from skiff.errors import ReferenceError_, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

    from skiff.cli.main import Context
    from skiff.reference import Reference


def _target(ctx: Context, text: str, all_tags: bool, quiet: bool) -> Reference:
    """The reference to pull or push, checked as docker checks it; a bare name gets
    ``latest`` (said unless `quiet`), unless all tags are asked for."""
    from skiff.reference import parse_reference
    try:
        ref = parse_reference(text)
    except ReferenceError_ as exc:
        raise SkiffError(str(exc)) from None
    if all_tags and not ref.name_only:
        raise SkiffError("tag can't be used with --all-tags/-a")
    if not all_tags and ref.name_only:
        ref = ref.with_default_tag()
        if not quiet:
            ctx.out.write(f"Using default tag: {ref.tag}\n")
    return ref


def auth_header(ctx: Context, ref: Reference) -> dict[str, str]:
    from skiff.client.credentials import registry_auth
    from skiff.reference import index_server
    return {"X-Registry-Auth": registry_auth(ctx.config().get(index_server(ref.domain)))}


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def display_for(ctx: Context, quiet: bool = False) -> Display:
    """How a stream is shown on the context's stdout: redrawn bars on a terminal (as wide
    as it is), plain lines elsewhere, nothing when `quiet`."""
    if quiet:
        return Display(_Discard(), False)  # type: ignore[arg-type]
    out: TextIO = ctx.out
    terminal = False
    width = 200
    try:
        terminal = out.isatty()
        if terminal:
            width = os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError, AttributeError):
        pass
    return Display(out, terminal, width)


def pull(ctx: Context, path: str, argv: list[str]) -> int:
    prog = path.split(" ", 1)[0]
    cmd = Command(path, "[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry", [
        flag("all-tags", "a", "Download all tagged images in the repository"),
        flag("disable-content-trust", "", "Skip image verification", default=True),
        option("platform", "", "Set platform if server is multi-platform capable"),
        flag("quiet", "q", "Suppress verbose output"),
    ], (1, 1), aliases=f"{prog} image pull, {prog} pull")
    opts = cmd.parse(argv)
    ref = _target(ctx, opts.args[0], opts.all_tags, opts.quiet)
    query: dict[str, Any] = {"fromImage": ref.name,
                             "tag": None if opts.all_tags else (ref.digest or ref.tag),
                             "platform": opts.platform.lower() or None}
    messages = ctx.client.stream("POST", "/images/create", query, headers=auth_header(ctx, ref))
    display_for(ctx, opts.quiet).show_all(messages)
    ctx.out.write(f"{ref.name if opts.all_tags else ref}\n")
    return 0


def push(ctx: Context, path: str, argv: list[str]) -> int:
    prog = path.split(" ", 1)[0]
    cmd = Command(path, "[OPTIONS] NAME[:TAG]", "Upload an image to a registry", [
        flag("all-tags", "a", "Push all tags of an image to the repository"),
        flag("disable-content-trust", "", "Skip image signing", default=True),
        flag("quiet", "q", "Suppress verbose output"),
    ], (1, 1), aliases=f"{prog} image push, {prog} push")
    opts = cmd.parse(argv)
    if "@" in opts.args[0]:
        raise SkiffError("cannot push a digest reference")
    ref = _target(ctx, opts.args[0], opts.all_tags, opts.quiet)
    query = {"tag": None if opts.all_tags else ref.tag}
    messages = ctx.client.stream("POST", f"/images/{ref.familiar_name}/push", query,
                                 headers=auth_header(ctx, ref))
    display_for(ctx, opts.quiet).show_all(messages)
    if opts.quiet:
        ctx.out.write(f"{ref}\n")
    return 0
