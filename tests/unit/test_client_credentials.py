"""Docker's config.json kept as Docker keeps it: auths by server, Docker Hub's historic key,
identity tokens, lookup by host, unknown keys left alone, written atomically with mode 0600;
and the X-Registry-Auth header. (The names themselves are tested in test_reference.py.)"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from skiff.client.credentials import ConfigFile, Credentials, config_dir, registry_auth
from skiff.errors import InvalidArgument
from skiff.reference import INDEX_SERVER, index_server


def test_round_trip_keeps_unknown_keys_and_writes_0600(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    original = {
        "auths": {"old.example:5000": {"auth": base64.b64encode(b"u:p").decode(), "email": "x@y"}},
        "credHelpers": {"gcr.io": "gcloud"},
        "psFormat": "table {{.ID}}",
        "HttpHeaders": {"X-Meta": "1"},
    }
    path.write_text(json.dumps(original))
    config = ConfigFile(str(tmp_path))
    config.put(Credentials("localhost:5000", "bob", "s3:cret"))
    config.save()
    data = json.loads(path.read_text())
    assert data["credHelpers"] == {"gcr.io": "gcloud"}
    assert data["psFormat"] == "table {{.ID}}" and data["HttpHeaders"] == {"X-Meta": "1"}
    assert data["auths"]["old.example:5000"]["email"] == "x@y"
    assert list(data["auths"]) == ["localhost:5000", "old.example:5000"]  # sorted, as Go writes
    assert base64.b64decode(data["auths"]["localhost:5000"]["auth"]) == b"bob:s3:cret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith('{\n\t"auths"')  # MarshalIndent with a tab
    again = ConfigFile(str(tmp_path)).get("localhost:5000")
    assert again is not None and (again.username, again.password) == ("bob", "s3:cret")
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temporary left


def test_lookup_by_host_matches_old_url_keys(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        "https://reg.example:5000/v1/": {"auth": base64.b64encode(b"a:b").decode()},
        INDEX_SERVER: {"auth": base64.b64encode(b"hub:pw").decode()},
    }}))
    config = ConfigFile(str(tmp_path))
    creds = config.get("reg.example:5000")
    assert creds is not None and creds.username == "a"
    hub = config.get(index_server("docker.io"))
    assert hub is not None and hub.password == "pw"
    assert config.get("other:1") is None
    assert config.remove("reg.example:5000")
    assert "https://reg.example:5000/v1/" not in config.auths


def test_identity_tokens_replace_the_password(tmp_path: Path) -> None:
    config = ConfigFile(str(tmp_path))
    config.put(Credentials("r:1", "bob", "", "tok123"))
    config.save()
    entry = json.loads((tmp_path / "config.json").read_text())["auths"]["r:1"]
    assert entry["identitytoken"] == "tok123"
    assert base64.b64decode(entry["auth"]) == b"bob:"
    creds = ConfigFile(str(tmp_path)).get("r:1")
    assert creds is not None and creds.auth_config() == {
        "username": "bob", "serveraddress": "r:1", "identitytoken": "tok123"}


def test_a_missing_or_empty_file_is_no_credentials(tmp_path: Path) -> None:
    assert ConfigFile(str(tmp_path / "nowhere")).get("x") is None
    (tmp_path / "config.json").write_text("")
    assert ConfigFile(str(tmp_path)).get("x") is None


def test_a_malformed_file_is_reported_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(InvalidArgument, match=str(tmp_path / "config.json")):
        ConfigFile(str(tmp_path))
    (tmp_path / "config.json").write_text('{"auths": {"x": {"auth": "bm9jb2xvbg=="}}}')
    with pytest.raises(InvalidArgument, match="user:password"):
        ConfigFile(str(tmp_path)).get("x")


def test_a_linked_config_is_written_where_it_points(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "config.json").write_text("{}")
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.json").symlink_to(real / "config.json")
    config = ConfigFile(str(home))
    config.put(Credentials("h:1", "u", "p"))
    config.save()
    assert (home / "config.json").is_symlink()
    assert "h:1" in json.loads((real / "config.json").read_text())["auths"]


def test_config_dir_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "env"))
    assert config_dir() == str(tmp_path / "env")
    assert config_dir(str(tmp_path / "flag")) == str(tmp_path / "flag")
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_dir() == str(tmp_path / ".docker")


def test_registry_auth_header_is_base64url_json() -> None:
    assert registry_auth(None) == "e30="
    header = registry_auth(Credentials("localhost:5000", "bob", "p?>>"))
    assert "+" not in header and "/" not in header
    decoded = json.loads(base64.urlsafe_b64decode(header))
    assert decoded == {"username": "bob", "password": "p?>>", "serveraddress": "localhost:5000"}


def test_saving_cleans_up_when_the_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = ConfigFile(str(tmp_path))
    config.put(Credentials("h:1", "u", "p"))

    def fail(src: str, dst: str) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(os, "rename", fail)
    with pytest.raises(OSError):
        config.save()
    assert list(tmp_path.iterdir()) == []


FAKE_HELPER = """#!{python}
import json, os, sys
db = os.environ["FAKE_HELPER_DB"]
store = json.load(open(db)) if os.path.exists(db) else {{}}
action, data = sys.argv[1], sys.stdin.read()
if action == "get":
    if data not in store:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(store[data]))
elif action == "store":
    doc = json.loads(data)
    store[doc["ServerURL"]] = {{"ServerURL": doc["ServerURL"], "Username": doc["Username"],
                               "Secret": doc["Secret"]}}
elif action == "erase":
    store.pop(data, None)
json.dump(store, open(db, "w"))
"""


def test_credential_helpers_keep_the_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(FAKE_HELPER.format(python=sys.executable))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_HELPER_DB", str(tmp_path / "db.json"))
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "fake",
                                                      "credHelpers": {"other:1": "missing"}}))
    config = ConfigFile(str(tmp_path))
    assert config.helper("reg:5000") == "fake" and config.helper("other:1") == "missing"
    assert config.get("reg:5000") is None
    config.put(Credentials("reg:5000", "bob", "pw"))
    config.put(Credentials("tok:1", "al", "", "id-token"))
    config.save()
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["auths"] == {"reg:5000": {}, "tok:1": {}}  # no secret in the file
    again = ConfigFile(str(tmp_path))
    creds = again.get("reg:5000")
    assert creds is not None and (creds.username, creds.password) == ("bob", "pw")
    token = again.get("tok:1")
    assert token is not None and token.identitytoken == "id-token"
    assert again.remove("reg:5000")
    assert again.get("reg:5000") is None
    with pytest.raises(InvalidArgument, match="docker-credential-missing"):
        again.get("other:1")
