"""Which events a ``GET /events`` subscriber gets: moby's events filter and its times.

`EventFilter` is moby's daemon/events Filter over a `Filters` set: every key given must
match — ``event`` the action (by prefix once ``health_status``, ``exec_create`` or
``exec_start`` is among the values, as moby does for ``health_status: healthy``), ``type``
exactly, ``scope`` exactly, ``label`` every ``key``/``key=value`` among the actor's
attributes, ``image`` the actor (image events) or its ``image`` attribute (container
events), with or without the tag, and each object key (``container``, ``volume``,
``network``, ``daemon``, ``plugin``, ``config``, ``secret``, ``node``, ``service``, and
skiff's ``capsule``) the actor's ID or ``name`` attribute by prefix. skiff has no swarm or plugins, so a filter on
those objects is accepted and matches nothing. A key moby would silently ignore is refused
with Docker's ``invalid filter`` words instead, so a typo does not stream everything.

`event_time` reads ``since`` and ``until``: the ``seconds[.nanoseconds]`` the docker CLI
sends, and for other clients the forms ``--since`` takes on the command line (RFC 3339, a
date, a duration before now such as ``10m``), as nanoseconds.
"""

from __future__ import annotations

import re

from skiff.engine.filters import Filters, until_timestamp
from skiff.errors import InvalidArgument, ReferenceError_

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.engine.events import Event

OBJECT_KEYS = ("container", "volume", "network", "daemon", "plugin", "config", "secret",
               "node", "service", "capsule")
EVENT_FILTERS = ("event", "type", "scope", "label", "image", *OBJECT_KEYS)
_PREFIX_ACTIONS = ("health_status", "exec_create", "exec_start")
_UNIX = re.compile(r"(\d+)(?:\.(\d{0,9}))?")


class EventFilter:
    """moby's events.Filter: `include(event)` when every filter given holds."""

    def __init__(self, filters: Filters) -> None:
        filters.validate(EVENT_FILTERS)
        self.f = filters
        self._fuzzy_event = any(v in _PREFIX_ACTIONS for v in filters.get("event"))

    def include(self, event: Event) -> bool:
        f = self.f
        if not (self._fuzzy(f, "event", event.action) if self._fuzzy_event
                else f.exact_match("event", event.action)):
            return False
        if not (f.exact_match("type", event.type) and f.exact_match("scope", "local")):
            return False
        name = event.attributes.get("name", "")
        for key in OBJECT_KEYS:
            if f.contains(key) and not (self._fuzzy(f, key, event.actor_id)
                                        or self._fuzzy(f, key, name)):
                return False
        return self._image_matches(event) and f.match_kv_list("label", event.attributes)

    @staticmethod
    def _fuzzy(f: Filters, key: str, source: str) -> bool:
        """filters.Args.FuzzyMatch: absent, equal, or a value that starts `source`."""
        values = f.get(key)
        return not values or any(source.startswith(v) for v in values)

    def _image_matches(self, event: Event) -> bool:
        values = self.f.get("image")
        if not values:
            return True
        name = event.attributes.get("name" if event.type == "image" else "image", "")
        candidates = {event.actor_id, name, _strip_tag(event.actor_id), _strip_tag(name)}
        return any(v in candidates for v in values)


def _strip_tag(image: str) -> str:
    """The familiar repository of an image reference; the text itself if it is not one."""
    from skiff.reference import parse_reference

    try:
        return parse_reference(image).familiar_name
    except (ReferenceError_, InvalidArgument, ValueError):
        return image


def event_time(text: str, now: float | None = None) -> int | None:
    """``since``/``until`` in nanoseconds since the epoch; None when not given."""
    if not text:
        return None
    found = _UNIX.fullmatch(text)
    if found:
        return int(found[1]) * 1_000_000_000 + int((found[2] or "").ljust(9, "0"))
    # datetime and a float of seconds hold microseconds exactly, not nanoseconds
    return round(until_timestamp(text, now) * 1e6) * 1000
