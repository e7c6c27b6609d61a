"""engine.capsules over store.capsules on a temporary root: capsules made from paths, a
folder and a tar, packed once and canonically (same files, same digest), unpacked verified
and read-only, resolved with their dependencies; the refusals that change nothing (same
name:version with other content, an unreadable path, a bad range, a cycle), rm refused while
used or needed, prune's closure of what is used, the events."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from conftest import run_in_child

from skiff.engine.capsules import CapsuleService
from skiff.engine.events import EventLog
from skiff.errors import (CapsuleConflict, CapsuleCycle, DigestMismatch, InvalidArgument,
                          NoSuchCapsule)
from skiff.store.capsules import CapsuleStore


@pytest.fixture
def service(tmp_path: Path) -> CapsuleService:
    return CapsuleService(str(tmp_path / "root"), EventLog())


@pytest.fixture
def files(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    (src / "lib" / "libx.so.1").write_bytes(b"\x7fELF pretend")
    (src / "lib" / "libx.so.1").chmod(0o755)
    (src / "conf.ini").write_text("a=1\n")
    (src / "lib" / "libx.so").symlink_to("libx.so.1")
    return src


def blobs(service: CapsuleService) -> list[str]:
    return sorted(service.store.blobs.digests())


def state(service: CapsuleService) -> tuple[list[str], list[str], list[str]]:
    """What is stored: the index, the blobs, the unpacked trees."""
    unpacked = service.store.unpacked_dir
    return ([r.ref for r in service.store.all()], blobs(service),
            sorted(os.listdir(unpacked)) if os.path.isdir(unpacked) else [])


def tree(path: str) -> dict[str, tuple[str, int]]:
    out = {}
    for top, dirs, names in os.walk(path):
        for name in dirs + names:
            full = os.path.join(top, name)
            st = os.lstat(full)
            kind = "l" if os.path.islink(full) else "d" if os.path.isdir(full) else "f"
            out[os.path.relpath(full, path)] = (kind, st.st_mode & 0o7777)
    return out


def test_create_from_a_folder_paths_and_a_tar_give_one_content(service, files, tmp_path):
    doc, made = service.create("libx", "1.0.0", from_dir=str(files),
                               labels={"tier": "base"})
    assert made and doc["Name"] == "libx" and doc["Version"] == "1.0.0"
    assert doc["Entries"] == 4 and doc["ContentSize"] == len(b"\x7fELF pretend") + 4
    assert doc["Labels"] == {"tier": "base"} and doc["Path"] == ""
    # the same files by paths, under another name: one blob
    same, _ = service.create("libx-copy", "2.0.0",
                             paths=[(str(files / "lib"), None), (str(files / "conf.ini"), None)])
    assert same["Digest"] == doc["Digest"]
    # and from a tar (other owners, times and write bits: the pack does not keep them)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(files, arcname=".", filter=lambda i: (setattr(i, "uid", 1000) or
                                                      setattr(i, "mtime", 12345) or i))
    buf.seek(0)
    from_tar, _ = service.create("libx-tar", "1.0.0", archive=buf)
    assert from_tar["Digest"] == doc["Digest"]
    assert len(blobs(service)) == 1
    again, made = service.create("libx", "1.0.0", from_dir=str(files))
    assert not made and again["Created"] == doc["Created"]
    assert [(e.action, e.actor_id) for e in service.events.since() if e.type == "capsule"] == [
        ("create", "libx:1.0.0"), ("create", "libx-copy:2.0.0"), ("create", "libx-tar:1.0.0")]
    attrs = service.events.since()[0].attributes
    assert attrs == {"tier": "base", "name": "libx", "version": "1.0.0",
                     "digest": doc["Digest"]}


def test_targets_lay_files_out(service, files):
    service.create("conf", "1.0.0", paths=[(str(files / "conf.ini"), "etc/app/app.ini"),
                                           (str(files / "lib" / "libx.so"), None)])
    (got,) = service.resolve(["conf:1.0.0"])
    # a path given is followed: libx.so is the file it links to, under the link's name
    assert tree(got.path) == {"etc": ("d", 0o555), "etc/app": ("d", 0o555),
                              "etc/app/app.ini": ("f", 0o444), "libx.so": ("f", 0o555)}


def test_unpacked_once_read_only_and_root_owned(service, files):
    service.create("libx", "1.0.0", from_dir=str(files))
    (got,) = service.resolve(["libx"])
    assert got.ref == "libx:1.0.0" and got.path.endswith(got.digest.split(":")[1])
    assert tree(got.path) == {"conf.ini": ("f", 0o444), "lib": ("d", 0o555),
                              "lib/libx.so.1": ("f", 0o555), "lib/libx.so": ("l", 0o777)}
    assert os.readlink(os.path.join(got.path, "lib/libx.so")) == "libx.so.1"
    assert os.stat(got.path).st_mode & 0o777 == 0o555
    assert {os.lstat(os.path.join(t, n)).st_uid for t, ds, ns in os.walk(got.path)
            for n in ds + ns} == {0} or os.geteuid() != 0
    inode = os.stat(got.path).st_ino
    assert service.resolve(["libx:1.0.0"])[0].path == got.path
    assert os.stat(got.path).st_ino == inode  # not unpacked again
    assert service.inspect("libx:1.0.0")["Path"] == got.path


def test_a_tampered_pack_is_not_unpacked(service, files):
    doc, _ = service.create("libx", "1.0.0", from_dir=str(files))
    other, _ = service.create("other", "1.0.0", paths=[("/etc/hostname", None)])
    path = service.store.blobs.path(doc["Digest"])
    os.chmod(path, 0o644)
    for forged in (Path(service.store.blobs.path(other["Digest"])).read_bytes(),  # a pack
                   Path(path).read_bytes() + b"\0"):                          # garbage
        Path(path).write_bytes(forged)
        with pytest.raises(DigestMismatch, match=doc["Digest"]):
            service.resolve(["libx"])
        assert state(service)[2] == []  # no tree, and no staging left
        assert os.listdir(os.path.join(service.store.dir, ".staging")) == []


def test_same_name_and_version_with_other_content_changes_nothing(service, files, tmp_path):
    service.create("libx", "1.0.0", from_dir=str(files))
    before = state(service)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("else")
    with pytest.raises(CapsuleConflict, match="libx:1.0.0 exists with other content") as e:
        service.create("libx", "1.0.0", from_dir=str(other))
    assert e.value.sides[0] == "libx:1.0.0"
    assert state(service) == before  # not even the new pack's blob


@pytest.mark.parametrize("kwargs, words", [
    ({"paths": [("/nonexistent/file", None)]}, "/nonexistent/file`: cannot read it"),
    ({"from_dir": "/nonexistent"}, "cannot read it"),
    ({"paths": [("/dev/null", None)]}, "files, folders and symlinks only"),
    ({"paths": [("/etc/hostname", "../x")]}, "`..` component"),
    ({"paths": [("/etc/hostname", ".wh.x")]}, "whiteout"),
    ({"paths": [("/etc/hostname", "a"), ("/etc/hosts", "a")]}, "two entries for `a`"),
    ({"paths": [("/etc/hostname", "a"), ("/etc/hosts", "a/b")]}, "nothing can go below it"),
    ({"paths": []}, "no path given"),
    ({"paths": [("/etc/hostname", None)], "from_dir": "/etc"}, "exactly one"),
    ({"paths": [("/etc/hostname", None)], "requires": ["other@^x.y"]}, "invalid version"),
    ({"paths": [("/etc/hostname", None)], "requires": ["other"]}, "name@range"),
    ({"paths": [("/etc/hostname", None)], "labels": {"a": 1}}, "labels"),
])
def test_bad_input_changes_nothing(service, kwargs, words):
    with pytest.raises(InvalidArgument, match=None) as e:
        service.create("libx", "1.0.0", **kwargs)
    assert words in str(e.value)
    assert state(service) == ([], [], [])


def test_unreadable_path(tmp_path):
    """As a user who cannot read it (root reads everything, so a child drops to nobody)."""
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0)
    tmp_path.chmod(0o755)

    def attempt() -> str:
        from skiff.store.capsule_pack import entries_from_paths

        if os.geteuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        try:
            entries_from_paths([(str(secret), None)])
        except InvalidArgument as e:
            return str(e)
        return "read it"

    assert run_in_child(attempt) == f"capsule content `{secret}`: cannot read it: " \
                                    f"Permission denied"


@pytest.mark.parametrize("name, version", [("Bad", "1.0.0"), ("ok", "1.0"), ("ok", "v1.0.0"),
                                           ("-x", "1.0.0"), ("ok", "1.0.0-01")])
def test_bad_names_and_versions(service, name, version):
    with pytest.raises(InvalidArgument):
        service.create(name, version, paths=[("/etc/hostname", None)])


def test_a_tar_with_a_device_or_a_bad_name_is_refused(service):
    for make in (lambda: tarfile.TarInfo("dev"), lambda: tarfile.TarInfo("../up")):
        info = make()
        if info.name == "dev":
            info.type = tarfile.CHRTYPE
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.addfile(info, io.BytesIO(b""))
        buf.seek(0)
        with pytest.raises(InvalidArgument):
            service.create("t", "1.0.0", archive=buf)
    with pytest.raises(InvalidArgument, match="not a tar"):
        service.create("t", "1.0.0", archive=io.BytesIO(b"no tar here" * 100))
    assert state(service) == ([], [], [])


def test_resolve_with_dependencies(service):
    service.create("libcrypto", "1.1.1", paths=[("/etc/hostname", "crypto-1.1.1")])
    service.create("libcrypto", "3.0.2", paths=[("/etc/hostname", "crypto-3")])
    service.create("libssl", "1.1.1", paths=[("/etc/hostname", "ssl")],
                   requires=["libcrypto@^1.1"])
    got = service.resolve(["libssl:1.1.1"])
    assert [r.ref for r in got] == ["libcrypto:1.1.1", "libssl:1.1.1"]
    assert all(os.path.isdir(r.path) for r in got)
    assert os.listdir(got[0].path) == ["crypto-1.1.1"]
    with pytest.raises(CapsuleConflict, match=r"libcrypto@3.0.2 \(requested\) and "
                                              r"libcrypto@\^1.1 \(libssl:1.1.1\)"):
        service.resolve(["libssl:1.1.1", "libcrypto:3.0.2"])
    with pytest.raises(NoSuchCapsule, match="no such capsule: nothing"):
        service.resolve(["nothing:1.0.0"])
    with pytest.raises(NoSuchCapsule, match="there are: 1.1.1"):
        service.resolve(["libssl:2.0.0"])


def test_a_cycle_is_refused_at_create(service):
    service.create("a", "1.0.0", paths=[("/etc/hostname", None)], requires=["b@^1"])
    service.create("b", "1.0.0", paths=[("/etc/hostname", None)], requires=["c@^1"])
    before = state(service)
    with pytest.raises(CapsuleCycle, match="c:1.0.0 -> a:1.0.0 -> b:1.0.0 -> c:1.0.0"):
        service.create("c", "1.0.0", paths=[("/etc/hostname", None)], requires=["a@1"])
    with pytest.raises(CapsuleCycle, match="requires itself"):
        service.create("d", "1.0.0", paths=[("/etc/hostname", None)], requires=["d@1"])
    assert state(service) == before


def test_inspect_list_and_find(service):
    for v in ("1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1"):
        service.create("x", v, paths=[("/etc/hostname", v)], labels={"v": v})
    assert [d["Version"] for d in service.list()] == ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"]
    assert service.inspect("x")["Version"] == "2.0.0-rc.1"
    assert service.inspect("x:1.2.0")["UsedBy"] == []
    assert [d["Version"] for d in service.list({"label": ["v=1.2.0"]})] == ["1.2.0"]
    assert [d["Version"] for d in service.list({"name": ["x:1.0.0"]})] == ["1.0.0"]
    with pytest.raises(InvalidArgument, match="invalid filter"):
        service.list({"bogus": ["1"]})
    with pytest.raises(NoSuchCapsule, match=r"no such capsule: x:3.0.0 \(there are versions "
                                            r"1.0.0, 1.2.0, 1.10.0, 2.0.0-rc.1\)"):
        service.inspect("x:3.0.0")
    with pytest.raises(NoSuchCapsule):
        service.inspect("y")
    with pytest.raises(InvalidArgument, match="name one"):
        service.remove("x")


def test_rm_refused_while_used_or_needed_unless_forced(service):
    service.create("libcrypto", "1.1.1", paths=[("/etc/hostname", "c")])
    service.create("libssl", "1.1.1", paths=[("/etc/hostname", "s")],
                   requires=["libcrypto@^1.1"])
    service.users = lambda: [("c0ffee", ["libssl:1.1.1"])]
    with pytest.raises(CapsuleConflict, match=r"in use by container\(s\) \[c0ffee\]"):
        service.remove("libssl:1.1.1")
    with pytest.raises(CapsuleConflict, match="cannot be detached here"):
        service.remove("libssl:1.1.1", force=True)
    with pytest.raises(CapsuleConflict, match=r"required by libssl:1.1.1 \(requires "
                                              r"libcrypto@\^1.1\)"):
        service.remove("libcrypto:1.1.1")
    detached = []
    service.detach = lambda ref, ids: detached.append((ref, ids))
    service.resolve(["libssl"])
    service.remove("libssl:1.1.1", force=True)
    assert detached == [("libssl:1.1.1", ["c0ffee"])]
    service.remove("libcrypto")
    assert state(service) == ([], [], [])
    assert [e.action for e in service.events.since()][-2:] == ["delete", "delete"]


def test_shared_content_stays_until_its_last_name_goes(service):
    a, _ = service.create("a", "1.0.0", paths=[("/etc/hostname", "h")])
    service.create("b", "1.0.0", paths=[("/etc/hostname", "h")])
    service.resolve(["a"])
    service.remove("a:1.0.0")
    assert state(service)[1:] == ([a["Digest"]], [a["Digest"].split(":")[1]])
    service.remove("b:1.0.0")
    assert state(service) == ([], [], [])


def test_prune_keeps_what_is_used_and_what_that_needs(service):
    mk = lambda n, v, *req: service.create(n, v, paths=[("/etc/hostname", f"{n}{v}")],
                                           requires=list(req))
    mk("libcrypto", "1.1.1")
    mk("libcrypto", "3.0.2")
    mk("libssl", "1.1.1", "libcrypto@^1.1")
    mk("tool", "1.0.0", "libssl@^1")
    mk("unused", "1.0.0", "libcrypto@^3")
    service.resolve(["tool"])
    service.resolve(["unused"])
    service.users = lambda: [("c1", ["tool:1.0.0"])]
    report = service.prune()
    assert report["CapsulesDeleted"] == ["libcrypto:3.0.2", "unused:1.0.0"]
    assert report["SpaceReclaimed"] > 0
    assert [r.ref for r in service.store.all()] == ["libcrypto:1.1.1", "libssl:1.1.1",
                                                    "tool:1.0.0"]
    assert service.prune() == {"CapsulesDeleted": None, "SpaceReclaimed": 0}
    service.users = list
    assert len(service.prune({"label!": ["keep"]})["CapsulesDeleted"]) == 3
    assert service.events.since()[-1].action == "prune"


def test_a_second_store_on_the_root_sees_the_same_index(service, tmp_path):
    service.create("a", "1.0.0", paths=[("/etc/hostname", "h")])
    other = CapsuleStore(str(tmp_path / "root"))
    assert [r.ref for r in other.all()] == ["a:1.0.0"]
    os.makedirs(os.path.join(other.dir, ".trash-x/d"))
    os.makedirs(os.path.join(other.dir, ".staging/y"))
    other.sweep()
    assert sorted(os.listdir(other.dir)) == [".staging", "index.json", "index.lock"]
