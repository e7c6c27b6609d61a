"""`events` (and `system events`): the daemon's events as they happen, as docker prints them
(cli/command/system/events.go).

``--since`` and ``--until`` go through the docker client's GetTimestamp (a duration ago, an
RFC 3339 time, Unix seconds) before they are sent, so skiff asks a real Docker Engine the
same; ``--filter`` values go as the API's filters JSON. Each event is printed as it comes:
docker's line ``<time> <type> <action> <actor id> (k=v, …)`` with the attributes sorted
and the time in RFC3339NanoFixed in local time, or through ``--format`` (``{{json .}}``,
``{{.Actor.Attributes.name}}``, ``json``). The stream ends when the daemon ends it (at
``--until``, or when it stops); Ctrl-C ends it too.
"""

from __future__ import annotations

import time

from skiff.cli.flags import Command, filter_flag, option
from skiff.cli.output import go_json, rfc3339
from skiff.cli.template import Row, json_filters, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from skiff.cli.main import Context

FORMAT_HELP = ("Format output using a custom template:\n'json':             Print in JSON "
               "format\n'TEMPLATE':         Print output using the given Go template.\nRefer "
               "to https://docs.docker.com/go/formatting/ for more information about "
               "formatting output with templates")


class EventRow(Row):
    """events.Message as a template sees it: its Go fields, and its wire JSON for json."""

    fields = ("Status", "ID", "From", "Type", "Action", "Actor", "Scope", "Time", "TimeNano")
    type_name = "events.Message"

    def __init__(self, message: dict[str, Any]) -> None:
        self.m = message

    def Status(self) -> str:
        return str(self.m.get("status") or "")

    def ID(self) -> str:
        return str(self.m.get("id") or "")

    def From(self) -> str:
        return str(self.m.get("from") or "")

    def Type(self) -> str:
        return str(self.m.get("Type") or "")

    def Action(self) -> str:
        return str(self.m.get("Action") or "")

    def Actor(self) -> dict[str, Any]:
        actor = self.m.get("Actor") or {}
        return {"ID": str(actor.get("ID") or ""),
                "Attributes": dict(sorted((actor.get("Attributes") or {}).items()))}

    def Scope(self) -> str:
        return str(self.m.get("scope") or "")

    def Time(self) -> int:
        return int(self.m.get("time") or 0)

    def TimeNano(self) -> int:
        return int(self.m.get("timeNano") or 0)

    def as_json(self) -> str:
        doc: dict[str, Any] = {}
        for key, value in (("status", self.Status()), ("id", self.ID()), ("from", self.From())):
            if value:  # omitempty
                doc[key] = value
        doc.update(Type=self.Type(), Action=self.Action(), Actor=self.Actor(),
                   scope=self.Scope(), time=self.Time(), timeNano=self.TimeNano())
        return go_json(doc)


def event_line(message: dict[str, Any]) -> str:
    """prettyPrintEvent: the time, type, action, actor and its sorted attributes."""
    row = EventRow(message)
    nanos = row.TimeNano() or row.Time() * 1_000_000_000
    head = f"{rfc3339_nano_fixed(nanos)} " if nanos else ""
    line = f"{head}{row.Type()} {row.Action()} {row.Actor()['ID']}"
    attributes = row.Actor()["Attributes"]
    if attributes:
        line += " (" + ", ".join(f"{k}={v}" for k, v in attributes.items()) + ")"
    return line


def rfc3339_nano_fixed(nanos: int) -> str:
    """Go's ``2006-01-02T15:04:05.000000000Z07:00`` of a moment, in local time."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    return rfc3339(seconds, fraction)


def events(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.cli.containers import api_timestamp

    prog = path.split(" ", 1)[0]
    cmd = Command(path, "[OPTIONS]", "Get real time events from the server", [
        filter_flag(),
        option("format", "", FORMAT_HELP),
        option("since", "", "Show all events created since timestamp"),
        option("until", "", "Stream events until this timestamp"),
    ], (0, 0), aliases=f"{prog} system events, {prog} events")
    opts = cmd.parse(argv)
    now = time.time()
    query = {"since": api_timestamp(opts.since, now) if opts.since else None,
             "until": api_timestamp(opts.until, now) if opts.until else None,
             "filters": json_filters(opts.filter)}
    source = opts.format
    template = parse(("{{json .}}" if source == "json" else source)
                     .replace("\\t", "\t").replace("\\n", "\n")) if source else None
    for message in ctx.client.stream("GET", "/events", query):
        text = event_line(message) if template is None else template.execute(EventRow(message))
        ctx.out.write(text + "\n")
        ctx.out.flush()
    return 0
