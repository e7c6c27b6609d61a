"""Bad input through the real command: a clear message that names what failed (the field;
or the call, the path and the errno) and nothing left behind — no state folder, cgroup,
mount or process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


def assert_nothing_left(runtime, bundle) -> None:
    assert not runtime.root.exists() or os.listdir(runtime.root) == []
    cg = bundle.config["linux"]["cgroupsPath"]
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        assert not (hierarchy / cg.lstrip("/")).exists(), hierarchy
    assert str(bundle.rootfs) not in Path("/proc/self/mounts").read_text()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            assert cg not in Path(f"/proc/{pid}/cgroup").read_text()
        except FileNotFoundError:
            continue


def failed_create(runtime, bundle) -> str:
    p = runtime.create(bundle, check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert_nothing_left(runtime, bundle)
    return p.stderr


@pytest.mark.parametrize("mutate, field", [
    (lambda c: c.pop("ociVersion"), "ociVersion"),
    (lambda c: c["process"].pop("cwd"), "process.cwd"),
    (lambda c: c["process"]["user"].update(uid="root"), "process.user.uid"),
    (lambda c: c["process"].update(args=[]), "process.args"),
    (lambda c: c["mounts"][0].update(destination=""), "mounts[0].destination"),
    (lambda c: c["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[5].type"),
    (lambda c: c["linux"].update(sysctl={"vm.swappiness": "1"}), "linux.sysctl.vm.swappiness"),
    (lambda c: c["linux"]["resources"].update(pids={"limit": "lots"}), "linux.resources.pids.limit"),
])
def test_a_bad_field_is_named(runtime, bundle, mutate, field):
    mutate(bundle.config)
    assert field in failed_create(runtime, bundle)


def test_not_json(runtime, bundle):
    (bundle.path / "config.json").write_text("{ nope")
    p = runtime("create", "--bundle", str(bundle.path), bundle.id, check=False)
    assert p.returncode == 1 and "not valid JSON" in p.stderr
    assert_nothing_left(runtime, bundle)


def test_missing_bundle(runtime, work):
    p = runtime("create", "--bundle", str(work / "nowhere"), "c1", check=False)
    assert p.returncode == 1 and "config.json not found" in p.stderr


def test_missing_binary(runtime, bundle):
    bundle.args("/no/such/program")
    err = failed_create(runtime, bundle)
    assert 'exec: "/no/such/program": no such file or directory' in err
    bundle.args("nosuchprogram")
    assert "executable file not found in $PATH" in failed_create(runtime, bundle)


def test_bad_mount_says_call_path_and_errno(runtime, bundle):
    bundle.config["mounts"].append({"destination": "/data", "type": "nosuchfs", "source": "none"})
    err = failed_create(runtime, bundle)
    assert "mount nosuchfs" in err and "/data" in err and "ENODEV" in err


def test_bad_bind_source(runtime, bundle, work):
    bundle.config["mounts"].append({"destination": "/data", "type": "bind",
                                    "source": str(work / "absent"), "options": ["bind"]})
    err = failed_create(runtime, bundle)
    assert "stat bind source" in err and "absent" in err and "ENOENT" in err


def test_unsettable_rlimit(runtime, bundle):
    # root here lacks CAP_SYS_RESOURCE: a hard limit above the current one is refused
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 1 << 30, "hard": 1 << 30}]
    err = failed_create(runtime, bundle)
    assert "setrlimit" in err and "RLIMIT_NOFILE" in err


def test_missing_netns_path(runtime, bundle):
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = "/run/netns/skiff-does-not-exist"
    err = failed_create(runtime, bundle)
    assert "linux.namespaces[1].path" in err


def test_hook_timeout(runtime, bundle):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"],
                                                 "timeout": 1}]}
    err = failed_create(runtime, bundle)
    assert "createRuntime hook /bin/sleep: timed out after 1s" in err


def test_terminal_without_console_socket(runtime, bundle):
    bundle.config["process"]["terminal"] = True
    assert "--console-socket" in failed_create(runtime, bundle)


def test_an_invalid_id(runtime, bundle):
    bundle.id = "../escape"
    p = runtime.create(bundle, check=False)
    assert p.returncode == 1 and "invalid container id" in p.stderr
    assert not (runtime.root.parent / "escape").exists()


def test_usage_errors(runtime):
    p = runtime("create", "--nosuchflag", "x", check=False)
    assert p.returncode == 2 and "unknown flag" in p.stderr
    p = runtime("kill", check=False)
    assert p.returncode == 2 and "missing ID" in p.stderr
    assert runtime("frobnicate", check=False).returncode == 2


def test_json_log_for_containerd(runtime, bundle, work):
    bundle.args("/no/such/program")
    bundle.write()
    log = work / "log.json"
    p = runtime("--log", str(log), "--log-format", "json", "create", "--bundle", str(bundle.path),
                bundle.id, check=False)
    assert p.returncode == 1
    record = json.loads(log.read_text().splitlines()[-1])
    assert record["level"] == "error" and "no such file" in record["msg"] and "time" in record
