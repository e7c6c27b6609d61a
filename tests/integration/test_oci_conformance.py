"""skiff-runtime against the OCI runtime specification's own rules, one test per rule.

Each test is named after a MUST or SHOULD of runtime-spec (runtime.md, runtime-linux.md,
config.md, config-linux.md) and quotes it in a comment; what skiff deliberately does
otherwise is a strict xfail with the reason, so the day it changes the suite says so. The
rules are checked from where they show: the state document, the container's own view of
itself (a shell in it), the host's cgroup and mount tables, and hooks that write what they
were given. Every refusal is also checked to leave nothing behind (runtime.md, Errors: "the
state of the environment MUST be as if the operation were never attempted").
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import CGROUP_PREFIX, RUNTIME, SHARED_SPECS, Bundle, Runtime, run_on_a_pty

pytestmark = pytest.mark.root

_CGROUP_ROOT = Path("/sys/fs/cgroup")


# -- helpers ----------------------------------------------------------------------------
def sh(runtime: Runtime, bundle: Bundle, script: str) -> str:
    """Run `script` in a container of `bundle` (a fresh id each time); its stdout."""
    p = runtime.run(bundle.args("sh", "-c", script))
    bundle.id += "x"
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr}"
    return p.stdout


def cgroup_dirs(path: str) -> list[Path]:
    """The directories of cgroup `path` that exist, in every hierarchy of the host."""
    return [h / path.lstrip("/") for h in _CGROUP_ROOT.iterdir()
            if h.is_dir() and (h / path.lstrip("/")).is_dir()]


def nothing_left(runtime: Runtime, bundle: Bundle) -> None:
    assert not (runtime.root / bundle.id).exists(), "a state folder is left"
    assert runtime("state", bundle.id, check=False).returncode != 0
    assert cgroup_dirs(bundle.config["linux"]["cgroupsPath"]) == [], "a cgroup is left"


def refused(runtime: Runtime, bundle: Bundle, *words: str) -> str:
    """Create must fail, saying `words`, and leave nothing behind; its stderr."""
    p = runtime.create(bundle, check=False)
    assert p.returncode != 0, "create succeeded"
    for word in words:
        assert word in p.stderr, p.stderr
    nothing_left(runtime, bundle)
    return p.stderr


def hook(work: Path, name: str, body: str) -> dict[str, Any]:
    """A hook that runs `body` (sh) on the host with the state JSON in $STATE."""
    path = work / f"hook-{name}"
    path.write_text(f"#!/bin/sh\nSTATE=$(cat)\nOUT={work}\n{body}\n")
    path.chmod(0o755)
    return {"path": str(path)}


def record(work: Path, name: str) -> dict[str, Any]:
    """A hook that saves the state it gets on stdin as <work>/<name>.json."""
    return hook(work, name, f'printf %s "$STATE" > "$OUT/{name}.json"')


def read_state(work: Path, name: str) -> dict[str, Any]:
    return json.loads((work / f"{name}.json").read_text())


def wait_for(check, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def referencing_draft4():
    from referencing.jsonschema import DRAFT4
    return DRAFT4


def status(runtime: Runtime, cid: str) -> str:
    return runtime.state(cid)["status"]


def started(runtime: Runtime, bundle: Bundle, *args: str) -> dict[str, Any]:
    """A created then started container running `args`; its state."""
    runtime.create(bundle.args(*args))
    runtime("start", bundle.id)
    return runtime.state(bundle.id)


# == runtime.md: the state ================================================================
def test_state_has_the_required_fields_and_matches_the_schema(runtime, bundle):
    # runtime.md State: ociVersion, id, status, pid (created/running, Linux), bundle REQUIRED;
    # "bundle ... the absolute path to the container's bundle directory"
    import jsonschema

    bundle.config["annotations"] = {"org.example.k": "v"}
    runtime.create(bundle.args("true"))
    st = runtime.state(bundle.id)
    assert st["id"] == bundle.id and st["status"] == "created"
    assert st["pid"] > 0 and os.path.exists(f"/proc/{st['pid']}")
    assert st["bundle"] == str(bundle.path) and os.path.isabs(st["bundle"])
    assert st["ociVersion"].startswith("1.")
    # "annotations ... the list of annotations associated with the container"
    assert st["annotations"] == {"org.example.k": "v"}
    assert SHARED_SPECS is not None
    folder = SHARED_SPECS / "oci-runtime-schema"
    schema = json.loads((folder / "state-schema.json").read_text())
    from referencing import Registry, Resource
    defs = Resource.from_contents(json.loads((folder / "defs.json").read_text()),
                                  default_specification=referencing_draft4())
    jsonschema.Draft4Validator(schema, registry=Registry().with_resource("defs.json", defs)).validate(st)


def test_state_of_a_container_that_does_not_exist_is_an_error(runtime):
    # runtime.md query state: "This operation MUST generate an error if it is not provided
    # the ID of a container" / the container must exist
    p = runtime("state", "nosuchcontainer", check=False)
    assert p.returncode != 0 and "nosuchcontainer" in p.stderr


def test_status_goes_created_running_stopped(runtime, bundle):
    # runtime.md State status: creating, created, running, stopped
    runtime.create(bundle.args("sleep", "30"))
    assert status(runtime, bundle.id) == "created"
    runtime("start", bundle.id)
    assert status(runtime, bundle.id) == "running"
    runtime("kill", bundle.id, "KILL")
    wait_for(lambda: status(runtime, bundle.id) == "stopped", "stopped")


def test_hooks_see_creating_while_create_runs(runtime, bundle, work):
    # runtime.md: "creating: the container is being created (step 2 in the lifecycle)"
    bundle.config["hooks"] = {"createRuntime": [record(work, "cr")]}
    runtime.create(bundle.args("true"))
    assert read_state(work, "cr")["status"] == "creating"


# == runtime.md: the operations ===========================================================
def test_create_with_an_id_in_use_is_an_error_and_changes_nothing(runtime, bundle):
    # runtime.md create: "If the ID provided is not unique ... the implementation MUST
    # generate an error and a new container MUST NOT be created"
    runtime.create(bundle.args("sleep", "30"))
    before = runtime.state(bundle.id)
    p = runtime.create(bundle, check=False)
    assert p.returncode != 0 and "exists" in p.stderr
    assert runtime.state(bundle.id) == before


def test_create_does_not_run_the_program_until_start(runtime, bundle):
    # runtime.md create: "process.args MUST NOT be applied until triggered by the start
    # operation"; lifecycle 2: "the user-specified program MUST NOT be run at this time"
    runtime.create(bundle.args("touch", "/ran"))
    time.sleep(0.2)
    assert not (bundle.rootfs / "ran").exists()
    runtime("start", bundle.id)
    wait_for((bundle.rootfs / "ran").exists, "the program")


def test_changes_to_config_json_after_create_have_no_effect(runtime, bundle):
    # runtime.md create: "Any changes made to the config.json file after this operation
    # will not have an effect on the container"
    runtime.create(bundle.args("touch", "/first"))
    bundle.args("touch", "/second").write()
    runtime("start", bundle.id)
    wait_for((bundle.rootfs / "first").exists, "the program")
    assert not (bundle.rootfs / "second").exists()


def test_start_runs_the_program_of_process(runtime, bundle):
    # runtime.md start: "This operation MUST run the user-specified program as specified
    # by process"
    started(runtime, bundle, "sh", "-c", "echo $0 > /out", "arg0")
    wait_for((bundle.rootfs / "out").exists, "the program")
    assert (bundle.rootfs / "out").read_text() == "arg0\n"


@pytest.mark.parametrize("when", ["running", "stopped"])
def test_start_of_a_container_not_created_is_an_error_with_no_effect(runtime, bundle, when):
    # runtime.md start: "Attempting to start a container that is not created MUST have no
    # effect on the container and MUST generate an error"
    started(runtime, bundle, "sleep", "30" if when == "running" else "0")
    if when == "stopped":
        wait_for(lambda: status(runtime, bundle.id) == "stopped", "stopped")
    before = runtime.state(bundle.id)
    p = runtime("start", bundle.id, check=False)
    assert p.returncode != 0
    assert runtime.state(bundle.id) == before


def test_kill_sends_the_signal_to_the_container_process(runtime, bundle):
    # runtime.md kill: "This operation MUST send the specified signal to the container process"
    started(runtime, bundle, "sh", "-c",
            "trap 'echo term > /got; exit 0' TERM; touch /ready; while :; do sleep 0.05; done")
    wait_for((bundle.rootfs / "ready").exists, "the trap")
    runtime("kill", bundle.id, "TERM")
    wait_for((bundle.rootfs / "got").exists, "the signal")
    assert (bundle.rootfs / "got").read_text() == "term\n"


def test_kill_of_a_created_container_is_allowed(runtime, bundle):
    # runtime.md kill: an error only when "neither created nor running"
    runtime.create(bundle.args("true"))
    runtime("kill", bundle.id, "KILL")
    wait_for(lambda: status(runtime, bundle.id) == "stopped", "stopped")


def test_kill_of_a_stopped_container_is_an_error_with_no_effect(runtime, bundle):
    # runtime.md kill: "Attempting to send a signal to a container that is neither created
    # nor running MUST have no effect on the container and MUST generate an error"
    started(runtime, bundle, "true")
    wait_for(lambda: status(runtime, bundle.id) == "stopped", "stopped")
    before = runtime.state(bundle.id)
    p = runtime("kill", bundle.id, "KILL", check=False)
    assert p.returncode != 0 and "not running" in p.stderr
    assert runtime.state(bundle.id) == before


def test_delete_of_a_running_container_is_an_error_with_no_effect(runtime, bundle):
    # runtime.md delete: "Attempting to delete a container that is not stopped MUST have no
    # effect on the container and MUST generate an error"
    st = started(runtime, bundle, "sleep", "30")
    p = runtime("delete", bundle.id, check=False)
    assert p.returncode != 0
    assert runtime.state(bundle.id) == st and cgroup_dirs(bundle.config["linux"]["cgroupsPath"])


@pytest.mark.xfail(strict=True, reason="runc compatibility: runc deletes a created container "
                   "without --force (killing its waiting init), and containerd's shim and podman "
                   "rely on it after a failed start; skiff-runtime does the same")
def test_delete_of_a_created_container_is_an_error(runtime, bundle):
    # runtime.md delete: "Attempting to delete a container that is not stopped MUST ...
    # generate an error"
    runtime.create(bundle.args("true"))
    assert runtime("delete", bundle.id, check=False).returncode != 0


def test_delete_removes_what_create_made(runtime, bundle):
    # runtime.md delete: "Deleting a container MUST delete the resources that were created
    # during the create step"
    started(runtime, bundle, "true")
    wait_for(lambda: status(runtime, bundle.id) == "stopped", "stopped")
    assert cgroup_dirs(bundle.config["linux"]["cgroupsPath"])
    runtime("delete", bundle.id)
    nothing_left(runtime, bundle)


def test_delete_keeps_what_create_did_not_make(runtime, bundle, work):
    # runtime.md delete: "resources associated with the container, but not created by this
    # container, MUST NOT be deleted" (a bind source, a parent cgroup made beforehand)
    source = work / "data"
    source.mkdir()
    (source / "kept").write_text("yes")
    parent = f"/skiff-conformance-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    made = [h / parent.lstrip("/") for h in _CGROUP_ROOT.iterdir()
            if h.is_dir() and not h.is_symlink() and (h / "cgroup.procs").exists()]
    for d in made:
        d.mkdir()
    try:
        bundle.config["linux"]["cgroupsPath"] = f"{parent}/{bundle.id}"
        bundle.config["mounts"].append({"destination": "/data", "type": "bind",
                                        "source": str(source), "options": ["rbind"]})
        started(runtime, bundle, "true")
        wait_for(lambda: status(runtime, bundle.id) == "stopped", "stopped")
        runtime("delete", bundle.id)
        assert (source / "kept").read_text() == "yes"
        assert all(d.is_dir() for d in made)
        assert cgroup_dirs(bundle.config["linux"]["cgroupsPath"]) == []
    finally:
        for d in made:
            if d.is_dir():
                d.rmdir()


def test_a_deleted_containers_id_can_be_used_again(runtime, bundle):
    # runtime.md delete: "Once a container is deleted its ID MAY be used by a subsequent
    # container"
    runtime.create(bundle.args("true"))
    runtime("delete", "--force", bundle.id)
    runtime.create(bundle)
    assert status(runtime, bundle.id) == "created"


def test_a_failed_create_leaves_nothing(runtime, bundle):
    # runtime.md Errors: "If the runtime generates an error, the state of the environment
    # MUST be as if the operation were never attempted"
    bundle.config["mounts"].append({"destination": "/x", "type": "no-such-fs", "source": "x"})
    refused(runtime, bundle, "/x", "ENODEV")
    bundle.config["mounts"].pop()
    runtime.create(bundle)  # the id is free again


# == config.md: hooks =====================================================================
def test_hooks_are_called_in_the_listed_order(runtime, bundle, work):
    # config.md Hooks: "Hooks MUST be called in the listed order"
    bundle.config["hooks"] = {"createRuntime": [
        hook(work, f"h{i}", f'echo {i} >> "$OUT/order"') for i in range(4)]}
    runtime.create(bundle.args("true"))
    assert (work / "order").read_text().split() == ["0", "1", "2", "3"]


def test_every_hook_gets_the_state_on_stdin(runtime, bundle, work):
    # config.md Hooks: "The state of the container MUST be passed to hooks over stdin"
    phases = ("prestart", "createRuntime", "createContainer", "poststart", "poststop")
    bundle.config["hooks"] = {p: [record(work, p)] for p in phases}
    bundle.config["annotations"] = {"org.example.a": "b"}
    runtime.create(bundle.args("sleep", "30"))
    pid = runtime.state(bundle.id)["pid"]
    runtime("start", bundle.id)
    runtime("delete", "--force", bundle.id)
    expect = {"prestart": "creating", "createRuntime": "creating", "createContainer": "creating",
              "poststart": "running", "poststop": "stopped"}
    for phase in phases:
        st = read_state(work, phase)
        assert (st["id"], st["bundle"], st["status"]) == (bundle.id, str(bundle.path), expect[phase])
        assert st["annotations"] == {"org.example.a": "b"} and st["ociVersion"]
        if phase != "poststop":
            assert st["pid"] == pid


def test_hooks_get_their_args_and_env(runtime, bundle, work):
    # config.md Hooks: args and env "with the same semantics as" execv's argv and environ
    script = 'tr "\\0" " " < /proc/$$/cmdline > "$1.cmd"; echo "$0 $1 $FOO ${SKIFF_TEST_RUN:-none}" > "$1"'
    bundle.config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh", "args": ["named-hook", "-c", script, "zero", str(work / "argv")],
        "env": ["FOO=bar"]}]}
    runtime.create(bundle.args("true"))
    assert (work / "argv.cmd").read_text().split()[0] == "named-hook"  # args[0] is its argv[0]
    # env is the hook's whole environment: nothing of the runtime's own (SKIFF_TEST_RUN)
    assert (work / "argv").read_text().split() == ["zero", str(work / "argv"), "bar", "none"]


def test_runtime_namespace_hooks_run_in_the_runtime_namespace(runtime, bundle, work):
    # config.md: prestart, createRuntime, poststart, poststop "MUST be executed in the
    # runtime namespace"; createContainer "MUST be executed in the container namespace"
    body = 'readlink /proc/self/ns/mnt > "$OUT/{0}"'
    bundle.config["hooks"] = {p: [hook(work, p, body.format(p))]
                              for p in ("prestart", "createRuntime", "createContainer", "poststart")}
    runtime.create(bundle.args("sleep", "30"))
    container_mnt = os.readlink(f"/proc/{runtime.state(bundle.id)['pid']}/ns/mnt")
    runtime("start", bundle.id)
    host_mnt = os.readlink("/proc/self/ns/mnt")
    for phase in ("prestart", "createRuntime", "poststart"):
        assert (work / phase).read_text().strip() == host_mnt, phase
    assert (work / "createContainer").read_text().strip() == container_mnt != host_mnt


def test_create_container_hooks_run_before_pivot_root(runtime, bundle, work):
    # config.md createContainer: "before the pivot_root or any equivalent operation";
    # its path "MUST resolve in the runtime namespace" (the host's /bin/sh, the bundle's path)
    bundle.config["hooks"] = {"createContainer": [
        hook(work, "cc", f'test -d "{bundle.rootfs}/bin" && echo host-paths > "$OUT/cc"')]}
    runtime.create(bundle.args("true"))
    assert (work / "cc").read_text() == "host-paths\n"


def test_start_container_hooks_resolve_and_run_in_the_container(runtime, bundle, work):
    # config.md startContainer: "path MUST resolve in the container namespace" and "MUST be
    # executed in the container namespace", "before the user-specified process is executed"
    name = f"started-{uuid.uuid4().hex[:8]}"
    bundle.config["hooks"] = {"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"cat > /tmp/{name}"]}]}
    runtime.create(bundle.args("sh", "-c", f"test -s /tmp/{name} && touch /tmp/order-ok"))
    assert not (bundle.rootfs / "tmp" / name).exists()  # not at create: at start
    runtime("start", bundle.id)
    wait_for((bundle.rootfs / "tmp" / "order-ok").exists, "the program after the hook")
    assert not Path("/tmp", name).exists()  # written inside the container, not on the host
    st = json.loads((bundle.rootfs / "tmp" / name).read_text())
    assert st["id"] == bundle.id


def test_poststart_runs_after_the_program_is_executed_and_before_start_returns(runtime, bundle, work):
    # config.md poststart: "MUST be called after the user-specified process is executed but
    # before the start operation returns"
    bundle.config["hooks"] = {"poststart": [hook(
        work, "ps", 'pid=$(printf %s "$STATE" | sed \'s/.*"pid": *\\([0-9]*\\).*/\\1/\'); '
                    'readlink /proc/$pid/exe > "$OUT/exe"')]}
    runtime.create(bundle.args("sleep", "30"))
    runtime("start", bundle.id)
    exe = (work / "exe").read_text().strip()  # there already: start waited for the hook
    assert exe.endswith("/bin/busybox"), exe  # the program, not the runtime's init


def test_poststop_runs_after_the_container_is_deleted_before_delete_returns(runtime, bundle, work):
    # config.md poststop: "MUST be called after the container is deleted but before the
    # delete operation returns"
    cg = cgroup_dirs("/")[0] / bundle.config["linux"]["cgroupsPath"].lstrip("/")
    bundle.config["hooks"] = {"poststop": [hook(
        work, "stop", f'test -d "{cg}" && echo cgroup-left > "$OUT/stop" || echo gone > "$OUT/stop"')]}
    started(runtime, bundle, "true")
    wait_for(lambda: status(runtime, bundle.id) == "stopped", "stopped")
    runtime("delete", bundle.id)
    assert (work / "stop").read_text() == "gone\n"


@pytest.mark.parametrize("phase", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_ends_the_container(runtime, bundle, work, phase):
    # runtime.md lifecycle 3-5: "If any prestart/createRuntime/createContainer hook fails,
    # the runtime MUST generate an error, stop the container, and continue the lifecycle
    # at step 12" (destroy, then the poststop hooks: step 13)
    bundle.config["hooks"] = {phase: [hook(work, "bad", "echo nope >&2; exit 3")],
                              "poststop": [record(work, "poststop")]}
    err = refused(runtime, bundle.args("touch", "/ran"), phase, "exit status 3", "nope")
    assert "Traceback" not in err
    assert read_state(work, "poststop")["status"] == "stopped"
    assert not (bundle.rootfs / "ran").exists()


@pytest.mark.parametrize("how", ["create-start", "run"])
def test_a_failing_start_container_hook_fails_start_and_ends_the_container(runtime, bundle, work, how):
    # runtime.md lifecycle 7: "If any startContainer hook fails, the runtime MUST generate an
    # error, stop the container, and continue the lifecycle at step 12"
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}],
                              "poststop": [record(work, "poststop")]}
    bundle.args("touch", "/ran")
    if how == "run":
        p = runtime.run(bundle)
    else:
        runtime.create(bundle)
        p = runtime("start", bundle.id, check=False)
    assert p.returncode != 0 and "startContainer" in p.stderr and "exit status 4" in p.stderr
    nothing_left(runtime, bundle)
    assert read_state(work, "poststop")["status"] == "stopped"
    assert not (bundle.rootfs / "ran").exists()


def test_a_failing_poststart_hook_is_a_warning(runtime, bundle, work):
    # runtime.md lifecycle 9: "If any poststart hook fails, the runtime MUST log a warning,
    # but the remaining hooks and lifecycle continue as if the hook had succeeded"
    bundle.config["hooks"] = {"poststart": [hook(work, "bad", "exit 5"), record(work, "second")]}
    runtime.create(bundle.args("sleep", "30"))
    p = runtime("start", bundle.id)
    assert "exit status 5" in p.stderr
    assert read_state(work, "second")["status"] == "running"
    assert status(runtime, bundle.id) == "running"


def test_a_failing_poststop_hook_is_a_warning(runtime, bundle, work):
    # runtime.md lifecycle 13: "If any poststop hook fails, the runtime MUST log a warning,
    # but the remaining hooks and lifecycle continue as if the hook had succeeded"
    bundle.config["hooks"] = {"poststop": [hook(work, "bad", "exit 6"), record(work, "second")]}
    runtime.create(bundle.args("true"))
    p = runtime("delete", "--force", bundle.id)
    assert "exit status 6" in p.stderr
    assert read_state(work, "second")["status"] == "stopped"
    nothing_left(runtime, bundle)


def test_a_hook_past_its_timeout_fails(runtime, bundle, work):
    # config.md: "timeout (int, OPTIONAL) is the number of seconds before aborting the hook"
    bundle.config["hooks"] = {"createRuntime": [dict(hook(work, "slow", "sleep 30"), timeout=1)]}
    refused(runtime, bundle, "timed out")


@pytest.mark.parametrize("bad, word", [({"path": "relative/hook"}, "path"),
                                       ({"path": "/bin/true", "timeout": 0}, "timeout")])
def test_hook_path_must_be_absolute_and_timeout_positive(runtime, bundle, bad, word):
    # config.md: "path MUST be absolute"; "If set, timeout MUST be greater than zero"
    bundle.config["hooks"] = {"poststart": [bad]}
    refused(runtime, bundle, f"hooks.poststart[0].{word}")


# == config.md: version, root, mounts =====================================================
@pytest.mark.parametrize("version", ["1.x", "one", "", "2.0.0"])
def test_oci_version_must_be_a_1x_semver(runtime, bundle, version):
    # config.md: ociVersion "MUST be in SemVer v2.0.0 format"; compatibility is kept
    # "within major versions" only
    bundle.config["ociVersion"] = version
    refused(runtime, bundle, "ociVersion")


@pytest.mark.parametrize("version", ["1.0.0", "1.2.0", "1.0.2-dev", "1.1.0+dev"])
def test_oci_versions_of_1x_are_taken(runtime, bundle, version):
    bundle.config["ociVersion"] = version
    assert sh(runtime, bundle, "echo ok") == "ok\n"


def test_root_path_must_be_a_directory_that_exists(runtime, bundle):
    # config.md root.path: "A directory MUST exist at the path declared by the field"
    bundle.config["root"]["path"] = "no-such-rootfs"
    refused(runtime, bundle, "no-such-rootfs")


def test_root_path_may_be_absolute_or_relative_to_the_bundle(runtime, bundle):
    # config.md root.path: "either an absolute path or a relative path to the bundle"
    bundle.config["root"]["path"] = str(bundle.rootfs)
    assert sh(runtime, bundle, "echo abs") == "abs\n"


def test_readonly_root_is_read_only(runtime, bundle):
    # config.md root.readonly: "If true then the root filesystem MUST be read-only"
    bundle.config["root"]["readonly"] = True
    out = sh(runtime, bundle, "touch /x 2>/dev/null; echo $?")
    assert out == "1\n" and not (bundle.rootfs / "x").exists()


def test_mounts_are_made_in_the_listed_order(runtime, bundle, work):
    # config.md mounts: "The runtime MUST mount entries in the listed order"
    src = work / "inner"
    src.mkdir()
    (src / "f").write_text("inner")
    bundle.config["mounts"] += [
        {"destination": "/outer", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/outer/inner", "type": "bind", "source": str(src), "options": ["bind"]},
    ]
    assert sh(runtime, bundle, "cat /outer/inner/f") == "inner"


def test_a_relative_mount_destination_is_taken_from_the_root(runtime, bundle):
    # config.md destination (Linux): "it MAY be a relative path, in which case it MUST be
    # interpreted as relative to /"
    bundle.config["mounts"].append({"destination": "rel/dest", "type": "tmpfs", "source": "tmpfs"})
    out = sh(runtime, bundle, "cut -d' ' -f2 /proc/self/mounts")
    assert "/rel/dest" in out.split()


def test_a_bind_source_may_be_relative_to_the_bundle(runtime, bundle):
    # config.md source: "Path values for bind mounts are either absolute or relative to the bundle"
    (bundle.path / "data").mkdir()
    (bundle.path / "data" / "f").write_text("bundled")
    bundle.config["mounts"].append({"destination": "/data", "type": "none", "source": "data",
                                    "options": ["rbind"]})
    assert sh(runtime, bundle, "cat /data/f") == "bundled"


def test_mount8_option_words_are_honoured(runtime, bundle):
    # config.md Linux mount options: ro, nosuid, nodev, noexec, noatime, ... "MUST"
    bundle.config["mounts"].append({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["ro", "nosuid", "nodev", "noexec", "noatime"]})
    line = next(x for x in sh(runtime, bundle, "cat /proc/self/mounts").splitlines()
                if x.split()[1] == "/t")
    opts = set(line.split()[3].split(","))
    assert {"ro", "nosuid", "nodev", "noexec", "noatime"} <= opts


def test_recursive_mount_options_reach_submounts(runtime, bundle, work):
    # config.md: rro, rnosuid, rnodev, rnoexec ... "SHOULD": recursive (mount_setattr)
    src = work / "tree"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(src / "sub")], check=True)
    try:
        bundle.config["mounts"] += [
            {"destination": "/plain", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
            {"destination": "/deep", "type": "bind", "source": str(src),
             "options": ["rbind", "rro", "rnoexec"]}]
        out = sh(runtime, bundle, "touch /plain/sub/a 2>/dev/null && echo plain-rw; "
                                  "touch /deep/sub/b 2>/dev/null || echo deep-ro; "
                                  "grep ' /deep/sub ' /proc/self/mounts")
        assert "plain-rw" in out and "deep-ro" in out  # plain ro stops at the top mount
        assert "noexec" in out.splitlines()[-1]
    finally:
        subprocess.run(["umount", "-l", str(src / "sub")], check=True)


def test_unknown_options_go_to_the_filesystem_as_data(runtime, bundle):
    # config.md: "Runtimes SHOULD treat unknown options as filesystem-specific ones and pass
    # those as a comma-separated string to the fifth (data) argument of mount(2)"
    bundle.config["mounts"].append({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["size=1m", "mode=700"]})
    out = sh(runtime, bundle, "grep ' /t ' /proc/self/mounts")
    assert "size=1024k" in out and "mode=700" in out


def test_a_data_word_the_filesystem_refuses_is_an_error(runtime, bundle):
    bundle.config["mounts"].append({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["frobnicate=1"]})
    refused(runtime, bundle, "/t", "frobnicate")


def test_an_unknown_option_on_a_bind_mount_is_an_error(runtime, bundle, work):
    # a bind mount has no filesystem to take data: the word would be lost (Valid values:
    # "MUST generate an error when invalid or unsupported values are encountered")
    bundle.config["mounts"].append({"destination": "/b", "type": "bind", "source": str(work),
                                    "options": ["rbind", "frobnicate"]})
    refused(runtime, bundle, "mounts[", "frobnicate")


def test_tmpcopyup_copies_what_the_tmpfs_hides_into_it(runtime, bundle):
    # config.md tmpcopyup (MAY): "copy up the contents to a tmpfs"
    opt = bundle.rootfs / "opt" / "app"
    (opt / "sub").mkdir(parents=True)
    (opt / "sub" / "conf").write_text("setting=1\n")
    (opt / "run.sh").write_text("#!/bin/sh\n")
    (opt / "run.sh").chmod(0o755)
    os.chown(opt / "sub" / "conf", 42, 43)
    os.symlink("sub/conf", opt / "link")
    bundle.config["mounts"].append({"destination": "/opt/app", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["nosuid", "tmpcopyup"]})
    out = sh(runtime, bundle, "grep ' /opt/app ' /proc/self/mounts | cut -d' ' -f3; "
                              "cat /opt/app/link; stat -c '%u %g' /opt/app/sub/conf; "
                              "stat -c %a /opt/app/run.sh; echo new > /opt/app/fresh; "
                              "cat /opt/app/fresh")
    assert out.split("\n")[:-1] == ["tmpfs", "setting=1", "42 43", "755", "new"]
    assert not (opt / "fresh").exists()  # written to the tmpfs, not to the image


def test_tmpcopyup_on_a_bind_mount_is_an_error(runtime, bundle, work):
    bundle.config["mounts"].append({"destination": "/b", "type": "bind", "source": str(work),
                                    "options": ["rbind", "tmpcopyup"]})
    refused(runtime, bundle, "tmpcopyup")


def _mapping(host: int, size: int = 1) -> list[dict[str, int]]:
    return [{"containerID": 0, "hostID": host, "size": size}]


def test_an_idmapped_mount_shows_owners_through_its_mapping(runtime, bundle, work):
    # config.md idmap: "the mount MUST have an idmapping applied"; "If uidMappings or
    # gidMappings are specified for the mount, the runtime MUST use those values"
    src = work / "owned"
    src.mkdir()
    (src / "f").write_text("x")
    os.chown(src / "f", 0, 0)
    bundle.config["mounts"].append({"destination": "/ids", "type": "bind", "source": str(src),
                                    "options": ["rbind", "idmap"], "uidMappings": _mapping(2000),
                                    "gidMappings": _mapping(3000)})
    assert sh(runtime, bundle, "stat -c '%u %g' /ids/f") == "2000 3000\n"
    assert (src / "f").stat().st_uid == 0  # the files themselves are not changed


def test_idmap_without_a_mapping_takes_the_containers_user_namespace(runtime, bundle, work):
    # config.md idmap: "If they are not specified, the runtime MAY use the container's user
    # namespace mapping"
    src = work / "owned"
    src.mkdir()
    (src / "f").write_text("x")
    lx = bundle.config["linux"]
    lx["namespaces"].append({"type": "user"})
    lx["uidMappings"] = _mapping(200000, 65536)
    lx["gidMappings"] = _mapping(200000, 65536)
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if not m["destination"].startswith("/sys")]
    bundle.config["mounts"].append({"destination": "/tmp/ids", "type": "bind", "source": str(src),
                                    "options": ["rbind", "idmap"]})
    os.chown(bundle.rootfs / "tmp", 200000, 200000)
    # the host's root-owned file is the container's root's through the mount
    assert sh(runtime, bundle, "stat -c '%u %g' /tmp/ids/f") == "0 0\n"


@pytest.mark.parametrize("mount, word", [
    ({"type": "bind", "options": ["rbind", "idmap"]}, "uidMappings"),  # no userns, no mapping
    ({"type": "bind", "options": ["rbind"], "uidMappings": _mapping(1000)}, "gidMappings"),
    ({"type": "tmpfs", "options": ["idmap"], "uidMappings": _mapping(1000),
      "gidMappings": _mapping(1000)}, "bind mount")])
def test_an_idmapped_mount_without_what_it_needs_is_an_error(runtime, bundle, work, mount, word):
    # config.md idmap: "If there are no uidMappings and gidMappings specified and the
    # container isn't using user namespaces, an error MUST be returned"; uidMappings "MUST
    # be specified along with gidMappings"
    bundle.config["mounts"].append({"destination": "/b", "source": str(work), **mount})
    refused(runtime, bundle, word)


# == config.md: process ===================================================================
def test_process_args_needs_an_entry(runtime, bundle):
    # config.md args: "at least one entry is REQUIRED"
    bundle.config["process"]["args"] = []
    refused(runtime, bundle, "process.args")


def test_cwd_must_be_absolute(runtime, bundle):
    # config.md cwd: "This value MUST be an absolute path"
    bundle.config["process"]["cwd"] = "tmp"
    refused(runtime, bundle, "process.cwd")


def test_cwd_env_and_args_are_the_programs(runtime, bundle):
    # config.md: cwd "the working directory that will be set for the executable"; env "with
    # the same semantics as environ"; args[0] "used with the same semantics as execvp's file"
    bundle.config["process"]["cwd"] = "/tmp"
    bundle.config["process"]["env"] = ["PATH=/bin", "ONLY=this"]
    out = sh(runtime, bundle, "pwd; env | sort")
    assert out.split() == ["/tmp", "HOME=/root", "ONLY=this", "PATH=/bin", "PWD=/tmp", "SHLVL=1"]


def test_console_size_is_ignored_without_a_terminal(runtime, bundle):
    # config.md consoleSize: "Runtimes MUST ignore consoleSize if terminal is false or unset"
    bundle.config["process"]["consoleSize"] = {"height": 10, "width": 20}
    assert sh(runtime, bundle, "echo fine") == "fine\n"


def test_rlimits_are_what_getrlimit_returns(runtime, bundle):
    # config.md rlimits: "rlim.rlim_cur MUST match the configured value", "rlim.rlim_max MUST
    # match the configured value"
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                           {"type": "RLIMIT_CORE", "soft": 0, "hard": 2**64 - 1}]
    limits = sh(runtime, bundle, "cat /proc/self/limits")
    assert "Max open files            123                  456" in limits
    assert "Max core file size        0                    unlimited" in limits


@pytest.mark.parametrize("rlimits, word", [
    ([{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}], "RLIMIT_NOPE"),
    ([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}] * 2, "twice")])
def test_unknown_or_duplicate_rlimits_are_an_error(runtime, bundle, rlimits, word):
    # config.md rlimits: "The runtime MUST generate an error for any values which cannot be
    # mapped"; "If rlimits contains duplicated entries with same type, the runtime MUST
    # generate an error"
    bundle.config["process"]["rlimits"] = rlimits
    refused(runtime, bundle, word)


def _status_field(text: str, name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(name + ":"))


def test_capabilities_are_the_configured_sets(runtime, bundle):
    # config.md capabilities: each set "is an array of ... capabilities that are kept"
    caps = ["CAP_CHOWN", "CAP_KILL"]  # bits 0 and 5
    bundle.config["process"]["capabilities"] = {
        "bounding": caps, "effective": caps[:1], "permitted": caps, "inheritable": [], "ambient": []}
    out = sh(runtime, bundle, "cat /proc/self/status")
    assert int(_status_field(out, "CapBnd"), 16) == 0b100001
    assert int(_status_field(out, "CapPrm"), 16) == 0b100001
    assert int(_status_field(out, "CapInh"), 16) == 0
    # (root's execve raises the effective set to the permitted one: the kernel's rule)
    assert int(_status_field(out, "CapEff"), 16) == 0b100001


def test_an_unknown_capability_is_a_warning_not_an_error(runtime, bundle):
    # config.md capabilities: "Any value which cannot be mapped to a relevant kernel
    # interface ... MUST be logged as a warning by the runtime. Runtimes SHOULD NOT fail"
    bundle.config["process"]["capabilities"]["bounding"].append("CAP_NO_SUCH_THING")
    p = runtime.run(bundle.args("echo", "ran"))
    assert p.returncode == 0 and p.stdout == "ran\n"
    assert "CAP_NO_SUCH_THING" in p.stderr


def test_no_new_privileges(runtime, bundle):
    # config.md noNewPrivileges: "prevents the process from gaining additional privileges"
    bundle.config["process"]["noNewPrivileges"] = True
    assert _status_field(sh(runtime, bundle, "cat /proc/self/status"), "NoNewPrivs") == "1"


def test_oom_score_adj_is_set_when_given(runtime, bundle):
    # config.md: "If oomScoreAdj is set, the runtime MUST set oom_score_adj to the given value"
    bundle.config["process"]["oomScoreAdj"] = 123
    assert sh(runtime, bundle, "cat /proc/self/oom_score_adj") == "123\n"


def test_oom_score_adj_is_left_alone_when_not_given(runtime, bundle):
    # config.md: "If oomScoreAdj is not set, the runtime MUST NOT change the value"
    bundle.args("cat", "/proc/self/oom_score_adj").write()

    def preset() -> None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("77")

    p = subprocess.run([RUNTIME, "--root", str(runtime.root), "run", "--bundle", str(bundle.path),
                        bundle.id], env=runtime.env, capture_output=True, text=True,
                       preexec_fn=preset, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "77\n"


def test_user_uid_gid_and_additional_gids(runtime, bundle):
    # config.md user: uid, gid "in the container namespace"; additionalGids "to be added"
    bundle.config["process"]["user"] = {"uid": 1234, "gid": 567, "additionalGids": [11, 22]}
    ids = sh(runtime, bundle, "cat /proc/self/status")
    assert _status_field(ids, "Uid").split() == ["1234"] * 4
    assert _status_field(ids, "Gid").split() == ["567"] * 4
    assert _status_field(ids, "Groups").split() == ["11", "22"]


def test_user_umask(runtime, bundle):
    # config.md user.umask: "specifies the umask of the user"
    bundle.config["process"]["user"]["umask"] = 0o077
    assert sh(runtime, bundle, "umask") == "0077\n"


@pytest.mark.xfail(strict=True, reason="runc compatibility: without user.umask the process "
                   "gets 0022, as runc sets it, not the caller's umask")
def test_without_umask_the_callers_umask_is_kept(runtime, bundle):
    # config.md user.umask: "If unspecified, the umask should not be changed from the
    # calling process' umask"
    bundle.args("sh", "-c", "umask").write()
    p = subprocess.run([RUNTIME, "--root", str(runtime.root), "run", "--bundle", str(bundle.path),
                        bundle.id], env=runtime.env, capture_output=True, text=True,
                       preexec_fn=lambda: os.umask(0o027), timeout=60, stdin=subprocess.DEVNULL)
    assert p.stdout == "0027\n"


def test_lsm_labels_are_applied_or_left_where_the_host_has_no_such_module(runtime, bundle):
    # config.md apparmorProfile/selinuxLabel, config-linux.md mountLabel: no MUST; runc
    # applies them where the module is enabled and leaves them where it is not
    from skiff.runtime.process import host_lsms

    bundle.config["process"]["apparmorProfile"] = "skiff-test-profile"
    bundle.config["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0"
    bundle.config["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0"
    if host_lsms():  # a profile the host does not know is refused by the kernel
        assert runtime.run(bundle.args("true")).returncode != 0
    else:
        p = runtime.run(bundle.args("echo", "ran"))
        assert p.returncode == 0 and p.stdout == "ran\n", p.stderr


def test_hostname_and_domainname_are_set(runtime, bundle):
    # config.md hostname/domainname: "the container's hostname/domainname as seen by
    # processes running inside the container"
    bundle.config["hostname"] = "conform"
    bundle.config["domainname"] = "spec.test"
    assert sh(runtime, bundle, "hostname; cat /proc/sys/kernel/domainname").split() == [
        "conform", "spec.test"]


@pytest.mark.parametrize("key", ["hostname", "domainname"])
def test_hostname_or_domainname_without_a_uts_namespace_is_an_error(runtime, bundle, key):
    # config.md hostname: "On Linux ... this will change the hostname in the container UTS
    # namespace": without one it would be the host's (an invalid value for a container)
    bundle.config.pop("hostname", None)
    bundle.config[key] = "nope"
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "uts"]
    refused(runtime, bundle, key, "uts")


def test_an_empty_annotation_key_is_an_error(runtime, bundle):
    # config.md annotations: "Keys MUST NOT be an empty string"
    bundle.config["annotations"] = {"": "v"}
    refused(runtime, bundle, "annotations")


def test_unknown_properties_are_ignored(runtime, bundle):
    # config.md Extensibility: "Runtimes MAY log unknown properties but MUST otherwise ignore
    # them. That includes not generating errors if they encounter an unknown property"
    bundle.config["org.example.extension"] = {"anything": [1, 2]}
    bundle.config["linux"]["org.example.more"] = True
    bundle.config["process"]["org.example.field"] = "x"
    assert sh(runtime, bundle, "echo ignored") == "ignored\n"


@pytest.mark.parametrize("where, value", [
    ("linux.intelRdt", {"closID": "guaranteed_group"}),
    ("linux.memoryPolicy", {"mode": "MPOL_BIND", "nodes": "0"}),
    ("linux.netDevices", {"eth9": {}}),
    ("linux.resources.network", {"classID": 1048577}),
    ("linux.resources.rdma", {"mlx5_1": {"hcaHandles": 3}}),
])
def test_fields_skiff_does_not_support_are_refused_by_name(runtime, bundle, where, value):
    # config.md Valid values: "Runtimes MUST generate an error when invalid or unsupported
    # values are encountered"
    node = bundle.config
    *path, last = where.split(".")
    for key in path:
        node = node.setdefault(key, {})
    node[last] = value
    refused(runtime, bundle, where, "not supported")


def _stat_fields(text: str) -> list[str]:
    """/proc/PID/stat's fields from the state on (field 3), past the command's name."""
    return text[text.rindex(")") + 2:].split()


def test_scheduler_policy_and_nice_are_the_programs(runtime, bundle):
    # config.md scheduler: "an object describing the scheduler properties for the process"
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    fields = _stat_fields(sh(runtime, bundle, "cat /proc/self/stat"))
    assert fields[41 - 3] == "3"  # policy: SCHED_BATCH
    assert fields[19 - 3] == "7"  # nice


def test_io_priority_is_the_programs(runtime, bundle):
    # config.md ioPriority: "configures the I/O priority settings for the container's processes"
    bundle.config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    assert sh(runtime, bundle, "ionice -p $$").strip() == "best-effort: prio 6"


@pytest.mark.parametrize("process, word", [
    ({"scheduler": {"policy": "SCHED_NOPE"}}, "process.scheduler.policy"),
    ({"scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}}, "process.scheduler.flags[0]"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}, "process.ioPriority.priority"),
    ({"ioPriority": {"class": "IOPRIO_CLASS_NONE", "priority": 0}}, "process.ioPriority.class"),
    ({"execCPUAffinity": {"final": "3-1"}}, "process.execCPUAffinity.final")])
def test_bad_scheduler_io_priority_or_affinity_is_an_error(runtime, bundle, process, word):
    bundle.config["process"].update(process)
    refused(runtime, bundle, word)


def test_exec_cpu_affinity_is_the_exec_processes_not_the_inits(runtime, bundle, work):
    # config.md execCPUAffinity: "specifies CPU affinity used to execute the process. This
    # setting is not applicable to the container's init process"; final: "the process will
    # be run on after the transition to container's cgroup"
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs")
    bundle.config["process"]["execCPUAffinity"] = {"initial": "0", "final": "1"}
    runtime.create(bundle.args("sleep", "30"))
    pid = runtime.state(bundle.id)["pid"]
    assert os.sched_getaffinity(pid) == os.sched_getaffinity(0)
    runtime("start", bundle.id)
    proc = dict(bundle.config["process"], args=["grep", "Cpus_allowed_list", "/proc/self/status"])
    (work / "process.json").write_text(json.dumps(proc))
    out = runtime("exec", "--process", str(work / "process.json"), bundle.id).stdout
    assert out.split() == ["Cpus_allowed_list:", "1"]


# == config-linux.md: namespaces ===========================================================
def test_a_namespace_not_listed_is_the_runtimes(runtime, bundle):
    # config-linux.md: "If a namespace type is not specified in the namespaces array, the
    # container MUST inherit the runtime namespace of that type"
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] not in ("network", "ipc")]
    net, ipc = sh(runtime, bundle, NS_LINKS.format("net ipc")).split()
    assert net == os.readlink("/proc/self/ns/net") and ipc == os.readlink("/proc/self/ns/ipc")


def test_a_namespace_without_path_is_new(runtime, bundle):
    # config-linux.md: "If path is not specified, the runtime MUST create a new container
    # namespace of type type"
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    out = sh(runtime, bundle, NS_LINKS.format("pid net ipc uts mnt cgroup")).split()
    host = [os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "net", "ipc", "uts", "mnt", "cgroup")]
    assert all(a != b for a, b in zip(out, host))


NS_LINKS = "for n in {}; do readlink /proc/self/ns/$n; done"


def _sandbox(runtime: Runtime, bundle: Bundle) -> int:
    """A created container whose namespaces others may join; its init's pid."""
    runtime.create(bundle.args("true"))
    pid = runtime.state(bundle.id)["pid"]
    bundle.id += "j"
    bundle.config["linux"]["cgroupsPath"] += "j"
    return pid


def test_a_namespace_path_is_joined(runtime, bundle):
    # config-linux.md path: "The runtime MUST place the container process in the namespace
    # associated with that path"
    pid = _sandbox(runtime, bundle)
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] in ("network", "ipc"):
            ns["path"] = f"/proc/{pid}/ns/{'net' if ns['type'] == 'network' else 'ipc'}"
    net, ipc = sh(runtime, bundle, NS_LINKS.format("net ipc")).split()
    assert (net, ipc) == (os.readlink(f"/proc/{pid}/ns/net"), os.readlink(f"/proc/{pid}/ns/ipc"))


def test_a_namespace_path_of_another_type_is_an_error(runtime, bundle):
    # config-linux.md path: "The runtime MUST generate an error if path is not associated
    # with a namespace of type type"
    pid = _sandbox(runtime, bundle)
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "ipc":
            ns["path"] = f"/proc/{pid}/ns/net"
    refused(runtime, bundle, "setns")


def test_a_namespace_path_that_is_no_namespace_is_an_error(runtime, bundle, work):
    (work / "plain").write_text("")
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = str(work / "plain")
    refused(runtime, bundle, "setns")


@pytest.mark.parametrize("namespaces, word", [
    ([{"type": "pid"}, {"type": "pid"}, {"type": "mount"}], "twice"),
    ([{"type": "mount"}, {"type": "nonsense"}], "nonsense"),
    ([{"type": "mount"}, {"type": "network", "path": "relative/ns"}], "absolute")])
def test_duplicate_unknown_or_relative_namespaces_are_an_error(runtime, bundle, namespaces, word):
    # config-linux.md: duplicated types "MUST generate an error"; path "MUST be an absolute
    # path"; type is one of the listed
    bundle.config["linux"]["namespaces"] = namespaces
    bundle.config.pop("hostname", None)
    refused(runtime, bundle, "linux.namespaces", word)


@pytest.mark.xfail(strict=True, reason="skiff-runtime needs a mount namespace of its own "
                   "(the rootfs is built in one, as runc does); without one create is refused")
def test_without_a_mount_namespace_the_runtimes_is_inherited(runtime, bundle):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"]
                                            if n["type"] != "mount"]
    assert runtime.run(bundle.args("true")).returncode == 0


def test_time_namespace_offsets_are_the_containers_clocks(runtime, bundle):
    # config-linux.md timeOffsets: "sets the offset for Time Namespace" (boottime, monotonic)
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 50_000_000, "nanosecs": 0},
                                             "monotonic": {"secs": 60_000_000}}
    uptime = float(sh(runtime, bundle, "cat /proc/uptime").split()[0])
    host = float(Path("/proc/uptime").read_text().split()[0])
    assert 50_000_000 - 5 <= uptime - host < 50_000_100
    # and a process exec'd into the container shares its clocks
    runtime.create(bundle.args("sleep", "30"))
    runtime("start", bundle.id)
    uptime = float(runtime("exec", bundle.id, "cat", "/proc/uptime").stdout.split()[0])
    assert uptime >= 50_000_000


def test_time_offsets_without_a_new_time_namespace_are_an_error(runtime, bundle):
    bundle.config["linux"]["timeOffsets"] = {"monotonic": {"secs": 10}}
    refused(runtime, bundle, "linux.timeOffsets", "time namespace")


def test_user_namespace_mappings_and_no_chown(runtime, bundle):
    # config-linux.md uidMappings/gidMappings; "The runtime SHOULD NOT modify the ownership
    # of referenced filesystems to realize the mapping"
    lx = bundle.config["linux"]
    lx["namespaces"].append({"type": "user"})
    lx["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000}]
    lx["gidMappings"] = [{"containerID": 0, "hostID": 300000, "size": 1000}]
    # (no /sys mounts: their targets would be made in a rootfs the mapped root may not write)
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if not m["destination"].startswith("/sys")]
    before = {p: p.lstat().st_uid for p in (bundle.rootfs, bundle.rootfs / "bin" / "busybox")}
    out = sh(runtime, bundle, "cat /proc/self/uid_map /proc/self/gid_map")
    assert out.split() == ["0", "200000", "1000", "0", "300000", "1000"]
    assert {p: p.lstat().st_uid for p in before} == before


# == config-linux.md: devices ==============================================================
def test_the_default_devices_are_supplied(runtime, bundle):
    # config-linux.md Default Devices: /dev/null, zero, full, random, urandom, tty "MUST";
    # /dev/ptmx "A bind-mount or symlink of the container's /dev/pts/ptmx"
    out = sh(runtime, bundle, "for d in null zero full random urandom tty; do "
                              "stat -c '%n %F %t:%T' /dev/$d; done; readlink /dev/ptmx")
    lines = out.splitlines()
    expect = {"null": "1:3", "zero": "1:5", "full": "1:7", "random": "1:8", "urandom": "1:9",
              "tty": "5:0"}
    for line, (name, numbers) in zip(lines, expect.items()):
        assert line == f"/dev/{name} character special file {numbers}"
    assert lines[-1] == "pts/ptmx"


def test_dev_console_is_the_terminal_when_there_is_one(runtime, bundle):
    # config-linux.md: "/dev/console is set up if terminal is enabled in the config by bind
    # mounting the pseudoterminal pty to /dev/console"
    bundle.config["process"]["terminal"] = True
    bundle.args("sh", "-c", "stat -c '%t %T' /dev/console; stat -Lc '%t %T' /proc/self/fd/0").write()
    code, out = run_on_a_pty([RUNTIME, "--root", str(runtime.root), "run", "--bundle",
                              str(bundle.path), bundle.id], runtime.env)
    assert code == 0, out
    console, stdin = out.decode().strip().splitlines()[-2:]
    assert console.strip() == stdin.strip() and console.startswith("88 ")  # a pty (136)


def test_the_dev_symlinks_are_made(runtime, bundle):
    # runtime-linux.md Dev symbolic links: runtimes "MUST create the following symlinks if
    # the source file exists after processing mounts"
    out = sh(runtime, bundle, "for l in fd stdin stdout stderr; do readlink /dev/$l; done")
    assert out.split() == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2"]


def test_only_stdio_is_open_in_the_program(runtime, bundle):
    # runtime-linux.md File descriptors: "By default, only the stdin, stdout and stderr file
    # descriptors are kept open for the application by the runtime"
    out = sh(runtime, bundle, "ls /proc/self/fd")  # ls's own directory fd is the 4th
    assert out.split() == ["0", "1", "2", "3"]


def test_listed_devices_are_available_as_asked(runtime, bundle):
    # config-linux.md devices: "lists devices that MUST be available in the container";
    # "The path MAY be anywhere in the container filesystem, notably outside of /dev"
    bundle.config["linux"]["devices"] = [
        {"path": "/opt/devs/zero2", "type": "c", "major": 1, "minor": 5, "fileMode": 0o604,
         "uid": 7, "gid": 8},
        {"path": "/dev/pipe0", "type": "p"}]
    out = sh(runtime, bundle, "stat -c '%F %t:%T %a %u %g' /opt/devs/zero2; stat -c %F /dev/pipe0; "
                              "head -c 3 /opt/devs/zero2 | wc -c")
    assert out.splitlines() == ["character special file 1:5 604 7 8", "fifo", "3"]


def test_a_device_path_holding_another_file_is_an_error(runtime, bundle):
    # config-linux.md devices path: "If a file already exists at path that does not match
    # the requested device, the runtime MUST generate an error"
    (bundle.rootfs / "opt").mkdir(exist_ok=True)
    (bundle.rootfs / "opt" / "dev0").write_text("a plain file")
    bundle.config["linux"]["devices"] = [{"path": "/opt/dev0", "type": "c", "major": 1, "minor": 5}]
    refused(runtime, bundle, "linux.devices[0].path")
    assert (bundle.rootfs / "opt" / "dev0").read_text() == "a plain file"


def test_a_device_path_holding_that_device_is_taken(runtime, bundle):
    os.mknod(bundle.rootfs / "zero3", 0o600 | 0o020000, os.makedev(1, 5))
    bundle.config["linux"]["devices"] = [{"path": "/zero3", "type": "c", "major": 1, "minor": 5}]
    assert sh(runtime, bundle, "head -c 2 /zero3 | wc -c") == "2\n"


_FUSE = {"type": "c", "major": 10, "minor": 229}


@pytest.mark.parametrize("rules, opened", [
    ([{"allow": False, **_FUSE, "access": "rwm"}, {"allow": True, **_FUSE, "access": "r"}], True),
    ([{"allow": True, **_FUSE, "access": "r"}, {"allow": False, **_FUSE, "access": "rwm"}], False)])
def test_device_cgroup_rules_are_applied_in_order(runtime, bundle, rules, opened):
    # config-linux.md Allowed Device list: "The runtime MUST apply entries in the listed
    # order" (the last rule for a device wins); a node the image carries, opened only
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    os.mknod(bundle.rootfs / "fuse2", 0o666 | 0o020000, os.makedev(10, 229))
    os.chmod(bundle.rootfs / "fuse2", 0o666)
    bundle.config["linux"]["resources"]["devices"] = [{"allow": False, "access": "rwm"}, *rules]
    out = sh(runtime, bundle, "(exec 3< /fuse2) 2>/dev/null && echo opened || echo denied")
    assert out == ("opened\n" if opened else "denied\n")


# == config-linux.md: cgroups ==============================================================
def _cgroup_file(path: str, controller: str, name: str) -> str:
    for hier in _CGROUP_ROOT.iterdir():
        if controller in hier.name.split(",") and (hier / path.lstrip("/") / name).exists():
            return (hier / path.lstrip("/") / name).read_text().strip()
    raise AssertionError(f"no {controller} cgroup with {name} for {path}")


def test_cgroups_path_is_where_the_container_runs(runtime, bundle):
    # config-linux.md cgroupsPath: "In the case of an absolute path ... the runtime MUST take
    # the path to be relative to the cgroups mount point"; "MUST consistently attach to the
    # same place ... given the same value"
    path = bundle.config["linux"]["cgroupsPath"]
    runtime.create(bundle.args("true"))
    pid = runtime.state(bundle.id)["pid"]
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    assert any(line.endswith(":" + path) for line in lines)
    runtime("delete", bundle.id)
    runtime.create(bundle)
    pid = runtime.state(bundle.id)["pid"]
    assert Path(f"/proc/{pid}/cgroup").read_text().splitlines() == lines


@pytest.mark.parametrize("path", [f"/skiff/{CGROUP_PREFIX}/../../../escape", "../x"])
def test_a_cgroups_path_that_climbs_out_is_an_error(runtime, bundle, path):
    # config-linux.md: "Runtimes MAY consider certain cgroupsPath values to be invalid, and
    # MUST generate an error if this is the case"
    good = bundle.config["linux"]["cgroupsPath"]
    bundle.config["linux"]["cgroupsPath"] = path
    p = runtime.create(bundle, check=False)
    assert p.returncode != 0 and "cgroupsPath" in p.stderr
    assert not (runtime.root / bundle.id).exists()
    assert not Path("/sys/escape").exists() and cgroup_dirs(good) == []


def test_resources_are_written_to_the_cgroup(runtime, bundle):
    # config-linux.md resources: memory.limit, cpu.shares, pids.limit set the controllers
    bundle.config["linux"]["resources"].update({
        "memory": {"limit": 64 << 20}, "cpu": {"shares": 512}, "pids": {"limit": 42}})
    runtime.create(bundle.args("true"))
    path = bundle.config["linux"]["cgroupsPath"]
    assert _cgroup_file(path, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert _cgroup_file(path, "cpu", "cpu.shares") == "512"
    assert _cgroup_file(path, "pids", "pids.max") == "42"


def _on_the_v2_driver(runtime: Runtime) -> Path:
    """Make the runtime use cgroup v2 (the host's own, or the unified hierarchy of a hybrid
    host); its mount point."""
    if (_CGROUP_ROOT / "cgroup.controllers").exists():
        return _CGROUP_ROOT
    unified = _CGROUP_ROOT / "unified"
    if not (unified / "cgroup.controllers").exists():
        pytest.skip("no cgroup2 hierarchy")
    runtime.env["SKIFF_CGROUP_ROOT"] = str(unified)
    return unified


def test_unified_keys_are_written_as_they_are(runtime, bundle):
    # config-linux.md unified: "Each key in the map refers to a file in the cgroup unified
    # hierarchy"; "Configuration unknown to the runtime MUST still be written"
    root = _on_the_v2_driver(runtime)
    if "hugetlb" not in (root / "cgroup.controllers").read_text().split():
        pytest.skip("no hugetlb controller on cgroup2")
    if not Path("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir():
        pytest.skip("no 2MB huge pages")
    size = "2MB"
    bundle.config["linux"]["resources"]["unified"] = {f"hugetlb.{size}.max": "0"}
    runtime.create(bundle.args("true"))
    path = root / bundle.config["linux"]["cgroupsPath"].lstrip("/") / f"hugetlb.{size}.max"
    assert path.read_text().strip() == "0"


def test_unified_keys_of_a_controller_not_there_are_an_error(runtime, bundle):
    # config-linux.md unified: "The runtime MUST generate an error when the configuration
    # refers to a cgroup controller that is not present or that cannot be enabled"
    root = _on_the_v2_driver(runtime)
    if "rdma" in (root / "cgroup.controllers").read_text().split():
        pytest.skip("this host has the rdma controller")
    bundle.config["linux"]["resources"]["unified"] = {"rdma.max": "mlx5_0 hca_handle=2"}
    refused(runtime, bundle, "rdma")


def test_unified_on_cgroup_v1_is_an_error(runtime, bundle):
    # config-linux.md unified: cgroup v2 parameters; "If the conversion is not possible the
    # runtime MUST generate an error"
    if (_CGROUP_ROOT / "cgroup.controllers").exists():
        pytest.skip("a cgroup v2 host")
    bundle.config["linux"]["resources"]["unified"] = {"memory.max": "100000000"}
    refused(runtime, bundle, "unified")


def test_a_resource_the_kernel_refuses_is_an_error(runtime, bundle):
    # runtime.md create: "If the runtime cannot apply a property as specified in the
    # configuration, it MUST generate an error and a new container MUST NOT be created"
    bundle.config["linux"]["resources"]["cpu"] = {"cpus": "9999"}
    refused(runtime, bundle, "cpuset")


# == config-linux.md: sysctl, seccomp, propagation, paths, personality ======================
def test_sysctls_are_set(runtime, bundle):
    # config-linux.md sysctl: "allows kernel parameters to be modified at runtime"
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "4321"}
    bundle.config["linux"]["readonlyPaths"] = []
    assert sh(runtime, bundle, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax").split() == [
        "1", "4321"]


def test_a_sysctl_of_the_host_is_an_error(runtime, bundle):
    # a sysctl outside the container's own namespaces would change the host (invalid value)
    bundle.config["linux"]["sysctl"] = {"vm.swappiness": "1"}
    refused(runtime, bundle, "vm.swappiness")


def test_seccomp_errno_defaults_to_eperm(runtime, bundle):
    # config-linux.md errnoRet: "If not specified its default value is EPERM"
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    assert "Operation not permitted" in sh(runtime, bundle, "mkdir /tmp/d 2>&1; true")


@pytest.mark.parametrize("seccomp, word", [
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "defaultErrnoRet"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}, "errnoRet"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}, "listenerMetadata"),
    ({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"}, "not supported"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}, "flags"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]},
     "names")])
def test_bad_seccomp_settings_are_an_error(runtime, bundle, seccomp, word):
    # config-linux.md seccomp: errnoRet "When the action doesn't support an errno, the runtime
    # MUST print and error and fail"; listenerMetadata "MUST NOT be set if listenerPath is not
    # set"; names "MUST contain at least one entry"
    bundle.config["linux"]["seccomp"] = seccomp
    refused(runtime, bundle, "seccomp", word)


def _root_mount_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.split()[4] == "/")


@pytest.mark.parametrize("prop, tag", [("shared", "shared:"), ("private", None),
                                       ("unbindable", "unbindable")])
def test_rootfs_propagation_is_the_root_mounts(runtime, bundle, prop, tag):
    # config-linux.md rootfsPropagation: "sets the rootfs's mount propagation" (shared: "the
    # rootfs mount belongs to a new peer group"; unbindable: "a private mount that cannot be
    # bind-mounted")
    bundle.config["linux"]["rootfsPropagation"] = prop
    line = _root_mount_line(sh(runtime, bundle, "cat /proc/self/mountinfo"))
    optional = line.split(" - ")[0].split()[6:]
    if tag is None:
        assert optional == [], line
    else:
        assert any(o.startswith(tag) for o in optional), line
    assert str(bundle.rootfs) not in Path("/proc/self/mounts").read_text()


def test_masked_paths_cannot_be_read_and_readonly_paths_not_written(runtime, bundle):
    # config-linux.md maskedPaths: "mask over the provided paths ... so that they cannot be
    # read"; readonlyPaths: "set the provided paths as readonly"
    bundle.config["linux"]["maskedPaths"] = ["/etc/passwd", "/proc/timer_list"]
    bundle.config["linux"]["readonlyPaths"] = ["/proc/sys", "/etc"]
    out = sh(runtime, bundle, "wc -c < /etc/passwd; wc -c < /proc/timer_list; "
                              "touch /etc/new 2>/dev/null || echo etc-ro; "
                              "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo sys-ro")
    assert out.split() == ["0", "0", "etc-ro", "sys-ro"]


@pytest.mark.parametrize("key", ["maskedPaths", "readonlyPaths"])
def test_masked_and_readonly_paths_must_be_absolute(runtime, bundle, key):
    # config-linux.md: "The values MUST be absolute paths in the container namespace"
    bundle.config["linux"][key] = ["proc/kcore"]
    refused(runtime, bundle, f"linux.{key}[0]")


def test_personality_linux32_shows_a_32_bit_machine(runtime, bundle):
    # config-linux.md personality: "LINUX32 will set the uname system call to show a 32 bit
    # CPU type, such as i686" — for exec'd processes too
    if os.uname().machine != "x86_64":
        pytest.skip("the 32-bit name checked is x86's")
    bundle.config["linux"]["personality"] = {"domain": "LINUX32"}
    runtime.create(bundle.args("sh", "-c", "uname -m > /tmp/init-machine; sleep 30"))
    runtime("start", bundle.id)
    wait_for((bundle.rootfs / "tmp" / "init-machine").exists, "the program")
    p = runtime("exec", bundle.id, "uname", "-m")
    assert (bundle.rootfs / "tmp" / "init-machine").read_text() == "i686\n"
    assert p.stdout == "i686\n"


@pytest.mark.parametrize("personality, word", [({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}, "flags"),
                                               ({"domain": "SVR4"}, "domain")])
def test_personality_flags_or_other_domains_are_an_error(runtime, bundle, personality, word):
    # config-linux.md personality: domain LINUX or LINUX32; "Currently no flag values are
    # supported"
    bundle.config["linux"]["personality"] = personality
    refused(runtime, bundle, f"linux.personality.{word}")
