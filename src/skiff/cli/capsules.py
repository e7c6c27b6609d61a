"""``skiff capsule create|ls|inspect|rm|prune``: skiff's capsules, in the docker CLI's manner.

`create` packs the content where the command runs — each ``--path SRC[:TARGET]`` (a file
or folder, kept at its basename unless a target inside the capsule is given; a path that is
a symlink is followed), a ``--from-dir`` folder's contents, or ``-`` for a tar archive on
stdin — into a tar and sends it to ``POST /capsules/create``; the daemon makes the canonical
pack, so the same files give the same digest however they were sent. Unreadable paths are
told here, before anything is sent. ``ls`` is a table (NAME, VERSION, DIGEST, SIZE,
REQUIRES, CREATED; ``--format`` and ``-q`` as docker's), ``inspect`` prints the daemon's
documents, ``rm`` takes ``name:version`` (``-f`` detaches a capsule in use), ``prune``
asks first unless ``-f``; ``push REGISTRY/REPO:TAG`` sends the capsule the repository's
last part and the tag name (or ``-c name:version``) as an OCI artifact, ``pull`` fetches
one (the credentials of ``skiff login``, as for images). Errors are the daemon's, as the docker CLI prints them.
"""

from __future__ import annotations

import os

from skiff.cli.flags import (FORMAT_HELP, INSPECT_FORMAT_HELP, Command, filter_flag, flag,
                             option, repeated)
from skiff.cli.images import confirm
from skiff.cli.object_verbs import inspect_each, print_pruned, remove_each
from skiff.cli.template import Row, json_filters, render_rows
from skiff.errors import InvalidArgument, SkiffError
from skiff.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

    from skiff.cli.main import Context

CAPSULE_TABLE = ("table {{.Name}}\t{{.Version}}\t{{.Digest}}\t{{.Size}}\t{{.Requires}}"
                 "\t{{.CreatedSince}}")
CAPSULE_HEADERS = {"Name": "NAME", "Version": "VERSION", "Digest": "DIGEST", "Size": "SIZE",
                   "Requires": "REQUIRES", "CreatedSince": "CREATED", "Labels": "LABELS",
                   "UsedBy": "USED BY", "CreatedAt": "CREATED AT"}
PRUNE_WARNING = ("WARNING! This will remove all capsules not used by at least one container "
                 "(and not required by one that is).")


class CapsuleRow(Row):
    fields = ("CreatedAt", "CreatedSince", "Digest", "Labels", "Name", "Requires", "Size",
              "UsedBy", "Version")
    headers = CAPSULE_HEADERS
    type_name = "*formatter.capsuleContext"

    def __init__(self, capsule: dict[str, Any]) -> None:
        self.capsule = capsule

    def Name(self) -> str:
        return str(self.capsule.get("Name") or "")

    def Version(self) -> str:
        return str(self.capsule.get("Version") or "")

    def Digest(self) -> str:
        digest = str(self.capsule.get("Digest") or "")
        return digest.partition(":")[2][:12]

    def Size(self) -> str:
        return human_size(int(self.capsule.get("Size") or 0))

    def Requires(self) -> str:
        requires = self.capsule.get("Requires") or {}
        return ",".join(f"{k}@{v}" for k, v in requires.items())

    def Labels(self) -> str:
        labels = self.capsule.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in labels.items())

    def UsedBy(self) -> str:
        return ",".join(c[:12] for c in self.capsule.get("UsedBy") or [])

    def CreatedAt(self) -> str:
        return str(self.capsule.get("Created") or "")

    def CreatedSince(self) -> str:
        import calendar
        import time

        from skiff.cli.output import since

        created = self.CreatedAt()
        try:
            moment = calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            return ""
        return since(moment)


def _pairs(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, _, rest = value.partition("=")
        out[key] = rest
    return out


def _content_tar(paths: list[str], from_dir: str) -> IO[bytes]:
    """The content as a tar in an unlinked temporary file, at offset 0."""
    import tarfile
    import tempfile

    spool = tempfile.TemporaryFile()
    try:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            if from_dir:
                if not os.path.isdir(from_dir):
                    raise InvalidArgument(f"capsule content `{from_dir}`: not a folder")
                _add(tar, from_dir, ".")
            for spec in paths:
                source, colon, target = spec.partition(":")
                if not source:
                    raise InvalidArgument(f"invalid --path {spec!r}: expected SRC[:TARGET]")
                name = target if colon and target else \
                    os.path.basename(os.path.normpath(source))
                # the path named is followed; what is below it is taken as it is
                _add(tar, os.path.realpath(source) if os.path.exists(source) else source,
                     name, shown=source)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _add(tar: Any, source: str, name: str, shown: str = "") -> None:
    try:
        if not os.path.lexists(source):
            raise FileNotFoundError(2, "No such file or directory", shown or source)
        if not os.access(source, os.R_OK):
            raise PermissionError(13, "Permission denied", shown or source)
        tar.add(source, arcname=name)
    except OSError as e:
        where = e.filename or shown or source
        raise InvalidArgument(f"capsule content `{where}`: cannot read it: "
                              f"{e.strerror}") from None


def create(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff import jsonfast
    from skiff.cli.streams import binary_input

    cmd = Command(path, "[OPTIONS] [-]", "Create a capsule from files, a folder or a tar "
                  "archive on STDIN", [
                      option("name", "", "Capsule name"),
                      option("version", "", "Capsule version (a semantic version: 1.2.3)"),
                      repeated("path", "", "Add a file or folder (SRC[:TARGET])"),
                      option("from-dir", "", "Take the capsule's content from a folder"),
                      repeated("requires", "", "Require another capsule (name@range)"),
                      repeated("label", "", "Set metadata on the capsule"),
                  ], (0, 1))
    opts = cmd.parse(argv)
    if opts.args and opts.args[0] != "-":
        raise InvalidArgument(f"unexpected argument {opts.args[0]!r}: the content comes "
                              f"from --path, --from-dir or - (a tar on STDIN)")
    sources = bool(opts.path) + bool(opts.from_dir) + bool(opts.args)
    if sources != 1:
        raise InvalidArgument("give the capsule's content one way: --path (repeatable), "
                              "--from-dir or - (a tar on STDIN)")
    if not opts.name or not opts.version:
        raise InvalidArgument("a capsule needs --name and --version")
    query = {"name": opts.name, "version": opts.version,
             "requires": list(opts.requires) or None,
             "labels": jsonfast.dumps(_pairs(list(opts.label))) if opts.label else None}
    body = binary_input(ctx.stdin) if opts.args else \
        _content_tar(list(opts.path), opts.from_dir)
    try:
        doc = ctx.client.open("POST", "/capsules/create", query, body=body,
                              headers={"Content-Type": "application/x-tar"}).read()
    finally:
        if not opts.args:
            body.close()
    capsule = jsonfast.loads(doc) if doc.strip() else {}
    ctx.out.write(f"{capsule.get('Name', '')}:{capsule.get('Version', '')}\n")
    return 0


def ls(ctx: Context, path: str, argv: list[str]) -> int:
    prog = path.split(" ", 1)[0]
    cmd = Command(path, "[OPTIONS]", "List capsules", [
        filter_flag("f", "Filter output based on conditions provided (name, label, digest)"),
        option("format", "", FORMAT_HELP),
        flag("quiet", "q", "Only display name:version"),
    ], (0, 0), aliases=f"{prog} capsule ls, {prog} capsule list")
    opts = cmd.parse(argv)
    found = ctx.client.get("/capsules/json", {"filters": json_filters(list(opts.filter))})
    source = opts.format or "table"
    if source == "table":
        source = "{{.Name}}:{{.Version}}" if opts.quiet else CAPSULE_TABLE
    ctx.out.write(render_rows(source, [CapsuleRow(c) for c in found or []], CAPSULE_HEADERS))
    return 0


def inspect(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] CAPSULE [CAPSULE...]",
                  "Display detailed information on one or more capsules (name[:version])",
                  [option("format", "f", INSPECT_FORMAT_HELP)], (1, None))
    opts = cmd.parse(argv)
    return inspect_each(ctx, opts.args, lambda n: f"/capsules/{n}/json", opts.format)


def rm(ctx: Context, path: str, argv: list[str]) -> int:
    prog = path.split(" ", 1)[0]
    cmd = Command(path, "[OPTIONS] CAPSULE [CAPSULE...]", "Remove one or more capsules", [
        flag("force", "f", "Remove capsules in use too (they are detached first)"),
    ], (1, None), aliases=f"{prog} capsule rm, {prog} capsule remove")
    opts = cmd.parse(argv)
    return remove_each(ctx, opts.args, lambda n: f"/capsules/{n}", {"force": opts.force})


def prune(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS]", "Remove unused capsules", [
        filter_flag("", "Provide filter values (e.g. 'label=<label>')"),
        flag("force", "f", "Do not prompt for confirmation"),
    ], (0, 0))
    opts = cmd.parse(argv)
    if not opts.force and not confirm(ctx, PRUNE_WARNING):
        return 0
    report = ctx.client.post("/capsules/prune",
                             {"filters": json_filters(list(opts.filter))}) or {}
    return print_pruned(ctx, "Capsules", report.get("CapsulesDeleted") or [],
                        int(report.get("SpaceReclaimed") or 0))


def _registry_ref(text: str) -> Any:
    from skiff.errors import ReferenceError_
    from skiff.reference import parse_reference

    try:
        return parse_reference(text)
    except ReferenceError_ as exc:
        raise SkiffError(str(exc)) from None


def push(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.cli.transfer import auth_header

    cmd = Command(path, "[OPTIONS] REGISTRY/REPOSITORY:TAG",
                  "Push a capsule to a registry as an OCI artifact", [
                      option("capsule", "c", "The capsule to push (name:version; by default "
                             "the repository's last part at the tag's version)"),
                  ], (1, 1))
    opts = cmd.parse(argv)
    remote = opts.args[0]
    ref = _registry_ref(remote)
    capsule = opts.capsule or f"{ref.path.rsplit('/', 1)[-1]}:{ref.tag or ''}".rstrip(":")
    result = ctx.client.post(f"/capsules/{capsule}/push", {"remote": remote},
                             headers=auth_header(ctx, ref)) or {}
    ctx.out.write(f"{result.get('Capsule', capsule)} -> {remote}: digest: "
                  f"{result.get('Digest', '')} size: {result.get('Size', 0)}\n")
    return 0


def pull(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.cli.transfer import auth_header

    cmd = Command(path, "[OPTIONS] REGISTRY/REPOSITORY:TAG|@DIGEST",
                  "Pull a capsule from a registry", [], (1, 1))
    opts = cmd.parse(argv)
    remote = opts.args[0]
    doc = ctx.client.post("/capsules/pull", {"remote": remote},
                          headers=auth_header(ctx, _registry_ref(remote))) or {}
    ctx.out.write(f"{doc.get('Name', '')}:{doc.get('Version', '')} "
                  f"{doc.get('Digest', '')}\n")
    return 0
