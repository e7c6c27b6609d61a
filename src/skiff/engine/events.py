"""The engine's event log: what happened to containers, images, volumes and the daemon, in
Docker's event shape, for ``GET /events`` and ``skiff events``.

Every service holds the engine's one `EventLog` and calls `emit(type, action, actor_id,
attributes)` where dockerd's ``LogContainerEvent``/``LogImageEvent``/``LogVolumeEvent``
would; the log stamps the time (seconds and nanoseconds, as Docker's ``time`` and
``timeNano``), keeps the latest `LIMIT` events and wakes whoever waits for new ones. `since`
hands out what is kept after a moment, and `wait_after` blocks until there is something
newer than the last one seen (or a timeout); `subscribe` gives what is kept and, from the
same instant, calls a listener with every new event (so a streamed ``/events`` misses none
between its replay and its live part). `actor_attributes` makes the attributes dockerd's
LogContainerEvent and LogImageEvent send (the labels, image and name).

The log lives in memory, as dockerd's does: a restarted skiffd starts with an empty one
(the exits it finds at reconcile are told in the new log).
"""

from __future__ import annotations

import threading
import time
from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    Listener = Callable[["Event"], None]

LIMIT = 1024  # events kept in memory (moby keeps 256: a longer look back costs little here)


class Event:
    """One event; `message()` is its JSON document as the Engine API sends it."""

    __slots__ = ("type", "action", "actor_id", "attributes", "time_nano", "seq")

    def __init__(self, type: str, action: str, actor_id: str, attributes: dict[str, str],
                 time_nano: int, seq: int) -> None:
        self.type = type
        self.action = action
        self.actor_id = actor_id
        self.attributes = attributes
        self.time_nano = time_nano
        self.seq = seq

    def message(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.type in ("container", "image"):  # the pre-1.22 fields, still sent by dockerd
            legacy = {"status": self.action, "id": self.actor_id,
                      "from": self.attributes.get("image", "") if self.type == "container"
                      else ""}
            doc.update((k, v) for k, v in legacy.items() if v)  # Go's omitempty
        doc.update(Type=self.type, Action=self.action,
                   Actor={"ID": self.actor_id, "Attributes": dict(self.attributes)},
                   scope="local", time=self.time_nano // 1_000_000_000, timeNano=self.time_nano)
        return doc


class EventLog:
    """The kept events and the condition their waiters sleep on."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._events: deque[Event] = deque(maxlen=limit)
        self._cond = threading.Condition()
        self._seq = 0
        self._listeners: list[Listener] = []

    def emit(self, type: str, action: str, actor_id: str,
             attributes: dict[str, str] | None = None) -> Event:
        with self._cond:
            self._seq += 1
            event = Event(type, action, actor_id, dict(attributes or {}), time.time_ns(),
                          self._seq)
            self._events.append(event)
            # under the lock, so that every listener hears the events in their order
            for listener in self._listeners:
                listener(event)
            self._cond.notify_all()
        return event

    def subscribe(self, listener: Listener) -> tuple[list[Event], Callable[[], None]]:
        """The kept events, and from then on `listener` called with each new one (quickly:
        it runs under the log's lock, in the emitting thread); the second item unsubscribes."""
        with self._cond:
            self._listeners.append(listener)
            kept = list(self._events)

        def unsubscribe() -> None:
            with self._cond:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return kept, unsubscribe

    def listeners(self) -> int:
        """How many subscribers there are (``/info``'s NEventsListener)."""
        with self._cond:
            return len(self._listeners)

    def since(self, after_seq: int = 0, since_nano: int = 0) -> list[Event]:
        """The kept events newer than `after_seq` and not before `since_nano`, oldest first."""
        with self._cond:
            return [e for e in self._events if e.seq > after_seq and e.time_nano >= since_nano]

    def last_seq(self) -> int:
        with self._cond:
            return self._seq

    def wait_after(self, seq: int, timeout: float | None) -> bool:
        """Block until an event after `seq` is emitted; False when `timeout` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._seq > seq, timeout)


def actor_attributes(labels: Mapping[str, str] | None, more: Mapping[str, str] | None = None,
                     **named: str) -> dict[str, str]:
    """An actor's attributes as dockerd builds them: the event's own, the labels over them
    (moby's copyAttributes), then the `named` ones (``image``, ``name``) over both."""
    attributes = dict(more or {})
    attributes.update({str(k): str(v) for k, v in (labels or {}).items()})
    attributes.update(named)
    return attributes
