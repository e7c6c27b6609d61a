"""The engine's event log: what happened to containers, images, volumes and the daemon, in
Docker's event shape, for ``GET /events`` and ``skiff events``.

Every service holds the engine's one `EventLog` and calls `emit(type, action, actor_id,
attributes)` where dockerd's ``LogContainerEvent``/``LogImageEvent``/``LogVolumeEvent``
would; the log stamps the time (seconds and nanoseconds, as Docker's ``time`` and
``timeNano``), keeps the latest `LIMIT` events and wakes whoever waits for new ones. `since`
hands out what is kept after a moment, and `wait_after` blocks until there is something
newer than the last one seen (or a timeout), so a streamed ``/events`` is a loop of the two.
"""

from __future__ import annotations

import threading
import time
from collections import deque

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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
            doc["status"] = self.action
            doc["id"] = self.actor_id
            if self.type == "container" and "image" in self.attributes:
                doc["from"] = self.attributes["image"]
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

    def emit(self, type: str, action: str, actor_id: str,
             attributes: dict[str, str] | None = None) -> Event:
        with self._cond:
            self._seq += 1
            event = Event(type, action, actor_id, dict(attributes or {}), time.time_ns(),
                          self._seq)
            self._events.append(event)
            self._cond.notify_all()
        return event

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
