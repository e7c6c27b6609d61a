"""How containers look from outside (`container_views`): Docker's status texts, its list
filters, and the inspect and list shapes against the Engine API v1.41 spec."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from fixtures_daemon import ENGINE_API_SPEC, _nullable_fields, api_definitions, check_api_shape

from skiff.engine.container_config import parse_create
from skiff.engine.container_views import (ListFilter, command_text, inspect_doc, state_string,
                                          status_text, summary)
from skiff.engine.filters import Filters
from skiff.engine.state_db import ContainerRow
from skiff.engine.times import rfc3339_nano
from skiff.units import human_duration
from skiff.errors import InvalidArgument, NoSuchContainer

NOW = 1_800_000_000.0
IMAGE_ID = "sha256:" + "ab" * 32


@functools.cache
def _inspect_schema() -> dict[str, Any]:
    import yaml

    if ENGINE_API_SPEC is None:
        pytest.skip("no Engine API spec to check shapes against")
    with open(ENGINE_API_SPEC) as f:
        spec = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    response = spec["paths"]["/containers/{id}/json"]["get"]["responses"][200]["schema"]
    return {**_nullable_fields(response), "definitions": api_definitions()}


def check_inspect_shape(doc: dict[str, Any]) -> None:
    """ContainerInspect is inline in the spec's /containers/{id}/json answer: validate a
    document against it, refusing top-level fields the spec does not name."""
    import jsonschema

    schema = _inspect_schema()
    jsonschema.Draft4Validator(schema).validate(doc)
    unknown = set(doc) - set(schema["properties"])
    assert not unknown, f"ContainerInspect: fields the spec does not have: {sorted(unknown)}"


def make_row(name: str, seq: int, body: dict[str, Any] | None = None,
             **state: Any) -> ContainerRow:
    request = parse_create({"Image": "busybox", "Cmd": ["sh", "-c", "echo a b"], **(body or {})},
                           None, ncpu=2, known_caps=["CAP_NET_ADMIN"])
    cid = f"{seq:02d}" + "c" * 62
    config = {**request.config, "Hostname": cid[:12]}
    full_state = {"Status": "created", "Running": False, "Pid": 0, "ExitCode": 0, "Error": "",
                  "StartedAt": "", "FinishedAt": "", **state}
    return ContainerRow(id=cid, name=name, image_id=IMAGE_ID, created=rfc3339_nano(NOW - 100),
                        doc={"Config": config, "HostConfig": request.host_config,
                             "Path": request.path, "Args": list(request.args)},
                        state=full_state, seq=seq)


RUNNING = {"Status": "running", "Running": True, "Pid": 4242,
           "StartedAt": rfc3339_nano(NOW - 3.5)}
EXITED = {"Status": "exited", "ExitCode": 3, "StartedAt": rfc3339_nano(NOW - 50),
          "FinishedAt": rfc3339_nano(NOW - 2)}


# -- texts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seconds, text", [
    (0.5, "Less than a second"), (1, "1 second"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5400, "2 hours"), (47 * 3600, "47 hours"), (3 * 86400, "3 days"), (15 * 86400, "2 weeks"),
    (70 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_human_duration_is_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_status_texts() -> None:
    assert status_text(make_row("a", 1).state, NOW) == "Created"
    assert status_text(make_row("a", 1, **RUNNING).state, NOW) == "Up 3 seconds"
    assert status_text(make_row("a", 1, **EXITED).state, NOW) == "Exited (3) 2 seconds ago"
    assert status_text({"Status": "removing"}, NOW) == "Removal In Progress"
    assert status_text({"Status": "dead", "Dead": True}, NOW) == "Dead"
    assert state_string({"Status": "running", "Running": True, "Paused": True}) == "paused"


def test_command_text_quotes_arguments_with_spaces() -> None:
    assert command_text("sh", ["-c", "echo a b"]) == "sh -c 'echo a b'"
    assert command_text("true", []) == "true"


# -- shapes ---------------------------------------------------------------------------------
PATHS = {"ResolvConfPath": "/r/resolv.conf", "HostnamePath": "/r/hostname",
         "HostsPath": "/r/hosts", "LogPath": "/r/x-json.log"}
GRAPH = {"LowerDir": "/l", "MergedDir": "/m", "UpperDir": "/u", "WorkDir": "/w"}


def endpoints_of(row: Any, tmp_path: Path) -> dict[str, Any]:
    """The row's EndpointSettings as the network service gives them, from a database of
    its own (a running container on the default bridge holds an address, as after start)."""
    from skiff.engine.network_db import EndpointRow
    from skiff.engine.network_endpoints import endpoint_settings, plan, record
    from skiff.engine.networks import NetworkService
    from skiff.engine.state_db import StateDB

    net = NetworkService(StateDB(str(tmp_path / "skiff.db")))
    record(net, row.id, row.name, plan(net, row.doc["HostConfig"]["NetworkMode"], None))
    bridge = net.find("bridge")
    if row.state.get("Running") and row.doc["HostConfig"]["NetworkMode"] == "default":
        ep = EndpointRow(network_id=bridge.id, container_id=row.id, address=None,
                         doc={"Asked": {}, "ContainerName": row.name})
        net.db.claim(bridge.id, row.id, "172.29.0.2", {
            **ep.doc, "EndpointID": "e" * 64, "IPAddress": "172.29.0.2", "IPPrefixLen": 16,
            "Gateway": "172.29.0.1", "MacAddress": "02:42:ac:1d:00:02"})
    return endpoint_settings(net, row)


@pytest.mark.parametrize("state", [{}, RUNNING, EXITED], ids=["created", "running", "exited"])
@pytest.mark.parametrize("mode", ["default", "none", "host"])
def test_inspect_matches_the_spec(state: dict[str, Any], mode: str, tmp_path: Path) -> None:
    row = make_row("web", 1, {"HostConfig": {"NetworkMode": mode}, "Labels": {"k": "v"}}, **state)
    doc = inspect_doc(row, PATHS, GRAPH, endpoints_of(row, tmp_path))
    check_inspect_shape(doc)
    assert doc["Name"] == "/web" and doc["Image"] == IMAGE_ID
    assert doc["Path"] == "sh" and doc["Args"] == ["-c", "echo a b"]
    assert doc["HostConfig"]["NetworkMode"] == mode
    assert doc["Config"]["Labels"] == {"k": "v"} and doc["Config"]["Image"] == "busybox"
    assert doc["State"]["StartedAt"] == (state.get("StartedAt") or "0001-01-01T00:00:00Z")
    networks = doc["NetworkSettings"]["Networks"]
    assert list(networks) == (["bridge"] if mode == "default" else [mode])
    if mode == "default" and state is RUNNING:  # the default bridge's, at the top too
        assert doc["NetworkSettings"]["IPAddress"] == "172.29.0.2"
        assert doc["NetworkSettings"]["MacAddress"] == networks["bridge"]["MacAddress"]
        assert networks["bridge"]["Gateway"] == "172.29.0.1"
    else:
        assert doc["NetworkSettings"]["IPAddress"] == ""
    for settings in networks.values():
        check_api_shape(settings, "EndpointSettings", strict=False)  # DNSNames: API 1.44
    check_api_shape(doc["State"], "ContainerState")
    check_api_shape(doc["HostConfig"], "HostConfig", strict=False)  # allOf Resources + own
    definitions = api_definitions()
    known = set(definitions["Resources"]["properties"]) | {
        k for part in definitions["HostConfig"]["allOf"] for k in part.get("properties", {})}
    assert set(doc["HostConfig"]) <= known, sorted(set(doc["HostConfig"]) - known)
    check_api_shape(doc["Config"], "ContainerConfig")
    check_api_shape(doc["NetworkSettings"], "NetworkSettings")


def test_the_shape_check_is_not_vacuous() -> None:
    doc = inspect_doc(make_row("web", 1), PATHS, GRAPH, {})
    doc["State"]["Status"] = "sleeping"
    with pytest.raises(Exception, match="sleeping"):
        check_inspect_shape(doc)
    with pytest.raises(AssertionError, match="Bogus"):
        check_inspect_shape({**inspect_doc(make_row("web", 1), PATHS, GRAPH, {}), "Bogus": 1})


@pytest.mark.parametrize("state", [{}, RUNNING, EXITED], ids=["created", "running", "exited"])
def test_summary_matches_the_spec(state: dict[str, Any]) -> None:
    row = make_row("web", 1, {"HostConfig": {"NetworkMode": "none"}}, **state)
    item = summary(row, "busybox", NOW)
    check_api_shape(item, "ContainerSummary")
    assert item["Names"] == ["/web"] and item["Image"] == "busybox"
    assert item["Command"] == "sh -c 'echo a b'"
    assert item["Created"] == int(NOW - 100)
    assert item["HostConfig"] == {"NetworkMode": "none"}
    assert item["State"] == state.get("Status", "created")


# -- filters --------------------------------------------------------------------------------
@pytest.fixture
def rows() -> list[ContainerRow]:
    return [
        make_row("web", 1, {"Labels": {"app": "web", "tier": "front"},
                            "ExposedPorts": {"80/tcp": {}}}, **RUNNING),
        make_row("db", 2, {"Labels": {"app": "db"}, "HostConfig": {"NetworkMode": "none"}},
                 **EXITED),
        make_row("job", 3, {"HostConfig": {"NetworkMode": "host"}},
                 **{**EXITED, "ExitCode": 0}),
        make_row("fresh", 4),
    ]


def names(rows: list[ContainerRow], filters: dict[str, list[str]]) -> list[str]:
    by_name = {r.name: r for r in rows}

    def resolve(ref: str) -> ContainerRow:
        if ref in by_name:
            return by_name[ref]
        raise NoSuchContainer(ref)

    chosen = ListFilter(Filters(filters), resolve,
                        lambda refs: {IMAGE_ID} if "busybox" in refs else set())
    return [r.name for r in rows if chosen.match(r)]


def test_filters(rows: list[ContainerRow]) -> None:
    assert names(rows, {"name": ["web"]}) == ["web"]
    assert names(rows, {"name": ["^j"]}) == ["job"]  # a regular expression, as moby's
    assert names(rows, {"id": [rows[1].id[:6]]}) == ["db"]
    assert names(rows, {"label": ["app"]}) == ["web", "db"]
    assert names(rows, {"label": ["app=web", "tier=front"]}) == ["web"]
    assert names(rows, {"status": ["exited"]}) == ["db", "job"]
    assert names(rows, {"status": ["created", "running"]}) == ["web", "fresh"]
    assert names(rows, {"exited": ["0"]}) == ["job"]
    assert names(rows, {"exited": ["3", "0"]}) == ["db", "job"]
    assert names(rows, {"before": ["job"]}) == ["web", "db"]
    assert names(rows, {"since": ["db"]}) == ["job", "fresh"]
    assert names(rows, {"ancestor": ["busybox"]}) == ["web", "db", "job", "fresh"]
    assert names(rows, {"ancestor": ["alpine"]}) == []
    assert names(rows, {"network": ["none"]}) == ["db"]
    assert names(rows, {"expose": ["80"]}) == ["web"]
    assert names(rows, {"health": ["none"]}) == ["web", "db", "job", "fresh"]
    assert names(rows, {"health": ["healthy"]}) == []
    assert names(rows, {"is-task": ["false"]}) == ["web", "db", "job", "fresh"]
    assert names(rows, {"volume": ["data"]}) == [] and names(rows, {"publish": ["80"]}) == []

    binds = {"HostConfig": {"Binds": ["data:/d", "/srv:/s"]}}
    with_mounts = make_row("vols", 5, binds)
    points = parse_create({"Image": "busybox", "Cmd": ["true"], **binds}, None).mounts
    with_mounts.doc["MountPoints"] = [dict(p) for p in points]  # what a create stores
    for value in ("data", "/srv", "/d", "/s"):  # a volume's name, a bind's source, a target
        assert names([*rows, with_mounts], {"volume": [value]}) == ["vols"], value
    assert names([*rows, with_mounts], {"volume": ["/elsewhere"]}) == []


def test_bad_filters_get_dockers_texts(rows: list[ContainerRow]) -> None:
    for filters, text in (({"bogus": ["x"]}, "invalid filter 'bogus'"),
                          ({"status": ["sleeping"]}, "invalid filter 'status=sleeping'"),
                          ({"exited": ["x"]}, "invalid filter 'exited=x'"),
                          ({"health": ["fine"]}, "Unrecognised filter value for health")):
        with pytest.raises(InvalidArgument, match=text):
            names(rows, filters)
    with pytest.raises(NoSuchContainer):
        names(rows, {"before": ["nothere"]})
