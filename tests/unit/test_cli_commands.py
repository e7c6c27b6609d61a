"""Every `skiff` command run in-process against the fake engine: what it asks the API for
(paths, queries, headers, bodies) and what it prints, with docker's texts and exit codes."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from test_client_fake import FakeEngine, Response, error, fake_engine, json_lines  # noqa: F401

from skiff.cli.main import Context, run

NOW = int(time.time())
ID_A, ID_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64
DIGEST = "sha256:" + "d" * 64
IMAGES = [
    {"Id": ID_A, "ParentId": "", "RepoTags": ["busybox:latest", "localhost:5000/busybox:v1"],
     "RepoDigests": [f"busybox@{DIGEST}"], "Created": NOW - 7200, "Size": 4261550,
     "SharedSize": -1, "Labels": None, "Containers": -1},
    {"Id": ID_B, "ParentId": "", "RepoTags": [], "RepoDigests": [], "Created": NOW - 20 * 86400,
     "Size": 123, "SharedSize": -1, "Labels": {"a": "b"}, "Containers": -1},
]


class TTYText(io.TextIOWrapper):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Cli:
    def __init__(self, engine: FakeEngine, config: Path) -> None:
        self.engine, self.config = engine, config

    def __call__(self, *argv: str, stdin: bytes = b"", tty_out: bool = False,
                 tty_in: bool = False) -> tuple[int, str, str]:
        raw = io.BytesIO()
        out: io.TextIOWrapper = (TTYText if tty_out else io.TextIOWrapper)(raw, encoding="utf-8")
        err = io.StringIO()
        inp = (TTYText if tty_in else io.TextIOWrapper)(io.BytesIO(stdin), encoding="utf-8")
        self.out_bytes = raw
        code = run(list(argv), Context(out=out, err=err, stdin=inp))
        out.flush()
        self.raw = raw.getvalue()
        return code, self.raw.decode("utf-8", "replace"), err.getvalue()


@pytest.fixture
def cli(fake_engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.setenv("DOCKER_HOST", fake_engine.host)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    yield Cli(fake_engine, tmp_path / "docker-config")


def test_images(cli: Cli) -> None:
    cli.engine.route("GET", "/images/json", IMAGES)
    code, out, err = cli("images")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "REPOSITORY               TAG       IMAGE ID       CREATED       SIZE",
        "busybox                  latest    aaaaaaaaaaaa   2 hours ago   4.26MB",
        "localhost:5000/busybox   v1        aaaaaaaaaaaa   2 hours ago   4.26MB",
        "<none>                   <none>    bbbbbbbbbbbb   2 weeks ago   123B",
    ]
    assert cli("images", "-q")[1] == "aaaaaaaaaaaa\naaaaaaaaaaaa\nbbbbbbbbbbbb\n"
    out = cli("images", "--digests")[1].splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE"]
    assert DIGEST in out[1] and "<none>" in out[2]
    out = cli("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}")[1]
    assert out == "busybox:latest 4.26MB\nlocalhost:5000/busybox:v1 4.26MB\n<none>:<none> 123B\n"
    rows = [json.loads(line) for line in cli("images", "--format", "json")[1].splitlines()]
    assert rows[0]["ID"] == "aaaaaaaaaaaa" and rows[2]["Repository"] == "<none>"
    assert '"\\u003cnone\\u003e"' in cli("images", "--format", "{{json .}}")[1]
    assert cli("images", "--no-trunc", "-q")[1].splitlines()[0] == ID_A


def test_images_sends_filters_and_all(cli: Cli) -> None:
    cli.engine.route("GET", "/images/json", [])
    assert cli("image", "ls", "-a", "-f", "dangling=true", "--filter", "label=a=b", "busybox")[0] == 0
    req = cli.engine.last("GET", "/images/json")
    assert req.q("all") == "1"
    assert json.loads(req.q("filters") or "") == {
        "dangling": {"true": True}, "label": {"a=b": True}, "reference": {"busybox": True}}
    assert cli("image", "list")[1] == "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n"
    assert "filters" not in cli.engine.last("GET", "/images/json").query


def test_images_format_from_config(cli: Cli) -> None:
    cli.engine.route("GET", "/images/json", IMAGES[:1])
    cli.config.mkdir()
    (cli.config / "config.json").write_text('{"imagesFormat": "{{.ID}} {{.Tag}}"}')
    assert cli("images")[1] == "aaaaaaaaaaaa latest\naaaaaaaaaaaa v1\n"
    assert cli("images", "-q")[1] == "aaaaaaaaaaaa\naaaaaaaaaaaa\n"


def test_inspect(cli: Cli) -> None:
    cli.engine.route("GET", "/images/busybox/json", {"Id": ID_A, "RepoTags": ["busybox:latest"],
                                                     "Size": 5, "Comment": "<x>"})
    cli.engine.route("GET", "/images/nope/json", error(404, "No such image: nope:latest"))
    code, out, err = cli("image", "inspect", "busybox")
    assert code == 0 and json.loads(out) == [{"Id": ID_A, "RepoTags": ["busybox:latest"],
                                              "Size": 5, "Comment": "<x>"}]
    assert out.startswith('[\n    {\n        "Id"') and '"Comment": "<x>"' in out  # as sent
    code, out, err = cli("image", "inspect", "busybox", "nope")
    assert code == 1 and len(json.loads(out)) == 1
    assert err == "Error response from daemon: No such image: nope:latest\n"
    assert cli("image", "inspect", "nope")[1] == "[]\n"
    assert cli("inspect", "-f", "{{.Id}} {{.Size}}", "busybox")[1] == f"{ID_A} 5\n"
    code, _, err = cli("inspect", "nope")
    assert (code, err) == (1, "Error: No such object: nope\n")
    code, _, err = cli("inspect", "-f", "{{.Nope}}", "busybox")
    assert code == 1 and 'map has no entry for key "Nope"' in err


def test_history(cli: Cli) -> None:
    cli.engine.route("GET", "/images/busybox/history", [
        {"Id": ID_A, "Created": NOW - 7200, "CreatedBy": '/bin/sh -c #(nop)  CMD ["sh"]',
         "Tags": ["busybox:latest"], "Size": 0, "Comment": ""},
        {"Id": "<missing>", "Created": NOW - 7300, "Size": 4261550, "Comment": "imported from -",
         "CreatedBy": "/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef in / "}])
    out = cli("history", "busybox")[1].splitlines()
    assert out[0] == "IMAGE          CREATED       CREATED BY                                      SIZE      COMMENT"
    assert out[1].startswith("aaaaaaaaaaaa   2 hours ago   /bin/sh -c #(nop)  CMD [\"sh\"]")
    assert out[2] == ("<missing>      2 hours ago   /bin/sh -c #(nop) ADD file:0123456789abcdef0…"
                      "   4.26MB    imported from -")
    assert cli("image", "history", "-q", "busybox")[1] == "aaaaaaaaaaaa\n<missing>\n"
    raw = cli("history", "-H=false", "busybox")[1].splitlines()
    assert raw[0].split()[1:3] == ["CREATED", "AT"] and "4261550" in raw[2]


def test_tag(cli: Cli) -> None:
    cli.engine.route("POST", "/images/busybox/tag", Response(201))
    assert cli("tag", "busybox", "foo/bar:v2") == (0, "", "")
    req = cli.engine.last("POST", "/images/busybox/tag")
    assert (req.q("repo"), req.q("tag")) == ("docker.io/foo/bar", "v2")
    cli("image", "tag", "busybox", "localhost:5000/x")
    req = cli.engine.last("POST", "/images/busybox/tag")
    assert (req.q("repo"), req.q("tag")) == ("localhost:5000/x", "latest")
    code, _, err = cli("tag", "busybox", "BAD")
    assert (code, err) == (1, 'Error parsing reference: "BAD" is not a valid repository/tag: '
                              "invalid reference format: repository name (library/BAD) must be lowercase\n")
    code, _, err = cli("tag", "busybox", "x@sha256:" + "a" * 64)
    assert (code, err) == (1, "refusing to create a tag with a digest reference\n")


def test_rmi(cli: Cli) -> None:
    cli.engine.route("DELETE", "/images/busybox", [{"Untagged": "busybox:latest"}, {"Deleted": ID_A}])
    cli.engine.route("DELETE", "/images/nope", error(404, "No such image: nope:latest"))
    code, out, err = cli("rmi", "nope", "busybox")
    assert code == 1 and out == f"Untagged: busybox:latest\nDeleted: {ID_A}\n"
    assert err == "Error response from daemon: No such image: nope:latest\n"
    cli("image", "rm", "-f", "--no-prune", "busybox")
    req = cli.engine.last("DELETE", "/images/busybox")
    assert (req.q("force"), req.q("noprune")) == ("1", "1")
    cli("image", "remove", "busybox")
    assert cli.engine.last("DELETE", "/images/busybox").query == {}


def test_prune(cli: Cli) -> None:
    cli.engine.route("POST", "/images/prune", {"ImagesDeleted": [{"Untagged": "x:latest"},
                                                                 {"Deleted": ID_B}],
                                               "SpaceReclaimed": 1234567})
    code, out, _ = cli("image", "prune", stdin=b"n\n")
    assert code == 0 and out == ("WARNING! This will remove all dangling images.\n"
                                 "Are you sure you want to continue? [y/N] ")
    assert not [r for r in cli.engine.requests if r.path == "/images/prune"]
    code, out, _ = cli("image", "prune", stdin=b"y\n")
    assert out.endswith(f"[y/N] Deleted Images:\nuntagged: x:latest\ndeleted: {ID_B}\n\n"
                        "Total reclaimed space: 1.235MB\n")
    assert json.loads(cli.engine.last("POST", "/images/prune").q("filters") or "") == {
        "dangling": {"true": True}}
    code, out, _ = cli("image", "prune", "-a", "-f", "--filter", "until=1h")
    assert not out.startswith("WARNING")
    assert json.loads(cli.engine.last("POST", "/images/prune").q("filters") or "") == {
        "dangling": {"false": True}, "until": {"1h": True}}
    cli.engine.route("POST", "/images/prune", {"ImagesDeleted": None, "SpaceReclaimed": 0})
    assert cli("image", "prune", "-f")[1] == "Total reclaimed space: 0B\n"
    assert "all images without at least one container" in cli("image", "prune", "-a", stdin=b"")[1]


def _pull_stream(req: Any) -> Response:
    if req.q("fromImage") == "docker.io/library/bad":
        return Response(chunks=json_lines([{"status": "Pulling from library/bad", "id": "latest"},
                                           {"errorDetail": {"message": "manifest unknown"},
                                            "error": "manifest unknown"}]))
    return Response(chunks=json_lines([
        {"status": "Pulling from library/busybox", "id": "latest"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "111111111111"},
        {"status": "Downloading", "progressDetail": {"current": 5, "total": 10}, "id": "111111111111"},
        {"status": "Pull complete", "progressDetail": {}, "id": "111111111111"},
        {"status": f"Digest: {DIGEST}"},
        {"status": "Status: Downloaded newer image for busybox:latest"}]))


def test_pull(cli: Cli) -> None:
    cli.engine.route("POST", "/images/create", _pull_stream)
    code, out, err = cli("pull", "busybox")
    assert (code, err) == (0, "")
    assert out == ("Using default tag: latest\nlatest: Pulling from library/busybox\n"
                   "111111111111: Pulling fs layer\n111111111111: Pull complete\n"
                   f"Digest: {DIGEST}\nStatus: Downloaded newer image for busybox:latest\n"
                   "docker.io/library/busybox:latest\n")
    req = cli.engine.last("POST", "/images/create")
    assert (req.q("fromImage"), req.q("tag")) == ("docker.io/library/busybox", "latest")
    assert req.headers["X-Registry-Auth"] == "e30="
    assert cli("pull", "-q", "busybox")[1] == "docker.io/library/busybox:latest\n"
    code, out, _ = cli("image", "pull", "--platform", "Linux/ARM64", f"localhost:5000/x@{DIGEST}")
    req = cli.engine.last("POST", "/images/create")
    assert (req.q("fromImage"), req.q("tag"), req.q("platform")) == (
        "localhost:5000/x", DIGEST, "linux/arm64")
    assert out.splitlines()[-1] == f"localhost:5000/x@{DIGEST}"
    code, out, err = cli("pull", "bad")
    assert (code, err) == (1, "manifest unknown\n")
    code, _, err = cli("pull", "Bad")
    assert (code, err) == (1, "invalid reference format: repository name (library/Bad) must be lowercase\n")
    code, _, err = cli("pull", "-a", "busybox:1")
    assert (code, err) == (1, "tag can't be used with --all-tags/-a\n")


def test_pull_on_a_terminal_draws_bars(cli: Cli) -> None:
    cli.engine.route("POST", "/images/create", _pull_stream)
    out = cli("pull", "busybox", tty_out=True)[1]
    assert "\x1b[1A\x1b[2K\r111111111111: Downloading" in out and "      5B/10B" in out


def test_push_with_stored_credentials(cli: Cli) -> None:
    cli.engine.route("POST", "/images/localhost:5000/busybox/push", Response(chunks=json_lines([
        {"status": "The push refers to repository [localhost:5000/busybox]"},
        {"status": "Preparing", "progressDetail": {}, "id": "111111111111"},
        {"status": "Pushed", "progressDetail": {}, "id": "111111111111"},
        {"status": f"v1: digest: {DIGEST} size: 527"},
        {"progressDetail": {}, "aux": {"Tag": "v1", "Digest": DIGEST, "Size": 527}}])))
    cli.config.mkdir()
    (cli.config / "config.json").write_text(json.dumps({"auths": {"localhost:5000": {
        "auth": base64.b64encode(b"bob:pw").decode()}}}))
    code, out, _ = cli("push", "localhost:5000/busybox:v1")
    assert code == 0 and out == ("The push refers to repository [localhost:5000/busybox]\n"
                                 "111111111111: Preparing\n111111111111: Pushed\n"
                                 f"v1: digest: {DIGEST} size: 527\n")
    req = cli.engine.last("POST", "/images/localhost:5000/busybox/push")
    assert req.q("tag") == "v1"
    assert json.loads(base64.urlsafe_b64decode(req.headers["X-Registry-Auth"])) == {
        "username": "bob", "password": "pw", "serveraddress": "localhost:5000"}
    assert cli("push", "-q", "localhost:5000/busybox:v1")[1] == "localhost:5000/busybox:v1\n"
    assert cli("push", "localhost:5000/busybox")[1].startswith("Using default tag: latest\n")
    assert cli("push", f"x@{DIGEST}")[2] == "cannot push a digest reference\n"


def test_save(cli: Cli, tmp_path: Path) -> None:
    cli.engine.route("GET", "/images/get", Response(body=b"TAR" * 100000,
                                                    headers={"Content-Type": "application/x-tar"}))
    code, _, _ = cli("save", "busybox", "foo")
    assert code == 0 and cli.raw == b"TAR" * 100000
    assert cli.engine.last("GET", "/images/get").query == {"names": ["busybox", "foo"]}
    target = tmp_path / "out.tar"
    assert cli("image", "save", "-o", str(target), "busybox") == (0, "", "")
    assert target.read_bytes() == b"TAR" * 100000
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporary left
    requests = len(cli.engine.requests)
    code, _, err = cli("save", "busybox", tty_out=True)
    assert (code, err) == (1, "cowardly refusing to save to a terminal. Use the -o flag or redirect\n")
    assert len(cli.engine.requests) == requests  # refused before asking the daemon
    code, _, err = cli("save", "-o", "/nonexistent/x.tar", "busybox")
    assert code == 1 and err.startswith("failed to save image: invalid output path: stat /nonexistent")


def test_load(cli: Cli, tmp_path: Path) -> None:
    cli.engine.route("POST", "/images/load", lambda req: Response(
        json={"stream": f"Loaded image: busybox:latest ({len(req.body)} bytes)\n"}))
    archive = tmp_path / "in.tar"
    archive.write_bytes(b"x" * 200000)
    assert cli("load", "-i", str(archive))[1] == "Loaded image: busybox:latest (200000 bytes)\n"
    req = cli.engine.last("POST", "/images/load")
    assert req.q("quiet") == "1" and req.headers["Content-Type"] == "application/x-tar"
    assert req.headers["Transfer-Encoding"] == "chunked"
    assert cli("image", "load", stdin=b"abc")[1] == "Loaded image: busybox:latest (3 bytes)\n"
    cli("load", "-i", str(archive), tty_out=True)
    assert cli.engine.last("POST", "/images/load").query == {}  # progress wanted on a terminal
    code, _, err = cli("load", tty_in=True)
    assert (code, err) == (1, "requested load from stdin, but stdin is empty\n")
    code, _, err = cli("load", "-i", str(tmp_path / "missing.tar"))
    assert (code, err) == (1, f"open {tmp_path / 'missing.tar'}: no such file or directory\n")


def test_import(cli: Cli, tmp_path: Path) -> None:
    cli.engine.route("POST", "/images/create", lambda req: Response(chunks=json_lines(
        [{"status": ID_A}])))
    rootfs = tmp_path / "rootfs.tar"
    rootfs.write_bytes(b"r" * 1000)
    code, out, _ = cli("import", "-c", 'CMD ["sh"]', "--change", "ENV A=b", "-m", "msg",
                       "--platform", "linux/amd64", str(rootfs), "foo:bar")
    assert (code, out) == (0, ID_A + "\n")
    req = cli.engine.last("POST", "/images/create")
    assert req.query == {"fromSrc": ["-"], "repo": ["foo:bar"], "message": ["msg"],
                         "changes": ['CMD ["sh"]', "ENV A=b"], "platform": ["linux/amd64"]}
    assert req.body == b"r" * 1000
    cli("image", "import", "-", stdin=b"from stdin")
    assert cli.engine.last("POST", "/images/create").body == b"from stdin"
    cli("import", "http://127.0.0.1:1/x.tar")
    req = cli.engine.last("POST", "/images/create")
    assert req.q("fromSrc") == "http://127.0.0.1:1/x.tar" and req.body == b""
    code, _, err = cli("import", str(rootfs), "Bad:x")
    assert code == 1 and "must be lowercase" in err


def test_login_and_logout(cli: Cli) -> None:
    def auth(req: Any) -> Response:
        body = req.json()
        if body.get("password") == "bad":
            return error(401, "login attempt to http://localhost:5000/v2/ failed with status: 401 Unauthorized")
        token = "tok" if body["serveraddress"] == "tokens:1" else ""
        return Response(json={"Status": "Login Succeeded", "IdentityToken": token})

    cli.engine.route("POST", "/auth", auth)
    code, out, err = cli("login", "-u", "bob", "-p", "secret", "localhost:5000")
    assert (code, out) == (0, "Login Succeeded\n")
    path = cli.config / "config.json"
    assert err == ("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n"
                   f"\nWARNING! Your credentials are stored unencrypted in '{path}'.\n"
                   "Configure a credential helper to remove this warning. See\n"
                   "https://docs.docker.com/go/credential-store/\n\n")
    assert cli.engine.last("POST", "/auth").json() == {
        "username": "bob", "password": "secret", "serveraddress": "localhost:5000"}
    assert json.loads(path.read_text())["auths"]["localhost:5000"]["auth"] == \
        base64.b64encode(b"bob:secret").decode()
    code, out, err = cli("login", "-u", "al", "--password-stdin", "https://tokens:1/v2/",
                         stdin=b"pw\n")
    assert code == 0 and "Using --password" not in err
    entry = json.loads(path.read_text())["auths"]["tokens:1"]
    assert entry["identitytoken"] == "tok" and base64.b64decode(entry["auth"]) == b"al:"
    code, out, err = cli("login", "localhost:5000")  # the stored credentials are tried
    assert (code, out) == (0, "Login Succeeded\n")
    assert err.startswith("Authenticating with existing credentials... [Username: bob]")
    code, _, err = cli("login", "-u", "bob", "-p", "bad", "localhost:5000")
    assert code == 1 and err.endswith("Error response from daemon: login attempt to "
                                      "http://localhost:5000/v2/ failed with status: 401 Unauthorized\n")
    assert cli("login", "-u", "x", "localhost:5000")[2] == \
        "Error: Cannot perform an interactive login from a non TTY device\n"
    assert cli("login", "--password-stdin")[2] == \
        "the --password-stdin option requires --username to be set\n"
    assert cli("login", "-p", "x", "--password-stdin")[2] == \
        "conflicting options: cannot specify both --password and --password-stdin\n"
    cli("login", "-u", "hub", "-p", "pw")
    assert cli.engine.last("POST", "/auth").json()["serveraddress"] == "https://index.docker.io/v1/"
    assert cli("logout", "localhost:5000") == (0, "Removing login credentials for localhost:5000\n", "")
    assert cli("logout")[1] == "Removing login credentials for https://index.docker.io/v1/\n"
    assert list(json.loads(path.read_text())["auths"]) == ["tokens:1"]


VERSION = {"Platform": {"Name": "skiff"}, "Version": "0.1.0", "ApiVersion": "1.41",
           "Components": [{"Name": "Engine", "Version": "0.1.0", "Details": {
               "ApiVersion": "1.41", "MinAPIVersion": "1.24", "GitCommit": "abc",
               "GoVersion": "python3.11", "Os": "linux", "Arch": "amd64",
               "BuildTime": "2024-01-01T00:00:00.000000000+00:00", "Experimental": "false"}},
               {"Name": "skiff-runtime", "Version": "0.1.0", "Details": {"GitCommit": "x"}}]}


def test_version(cli: Cli) -> None:
    cli.engine.route("GET", "/version", VERSION)
    code, out, _ = cli("version")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Client:" and lines[2] == " API version:       1.41"
    assert lines[lines.index("Server: skiff") + 1:] == [
        " Engine:", "  Version:          0.1.0", "  API version:      1.41 (minimum version 1.24)",
        "  Go version:       python3.11", "  Git commit:       abc",
        "  Built:            Mon Jan  1 00:00:00 2024", "  OS/Arch:          linux/amd64",
        "  Experimental:     false", " skiff-runtime:", "  Version:          0.1.0",
        "  GitCommit:        x"]
    assert cli("version", "--format", "{{.Server.Version}} {{.Client.ApiVersion}}")[1] == "0.1.0 1.41\n"
    assert json.loads(cli("version", "-f", "json")[1])["Server"]["Version"] == "0.1.0"


def test_version_without_a_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    out, err = io.StringIO(), io.StringIO()
    assert run(["version"], Context(out=out, err=err)) == 1
    assert out.getvalue().startswith("Client:\n Version:")
    assert "Server" not in out.getvalue()
    assert err.getvalue() == (f"Cannot connect to the Docker daemon at unix://{tmp_path}/none.sock."
                              " Is the docker daemon running?\n")


def test_info(cli: Cli) -> None:
    cli.engine.route("GET", "/info", {
        "ID": "abcd", "Containers": 2, "ContainersRunning": 1, "ContainersPaused": 0,
        "ContainersStopped": 1, "Images": 3, "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host"], "Log": ["json-file"]},
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": "1",
        "KernelVersion": "6.1.0", "OperatingSystem": "Debian", "OSType": "linux",
        "Architecture": "x86_64", "NCPU": 4, "MemTotal": 8000000000, "Name": "host1",
        "DockerRootDir": "/var/lib/skiff", "ServerVersion": "0.1.0", "Runtimes": {"runc": {}},
        "DefaultRuntime": "runc", "SecurityOptions": ["name=seccomp,profile=default"],
        "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"]},
        "Warnings": ["WARNING: no swap limit support"]})
    code, out, err = cli("info")
    assert code == 0 and err == "WARNING: no swap limit support\n"
    for line in (" Containers: 2", "  Running: 1", " Images: 3", " Storage Driver: overlay2",
                 "  Backing Filesystem: extfs", "  Network: bridge host", " Runtimes: runc",
                 "  seccomp", "   Profile: default", " Total Memory: 7.451GiB",
                 " Insecure Registries:", "  127.0.0.0/8", " Live Restore Enabled: false"):
        assert line in out.splitlines()
    assert cli("system", "info", "-f", "{{.Name}} {{.ClientInfo.Context}}")[1] == "host1 default\n"


def test_login_asks_on_a_terminal(cli: Cli) -> None:
    import pty
    cli.engine.route("POST", "/auth", {"Status": "Login Succeeded"})
    master, slave = pty.openpty()
    try:
        os.write(master, b"carol\nhidden\n")
        out, err = io.StringIO(), io.StringIO()
        with open(slave, "r", closefd=False) as terminal:
            code = run(["login", "localhost:5000"], Context(out=out, err=err, stdin=terminal))
        assert (code, out.getvalue()) == (0, "Username: Password: \nLogin Succeeded\n")
        assert cli.engine.last("POST", "/auth").json() == {
            "username": "carol", "password": "hidden", "serveraddress": "localhost:5000"}
        # a name given: only the password is asked
        os.write(master, b"again\n")
        out = io.StringIO()
        with open(slave, "r", closefd=False) as terminal:
            run(["login", "-u", "carol", "localhost:5000"], Context(out=out, err=err, stdin=terminal))
        assert out.getvalue() == "Password: \nLogin Succeeded\n"
    finally:
        os.close(master)
        os.close(slave)
