"""Fixtures that start the real `skiffd` on a socket of its own for the tests.

`skiffd` gives a running daemon (function scope) on a fresh SKIFF_ROOT/SKIFF_RUN pair under
the session's temporary root; `skiffd_factory` starts as many as a test wants, each with
extra daemon flags (``skiffd_factory("--insecure-registry", "myhost:5000")``; ``{run}`` in a
flag stands for its SKIFF_RUN, e.g. ``"-H", "unix://{run}/skiff.sock"``). A daemon is
the `.venv/bin/skiffd` console script, started as a child process, waited for until its
``/_ping`` answers, and stopped at teardown by its PID with SIGTERM — after which the
fixture checks that it removed its socket and pid file.

What a test gets (`Skiffd`):

- ``.socket``, ``.root``, ``.run``, ``.pidfile``, ``.log`` — paths;
- ``.url`` — ``unix:///…/skiff.sock``, what DOCKER_HOST wants;
- ``.env`` — ``os.environ`` plus SKIFF_ROOT, SKIFF_RUN, DOCKER_HOST and a DOCKER_CONFIG of
  its own (so a ``docker login`` in one test never touches another's credentials), for
  running ``docker``, ``skiff`` or docker-py against this daemon;
- ``.request(method, path, body=None, headers=None)`` → (status, headers, body bytes) and
  ``.json(method, path, …)`` → (status, decoded JSON), straight over the socket.

The daemon's environment carries the suite's SKIFF_TEST_RUN mark, so one left running
would be reported by the leftover check in conftest.py.

`check_api_shape(doc, "ImageSummary")` validates an answer against a definition of the
Docker Engine API v1.41 spec (../shared/specs/docker-engine-api-v1.41.yaml) with
jsonschema. The spec is OpenAPI 2, whose fields Go may send as null unless they say
``x-nullable: false``; the check follows that, and also refuses top-level fields the spec
does not name (a misspelt key would otherwise pass unseen).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import LINK_PREFIX, SHARED_SPECS, TMP_MARK

SKIFFD = str(Path(sys.executable).parent / "skiffd")
ENGINE_API_SPEC = SHARED_SPECS / "docker-engine-api-v1.41.yaml" if SHARED_SPECS else None
START_TIMEOUT = 60.0  # the first start on a root builds the busybox image
STOP_TIMEOUT = 15.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.socket_path)
        except OSError:
            s.close()
            raise
        self.sock = s


@dataclass
class Skiffd:
    """A running skiffd of one test (see the module docstring)."""

    workdir: Path
    root: Path
    run: Path
    socket: Path
    pidfile: Path
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None,
                timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
        conn = _UnixConnection(str(self.socket), timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        status, _, raw = self.request(method, path, data, hdrs)
        return status, json.loads(raw) if raw.strip() else None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


def _pings(path: Path) -> bool:
    conn = _UnixConnection(str(path), timeout=2)
    try:
        conn.request("GET", "/_ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def subnet_for(key: str, taken: tuple[str, ...] = ()) -> str:
    """A /24 for a test's network, out of the host's routes and `taken` (so not another
    test run's, nor the 172.29.0.0/16 of a real skiffd), first tried where `key` says."""
    import hashlib
    import ipaddress

    from skiff.net.ipam import host_routes

    busy = [*host_routes(), *(ipaddress.IPv4Network(t) for t in taken)]
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big")
    for step in range(4096):
        n = (h + step * 7919) % (120 * 256)
        candidate = ipaddress.IPv4Network(f"10.{128 + n // 256}.{n % 256}.0/24")
        if not any(candidate.overlaps(b) for b in busy if b.prefixlen > 0):
            return str(candidate)
    raise AssertionError("no free /24 for a test network")


def bridge_for(key: str) -> str:
    """A Linux bridge name for a test daemon's default bridge: the session's prefix (which
    the end-of-session check looks for) and 6 hex digits of `key`."""
    import hashlib

    return LINK_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:6]


def start_skiffd(workdir: Path, *args: str, env: dict[str, str] | None = None) -> Skiffd:
    """Start skiffd with its state under `workdir` and wait until it answers /_ping on
    ``run/skiff.sock``; ``{run}`` in `args` is replaced by the run folder (for ``-H``)."""
    run = workdir / "run"
    args = tuple(a.replace("{run}", str(run)) for a in args)
    d = Skiffd(workdir=workdir, root=workdir / "root", run=run, socket=run / "skiff.sock",
               pidfile=run / "skiffd.pid", log=workdir / "skiffd.log",
               env=dict(env or os.environ), args=list(args))
    d.env.update(SKIFF_ROOT=str(d.root), SKIFF_RUN=str(d.run), DOCKER_HOST=d.url,
                 DOCKER_CONFIG=str(workdir / "docker-config"))
    # a default bridge of its own (a restart on the same folder finds the same one)
    d.env.setdefault("SKIFF_BRIDGE", bridge_for(str(workdir)))
    kept = workdir / "bridge-subnet"
    if not kept.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        kept.write_text(subnet_for(str(workdir)))
    d.env.setdefault("SKIFF_BRIDGE_SUBNET", kept.read_text())
    daemon_env = dict(d.env, SKIFF_TEST_RUN=TMP_MARK)
    with open(d.log, "wb") as log:
        d.process = subprocess.Popen([SKIFFD, "--log-level", "debug", *args], env=daemon_env,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.monotonic() + START_TIMEOUT
    while not _pings(d.socket):
        if d.process.poll() is not None:
            raise AssertionError(f"skiffd exited {d.process.returncode} at start:\n"
                                 f"{d.log_text()}")
        if time.monotonic() > deadline:
            stop_skiffd(d, check=False)
            raise AssertionError(f"skiffd did not answer /_ping in {START_TIMEOUT}s:\n"
                                 f"{d.log_text()}")
        time.sleep(0.05)
    return d


def stop_skiffd(d: Skiffd, check: bool = True) -> None:
    """SIGTERM by PID, wait, and (with `check`) insist the socket and pid file are gone."""
    p = d.process
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        if check:
            raise AssertionError(f"skiffd did not stop on SIGTERM:\n{d.log_text()}")
    if check:
        assert p.returncode == 0, f"skiffd exited {p.returncode}:\n{d.log_text()}"
        assert not d.socket.exists(), "skiffd left its socket behind"
        assert not d.pidfile.exists(), "skiffd left its pid file behind"


def remove_networks(d: Skiffd) -> None:
    """Every user network of `d` (the pre-defined ones stay)."""
    status, found = d.json("GET", "/networks")
    assert status == 200, found
    for n in found:
        if n["Name"] not in ("bridge", "host", "none"):
            status, _, body = d.request("DELETE", f"/networks/{n['Id']}")
            assert status in (204, 404), body


def remove_all(d: Skiffd, volumes: bool = False) -> None:
    """Every container of `d`, removed by force (and with `volumes` their anonymous volumes
    and then every volume); none may be left."""
    status, found = d.json("GET", "/containers/json?all=1")
    assert status == 200, found
    for c in found:
        status, _, body = d.request("DELETE", f"/containers/{c['Id']}?force=1&v={int(volumes)}")
        assert status in (204, 404), body
    status, found = d.json("GET", "/containers/json?all=1")
    assert found == [], found
    if volumes:
        status, found = d.json("GET", "/volumes")
        assert status == 200, found
        for v in found["Volumes"]:
            status, _, body = d.request("DELETE", f"/volumes/{v['Name']}")
            assert status in (204, 404), body
        assert d.json("GET", "/volumes")[1]["Volumes"] == []


@contextlib.contextmanager
def module_daemon(tmp_root: Path, name: str, *args: str) -> Iterator[Skiffd]:
    """A skiffd (with `args`) for a whole test module, its state under
    ``skiffd-<name>-<hex>``: every container goes before it stops (containers outlive
    skiffd), its folder after."""
    workdir = tmp_root / f"skiffd-{name}-{uuid.uuid4().hex[:8]}"
    workdir.mkdir()
    try:
        d = start_skiffd(workdir, *args)
        try:
            yield d
        finally:
            try:
                remove_all(d)
            finally:
                stop_skiffd(d)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def module_skiffd(request: pytest.FixtureRequest, tmp_root: Path) -> Iterator[Skiffd]:
    """One skiffd serves a module (a fresh one per test would cost a second each)."""
    with module_daemon(tmp_root, request.module.__name__.removeprefix("test_")) as d:
        yield d


@pytest.fixture
def daemon(module_skiffd: Skiffd) -> Iterator[Skiffd]:
    """The module's skiffd, every container of the test removed after it."""
    yield module_skiffd
    remove_all(module_skiffd)


@pytest.fixture
def skiffd_factory(tmp_root: Path) -> Iterator[Callable[..., Skiffd]]:
    """``start(*daemon_flags)`` → a new running Skiffd; all are stopped at teardown."""
    started: list[Skiffd] = []

    def start(*args: str) -> Skiffd:
        workdir = tmp_root / f"skiffd-{uuid.uuid4().hex[:8]}"
        workdir.mkdir()
        d = start_skiffd(workdir, *args)
        started.append(d)
        return d

    yield start
    try:
        for d in started:
            stop_skiffd(d)
    finally:
        for d in started:
            stop_skiffd(d, check=False)
            shutil.rmtree(d.workdir, ignore_errors=True)


@pytest.fixture
def skiffd(skiffd_factory: Callable[..., Skiffd]) -> Skiffd:
    """One running skiffd on a fresh root (see the module docstring)."""
    return skiffd_factory()


# -- the spec's shapes --------------------------------------------------------------------------
def _allow_null(schema: dict[str, Any]) -> dict[str, Any]:
    if schema.get("x-nullable") is False:
        return schema
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def _nullable_fields(node: Any) -> Any:
    """OpenAPI 2 → JSON Schema as Go encodes: a property may be null unless x-nullable is
    false."""
    if isinstance(node, list):
        return [_nullable_fields(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_fields(v) for k, v in node.items()}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _allow_null(v) for k, v in out["properties"].items()}
    return out


@functools.cache
def api_definitions() -> dict[str, Any]:
    import yaml

    if ENGINE_API_SPEC is None:
        pytest.skip("the shared specs folder (../shared/specs beside the repo, or "
                    "/work/shared/specs) is absent: no Engine API spec to check shapes against")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(ENGINE_API_SPEC) as f:
        spec = yaml.load(f, Loader=loader)  # noqa: S506 - a safe loader
    definitions = dict(spec["definitions"])
    # answers the spec writes inline (ExecInspectResponse…) are checked by their title too
    for operations in spec["paths"].values():
        for operation in operations.values():
            for response in (operation.get("responses") or {}).values():
                schema = response.get("schema") if isinstance(response, dict) else None
                if isinstance(schema, dict) and schema.get("title"):
                    definitions.setdefault(schema["title"], schema)
    return dict(_nullable_fields(definitions))


def check_api_shape(doc: Any, definition: str, *, strict: bool = True) -> None:
    """Validate `doc` against the spec's `definition` (and, with `strict`, refuse top-level
    fields the definition does not name)."""
    import jsonschema

    definitions = api_definitions()
    schema = {"$ref": f"#/definitions/{definition}", "definitions": definitions}
    jsonschema.Draft4Validator(schema).validate(doc)
    if strict and isinstance(doc, dict):
        known = set(definitions[definition].get("properties", {}))
        unknown = set(doc) - known
        assert not unknown, f"{definition}: fields the spec does not have: {sorted(unknown)}"


@contextlib.contextmanager
def docker_py_client(url: str, **options: Any) -> Iterator[Any]:
    """A docker-py `DockerClient` of the daemon at `url`, closed at the end. docker-py
    leaves the sockets of streamed and hijacked responses to the garbage collector, which
    would report them (a ResourceWarning, an error in this suite) in whatever later test it
    happens to run; they are collected here, in the test that made them."""
    import docker

    client = docker.DockerClient(base_url=url, **options)
    try:
        yield client
    finally:
        client.close()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def run_client(d: Skiffd, argv: list[str], *, input: bytes | None = b"", check: bool = True,
               env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a client command (skiff's or docker's CLI) against `d`, output decoded; with
    `check`, a failure shows its output and the end of skiffd's log."""
    p = subprocess.run(argv, env=env or d.env, capture_output=True, timeout=timeout, input=input)
    out = subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(errors="replace"),
                                      p.stderr.decode(errors="replace"))
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {p.returncode}:\n"
                             f"stdout: {out.stdout}\nstderr: {out.stderr}\n"
                             f"skiffd log:\n{d.log_text()[-3000:]}")
    return out
