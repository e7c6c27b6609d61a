"""`system df` and `system prune`: the space the daemon's objects take, and taking it back,
as the docker CLI prints them (cli/command/system/df.go, prune.go, formatter/disk_usage.go).

`df` reads ``/system/df`` once: by default one row per kind of object — ``TYPE TOTAL
ACTIVE SIZE RECLAIMABLE`` (an image is active while a container uses it, a container while
it runs, is paused or restarting, a volume while a container mounts it) — through
``--format`` too; ``-v`` lists every image, container, volume and build cache entry in its
own table (or hands the four lists, IDs whole, to ``--format``). `prune` asks once (unless ``-f``), then calls the prune route of each kind in
docker's order — containers, networks, volumes (with ``--volumes``), images (dangling ones,
every unused one with ``-a``), the build cache — and prints what each removed and the space
reclaimed in all. A daemon without a volumes route (404) gets a warning that no volumes were
pruned, and the rest goes on.
"""

from __future__ import annotations

from skiff.cli.flags import Command, filter_flag, flag, option
from skiff.cli.template import Row, json_filters, parse, render_rows
from skiff.errors import APIError
from skiff.units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.cli.main import Context

DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}
IMAGES_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t"
                "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}")
CONTAINERS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t"
                    "{{.RunningFor}}\t{{.Status}}\t{{.Names}}")
VOLUMES_TABLE = "table {{.Name}}\t{{.Links}}\t{{.Size}}"
CACHE_TABLE = ("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t"
               "{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}")
CACHE_HEADERS = {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
                 "CreatedSince": "CREATED", "LastUsedSince": "LAST USED",
                 "UsageCount": "USAGE", "Shared": "SHARED"}
_ACTIVE_STATES = ("running", "paused", "restarting")


class UsageRow(Row):
    """One kind of object in df's summary (diskUsage*Context)."""

    fields = ("Active", "Reclaimable", "Size", "TotalCount", "Type")
    headers = DF_HEADERS
    type_name = "*formatter.diskUsageContext"

    def __init__(self, kind: str, total: int, active: int, size: int, reclaimable: int,
                 percent: bool = True) -> None:
        self.kind, self.total, self.active = kind, total, active
        self.size, self.reclaimable, self.percent = size, reclaimable, percent

    def Type(self) -> str:
        return self.kind

    def TotalCount(self) -> str:
        return str(self.total)

    def Active(self) -> str:
        return str(self.active)

    def Size(self) -> str:
        return human_size(self.size)

    def Reclaimable(self) -> str:
        text = human_size(self.reclaimable)
        if self.percent and self.size > 0:
            return f"{text} ({self.reclaimable * 100 // self.size}%)"
        return text


def summary_rows(usage: dict[str, Any]) -> list[UsageRow]:
    """The four rows of df's summary, counted as docker's formatter counts them."""
    images = usage.get("Images") or []
    layers = int(usage.get("LayersSize") or 0)
    used = sum(int(i.get("Size") or 0) - int(i.get("SharedSize") or 0) for i in images
               if i.get("Containers") and i.get("Size", -1) != -1
               and i.get("SharedSize", -1) != -1)
    containers = usage.get("Containers") or []
    active = [c for c in containers if any(s in str(c.get("State") or "")
                                           for s in _ACTIVE_STATES)]
    rw = sum(int(c.get("SizeRw") or 0) for c in containers)
    rw_idle = rw - sum(int(c.get("SizeRw") or 0) for c in active)
    volumes = usage.get("Volumes") or []
    sizes = [((v.get("UsageData") or {}).get("Size", -1),
              (v.get("UsageData") or {}).get("RefCount", 0)) for v in volumes]
    volume_size = sum(size for size, _ in sizes if size != -1)
    volume_idle = sum(size for size, refs in sizes if size != -1 and refs == 0)
    caches = usage.get("BuildCache") or []
    cache_size = sum(int(c.get("Size") or 0) for c in caches if not c.get("Shared"))
    cache_idle = sum(int(c.get("Size") or 0) for c in caches
                     if not c.get("Shared") and not c.get("InUse"))
    return [
        UsageRow("Images", len(images), sum(1 for i in images if i.get("Containers")), layers,
                 layers - used),
        UsageRow("Containers", len(containers), len(active), rw, rw_idle),
        UsageRow("Local Volumes", len(volumes), sum(1 for _, refs in sizes if refs > 0),
                 volume_size, volume_idle),
        UsageRow("Build Cache", len(caches), sum(1 for c in caches if c.get("InUse")),
                 cache_size, cache_idle, percent=False),
    ]


def df(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[OPTIONS]", "Show skiff disk usage", [
        option("format", "", "Pretty-print images using a Go template"),
        flag("verbose", "v", "Show detailed information on space usage"),
    ], (0, 0))
    opts = cmd.parse(argv)
    usage = ctx.client.get("/system/df") or {}
    if opts.verbose:
        if opts.format in ("", "table"):
            ctx.out.write(VerboseUsage(usage, trunc=True).tables())
        else:  # the template sees the four lists, IDs whole, and no newline follows
            source = "{{json .}}" if opts.format == "json" else opts.format
            ctx.out.write(parse(source.replace("\\t", "\t").replace("\\n", "\n"))
                          .execute(VerboseUsage(usage, trunc=False)))
        return 0
    ctx.out.write(render_rows(opts.format or DF_TABLE, list(summary_rows(usage)), DF_HEADERS))
    return 0


class VerboseUsage(Row):
    """df -v: every image (by its first tag), container, volume and build cache entry."""

    fields = ("BuildCache", "Containers", "Images", "Volumes")
    type_name = "*formatter.diskUsageContext"

    def __init__(self, usage: dict[str, Any], trunc: bool) -> None:
        from skiff.cli.containers import ContainerRow
        from skiff.cli.images import ImageRow, _dangling
        from skiff.cli.volumes import VolumeRow
        from skiff.reference import familiar_parts

        self.images: list[Row] = []
        for image in usage.get("Images") or []:
            repo = tag = "<none>"
            tags = image.get("RepoTags") or []
            if tags and not _dangling(image):
                name, first_tag, _ = familiar_parts(tags[0])  # the first tag only, as docker
                if first_tag is not None:
                    repo, tag = name, first_tag
            self.images.append(ImageRow(image, repo, tag, "", trunc))
        # docker shows no virtual size here: only what each container wrote
        self.containers: list[Row] = [ContainerRow({**c, "SizeRootFs": 0}, trunc)
                                      for c in usage.get("Containers") or []]
        self.volumes: list[Row] = [VolumeRow(v) for v in usage.get("Volumes") or []]
        self.cache_size = sum(int(c.get("Size") or 0) for c in usage.get("BuildCache") or []
                              if not c.get("Shared"))

    def Images(self) -> list[Row]:
        return self.images

    def Containers(self) -> list[Row]:
        return self.containers

    def Volumes(self) -> list[Row]:
        return self.volumes

    def BuildCache(self) -> list[Row]:
        return []  # skiff keeps no build cache yet

    def as_json(self) -> str:
        parts = [f'"{name}":[' + ",".join(r.as_json() for r in rows) + "]"
                 for name, rows in (("Images", self.images), ("Containers", self.containers),
                                    ("Volumes", self.volumes), ("BuildCache", []))]
        return "{" + ",".join(parts) + "}"  # diskUsageContext's fields, in its order

    def tables(self) -> str:
        from skiff.cli.containers import PS_HEADERS
        from skiff.cli.images import IMAGE_HEADERS
        from skiff.cli.volumes import VOLUME_HEADERS

        return "".join([
            "Images space usage:\n\n", render_rows(IMAGES_TABLE, self.images, IMAGE_HEADERS),
            "\nContainers space usage:\n\n",
            render_rows(CONTAINERS_TABLE, self.containers, PS_HEADERS),
            "\nLocal Volumes space usage:\n\n",
            render_rows(VOLUMES_TABLE, self.volumes, VOLUME_HEADERS),
            f"\nBuild cache usage: {human_size(self.cache_size)}\n\n",
            render_rows(CACHE_TABLE, [], CACHE_HEADERS),
        ])


def _warning(opts: Any) -> str:
    """confirmationMessage: what will go, and the filters that choose it."""
    warnings = ["all stopped containers", "all networks not used by at least one container"]
    if opts.volumes:
        warnings.append("all volumes not used by at least one container")
    warnings.append("all images without at least one container associated to them"
                    if opts.all else "all dangling images")
    warnings.append("all build cache" if opts.all else "all dangling build cache")
    text = "WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in warnings)
    chosen = sorted(f for f in opts.filter
                    if f.partition("=")[0].strip().lower() in ("label", "label!", "until"))
    if chosen:
        text += ("\n  Items to be pruned will be filtered with:\n"
                 + "".join(f"  - {f}\n" for f in chosen))
    return text


def prune(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.cli import containers, images

    cmd = Command(path, "[OPTIONS]", "Remove unused data", [
        flag("all", "a", "Remove all unused images not just dangling ones"),
        filter_flag("", 'Provide filter values (e.g. "label=<key>=<value>")'),
        flag("force", "f", "Do not prompt for confirmation"),
        flag("volumes", "", "Prune volumes"),
    ], (0, 0))
    opts = cmd.parse(argv)
    if not opts.force and not images.confirm(ctx, _warning(opts)):
        return 0
    filters = json_filters(opts.filter)
    client = ctx.client
    reclaimed = 0

    def say(text: str) -> None:
        if text:
            ctx.out.write(text + "\n")
            ctx.out.flush()

    text, space = containers.prune_output(
        client.post("/containers/prune", {"filters": filters}) or {})
    say(text)
    reclaimed += space
    networks = (client.post("/networks/prune", {"filters": filters}) or {}).get(
        "NetworksDeleted") or []
    say("Deleted Networks:\n" + "".join(f"{n}\n" for n in networks) if networks else "")
    if opts.volumes:
        try:
            report = client.post("/volumes/prune", {"filters": filters}) or {}
        except APIError as e:
            if e.status != 404:
                raise
            ctx.warn(f"WARNING: volumes were not pruned: the daemon has no volumes route "
                     f"(POST /volumes/prune answered 404: {e.message})")
        else:
            deleted = report.get("VolumesDeleted") or []
            say("Deleted Volumes:\n" + "".join(f"{v}\n" for v in deleted) if deleted else "")
            reclaimed += int(report.get("SpaceReclaimed") or 0)
    text, space = images.prune_output(client.post("/images/prune", {
        "filters": json_filters(images.prune_filters(opts.filter, opts.all))}) or {})
    say(text)
    reclaimed += space
    cache = client.post("/build/prune", {"all": opts.all or None, "filters": filters}) or {}
    caches = cache.get("CachesDeleted") or []
    say("Deleted build cache objects:\n" + "".join(f"{c}\n" for c in caches) if caches else "")
    reclaimed += int(cache.get("SpaceReclaimed") or 0)
    ctx.out.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0
