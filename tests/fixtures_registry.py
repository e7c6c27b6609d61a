"""Fixtures that start Debian's docker-registry on 127.0.0.1 for the tests, and put images
into it with a tool skiff did not write (skopeo).

Three registries, one per session each, started on a free loopback port with filesystem
storage in a folder of the session's temporary root and deletion enabled, stopped by PID at
teardown (and found by the suite's leftover check if they were not):

- `registry`: plain HTTP, anonymous — what `docker run registry:2` gives.
- `secure_registry`: TLS with a server certificate signed by a test CA (both made here with
  the `openssl` CLI) and htpasswd (bcrypt) Basic auth; `certs_dir` is laid out as Docker's
  certs.d (``<dir>/127.0.0.1:PORT/ca.crt``).
- `token_registry`: ``auth: token``, pointing at a small token server run here (a thread of
  the test process on 127.0.0.1). It checks Basic credentials (or, on POST, the OAuth2
  password and refresh-token grants) and issues RS256 JWTs whose signing certificate chains
  to the CA in the registry's ``rootcertbundle``: the Bearer ``WWW-Authenticate`` flow of
  Docker Hub. Anonymous callers get a token that grants nothing.

Tests that use any of them are marked `registry` by the hook below. `oci_layout` writes an
OCI image layout by hand (random layer content, so each image is new to the registry) and
`skopeo_copy` copies it (or anything skopeo reads) into a registry; `put_image` does both.
`CuttingProxy` sits in front of a registry and breaks blob transfers half-way, or serves
other bytes than the registry's, to test what a client keeps when a transfer goes wrong.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import TMP_MARK

REGISTRY_BIN = "/usr/bin/docker-registry"
REGISTRY_FIXTURES = ("registry", "secure_registry", "token_registry")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # a test that needs a registry is a registry test, whether or not its file says so
    for item in items:
        if set(getattr(item, "fixturenames", ())) & set(REGISTRY_FIXTURES):
            item.add_marker(pytest.mark.registry)


# -- the registry process -----------------------------------------------------------------
@dataclass
class Registry:
    """A running docker-registry. `host` is ``127.0.0.1:PORT`` (what goes in a reference),
    `url` its base URL, `storage` the folder its blobs are in."""

    host: str
    url: str
    storage: Path
    process: subprocess.Popen[bytes]
    log: Path
    ca_file: str | None = None
    certs_dir: str | None = None
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None

    @property
    def port(self) -> int:
        return int(self.host.rpartition(":")[2])

    def ref(self, name: str) -> str:
        """A reference to `name` (``repo:tag`` or ``repo@digest``) in this registry."""
        return f"{self.host}/{name}"

    def blob_path(self, digest: str) -> Path:
        """Where the registry keeps a blob's bytes (to corrupt it on purpose)."""
        hexpart = digest.partition(":")[2]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.ca_file is None:
            return None
        return ssl.create_default_context(cafile=self.ca_file)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        """One raw request to the registry (with the test credentials, if it has them)."""
        headers = dict(headers or {})
        if self.username is not None and self.token_server is None:
            creds = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            headers.setdefault("Authorization", f"Basic {creds}")
        conn = _connection(self.host, self.ssl_context())
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


def _connection(host: str, context: ssl.SSLContext | None) -> http.client.HTTPConnection:
    if context is None:
        return http.client.HTTPConnection(host, timeout=10)
    return http.client.HTTPSConnection(host, timeout=10, context=context)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(storage: Path, port: int, auth: dict[str, Any] | None,
            tls: tuple[Path, Path] | None) -> dict[str, Any]:
    http_part: dict[str, Any] = {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex,
                                 "headers": {"X-Content-Type-Options": ["nosniff"]}}
    if tls is not None:
        http_part["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        # no blob descriptor cache: a test may change a blob under the registry's feet
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": http_part,
    }
    if auth is not None:
        config["auth"] = auth
    return config


def _wait_until_up(reg: Registry, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if reg.process.poll() is not None:
            raise RuntimeError(f"docker-registry exited {reg.process.returncode}:\n"
                               f"{reg.log.read_text(errors='replace')[-3000:]}")
        try:
            conn = _connection(reg.host, reg.ssl_context())
            try:
                conn.request("GET", "/v2/")
                status = conn.getresponse().status
            finally:
                conn.close()
            if status in (200, 401):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"docker-registry did not answer /v2/ on {reg.host} within "
                               f"{timeout} s:\n{reg.log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.02)


def start_registry(workdir: Path, *, auth: dict[str, Any] | None = None,
                   tls: tuple[Path, Path] | None = None, ca_file: str | None = None) -> Registry:
    """Start a docker-registry storing under `workdir`; stop it with `stop_registry`."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    for _ in range(3):  # the free port may be taken by someone else before the registry binds
        port = free_port()
        config = workdir / "config.yml"
        config.write_text(json.dumps(_config(storage, port, auth, tls), indent=2))  # YAML ⊃ JSON
        log = workdir / "registry.log"
        env = dict(os.environ, SKIFF_TEST_RUN=TMP_MARK, OTEL_TRACES_EXPORTER="none")
        with open(log, "ab") as out:
            proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        reg = Registry(host=f"127.0.0.1:{port}",
                       url=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
                       storage=storage, process=proc, log=log, ca_file=ca_file)
        try:
            _wait_until_up(reg)
            return reg
        except RuntimeError as e:
            stop_registry(reg)
            last = e
    raise RuntimeError(f"could not start docker-registry: {last}")


def stop_registry(reg: Registry) -> None:
    proc = reg.process
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def registry(tmp_root: Path) -> Iterator[Registry]:
    """A plain-HTTP, anonymous docker-registry on 127.0.0.1 for the whole session."""
    workdir = tmp_root / f"registry-{uuid.uuid4().hex[:8]}"
    reg = start_registry(workdir)
    try:
        yield reg
    finally:
        stop_registry(reg)
        shutil.rmtree(workdir, ignore_errors=True)


# -- certificates -------------------------------------------------------------------------
@dataclass
class TestCA:
    """A CA made with the openssl CLI; `issue` makes a certificate signed by it."""

    __test__ = False  # not a test class, whatever its name says

    dir: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, dir: Path) -> TestCA:
        dir.mkdir(parents=True, exist_ok=True)
        cert, key = dir / "ca.crt", dir / "ca.key"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", cert, "-days", "3",
                 "-subj", "/CN=skiff test CA",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return cls(dir, cert, key)

    def issue(self, name: str, extensions: str, rsa: bool = False) -> tuple[Path, Path]:
        """A key and a certificate for `name` signed by the CA, with `extensions` (openssl
        x509v3 config lines)."""
        key, csr, cert = self.dir / f"{name}.key", self.dir / f"{name}.csr", self.dir / f"{name}.crt"
        ext = self.dir / f"{name}.ext"
        ext.write_text(extensions)
        keyspec = (["-newkey", "rsa:2048"] if rsa else
                   ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        _openssl("req", *keyspec, "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                 "-CAcreateserial", "-out", cert, "-days", "3", "-extfile", ext)
        return cert, key


def _openssl(*args: object) -> bytes:
    p = subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))}: {p.stderr.decode(errors='replace')}")
    return p.stdout


def server_cert(ca: TestCA) -> tuple[Path, Path]:
    return ca.issue("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                              "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")


def certs_d(dir: Path, host: str, ca: TestCA) -> Path:
    """Docker's certs.d layout for `host`: ``<dir>/<host>/ca.crt``."""
    (dir / host).mkdir(parents=True, exist_ok=True)
    shutil.copy(ca.cert, dir / host / "ca.crt")
    return dir


@pytest.fixture(scope="session")
def secure_registry(tmp_root: Path) -> Iterator[Registry]:
    """docker-registry over TLS (a test CA's server certificate) with htpasswd Basic auth."""
    workdir = tmp_root / f"secure-registry-{uuid.uuid4().hex[:8]}"
    ca = TestCA.make(workdir / "pki")
    cert, key = server_cert(ca)
    username, password = "skiffy", "s3cret-" + uuid.uuid4().hex[:8]
    line = subprocess.run(["htpasswd", "-Bbn", username, password], check=True,
                          capture_output=True).stdout
    htpasswd = workdir / "htpasswd"
    htpasswd.write_bytes(line.strip() + b"\n")
    auth = {"htpasswd": {"realm": "skiff-test", "path": str(htpasswd)}}
    reg = start_registry(workdir, auth=auth, tls=(cert, key), ca_file=str(ca.cert))
    try:
        reg.certs_dir = str(certs_d(workdir / "certs.d", reg.host, ca))
        reg.username, reg.password = username, password
        yield reg
    finally:
        stop_registry(reg)
        shutil.rmtree(workdir, ignore_errors=True)


# -- the token server ---------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenServer:
    """Docker's token authentication, for one user: GET ``/token`` with Basic credentials
    (or none: a token that grants nothing), POST ``/token`` with the OAuth2 ``password`` or
    ``refresh_token`` grant. `requests` records each request (method, query, form) so tests
    can count token fetches; `expires_in` is what tokens say of their life."""

    key: Path
    cert_der: bytes
    service: str
    issuer: str
    username: str
    password: str
    server: ThreadingHTTPServer | None = None
    thread: threading.Thread | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    refresh_tokens: set[str] = field(default_factory=set)
    expires_in: int = 300

    @property
    def realm(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        signing_input = (_b64url(json.dumps(header).encode()) + "." +
                         _b64url(json.dumps(claims).encode()))
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), capture_output=True,
                                   check=True).stdout
        return signing_input + "." + _b64url(signature)

    def token(self, subject: str, scopes: list[str], granted: bool) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind and name and granted:
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        return self.sign({"iss": self.issuer, "sub": subject, "aud": self.service,
                          "exp": now + self.expires_in, "nbf": now - 5, "iat": now,
                          "jti": uuid.uuid4().hex, "access": access})

    def answer(self, method: str, query: dict[str, list[str]], form: dict[str, list[str]],
               authorization: str | None) -> tuple[int, dict[str, Any]]:
        self.requests.append({"method": method, "query": query, "form": form,
                              "authorization": authorization})
        source = query if method == "GET" else form
        scopes = [s for text in source.get("scope", []) for s in text.split(" ") if s]
        if source.get("service", [self.service])[0] != self.service:
            return 400, {"errors": [{"code": "UNSUPPORTED", "message": "unknown service"}]}
        user: str | None = None
        if method == "GET" and authorization:
            scheme, _, value = authorization.partition(" ")
            try:
                name, _, secret = base64.b64decode(value).decode().partition(":")
            except ValueError:
                name, secret = "", ""
            if scheme.lower() != "basic" or (name, secret) != (self.username, self.password):
                return 401, {"errors": [{"code": "UNAUTHORIZED",
                                         "message": "authentication required"}]}
            user = name
        elif method == "POST":
            grant = form.get("grant_type", [""])[0]
            if grant == "password" and (form.get("username", [""])[0],
                                        form.get("password", [""])[0]) == (self.username,
                                                                           self.password) or grant == "refresh_token" and form.get("refresh_token", [""])[0] in self.refresh_tokens:
                user = self.username
            else:
                return 401, {"errors": [{"code": "UNAUTHORIZED",
                                         "message": "invalid grant"}]}
        token = self.token(user or "", scopes, granted=user is not None)
        body: dict[str, Any] = {"token": token, "access_token": token,
                                "expires_in": self.expires_in,
                                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        wants_refresh = (method == "POST" and form.get("access_type", [""])[0] == "offline") or \
            (method == "GET" and query.get("offline_token", [""])[0] == "true")
        if user is not None and wants_refresh:
            refresh = uuid.uuid4().hex
            self.refresh_tokens.add(refresh)
            body["refresh_token"] = refresh
        return 200, body

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def handle_any(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path != "/token":
                    self.send_error(404)
                    return
                form: dict[str, list[str]] = {}
                if method == "POST":
                    length = int(self.headers.get("Content-Length") or 0)
                    form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                status, body = owner.answer(method, urllib.parse.parse_qs(url.query), form,
                                            self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self.handle_any("GET")

            def do_POST(self) -> None:
                self.handle_any("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True, name="token-server")
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        if self.thread is not None:
            self.thread.join(10)


@pytest.fixture(scope="session")
def token_registry(tmp_root: Path) -> Iterator[Registry]:
    """docker-registry (plain HTTP on loopback) with ``auth: token``, and the token server
    it trusts; `username`/`password` are the one user's, `token_server` the server."""
    workdir = tmp_root / f"token-registry-{uuid.uuid4().hex[:8]}"
    ca = TestCA.make(workdir / "pki")
    cert, key = ca.issue("token-signer", "keyUsage=critical,digitalSignature\n"
                                         "basicConstraints=CA:FALSE\n", rsa=True)
    der = _openssl("x509", "-in", cert, "-outform", "DER")
    tokens = TokenServer(key=key, cert_der=der, service="skiff-test-registry",
                         issuer="skiff-test-token-issuer", username="tokenuser",
                         password="t0ken-" + uuid.uuid4().hex[:8])
    tokens.start()
    try:
        auth = {"token": {"realm": tokens.realm, "service": tokens.service,
                          "issuer": tokens.issuer, "rootcertbundle": str(ca.cert)}}
        reg = start_registry(workdir, auth=auth)
        try:
            reg.username, reg.password, reg.token_server = tokens.username, tokens.password, tokens
            yield reg
        finally:
            stop_registry(reg)
    finally:
        tokens.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- images made by hand, copied in by skopeo -----------------------------------------------
def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class LayoutImage:
    """One image of an OCI layout: the bytes and digests a registry must serve back."""

    manifest: bytes
    manifest_digest: str
    config: bytes
    config_digest: str
    layer_digests: list[str]
    diff_ids: list[str]
    layer_sizes: list[int]
    platform: str


@dataclass
class OciLayout:
    """An OCI image layout on disk (`path`), tagged `tag`: one image, or an index of
    several (`index_digest` set) when made for more than one platform."""

    path: Path
    tag: str
    images: list[LayoutImage]
    index: bytes | None = None
    index_digest: str | None = None

    @property
    def image(self) -> LayoutImage:
        return self.images[0]

    @property
    def digest(self) -> str:
        """The digest the tag resolves to in a registry (the index's, if there is one)."""
        return self.index_digest or self.images[0].manifest_digest

    def source(self) -> str:
        return f"oci:{self.path}:{self.tag}"


def layer_tar(files: dict[str, bytes], mtime: int = 1_600_000_000) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def oci_layout(path: Path, layers: list[dict[str, bytes]] | None = None, *, tag: str = "latest",
               compress: bool = True, platforms: tuple[str, ...] = ("linux/amd64",),
               cmd: tuple[str, ...] = ("/bin/sh",)) -> OciLayout:
    """Write an OCI image layout at `path`. `layers` are file maps (default: one layer with
    4 KiB of random bytes, so the image is new to any registry). With several `platforms`
    each gets its own image (the same layers plus a file naming the platform) under one
    index that the tag points at."""
    if layers is None:
        layers = [{"random.bin": os.urandom(4096)}]
    blobs = path / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = _sha(data)
        (blobs / d[7:]).write_bytes(data)
        return d

    images = []
    for plat in platforms:
        os_name, arch, *variant = plat.split("/")
        image_layers = list(layers) + ([{"platform": plat.encode()}] if len(platforms) > 1 else [])
        descs, diff_ids, digests, sizes = [], [], [], []
        for files in image_layers:
            tar = layer_tar(files)
            blob = gzip.compress(tar, compresslevel=1, mtime=0) if compress else tar
            d = put(blob)
            descs.append({"mediaType": OCI_LAYER_GZIP if compress else OCI_LAYER,
                          "digest": d, "size": len(blob)})
            diff_ids.append(_sha(tar))
            digests.append(d)
            sizes.append(len(blob))
        config_doc: dict[str, Any] = {
            "created": "2024-01-01T00:00:00Z", "architecture": arch, "os": os_name,
            "config": {"Cmd": list(cmd), "Env": [PATH]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "fixtures_registry"}
                        for _ in descs]}
        if variant:
            config_doc["variant"] = variant[0]
        config = json.dumps(config_doc).encode()
        config_digest = put(config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": OCI_CONFIG, "digest": config_digest,
                                          "size": len(config)},
                               "layers": descs}).encode()
        images.append(LayoutImage(manifest, put(manifest), config, config_digest, digests,
                                  diff_ids, sizes, plat))
    index = index_digest = None
    if len(platforms) > 1:
        entries = []
        for img in images:
            os_name, arch, *variant = img.platform.split("/")
            p: dict[str, Any] = {"architecture": arch, "os": os_name}
            if variant:
                p["variant"] = variant[0]
            entries.append({"mediaType": OCI_MANIFEST, "digest": img.manifest_digest,
                            "size": len(img.manifest), "platform": p})
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                            "manifests": entries}).encode()
        index_digest = put(index)
        top = {"mediaType": OCI_INDEX, "digest": index_digest, "size": len(index)}
    else:
        top = {"mediaType": OCI_MANIFEST, "digest": images[0].manifest_digest,
               "size": len(images[0].manifest)}
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                 "manifests": [top]}))
    return OciLayout(path, tag, images, index, index_digest)


def skopeo_copy(source: str, dest: str, *, all: bool = False, dest_creds: str | None = None,
                dest_cert_dir: str | None = None, extra: tuple[str, ...] = ()) -> None:
    """``skopeo copy`` with the registry side unverified unless a cert dir is given
    (``docker://127.0.0.1:PORT/name:tag``, or any other transport skopeo knows)."""
    argv = ["skopeo", "--insecure-policy", "copy", "--quiet"]
    if all:
        argv.append("--all")
    if dest.startswith("docker://"):
        argv += ["--dest-cert-dir", dest_cert_dir] if dest_cert_dir else ["--dest-tls-verify=false"]
    if source.startswith("docker://"):
        argv.append("--src-tls-verify=false")
    if dest_creds:
        argv += ["--dest-creds", dest_creds]
    p = subprocess.run([*argv, *extra, source, dest], capture_output=True, text=True,
                       timeout=120, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} {source} {dest}: {p.stderr}")


def skopeo_inspect(ref: str, *, raw: bool = False, creds: str | None = None,
                   cert_dir: str | None = None) -> Any:
    """``skopeo inspect`` of ``docker://<ref>`` (JSON, or the raw manifest bytes' JSON)."""
    argv = ["skopeo", "inspect"]
    argv += ["--cert-dir", cert_dir] if cert_dir else ["--tls-verify=false"]
    if creds:
        argv += ["--creds", creds]
    if raw:
        argv.append("--raw")
    p = subprocess.run([*argv, f"docker://{ref}"], capture_output=True, timeout=60, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} docker://{ref}: {p.stderr.decode(errors='replace')}")
    return p.stdout if raw else json.loads(p.stdout)


def put_image(reg: Registry, name: str, workdir: Path, **layout: Any) -> OciLayout:
    """Make an OCI layout under `workdir` (see `oci_layout`) and copy it with skopeo to
    `reg` as `name` (``repo:tag``; the tag is the layout's). Multi-platform layouts are
    copied whole (``--all``), so the registry holds the index."""
    repo, _, tag = name.partition(":")
    tag = tag or "latest"
    made = oci_layout(workdir / f"layout-{uuid.uuid4().hex[:8]}", tag=tag, **layout)
    creds = f"{reg.username}:{reg.password}" if reg.username else None
    skopeo_copy(made.source(), f"docker://{reg.host}/{repo}:{tag}", all=made.index is not None,
                dest_creds=creds, dest_cert_dir=reg.certs_dir and str(Path(reg.certs_dir) / reg.host))
    return made


# -- a proxy that breaks transfers ----------------------------------------------------------
class CuttingProxy:
    """A plain-HTTP proxy on 127.0.0.1 in front of `upstream` (``host:port``, plain HTTP)
    that makes blob transfers go wrong on purpose.

    Requests are forwarded as they come, one upstream connection per request. For GETs of
    a blob (by digest):
    - `cut[digest] = offset`: the response stops at that byte offset of the blob and the
      connection closes (a transfer broken half-way; a resumed GET with a Range past it
      gets nothing either), for the first `cut_times[digest]` GETs (all by default);
    - `replace[digest] = data`: the body is swapped for other bytes of the same length
      (content that does not match its digest);
    - `fail[digest] = n`: the first n GETs answer 503;
    - `redirect`: GETs and HEADs of blobs answer 307 to the upstream registry itself (a
      registry that sends blobs to its storage), counted in `redirected`;
    - `chunked`: every body is sent with ``Transfer-Encoding: chunked``.
    `blob_gets` counts the GETs per digest, `ranges` records the Range headers."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.cut: dict[str, int] = {}
        self.cut_times: dict[str, int] = {}
        self.replace: dict[str, bytes] = {}
        self.fail: dict[str, int] = {}
        self.redirect = False
        self.redirected = 0
        self.chunked = False
        self.blob_gets: dict[str, int] = {}
        self.ranges: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def forward(self) -> None:
                digest = self.path.rpartition("/blobs/")[2].partition("?")[0] \
                    if "/blobs/sha256:" in self.path else ""
                if digest and self.command == "GET" and owner.fail.get(digest, 0) > 0:
                    owner.fail[digest] -= 1
                    self.answer(503, [], b"", None)
                    return
                if digest and owner.redirect and self.command in ("GET", "HEAD"):
                    owner.redirected += 1
                    self.answer(307, [("Location", f"http://{owner.upstream}{self.path}")],
                                b"", None)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection", "content-length")}
                conn = http.client.HTTPConnection(owner.upstream, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    limit: int | None = None
                    if self.command == "GET" and digest and resp.status in (200, 206):
                        limit = self.blob_get(digest)
                        swap = owner.replace.get(digest)
                        if swap is not None:
                            data = swap[:len(data)]
                    kept = [(k, v) for k, v in resp.getheaders()
                            if k.lower() not in ("connection", "transfer-encoding",
                                                 "content-length")]
                    if self.command == "HEAD":
                        kept.append(("Content-Length", resp.getheader("Content-Length", "0")))
                    self.answer(resp.status, kept, data, limit)
                finally:
                    conn.close()

            def blob_get(self, digest: str) -> int | None:
                """Count a blob GET; the byte count to stop its body at, if it is cut."""
                owner.blob_gets[digest] = owner.blob_gets.get(digest, 0) + 1
                if "Range" in self.headers:
                    owner.ranges.append(self.headers["Range"])
                times = owner.cut_times.get(digest)
                if digest not in owner.cut or (times is not None and
                                               owner.blob_gets[digest] > times):
                    return None
                start = self.headers.get("Range", "bytes=0-")[6:].partition("-")[0]
                return max(0, owner.cut[digest] - int(start or 0))

            def answer(self, status: int, headers: list[tuple[str, str]], data: bytes,
                       limit: int | None) -> None:
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                with_body = self.command != "HEAD"
                chunked = owner.chunked and with_body and limit is None
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                elif with_body:
                    self.send_header("Content-Length", str(len(data)))
                if limit is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                if chunked:
                    for i in range(0, len(data), 65536):
                        part = data[i:i + 65536]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                elif with_body:
                    self.wfile.write(data if limit is None else data[:limit])
                if limit is not None:
                    self.wfile.flush()
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True, name="cutting-proxy")
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def cutting_proxy(registry: Registry) -> Iterator[CuttingProxy]:
    """A `CuttingProxy` in front of the plain `registry`."""
    proxy = CuttingProxy(registry.host)
    try:
        yield proxy
    finally:
        proxy.close()



def add_to_store(store: Any, layout: OciLayout, ref: str, which: int = 0) -> Any:
    """Put image `which` of `layout` into an `ImageStore` as `ref` (an image skiff has
    locally, as if built, for a push test)."""
    image = layout.images[which]
    blobs = layout.path / "blobs" / "sha256"
    openers = [(d, lambda d=d: open(blobs / d[7:], "rb"))  # noqa: SIM115 - the store closes it
               for d in image.layer_digests]
    return store.add(image.manifest, image.config, layer_blobs=openers, ref=ref)


@pytest.fixture
def image_store(work: Path) -> Any:
    """An empty `ImageStore` of the test's own (removed with `work`)."""
    from skiff.store.images import ImageStore

    return ImageStore(work / "root")
