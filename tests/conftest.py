"""Fixtures shared by the whole suite, and the check that it left the machine clean.

Integration tests build OCI bundles from a busybox rootfs (made once per session from
Debian's busybox-static by `scripts/busybox-rootfs`) and drive the real `skiff-runtime`
command, each with its own state root and cgroup prefix. At the end of the session the
suite fails if anything it made is still there: mounts under its temporary folders,
cgroups under its prefix, the bridges of its engines and of their networks, their nftables
tables, processes it started, state folders.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import io
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import termios
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

# the registry, daemon and DNS fixtures live in modules of their own, next to this file
pytest_plugins = ["fixtures_registry", "fixtures_daemon", "fixtures_dns"]

REPO = Path(__file__).resolve().parent.parent


def _find_shared_specs() -> Path | None:
    # ../shared/specs beside the repo (CI's clone); a clone elsewhere on a dev box finds /work's
    for candidate in (REPO.parent / "shared" / "specs", Path("/work/shared/specs")):
        if (candidate / "docker-engine-api-v1.41.yaml").is_file():
            return candidate
    return None


SHARED_SPECS = _find_shared_specs()
RUNTIME = str(Path(sys.executable).parent / "skiff-runtime")
CGROUP_PREFIX = f"skiff-test-{os.getpid()}"
TMP_MARK = f"skiff-pytest-{os.getpid()}"
# the Linux bridges this session's engines make start with it (at most 15 characters in
# all: the session's 3 hex digits, then 6 of their own; see fixtures_daemon.bridge_for)
LINK_PREFIX = "skt" + hashlib.sha256(TMP_MARK.encode()).hexdigest()[:3]
# every skiffd a test starts (by a fixture, a CLI's autostart, a test's own subprocess)
# forwards the names its DNS server does not know nowhere: the host's resolvers are outside
# this machine. A test that wants forwarding gives skiffd --dns-upstream (a fake on 127.0.0.1)
os.environ["SKIFF_DNS_UPSTREAM"] = "none"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


# -- forked probes ----------------------------------------------------------------------
def run_in_child(fn: Callable[[], object]) -> object:
    """Run `fn` in a forked child and return what it returned (JSON), or fail with its error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            os.close(r)
            try:
                result: dict[str, object] = {"ok": fn()}
            except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
                result = {"error": f"{type(exc).__name__}: {exc}"}
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result = json.loads(data)
    if "error" in result:
        pytest.fail(f"in the child: {result['error']}")
    return result["ok"]


@contextmanager
def stand_in_monitor(container_id: str) -> Iterator[subprocess.Popen[bytes]]:
    """A plain process that reads as `container_id`'s monitor to `monitor_alive` (it has a
    monitor's process name), killed at the end; yielded once it has named itself."""
    p = subprocess.Popen([sys.executable, "-S", "-c",
                          "import sys; sys.path.insert(0, sys.argv[1]); import time\n"
                          "from skiff.engine.monitor.main import comm_name, set_comm\n"
                          "set_comm(comm_name(sys.argv[2])); print(flush=True); time.sleep(60)",
                          str(REPO / "src"), container_id], stdout=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stdout.readline() == b"\n"
        yield p
    finally:
        p.kill()
        p.communicate()


# -- leftovers --------------------------------------------------------------------------
def leftovers(tmp_root: str) -> list[str]:
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            target = line.split()[1]
            if TMP_MARK in target or CGROUP_PREFIX in target:
                found.append(f"mount {target}")
    for link in os.listdir("/sys/class/net"):
        if link.startswith(LINK_PREFIX):
            found.append(f"link {link}")
    for hier in Path("/sys/fs/cgroup").iterdir():
        if (hier / "skiff" / CGROUP_PREFIX).exists():
            found.append(f"cgroup {hier / 'skiff' / CGROUP_PREFIX}")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        try:
            cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            cgroups = ""
        if f"SKIFF_TEST_RUN={TMP_MARK}".encode() in env or CGROUP_PREFIX in cgroups:
            found.append(f"process {pid}")
    if os.path.isdir("/run/netns"):  # probe_netns's and tests/netlab.py's namespaces
        found += [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(f"skiff-t{os.getpid()}-")]
    if os.path.isdir(tmp_root):
        for state_root in Path(tmp_root).glob("*/state/*"):
            found.append(f"state folder {state_root}")
        found += [f"nft table {t}" for t in _firewall_tables_of(Path(tmp_root))]
        found += [f"link {b}" for b in _network_bridges_of(Path(tmp_root))]
    return found


def _network_bridges_of(tmp_root: Path) -> list[str]:
    """The Linux bridges still there of the networks that the suite's skiffds (a
    ``root/skiff.db`` under `tmp_root`) still list: user networks are ``br-<id>``, not of
    the session's link prefix."""
    import sqlite3

    from skiff.engine.network_db import NetworkRow
    from skiff.engine.networks import bridge_of

    names = set()
    for db in [*tmp_root.glob("*/root/skiff.db"), *tmp_root.glob("*/*/root/skiff.db")]:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                rows = conn.execute("SELECT id, name, created, doc FROM networks").fetchall()
        except sqlite3.Error:
            continue  # not a skiffd's database, or one from before networks
        names |= {bridge_of(NetworkRow(i, n, c, json.loads(d))) for i, n, c, d in rows}
    return sorted(n for n in names if not n.startswith(LINK_PREFIX) and
                  os.path.exists(f"/sys/class/net/{n}"))


def _firewall_tables_of(tmp_root: Path) -> list[str]:
    """The nftables tables still there of the skiffds whose SKIFF_RUN was a ``run`` folder
    under `tmp_root` (each skiffd's table is named after its SKIFF_RUN)."""
    from skiff.net.firewall import table_for_run

    nft = shutil.which("nft")
    if nft is None:
        return []
    listed = subprocess.run([nft, "list", "tables"], capture_output=True, text=True).stdout.split()
    runs = [*tmp_root.glob("*/run"), *tmp_root.glob("*/*/run")]  # not deeper: rootfs trees
    ours = {table_for_run(str(run)) for run in runs if run.is_dir()}
    return sorted(ours & set(listed))


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    root = Path("/tmp") / TMP_MARK
    root.mkdir(exist_ok=True)
    yield root
    problems = leftovers(str(root))
    shutil.rmtree(root, ignore_errors=True)
    if problems:
        pytest.fail("the suite left things behind:\n  " + "\n  ".join(problems))


def run_captured(argv: list[str], env: dict[str, str], input: str | None = None,
                 stdin: int | None = subprocess.DEVNULL, timeout: float = 60,
                 cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """subprocess.run with the output caught in files, not pipes: a created container (or
    conmon) keeps the command's stdio open, and a reader of a pipe would wait for it to
    exit. The text comes as it was written (a terminal's \\r\\n stays)."""
    with tempfile.TemporaryFile("w+", newline="") as out, \
            tempfile.TemporaryFile("w+", newline="") as err:
        p = subprocess.run(argv, stdout=out, stderr=err, text=True, env=env, input=input,
                           timeout=timeout, stdin=None if input is not None else stdin, cwd=cwd)
        out.seek(0)
        err.seek(0)
        p.stdout, p.stderr = out.read(), err.read()
    return p


def run_on_a_pty(argv: list[str], env: dict[str, str], rows: int = 33, cols: int = 99,
                 timeout: float = 60) -> tuple[int, bytes]:
    """Run `argv` with a pty of `rows` x `cols` as its stdin, stdout and stderr, in a session
    of its own; (its exit code, all it wrote), read until the pty's last writer has gone."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    try:
        p = subprocess.Popen(argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                             start_new_session=True)
    finally:
        os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the last slave end is closed
                break
            if not data:
                break
            out += data
        return p.wait(timeout=10), out
    finally:
        os.close(master)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the one under test, that nothing may ever write into."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


# -- layers ---------------------------------------------------------------------------
def tar_of(files: dict[str, bytes]) -> bytes:
    """A plain tar of regular files (0644, a fixed mtime), made in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def probe_netns() -> Iterator[str]:
    """A network namespace of the test's own (marked `netns`) holding a veth pair
    probe0/probe1, by its path; removed afterwards."""
    name = f"skiff-t{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "probe0", "type", "veth", "peer",
                        "name", "probe1"], check=True)
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def join_netns(bundle: "Bundle", path: str) -> None:
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = path


def in_user_namespace(bundle: "Bundle", host: int) -> None:
    """A new user namespace mapping container 0..65535 to host `host`..; /tmp theirs."""
    lx = bundle.config["linux"]
    lx["namespaces"].append({"type": "user"})
    lx["uidMappings"] = [{"containerID": 0, "hostID": host, "size": 65536}]
    lx["gidMappings"] = [{"containerID": 0, "hostID": host, "size": 65536}]
    os.chown(bundle.rootfs / "tmp", host, host)


# -- bundles ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def busybox_rootfs(tmp_root: Path) -> Path:
    path = tmp_root / "busybox-rootfs"
    subprocess.run([str(REPO / "scripts" / "busybox-rootfs"), str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def base_config() -> dict[str, Any]:
    from skiff.runtime.spec_default import default_spec
    c = default_spec()
    c["process"]["terminal"] = False
    c["process"]["args"] = ["true"]
    c["root"]["readonly"] = False
    return c


@dataclass
class Bundle:
    path: Path
    config: dict[str, Any]
    id: str

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    def write(self) -> None:
        (self.path / "config.json").write_text(json.dumps(self.config))

    def args(self, *argv: str) -> "Bundle":
        self.config["process"]["args"] = list(argv)
        return self


@dataclass
class Runtime:
    """The `skiff-runtime` command on a state root of its own."""

    root: Path
    env: dict[str, str]
    made: list[str] = field(default_factory=list)

    def __call__(self, *argv: str, check: bool = True, input: str | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        p = run_captured([RUNTIME, "--root", str(self.root), *argv], self.env, input=input,
                         timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"skiff-runtime {' '.join(argv)} exited {p.returncode}:\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def state(self, cid: str) -> dict[str, Any]:
        return json.loads(self("state", cid).stdout)

    def run(self, bundle: Bundle, *extra: str, check: bool = False, **kw: Any) -> subprocess.CompletedProcess[str]:
        bundle.write()
        return self("run", "--bundle", str(bundle.path), *extra, bundle.id, check=check, **kw)

    def create(self, bundle: Bundle, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        bundle.write()
        self.made.append(bundle.id)
        return self("create", "--bundle", str(bundle.path), *extra, bundle.id, check=check)

    def cleanup(self) -> None:
        for cid in os.listdir(self.root) if self.root.exists() else []:
            self("delete", "--force", cid, check=False)


@pytest.fixture
def work(tmp_root: Path) -> Iterator[Path]:
    path = tmp_root / uuid.uuid4().hex[:10]
    path.mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def runtime(work: Path) -> Iterator[Runtime]:
    env = dict(os.environ, SKIFF_RUN=str(work / "run"), SKIFF_TEST_RUN=TMP_MARK)
    rt = Runtime(work / "state", env)
    yield rt
    rt.cleanup()


@pytest.fixture
def bundle(work: Path, busybox_rootfs: Path, base_config: dict[str, Any]) -> Bundle:
    cid = "t" + uuid.uuid4().hex[:10]
    path = work / "bundle"
    path.mkdir()
    subprocess.run(["cp", "-a", str(busybox_rootfs), str(path / "rootfs")], check=True)
    config = copy.deepcopy(base_config)
    config["linux"]["cgroupsPath"] = f"/skiff/{CGROUP_PREFIX}/{cid}"
    return Bundle(path, config, cid)
