"""`images` (`image ls`), `image inspect`/`inspect`, `history`, `tag`, `rmi` (`image rm`)
and `image prune`: the image commands that are one API call and a table.

Rows are docker's formatter contexts (cli/command/formatter/image.go, formatter_history.go):
one row per repository and tag, ``<none>`` for dangling images, digests in their own rows
only with `--digests`; the same fields for `--format` (``{{.Repository}}``, ``{{.ID}}``,
``{{json .}}``…), the same headers, widths and units. Names are checked and normalised as
the docker CLI does before the daemon sees them (`tag` sends ``docker.io/library/x``).
"""

from __future__ import annotations

from skiff.cli.flags import (INSPECT_FORMAT_HELP, FORMAT_HELP, Command, filter_flag, flag,
                             option)
from skiff.cli.output import ellipsis, go_time_string, indent_json, rfc3339, since, truncate_id
from skiff.cli.template import Row, json_filters, parse, render_rows
from skiff.errors import APIError, InvalidArgument, NotFound, SkiffError
from skiff.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.cli.main import Context

IMAGE_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}"
               "{{else}}N/A{{end}}\t{{.Size}}")
IMAGE_TABLE_DIGESTS = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{if .CreatedSince }}"
                       "{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}")
IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                 "Containers": "CONTAINERS", "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE",
                 "UniqueSize": "UNIQUE SIZE"}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_TABLE_RAW = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}
EPOCH_2000 = 946684800  # history shows no age for older times (docker's `epoch`)


class ImageRow(Row):
    fields = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository",
              "SharedSize", "Size", "Tag", "UniqueSize", "VirtualSize")
    headers = IMAGE_HEADERS
    type_name = "*formatter.imageContext"

    def __init__(self, image: dict[str, Any], repo: str, tag: str, digest: str,
                 trunc: bool) -> None:
        self.image, self.repo, self.tag, self.digest, self.trunc = image, repo, tag, digest, trunc

    def ID(self) -> str:
        image_id = self.image.get("Id") or ""
        return truncate_id(image_id) if self.trunc else image_id

    def Repository(self) -> str:
        return self.repo

    def Tag(self) -> str:
        return self.tag

    def Digest(self) -> str:
        return self.digest

    def CreatedSince(self) -> str:
        return since(self.image.get("Created") or 0)

    def CreatedAt(self) -> str:
        return go_time_string(self.image.get("Created") or 0)

    def Size(self) -> str:
        return human_size(self.image.get("Size") or 0, 3)

    def Containers(self) -> str:
        n = self.image.get("Containers", -1)
        return "N/A" if n is None or n == -1 else str(n)

    def VirtualSize(self) -> str:
        return human_size(self.image.get("Size") or 0)

    def SharedSize(self) -> str:
        shared = self.image.get("SharedSize", -1)
        return "N/A" if shared is None or shared == -1 else human_size(shared)

    def UniqueSize(self) -> str:
        size, shared = self.image.get("Size", -1), self.image.get("SharedSize", -1)
        if size in (None, -1) or shared in (None, -1):
            return "N/A"
        return human_size(size - shared)


def _dangling(image: dict[str, Any]) -> bool:
    tags, digests = image.get("RepoTags") or [], image.get("RepoDigests") or []
    if not tags and not digests:
        return True
    return tags == ["<none>:<none>"] and digests == ["<none>@<none>"]


def image_rows(images: list[dict[str, Any]], trunc: bool, show_digests: bool,
               need_digest: bool) -> list[ImageRow]:
    """formatter.imageFormat: a row per repository:tag (per digest too when digests show)."""
    from skiff.reference import familiar_parts

    rows: list[ImageRow] = []
    for image in images:
        if _dangling(image):
            rows.append(ImageRow(image, "<none>", "<none>", "<none>", trunc))
            continue
        tags: dict[str, list[str]] = {}
        digests: dict[str, list[str]] = {}
        for ref in image.get("RepoTags") or []:
            name, tag, _ = familiar_parts(ref)
            if tag is not None:
                tags.setdefault(name, []).append(tag)
        for ref in image.get("RepoDigests") or []:
            name, _, digest = familiar_parts(ref)
            if digest is not None:
                digests.setdefault(name, []).append(digest)
        for repo, repo_tags in tags.items():
            repo_digests = digests.pop(repo, [])
            if not need_digest:
                repo_digests = []
            for tag in repo_tags:
                if not repo_digests:
                    rows.append(ImageRow(image, repo, tag, "<none>", trunc))
                for digest in repo_digests:
                    rows.append(ImageRow(image, repo, tag, digest, trunc))
        for repo, repo_digests in digests.items():
            if show_digests:
                rows += [ImageRow(image, repo, "<none>", d, trunc) for d in repo_digests]
            else:
                rows.append(ImageRow(image, repo, "<none>", "", trunc))
    return rows


LIST_FLAGS = [
    flag("all", "a", "Show all images (default hides intermediate images)"),
    flag("digests", "", "Show digests"),
    filter_flag(),
    option("format", "", FORMAT_HELP),
    flag("no-trunc", "", "Don't truncate output"),
    flag("quiet", "q", "Only show image IDs"),
]


def images(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] [REPOSITORY[:TAG]]", "List images", LIST_FLAGS, (0, 1),
                  aliases=f"{_prog(path)} image ls, {_prog(path)} image list, {_prog(path)} images")
    opts = cmd.parse(argv)
    filters = list(opts.filter) + ([f"reference={opts.args[0]}"] if opts.args else [])
    found = ctx.client.get("/images/json", {"all": opts.all, "filters": json_filters(filters)})
    source = opts.format
    if not source:
        configured = "" if opts.quiet else _config_format(ctx, "imagesFormat")
        source = configured or "table"
    if source == "table":
        source = "{{.ID}}" if opts.quiet else IMAGE_TABLE_DIGESTS if opts.digests else IMAGE_TABLE
    elif source.startswith("table") and opts.digests and "{{.Digest}}" not in source:
        source += "\t{{.Digest}}"
    need_digest = opts.digests or "{{.Digest}}" in source
    rows = image_rows(found or [], not opts.no_trunc, opts.digests, need_digest)
    ctx.out.write(render_rows(source, list(rows), IMAGE_HEADERS))
    return 0


def _prog(path: str) -> str:
    return path.split(" ", 1)[0]


def _config_format(ctx: Context, key: str) -> str:
    try:
        value = ctx.config().data.get(key)
    except SkiffError:
        return ""
    return value if isinstance(value, str) else ""


# -- inspect ------------------------------------------------------------------------------
def image_inspect(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] IMAGE [IMAGE...]",
                  "Display detailed information on one or more images",
                  [option("format", "f", INSPECT_FORMAT_HELP)], (1, None))
    opts = cmd.parse(argv)
    return _inspect(ctx, opts.args, opts.format, generic=False)


def inspect(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] NAME|ID [NAME|ID...]",
                  "Return low-level information on Docker objects",
                  [option("format", "f", INSPECT_FORMAT_HELP),
                   flag("size", "s", "Display total file sizes if the type is container"),
                   option("type", "", "Only inspect objects of the given type")], (1, None))
    opts = cmd.parse(argv)
    if opts.given("type") and opts.type not in ("container", "image"):
        raise InvalidArgument(f'"{opts.type}" is not a valid value for --type '
                              "(skiff's inspect knows containers and images)")
    return _inspect(ctx, opts.args, opts.format, generic=True,
                    kinds=(opts.type,) if opts.type else ("container", "image"),
                    size=opts.size)


def _inspect(ctx: Context, names: list[str], source: str, generic: bool,
             kinds: tuple[str, ...] = ("image",), size: bool = False) -> int:
    found: list[str] = []  # the daemon's answers as it wrote them
    errors: list[str] = []
    for name in names:
        # docker's inspect without --type: a container first, then an image
        for kind in kinds:
            path = f"/containers/{name}/json" if kind == "container" else f"/images/{name}/json"
            query = {"size": size} if kind == "container" else None
            try:
                found.append(ctx.client.open("GET", path, query).read().decode().strip())
                break
            except APIError as exc:
                # docker's isErrSkippable: try the next kind of object
                skippable = isinstance(exc, NotFound) or (
                    generic and "invalid reference format" in exc.message)
                if not skippable:
                    errors.append(str(exc))
                    break
                if kind == kinds[-1]:
                    errors.append(f"Error: No such object: {name}" if generic else str(exc))
    return print_inspected(ctx, found, errors, source)


def print_inspected(ctx: Context, found: list[str], errors: list[str], source: str) -> int:
    """What docker's inspect prints: the daemon's answers (`found`, raw JSON texts) laid out
    or through `source`, then the errors (exit 1)."""
    from skiff import jsonfast

    if not source or source == "json":
        # docker's IndentedInspector: the raw answers in a list, laid out by json.Indent
        ctx.out.write((indent_json("[" + ",".join(found) + "]") if found else "[]") + "\n")
    else:
        tmpl = parse(source.replace("\\t", "\t").replace("\\n", "\n"))
        for raw in found:
            ctx.out.write(tmpl.execute(jsonfast.loads(raw)) + "\n")
    if errors:
        ctx.out.flush()
        raise SkiffError("\n".join(errors))
    return 0


# -- history ------------------------------------------------------------------------------
class HistoryRow(Row):
    fields = ("Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size")
    headers = HISTORY_HEADERS
    type_name = "*image.historyContext"

    def __init__(self, item: dict[str, Any], trunc: bool, human: bool) -> None:
        self.item, self.trunc, self.human = item, trunc, human

    def ID(self) -> str:
        value = self.item.get("Id") or ""
        return truncate_id(value) if self.trunc and value != "<missing>" else value

    def CreatedAt(self) -> str:
        return rfc3339(self.item.get("Created") or 0)

    def CreatedSince(self) -> str:
        if not self.human:
            return self.CreatedAt()
        created = self.item.get("Created") or 0
        return since(created) if created > EPOCH_2000 else "N/A"

    def CreatedBy(self) -> str:
        text = (self.item.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(text, 45) if self.trunc else text

    def Size(self) -> str:
        size = self.item.get("Size") or 0
        return human_size(size, 3) if self.human else str(size)

    def Comment(self) -> str:
        return self.item.get("Comment") or ""


def history(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS] IMAGE", "Show the history of an image", [
        option("format", "", FORMAT_HELP),
        flag("human", "H", "Print sizes and dates in human readable format", default=True),
        flag("no-trunc", "", "Don't truncate output"),
        flag("quiet", "q", "Only show image IDs"),
    ], (1, 1), aliases=f"{_prog(path)} image history, {_prog(path)} history")
    opts = cmd.parse(argv)
    items = ctx.client.get(f"/images/{opts.args[0]}/history") or []
    source = opts.format or "table"
    if source == "table":
        source = "{{.ID}}" if opts.quiet else HISTORY_TABLE if opts.human else HISTORY_TABLE_RAW
    rows = [HistoryRow(item, not opts.no_trunc, opts.human) for item in items]
    ctx.out.write(render_rows(source, list(rows), HISTORY_HEADERS))
    return 0


# -- tag, rmi, prune ----------------------------------------------------------------------
def tag(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.errors import ReferenceError_
    from skiff.reference import check_any, parse_reference

    cmd = Command(path, "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
                  "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", [], (2, 2),
                  aliases=f"{_prog(path)} image tag, {_prog(path)} tag")
    source, target = cmd.parse(argv).args
    try:
        check_any(source)
    except ReferenceError_ as exc:
        raise InvalidArgument(
            f'Error parsing reference: "{source}" is not a valid repository/tag: {exc}') from None
    try:
        ref = parse_reference(target)
    except ReferenceError_ as exc:
        raise InvalidArgument(
            f'Error parsing reference: "{target}" is not a valid repository/tag: {exc}') from None
    if ref.digest:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    ref = ref.with_default_tag()
    ctx.client.open("POST", f"/images/{source}/tag", {"repo": ref.name, "tag": ref.tag}).read()
    return 0


def rmi(ctx: Context, path: str, argv: list[str]) -> int:
    prog = _prog(path)
    cmd = Command(path, "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", [
        flag("force", "f", "Force removal of the image"),
        flag("no-prune", "", "Do not delete untagged parents"),
    ], (1, None), aliases=f"{prog} image rm, {prog} image remove, {prog} rmi")
    opts = cmd.parse(argv)
    errors = []
    for name in opts.args:
        try:
            report = ctx.client.delete(f"/images/{name}",
                                       {"force": opts.force, "noprune": opts.no_prune})
        except APIError as exc:
            errors.append(str(exc))
            continue
        for item in report or []:
            if item.get("Untagged"):
                ctx.out.write(f"Untagged: {item['Untagged']}\n")
            if item.get("Deleted"):
                ctx.out.write(f"Deleted: {item['Deleted']}\n")
    if errors:
        ctx.out.flush()
        raise SkiffError("\n".join(errors))
    return 0


PRUNE_WARNING = "WARNING! This will remove all dangling images."
PRUNE_ALL_WARNING = ("WARNING! This will remove all images without at least one container "
                     "associated to them.")


def confirm(ctx: Context, message: str) -> bool:
    """command.PromptForConfirmation: the question on stdout, yes only for ``y``/``Y``."""
    ctx.out.write(f"{message}\nAre you sure you want to continue? [y/N] ")
    ctx.out.flush()
    answer = ctx.stdin.readline()
    return answer.strip() in ("y", "Y")


def prune(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS]", "Remove unused images", [
        flag("all", "a", "Remove all unused images, not just dangling ones"),
        filter_flag("", 'Provide filter values (e.g. "until=<timestamp>")'),
        flag("force", "f", "Do not prompt for confirmation"),
    ], (0, 0))
    opts = cmd.parse(argv)
    if not opts.force and not confirm(ctx, PRUNE_ALL_WARNING if opts.all else PRUNE_WARNING):
        return 0
    filters = prune_filters(opts.filter, opts.all)
    report = ctx.client.post("/images/prune", {"filters": json_filters(filters)}) or {}
    text, reclaimed = prune_output(report)
    if text:
        ctx.out.write(text + "\n")
    ctx.out.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0


def prune_filters(values: list[str], all: bool) -> list[str]:
    """image.RunPrune's filters: the user's, with ``dangling`` set by `all`."""
    filters = [f for f in values if not f.lower().startswith("dangling=")]
    filters.append("dangling=false" if all else "dangling=true")
    return filters


def prune_output(report: dict[str, Any]) -> tuple[str, int]:
    """image.RunPrune's output and the space it reclaimed."""
    deleted = report.get("ImagesDeleted") or []
    lines = ["Deleted Images:"] if deleted else []
    for item in deleted:
        if item.get("Untagged"):
            lines.append(f"untagged: {item['Untagged']}")
        if item.get("Deleted"):
            lines.append(f"deleted: {item['Deleted']}")
    return "".join(line + "\n" for line in lines), int(report.get("SpaceReclaimed") or 0)
