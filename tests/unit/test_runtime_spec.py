"""config.json in and out: the OCI runtime spec's own examples and schemas are the oracle.

Every good example of the upstream runtime-spec must parse and survive a round trip through
`to_json`; malformed documents must be refused with a `SpecError` whose `field` is the dotted
path of the culprit (``process.user.uid``, ``mounts[0].destination``) and whose message says
what was expected. What skiff writes itself — `default_spec()`, a container's state document,
the features document — is validated against the upstream JSON schemas with jsonschema. Only
the public surface is used (parse/load/to_json, attribute access, equality), so the spec
types' implementation can change underneath.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import SHARED_SPECS

from skiff.errors import SpecError
from skiff.oci.runtime_spec import (load_config, parse_config, parse_process, parse_resources,
                                    to_json)
from skiff.runtime.spec_default import default_spec


SPECS = SHARED_SPECS
if SPECS is None:
    pytest.skip("the shared specs folder (../shared/specs beside the repo, or /work/shared/specs) "
                "is absent: no OCI schemas or examples to test against", allow_module_level=True)
assert SPECS is not None
SCHEMA_DIR = SPECS / "oci-runtime-schema"
EXAMPLES = SCHEMA_DIR / "examples" / "config"
GOOD = sorted((EXAMPLES / "good").glob("*.json"))

# good examples skiff refuses on purpose or by a bug; each is a strict xfail, reported to the lead
_KNOWN_REFUSED: dict[str, str] = {}


def _good_params() -> list[Any]:
    params = []
    for p in GOOD:
        marks = []
        if p.name in _KNOWN_REFUSED:
            marks.append(pytest.mark.xfail(strict=True, raises=SpecError,
                                           reason=_KNOWN_REFUSED[p.name]))
        params.append(pytest.param(p, id=p.name, marks=marks))
    return params


def parse(doc: dict[str, Any]) -> Any:
    return parse_config(json.dumps(doc))


def refused(doc: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse(doc)
    return info.value


def minimal(**extra: Any) -> dict[str, Any]:
    return {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, **extra}


def with_process(**process: Any) -> dict[str, Any]:
    return minimal(process={"cwd": "/", "args": ["sh"], **process})


def with_linux(**linux: Any) -> dict[str, Any]:
    return minimal(linux=linux)


def round_trip(spec: Any) -> Any:
    return parse_config(json.dumps(to_json(spec)))


# -- the upstream examples --------------------------------------------------------------
def test_there_are_good_examples() -> None:
    assert len(GOOD) >= 3, f"expected the runtime-spec examples in {EXAMPLES / 'good'}"


@pytest.mark.parametrize("path", _good_params())
def test_good_example_parses(path: Path) -> None:
    spec = parse_config(path.read_text(), str(path))
    assert spec.root.path


@pytest.mark.parametrize("path", _good_params())
def test_good_example_round_trips(path: Path) -> None:
    spec = parse_config(path.read_text(), str(path))
    assert round_trip(spec) == spec


def test_invalid_json_example_is_refused_as_not_json() -> None:
    path = EXAMPLES / "bad" / "invalid-json.json"
    with pytest.raises(SpecError) as info:
        parse_config(path.read_text(), str(path))
    assert "not valid JSON" in str(info.value)
    assert "invalid-json.json" in str(info.value)


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(minimal()))
    assert load_config(str(tmp_path / "config.json")) == parse(minimal())


def test_load_config_of_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        load_config(str(tmp_path / "config.json"))


# -- required fields --------------------------------------------------------------------
@pytest.mark.parametrize(("doc", "field"), [
    pytest.param({"root": {"path": "rootfs"}}, "ociVersion", id="ociVersion"),
    pytest.param(minimal(process={"args": ["sh"]}), "process.cwd", id="process.cwd"),
    pytest.param(minimal(mounts=[{"type": "proc", "source": "proc"}]), "mounts[0].destination",
                 id="mount-destination"),
    pytest.param({"ociVersion": "1.0.2", "root": {"readonly": True}}, "root.path", id="root.path"),
    pytest.param(with_process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1024}]),
                 "process.rlimits[0].hard", id="rlimit-hard"),
])
def test_missing_required_field_is_named(doc: dict[str, Any], field: str) -> None:
    err = refused(doc)
    assert err.field == field
    assert "required" in str(err)
    assert str(err).startswith(field)


# -- wrong types and values -------------------------------------------------------------
def test_uid_must_be_an_integer() -> None:
    err = refused(with_process(user={"uid": "x", "gid": 0}))
    assert err.field == "process.user.uid"
    assert "integer" in str(err)


def test_a_boolean_is_not_an_integer() -> None:
    err = refused(with_process(user={"uid": True, "gid": 0}))
    assert err.field == "process.user.uid"
    assert "integer" in str(err)


@pytest.mark.parametrize("key", ["uid", "gid"])
@pytest.mark.parametrize("value", [-1, 2**32])
def test_ids_must_be_uint32(key: str, value: int) -> None:
    err = refused(with_process(user={"uid": 1000, "gid": 1000, key: value}))
    assert err.field == f"process.user.{key}"


def test_args_must_be_a_list() -> None:
    err = refused(with_process(args="sh -c true"))
    assert err.field == "process.args"
    assert "list" in str(err)


def test_unknown_namespace_type() -> None:
    err = refused(with_linux(namespaces=[{"type": "bogus"}]))
    assert err.field == "linux.namespaces[0].type"
    assert "bogus" in str(err)


def test_namespace_given_twice() -> None:
    err = refused(with_linux(namespaces=[{"type": "pid"}, {"type": "pid"}]))
    assert err.field.startswith("linux.namespaces[1]")
    assert "pid" in str(err)


def test_relative_mount_destination_is_taken_from_the_root() -> None:
    # config.md (Linux): a relative destination "MUST be interpreted as relative to /"
    spec = parse_config(json.dumps(minimal(mounts=[{"destination": "proc", "type": "proc",
                                                    "source": "proc"}])))
    assert spec.mounts[0].target == "/proc"


def test_empty_mount_destination() -> None:
    err = refused(minimal(mounts=[{"destination": "", "type": "proc", "source": "proc"}]))
    assert err.field == "mounts[0].destination"


def test_relative_cwd() -> None:
    err = refused(with_process(cwd="tmp"))
    assert err.field == "process.cwd"
    assert "absolute" in str(err)


def test_seccomp_operator_must_be_known() -> None:
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{
        "names": ["personality"], "action": "SCMP_ACT_ERRNO",
        "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_SOMETIMES"}]}]}
    err = refused(with_linux(seccomp=seccomp))
    assert err.field == "linux.seccomp.syscalls[0].args[0].op"
    assert "SCMP_CMP_EQ" in str(err)  # says what is allowed


def test_device_type_must_be_known() -> None:
    err = refused(with_linux(devices=[{"type": "z", "path": "/dev/zz", "major": 1, "minor": 1}]))
    assert err.field == "linux.devices[0].type"
    assert "'z'" in str(err)


def test_id_mappings_need_a_user_namespace() -> None:
    err = refused(with_linux(namespaces=[{"type": "mount"}],
                             uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
                             gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}]))
    assert err.field == "linux.uidMappings"
    assert "user namespace" in str(err)


def test_hostname_needs_a_uts_namespace() -> None:
    err = refused(minimal(hostname="box", linux={"namespaces": [{"type": "mount"}]}))
    assert err.field == "hostname"
    assert "uts" in str(err)


def test_unknown_keys_are_ignored() -> None:
    plain = with_process(user={"uid": 1, "gid": 2})
    noisy = with_process(user={"uid": 1, "gid": 2, "shoeSize": 44}, futureThing=[1, 2])
    noisy["vendorExtension"] = {"anything": True}
    assert parse(noisy) == parse(plain)


def test_attributes_are_snake_case() -> None:
    spec = parse(with_process(user={"uid": 7, "gid": 8, "additionalGids": [9]},
                              noNewPrivileges=True))
    assert spec.oci_version == "1.0.2"
    assert spec.process.user.uid == 7
    assert tuple(spec.process.user.additional_gids) == (9,)
    assert spec.process.no_new_privileges is True


def test_equality_follows_content() -> None:
    assert parse(with_process(cwd="/a")) == parse(with_process(cwd="/a"))
    assert parse(with_process(cwd="/a")) != parse(with_process(cwd="/b"))


def test_parse_process_names_fields_under_process() -> None:
    proc = parse_process(json.dumps({"cwd": "/srv", "args": ["ls"], "user": {"uid": 5, "gid": 5}}))
    assert proc.cwd == "/srv"
    assert proc.user.uid == 5
    with pytest.raises(SpecError) as info:
        parse_process(json.dumps({"args": ["ls"]}))
    assert info.value.field == "process.cwd"
    with pytest.raises(SpecError, match="not valid JSON"):
        parse_process("{", "process.json")


def test_parse_resources_names_fields_under_resources() -> None:
    res = parse_resources(json.dumps({"memory": {"limit": 1 << 20}, "pids": {"limit": 10}}))
    assert res.memory.limit == 1 << 20
    assert res.pids.limit == 10
    with pytest.raises(SpecError) as info:
        parse_resources(json.dumps({"memory": {"limit": "lots"}}))
    assert info.value.field == "resources.memory.limit"
    assert "integer" in str(info.value)


# -- round trips and JSON names ---------------------------------------------------------
@pytest.mark.parametrize("rootless", [False, True], ids=["root", "rootless"])
def test_default_spec_round_trips(rootless: bool) -> None:
    spec = parse(default_spec(rootless=rootless))
    assert round_trip(spec) == spec


CAMEL = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs"},
    "process": {"cwd": "/", "args": ["sh"], "noNewPrivileges": True},
    "linux": {
        "namespaces": [{"type": "user"}, {"type": "mount"}],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 1001, "size": 1}],
        "cgroupsPath": "/skiff/c1",
        "resources": {
            "memory": {"limit": 1048576, "disableOOMKiller": True},
            "blockIO": {"weight": 10,
                        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
        },
    },
}


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_camel_case_names_are_read_into_attributes() -> None:
    spec = parse(CAMEL)
    assert spec.process.no_new_privileges is True
    assert spec.linux.cgroups_path == "/skiff/c1"
    assert spec.linux.uid_mappings[0].container_id == 0
    assert spec.linux.uid_mappings[0].host_id == 1000
    assert spec.linux.gid_mappings[0].host_id == 1001
    assert spec.linux.resources.memory.limit == 1048576
    assert spec.linux.resources.memory.disable_oom_killer is True
    assert spec.linux.resources.block_io.weight == 10
    assert spec.linux.resources.block_io.throttle_read_iops_device[0].rate == 100


def test_to_json_writes_the_json_spelling() -> None:
    out = to_json(parse(CAMEL))
    assert out["process"]["noNewPrivileges"] is True
    linux = out["linux"]
    assert linux["cgroupsPath"] == "/skiff/c1"
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 1001, "size": 1}]
    assert linux["resources"]["memory"]["disableOOMKiller"] is True
    block_io = linux["resources"]["blockIO"]
    assert block_io["throttleReadIOPSDevice"] == [{"major": 8, "minor": 0, "rate": 100}]
    assert not {k for k in _keys(out) if "_" in k}, "snake_case leaked into the JSON"
    json.dumps(out)  # plain JSON types only


def test_to_json_drops_unset_optional_fields() -> None:
    out = to_json(parse(minimal()))
    assert "process" not in out and "linux" not in out and "hooks" not in out


# -- the JSON schemas as oracle ---------------------------------------------------------
@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    return {p.name: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.json")}


@pytest.fixture(scope="module")
def validate(schemas: dict[str, Any]) -> Any:
    from jsonschema.validators import validator_for
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    # the schemas carry no ids and refer to each other by file name ("defs.json#/..."),
    # so each is registered under its file name (and its id, should a later one get one)
    resources = []
    for name, doc in schemas.items():
        resource = Resource.from_contents(doc, default_specification=DRAFT4)
        resources.append((name, resource))
        ident = doc.get("$id") or (doc.get("id") if isinstance(doc.get("id"), str) else None)
        if ident:
            resources.append((ident, resource))
    registry = Registry().with_resources(resources)

    def check(schema_name: str, doc: Any) -> list[str]:
        schema = schemas[schema_name]
        validator = validator_for(schema)(schema, registry=registry)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in validator.iter_errors(doc)]
    return check


def test_schema_oracle_is_not_vacuous(validate: Any) -> None:
    doc = default_spec()
    doc["process"]["user"]["uid"] = "x"
    doc["linux"]["namespaces"][0]["type"] = "bogus"
    assert len(validate("config-schema.json", doc)) == 2


@pytest.mark.parametrize("rootless", [False, True], ids=["root", "rootless"])
def test_default_spec_matches_the_schema(validate: Any, rootless: bool) -> None:
    doc = default_spec(rootless=rootless)
    assert validate("config-schema.json", doc) == []
    assert validate("config-schema.json", to_json(parse(doc))) == []


@pytest.mark.parametrize("path", _good_params())
def test_encoded_good_example_matches_the_schema(validate: Any, path: Path) -> None:
    assert validate("config-schema.json", json.loads(path.read_text())) == []
    assert validate("config-schema.json", to_json(parse_config(path.read_text()))) == []


def test_state_document_matches_the_schema(validate: Any) -> None:
    from skiff.runtime.state import ContainerState, Status
    st = ContainerState(id="c1", bundle="/srv/bundle", rootfs="/srv/bundle/rootfs", pid=4242,
                        pid_start=1234, created="2024-05-01T12:00:00.000000000Z",
                        cgroup_path="/skiff/c1", config=default_spec(),
                        annotations={"org.example.key": "value"})
    for status in (Status.CREATED, Status.RUNNING, Status.STOPPED):
        doc = st.oci(status)
        assert validate("state-schema.json", doc) == [], status
        assert doc["status"] == status
    assert st.oci(Status.RUNNING)["pid"] == 4242
    assert st.oci(Status.STOPPED)["pid"] == 0


def test_features_document_matches_the_schema(validate: Any) -> None:
    from skiff.runtime.features import features
    assert validate("features-schema.json", features()) == []


@pytest.mark.parametrize(("doc", "where"), [
    ({**with_process(rlimits=[{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}] * 2)},
     "process.rlimits[1].type"),
    (minimal(annotations={"": "x"}), "annotations"),
    ({**minimal(), "ociVersion": "1.0"}, "ociVersion"),
    ({**minimal(), "ociVersion": "2.0.0"}, "ociVersion"),
    (with_linux(personality={"domain": "LINUX", "flags": ["X"]}), "linux.personality.flags"),
    (with_linux(timeOffsets={"realtime": {"secs": 1}}), "linux.timeOffsets.realtime"),
    (with_linux(maskedPaths=["proc/kcore"]), "linux.maskedPaths[0]"),
    (with_linux(seccomp={"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "m"}),
     "linux.seccomp.listenerMetadata"),
    (minimal(domainname="d", linux={"namespaces": [{"type": "mount"}]}), "domainname"),
    (with_linux(resources={"blockIO": {"weightDevice": [{"major": 8, "minor": 0}]}}),
     "linux.resources.blockIO.weightDevice[0]"),
    (minimal(mounts=[{"destination": "/m", "uidMappings": []}]), "mounts[0].uidMappings"),
])
def test_rules_of_the_spec_beyond_the_schema(doc: dict[str, Any], where: str) -> None:
    assert refused(doc).field == where


def test_a_0x_draft_version_is_still_read() -> None:
    assert parse({**minimal(), "ociVersion": "0.5.0-dev"}).oci_version == "0.5.0-dev"
