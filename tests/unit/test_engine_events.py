"""The event log and moby's events filter: the message shape against the spec's
EventMessage, the attributes as dockerd builds them, subscribe's replay-then-live without a
gap, the kept limit, each filter key's matching (prefix for objects and for health_status,
tags stripped for images, labels over all attributes) and the times ``since``/``until``
take."""

from __future__ import annotations

import threading

import pytest

from fixtures_daemon import check_api_shape
from skiff.engine.event_filter import EventFilter, event_time
from skiff.engine.events import Event, EventLog, actor_attributes
from skiff.engine.filters import Filters
from skiff.errors import InvalidArgument

CID = "c0ffee" + "0" * 58
IMAGE_ID = "sha256:" + "ab" * 32
LEGACY = ("status", "id", "from")


def container_event(action: str = "start", **more: str) -> Event:
    attributes = actor_attributes({"app": "web", "tier": "front"}, more, image="busybox:1.36",
                                  name="web-1")
    return Event("container", action, CID, attributes, 1_700_000_000_123_456_789, 1)


def image_event(action: str = "tag", name: str = "busybox:latest") -> Event:
    return Event("image", action, IMAGE_ID, {"name": name, "maintainer": "me"}, 1, 2)


def includes(subject: Event, **filters: list[str]) -> bool:
    return EventFilter(Filters(filters)).include(subject)


# -- the message --------------------------------------------------------------------------------
def test_a_container_event_has_dockers_fields_and_the_spec_shape() -> None:
    doc = container_event("die", exitCode="3").message()
    assert doc["status"] == "die" and doc["id"] == CID and doc["from"] == "busybox:1.36"
    assert doc["Type"] == "container" and doc["Action"] == "die" and doc["scope"] == "local"
    assert doc["Actor"] == {"ID": CID, "Attributes": {
        "app": "web", "tier": "front", "exitCode": "3", "image": "busybox:1.36",
        "name": "web-1"}}
    assert doc["time"] == 1_700_000_000 and doc["timeNano"] == 1_700_000_000_123_456_789
    check_api_shape({k: v for k, v in doc.items() if k not in LEGACY}, "EventMessage")


def test_an_image_event_has_no_from_and_a_prune_no_legacy_fields_but_its_own() -> None:
    doc = image_event().message()
    assert "from" not in doc and doc["status"] == "tag"
    check_api_shape({k: v for k, v in doc.items() if k not in LEGACY}, "EventMessage")
    log = EventLog()
    prune = log.emit("volume", "prune", "", {"reclaimed": "0"}).message()
    assert not set(LEGACY) & set(prune)
    check_api_shape(prune, "EventMessage")
    # a container prune has no actor: its empty id is left out, as Go's omitempty does
    prune = log.emit("container", "prune", "", {"reclaimed": "0"}).message()
    assert prune["status"] == "prune" and "id" not in prune and "from" not in prune


def test_labels_override_event_attributes_and_image_and_name_override_labels() -> None:
    # moby's copyAttributes: the labels over the event's own; then image and name
    got = actor_attributes({"exitCode": "label", "name": "label", "x": "1"},
                           {"exitCode": "0"}, name="real", image="busybox")
    assert got == {"exitCode": "label", "name": "real", "x": "1", "image": "busybox"}


# -- the log ------------------------------------------------------------------------------------
def test_subscribe_replays_what_is_kept_then_hears_each_new_event_in_order() -> None:
    log = EventLog(limit=3)
    for n in range(5):
        log.emit("container", "start", f"id{n}")
    heard: list[Event] = []
    kept, unsubscribe = log.subscribe(heard.append)
    assert [e.actor_id for e in kept] == ["id2", "id3", "id4"]  # the limit
    assert log.listeners() == 1
    threads = [threading.Thread(target=log.emit, args=("container", "die", f"t{n}"))
               for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.seq for e in heard] == sorted(e.seq for e in heard) and len(heard) == 20
    unsubscribe()
    unsubscribe()  # twice is harmless
    log.emit("container", "destroy", "late")
    assert len(heard) == 20 and log.listeners() == 0


def test_since_and_wait_after() -> None:
    log = EventLog()
    first = log.emit("image", "pull", "busybox:latest", {"name": "busybox"})
    second = log.emit("image", "tag", IMAGE_ID, {"name": "x:1"})
    assert log.since(first.seq) == [second]
    assert log.since(0, since_nano=second.time_nano) == [second]
    assert not log.wait_after(log.last_seq(), 0.01)
    assert log.wait_after(first.seq, 0)


# -- the filter ---------------------------------------------------------------------------------
def test_no_filter_includes_everything() -> None:
    assert includes(container_event()) and includes(image_event())


def test_event_is_exact_unless_a_prefix_action_is_asked() -> None:
    assert includes(container_event("start"), event=["start", "die"])
    assert not includes(container_event("start"), event=["sta"])
    health = container_event("health_status: healthy")
    assert not includes(health, event=["health_status: unhealthy"])
    assert includes(health, event=["health_status"])
    assert includes(container_event("exec_start: sh -c true"), event=["exec_start"])


def test_type_and_scope() -> None:
    assert includes(image_event(), type=["image"])
    assert not includes(container_event(), type=["image", "volume"])
    assert includes(container_event(), scope=["local"])
    assert not includes(container_event(), scope=["swarm"])


def test_container_by_name_or_id_prefix_and_not_other_types() -> None:
    assert includes(container_event(), container=["web-1"])
    assert includes(container_event(), container=["web"])  # moby's FuzzyMatch: a prefix
    assert includes(container_event(), container=[CID[:12]])
    assert not includes(container_event(), container=["db"])
    assert not includes(image_event(), container=["web-1"])


def test_image_matches_the_actor_or_the_containers_image_with_or_without_its_tag() -> None:
    assert includes(container_event(), image=["busybox:1.36"])
    assert includes(container_event(), image=["busybox"])
    assert not includes(container_event(), image=["alpine"])
    assert includes(image_event(), image=["busybox"])
    assert includes(image_event(), image=[IMAGE_ID])
    assert not includes(image_event(name="alpine:3"), image=["busybox"])


def test_label_needs_every_value_among_the_attributes() -> None:
    assert includes(container_event(), label=["app=web", "tier"])
    assert not includes(container_event(), label=["app=db"])
    assert not includes(container_event(), label=["app=web", "missing"])
    assert includes(image_event(), label=["maintainer=me"])


def test_swarm_and_plugin_objects_are_accepted_and_match_nothing_here() -> None:
    for key in ("config", "secret", "node", "service", "plugin", "network", "volume",
                "daemon"):
        assert not includes(container_event(), **{key: ["x"]}), key


def test_an_unknown_filter_is_dockers_400() -> None:
    with pytest.raises(InvalidArgument, match="invalid filter 'evnt'"):
        EventFilter(Filters({"evnt": ["start"]}))
    with pytest.raises(InvalidArgument, match="invalid filters"):
        Filters.parse("{not json")


# -- times --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, nanos", [
    ("1700000000", 1_700_000_000_000_000_000),
    ("1700000000.5", 1_700_000_000_500_000_000),
    ("1700000000.000000001", 1_700_000_000_000_000_001),
    ("0", 0),
    ("2023-11-14T22:13:20Z", 1_700_000_000_000_000_000),
    ("2023-11-14T22:13:20.25Z", 1_700_000_000_250_000_000),
    ("10m", 1_700_000_000_000_000_000 - 600 * 1_000_000_000),
])
def test_event_time(text: str, nanos: int) -> None:
    assert event_time(text, now=1_700_000_000.0) == nanos


def test_event_time_absent_and_bad() -> None:
    assert event_time("") is None
    with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
        event_time("yesterday")
