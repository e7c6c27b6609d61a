"""`save`, `load` and `import`: image archives streamed between a file (or stdio) and the
daemon, never held whole in memory.

`save` copies the daemon's tar to `-o FILE` (written beside it and renamed into place, mode
0600, as docker does) or to stdout, which it refuses to be a terminal; `load` and `import`
send a file or stdin as the request body, chunked as it is read, and show the daemon's
messages (``Loaded image: busybox:latest``, the new image ID). `import` also takes an
http(s) URL, which the daemon fetches, and `--change` lines in Dockerfile syntax.
"""

from __future__ import annotations

import os

from skiff.cli.flags import Command, flag, option, repeated
from skiff.cli.streams import binary_input, copy_out, isatty
from skiff.errors import ReferenceError_, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from skiff.cli.main import Context


def _aliases(path: str, verb: str) -> str:
    prog = path.split(" ", 1)[0]
    return f"{prog} image {verb}, {prog} {verb}"


def _open_input(name: str) -> BinaryIO:
    try:
        return open(name, "rb")
    except OSError as exc:
        raise SkiffError(f"open {name}: {(exc.strerror or str(exc)).lower()}") from None


def save(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] IMAGE [IMAGE...]",
                  "Save one or more images to a tar archive (streamed to STDOUT by default)",
                  [option("output", "o", "Write to a file, instead of STDOUT")], (1, None),
                  aliases=_aliases(path, "save"))
    opts = cmd.parse(argv)
    if not opts.output and isatty(ctx.out):
        raise SkiffError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    target = None
    if opts.output:
        folder = os.path.dirname(os.path.abspath(opts.output))
        if not os.path.isdir(folder):
            problem = "not a directory" if os.path.exists(folder) else "no such file or directory"
            raise SkiffError(f"failed to save image: invalid output path: stat {folder}: {problem}")
        target = opts.output
    resp = ctx.client.open("GET", "/images/get", {"names": list(opts.args)})
    if target is None:
        copy_out(resp, ctx.out)
        return 0
    temp = os.path.join(os.path.dirname(os.path.abspath(target)),
                        f".skiff_temp_{os.getpid()}_{os.path.basename(target)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            for data in resp.iter_raw():
                f.write(data)
        os.rename(temp, target)
    except BaseException:
        resp.close()
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    return 0


def load(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.cli.transfer import display_for
    from skiff.client.api import json_messages

    cmd = Command(path, "[OPTIONS]", "Load an image from a tar archive or STDIN", [
        option("input", "i", "Read from tar archive file, instead of STDIN"),
        flag("quiet", "q", "Suppress the load output"),
    ], (0, 0), aliases=_aliases(path, "load"))
    opts = cmd.parse(argv)
    if opts.input:
        source = _open_input(opts.input)
    else:
        if isatty(ctx.stdin):
            raise SkiffError("requested load from stdin, but stdin is empty")
        source = binary_input(ctx.stdin)
    quiet = opts.quiet or not isatty(ctx.out)
    try:
        resp = ctx.client.open("POST", "/images/load", {"quiet": quiet}, body=source,
                               headers={"Content-Type": "application/x-tar"})
    finally:
        if opts.input:
            source.close()
    if "json" in resp.headers.get("content-type", ""):
        display_for(ctx).show_all(json_messages(resp))
    else:
        for data in resp.iter_raw():
            ctx.out.write(data.decode("utf-8", "replace"))
    return 0


def import_(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.cli.transfer import display_for

    cmd = Command(path, "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                  "Import the contents from a tarball to create a filesystem image", [
                      repeated("change", "c", "Apply Dockerfile instruction to the created image"),
                      option("message", "m", "Set commit message for imported image"),
                      option("platform", "", "Set platform if server is multi-platform capable"),
                  ], (1, 2), aliases=_aliases(path, "import"))
    opts = cmd.parse(argv)
    source_name = opts.args[0]
    repo = opts.args[1] if len(opts.args) > 1 else None
    if repo:
        from skiff.reference import parse_reference
        try:
            parse_reference(repo)
        except ReferenceError_ as exc:
            raise SkiffError(str(exc)) from None
    body: BinaryIO | None = None
    if source_name == "-":
        body, from_src = binary_input(ctx.stdin), "-"
    elif source_name.startswith(("http://", "https://")):
        from_src = source_name
    else:
        body, from_src = _open_input(source_name), "-"
    query = {"fromSrc": from_src, "repo": repo, "message": opts.message or None,
             "changes": list(opts.change) or None, "platform": opts.platform or None}
    try:
        messages = ctx.client.stream("POST", "/images/create", query, body=body,
                                     headers={"Content-Type": "text/plain"} if body else None)
        display_for(ctx).show_all(messages)
    finally:
        if body is not None and source_name != "-":
            body.close()
    return 0
