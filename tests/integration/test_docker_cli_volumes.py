"""Volumes, bind mounts and tmpfs through skiffd, driven by the real docker CLI and docker-py:
`docker volume create/ls/inspect/rm/prune` (shapes checked against the API spec), a named
volume written by one container and read by the next, the copy-up of the image's /etc into
a fresh volume, a read-only bind, ``--mount type=tmpfs`` and ``--tmpfs``, a device volume
of the local driver (``-o type=tmpfs``), anonymous volumes from an image's VOLUME and
``rm -v``, the 409 of removing a volume in use (its data kept), Docker's 400s for bad
specs, /system/df's Volumes, ``--volumes-from``, skiff's own volume commands beside
docker's, and docker-py's ``volumes.create`` and ``containers.run(volumes=…)``. One skiffd
serves the module; each test removes its containers and volumes, and no mount is left
behind under the volumes folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from fixtures_daemon import (Skiffd, check_api_shape, docker_py_client, module_daemon,
                             remove_all)
from test_docker_cli import DOCKER, docker

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not shutil.which(DOCKER), reason="no docker CLI")]


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


def remove_all_with_volumes(d: Skiffd) -> None:
    """Every container (with its anonymous volumes) and every volume of `d`, and no mount
    left of them."""
    remove_all(d, volumes=True)
    assert mounts_under(d.root / "volumes") == []


@pytest.fixture(scope="module")
def module_skiffd(tmp_root: Path) -> Iterator[Skiffd]:
    with module_daemon(tmp_root, "volumes") as d:
        try:
            yield d
        finally:
            remove_all_with_volumes(d)


@pytest.fixture
def daemon(module_skiffd: Skiffd) -> Iterator[Skiffd]:
    yield module_skiffd
    remove_all_with_volumes(module_skiffd)


def run(d: Skiffd, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return docker(d, "run", "--rm", "--network", "none", *args, check=check)


# -- the volume commands ------------------------------------------------------------------------
def test_volume_create_ls_inspect_rm(daemon: Skiffd) -> None:
    assert docker(daemon, "volume", "create", "--label", "a=b", "data1").stdout == "data1\n"
    assert docker(daemon, "volume", "create", "data1").stdout == "data1\n"  # idempotent
    docker(daemon, "volume", "create", "other")
    doc = json.loads(docker(daemon, "volume", "inspect", "data1").stdout)[0]
    check_api_shape(doc, "Volume")
    assert doc["Name"] == "data1" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Labels"] == {"a": "b"} and doc["Options"] == {}
    assert doc["Mountpoint"] == str(daemon.root / "volumes" / "data1" / "_data")
    assert os.path.isdir(doc["Mountpoint"])
    assert docker(daemon, "volume", "ls", "-q").stdout.split() == ["data1", "other"]
    assert docker(daemon, "volume", "ls", "-q", "--filter", "label=a=b").stdout == "data1\n"
    assert docker(daemon, "volume", "ls", "-q", "--filter", "name=oth").stdout == "other\n"
    assert docker(daemon, "volume", "ls", "--format", "{{.Name}} {{.Driver}}",
                  "--filter", "dangling=true").stdout.split("\n")[:2] == ["data1 local",
                                                                         "other local"]
    status, listing = daemon.json("GET", "/volumes")
    check_api_shape(listing, "VolumeListResponse")
    assert docker(daemon, "volume", "rm", "data1", "other").stdout.split() == ["data1", "other"]
    p = docker(daemon, "volume", "inspect", "data1", check=False)
    assert p.returncode == 1 and "no such volume" in p.stderr.lower()
    p = docker(daemon, "volume", "rm", "data1", check=False)
    assert p.returncode == 1 and "get data1: no such volume" in p.stderr
    assert docker(daemon, "volume", "rm", "-f", "data1").returncode == 0


def test_bad_volume_names_and_options_are_400(daemon: Skiffd) -> None:
    status, body = daemon.json("POST", "/volumes/create", {"Name": "a!b"})
    assert status == 400 and body["message"].startswith('create a!b: "a!b" includes invalid '
                                                        'characters for a local volume name')
    status, body = daemon.json("POST", "/volumes/create", {"Name": "x"})
    assert status == 400 and "volume name is too short" in body["message"]
    status, body = daemon.json("POST", "/volumes/create",
                               {"Name": "v1", "DriverOpts": {"bogus": "1"}})
    assert (status, body["message"]) == (400, 'create v1: invalid option: "bogus"')
    status, body = daemon.json("POST", "/volumes/create",
                               {"Name": "v1", "DriverOpts": {"type": "tmpfs"}})
    assert (status, body["message"]) == (400, 'create v1: missing required option: "device"')
    status, body = daemon.json("POST", "/volumes/create", {"Name": "v1", "Driver": "nfsx"})
    assert status == 400 and 'plugin "nfsx" not found' in body["message"]
    status, body = daemon.json("GET", "/volumes?filters=" + quote(json.dumps({"nope": ["1"]})))
    assert (status, body["message"]) == (400, "invalid filter 'nope'")
    assert daemon.json("GET", "/volumes")[1]["Volumes"] == []


def test_named_volume_is_shared_between_containers(daemon: Skiffd) -> None:
    run(daemon, "-v", "shared:/data", "busybox", "sh", "-c", "echo hello > /data/f")
    assert run(daemon, "-v", "shared:/data:ro", "busybox", "cat", "/data/f").stdout == "hello\n"
    p = run(daemon, "-v", "shared:/data:ro", "busybox", "sh", "-c", "echo x > /data/g",
            check=False)
    assert p.returncode != 0 and "Read-only file system" in p.stderr
    assert docker(daemon, "volume", "ls", "-q").stdout == "shared\n"  # --rm keeps named ones


def test_copy_up_of_the_images_content(daemon: Skiffd) -> None:
    run(daemon, "-v", "etc:/etc", "busybox", "true")
    data = daemon.root / "volumes" / "etc" / "_data"
    image_etc = run(daemon, "busybox", "ls", "-ln", "/etc").stdout
    volume_etc = run(daemon, "-v", "etc:/etc", "busybox", "ls", "-ln", "/etc").stdout
    assert sorted(image_etc.splitlines()[1:]) == sorted(volume_etc.splitlines()[1:])
    assert (data / "passwd").is_file()
    # not again: what the volume holds now is its own
    (data / "passwd").write_text("mine\n")
    assert run(daemon, "-v", "etc:/etc", "busybox", "cat", "/etc/passwd").stdout == "mine\n"
    # nocopy: a fresh volume stays empty
    assert run(daemon, "-v", "etc2:/etc:nocopy", "busybox", "ls", "/etc").stdout.split() == \
        ["hostname", "hosts", "resolv.conf"]


def test_read_only_bind_and_created_source(daemon: Skiffd, tmp_path: Path) -> None:
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "in").write_text("from the host\n")
    assert run(daemon, "-v", f"{host}:/x:ro", "busybox", "cat", "/x/in").stdout == \
        "from the host\n"
    p = run(daemon, "-v", f"{host}:/x:ro", "busybox", "touch", "/x/new", check=False)
    assert p.returncode != 0 and "Read-only file system" in p.stderr
    run(daemon, "-v", f"{host}:/x", "busybox", "sh", "-c", "echo back > /x/out")
    assert (host / "out").read_text() == "back\n"
    # a file bound over a file
    assert run(daemon, "-v", f"{host / 'in'}:/etc/motd:ro", "busybox", "cat", "/etc/motd"
               ).stdout == "from the host\n"
    made = tmp_path / "made" / "here"
    run(daemon, "-v", f"{made}:/m", "busybox", "true")  # -v makes a missing source, as Docker
    assert made.is_dir()
    p = run(daemon, "--mount", f"type=bind,source={tmp_path}/nope,target=/n", "busybox",
            "true", check=False)
    assert p.returncode == 125
    assert ('invalid mount config for type "bind": bind source path does not exist: '
            f'{tmp_path}/nope') in p.stderr


def test_inspect_mounts_in_dockers_shape(daemon: Skiffd, tmp_path: Path) -> None:
    cid = docker(daemon, "create", "--network", "none", "-v", "named:/n",
                 "-v", f"{tmp_path}:/b:ro,rslave", "--mount", "type=tmpfs,target=/t",
                 "--tmpfs", "/run", "busybox", "true").stdout.strip()
    doc = json.loads(docker(daemon, "inspect", cid).stdout)[0]
    by_dest = {m["Destination"]: m for m in doc["Mounts"]}
    assert set(by_dest) == {"/n", "/b", "/t"}  # --tmpfs is not listed, as in Docker
    assert by_dest["/n"] == {"Type": "volume", "Name": "named",
                             "Source": str(daemon.root / "volumes/named/_data"),
                             "Destination": "/n", "Driver": "local", "Mode": "z", "RW": True,
                             "Propagation": ""}
    assert by_dest["/b"] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/b",
                             "Mode": "ro,rslave", "RW": False, "Propagation": "rslave"}
    assert by_dest["/t"]["Type"] == "tmpfs" and by_dest["/t"]["RW"] is True
    for m in doc["Mounts"]:
        check_api_shape(m, "MountPoint")
    p = docker(daemon, "volume", "rm", "named", check=False)
    assert p.returncode == 1 and f"remove named: volume is in use - [{cid}]" in p.stderr
    docker(daemon, "rm", cid)
    docker(daemon, "volume", "rm", "named")


def test_tmpfs_mounts(daemon: Skiffd) -> None:
    out = run(daemon, "--tmpfs", "/run:size=1m", "busybox", "sh", "-c",
              "grep ' /run ' /proc/mounts; df -k /run | tail -1").stdout
    line, df = out.splitlines()
    assert line.split()[2] == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= set(line.split()[3].split(","))
    assert df.split()[1] == "1024"
    out = run(daemon, "--mount", "type=tmpfs,target=/scratch,tmpfs-size=2m,tmpfs-mode=1770",
              "busybox", "sh", "-c", "stat -c %a /scratch; df -k /scratch | tail -1").stdout
    mode, df = out.splitlines()
    assert mode == "1770" and df.split()[1] == "2048"


def test_local_driver_tmpfs_device_volume(daemon: Skiffd) -> None:
    docker(daemon, "volume", "create", "-d", "local", "-o", "type=tmpfs", "-o", "device=tmpfs",
           "-o", "o=size=10m", "tv")
    doc = json.loads(docker(daemon, "volume", "inspect", "tv").stdout)[0]
    assert doc["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=10m"}
    out = run(daemon, "-v", "tv:/v", "busybox", "sh", "-c", "df -k /v | tail -1").stdout
    assert out.split()[1] == "10240"
    # the run is over: nothing of the volume stays mounted on the host
    assert mounts_under(daemon.root / "volumes") == []
    docker(daemon, "volume", "rm", "tv")


def test_local_driver_bind_device_volume_gets_the_copy_up(daemon: Skiffd,
                                                          tmp_path: Path) -> None:
    host = tmp_path / "device"
    host.mkdir()
    docker(daemon, "volume", "create", "-o", "type=none", "-o", f"device={host}", "-o",
           "o=bind", "bv")
    out = run(daemon, "-v", "bv:/etc", "busybox", "sh", "-c",
              "echo mine > /etc/added; cat /etc/group | head -1").stdout
    assert out == "root:x:0:\n"
    assert (host / "passwd").is_file() and (host / "added").read_text() == "mine\n"
    assert mounts_under(daemon.root / "volumes") == []
    docker(daemon, "volume", "rm", "bv")
    assert (host / "added").exists() and (host / "passwd").exists()  # not the volume's to empty


def test_anonymous_volumes_from_image_and_rm_v(daemon: Skiffd, tmp_path: Path) -> None:
    from skiff.store.builtin import write_rootfs

    rootfs = tmp_path / "rootfs"
    write_rootfs(str(rootfs))
    (rootfs / "vol").mkdir()
    (rootfs / "vol" / "seed").write_text("from the image\n")
    layer = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True,
                           check=True).stdout
    image = f"withvol-{uuid.uuid4().hex[:6]}"
    docker(daemon, "import", "--change", "VOLUME /vol", "--change", 'CMD ["sh"]', "-", image,
           input=layer)
    try:
        cid = docker(daemon, "create", "--network", "none", image, "sh", "-c",
                     "echo x > /vol/f").stdout.strip()
        doc = json.loads(docker(daemon, "inspect", cid).stdout)[0]
        (point,) = doc["Mounts"]
        assert point["Type"] == "volume" and point["Destination"] == "/vol"
        assert len(point["Name"]) == 64 and all(c in "0123456789abcdef" for c in point["Name"])
        docker(daemon, "start", "-a", cid)
        assert (Path(point["Source"]) / "f").read_text() == "x\n"
        assert (Path(point["Source"]) / "seed").read_text() == "from the image\n"
        assert docker(daemon, "volume", "ls", "-q").stdout.split() == [point["Name"]]
        docker(daemon, "rm", "-v", cid)
        assert docker(daemon, "volume", "ls", "-q").stdout == ""
        # a named volume at the image's VOLUME path wins, and rm -v keeps it
        cid = docker(daemon, "create", "-v", "keep:/vol", image).stdout.strip()
        docker(daemon, "rm", "-v", cid)
        assert docker(daemon, "volume", "ls", "-q").stdout == "keep\n"
        # --rm takes the anonymous ones with it
        run(daemon, image, "true")
        assert docker(daemon, "volume", "ls", "-q").stdout == "keep\n"
    finally:
        docker(daemon, "rmi", image)


def test_volume_in_use_is_409_and_its_data_stays(daemon: Skiffd) -> None:
    cid = docker(daemon, "run", "-d", "--network", "none", "-v", "busy:/d", "busybox", "sh",
                 "-c", "echo kept > /d/f; sleep 60").stdout.strip()
    status, body = daemon.json("DELETE", "/volumes/busy")
    assert (status, body["message"]) == (409, f"remove busy: volume is in use - [{cid}]")
    status, body = daemon.json("DELETE", "/volumes/busy?force=1")
    assert status == 409
    status, body = daemon.json("POST", "/volumes/prune")
    assert status == 200 and body["VolumesDeleted"] is None
    docker(daemon, "rm", "-f", cid)
    assert (daemon.root / "volumes/busy/_data/f").read_text() == "kept\n"
    status, df = daemon.json("GET", "/system/df")
    (vol,) = df["Volumes"]
    check_api_shape(vol, "Volume")
    assert vol["Name"] == "busy" and vol["UsageData"] == {"Size": 5, "RefCount": 0}
    df = docker(daemon, "system", "df", "-v", "--format", "{{json .Volumes}}").stdout
    assert '"Name":"busy"' in df and '"Size":"5B"' in df
    out = docker(daemon, "volume", "prune", "-f").stdout
    assert "busy" in out and "Total reclaimed space: 5B" in out


def test_bad_mount_specs_are_dockers_400s(daemon: Skiffd) -> None:
    cases = [
        ({"Binds": ["/a:/b:xyz"]}, "invalid mode: xyz"),
        ({"Binds": ["/a:rel"]}, "invalid volume specification: '/a:rel': invalid mount config "
                                "for type \"bind\": invalid mount path: 'rel' mount path must "
                                "be absolute"),
        ({"Binds": ["/data:rw"]}, "invalid volume specification: '/data:rw'"),
        ({"Binds": ["v1:/d", "v2:/d"]}, "Duplicate mount point: /d"),
        ({"Binds": ["/tmp:/"]}, "invalid volume specification: '/tmp:/': invalid mount config "
                                "for type \"bind\": invalid specification: destination can't "
                                "be '/'"),
        ({"Mounts": [{"Type": "volume", "Target": "rel"}]},
         "invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must "
         "be absolute"),
        ({"Mounts": [{"Type": "nope", "Target": "/x"}]},
         "invalid mount config for type \"nope\": mount type unknown"),
        ({"Mounts": [{"Type": "tmpfs", "Source": "x", "Target": "/x"}]},
         "invalid mount config for type \"tmpfs\": field Source must not be specified"),
        ({"Binds": ["a!b:/x"]}, "create a!b: \"a!b\" includes invalid characters"),
    ]
    for host, message in cases:
        status, body = daemon.json("POST", "/containers/create",
                                   {"Image": "busybox", "Cmd": ["true"], "HostConfig": host})
        assert status == 400 and body["message"].startswith(message), (host, body)
    assert daemon.json("GET", "/containers/json?all=1")[1] == []
    assert daemon.json("GET", "/volumes")[1]["Volumes"] == []  # v1 of the dupe not made


def test_docker_py_volumes(daemon: Skiffd, tmp_path: Path) -> None:
    with docker_py_client(daemon.url) as client:
        vol = client.volumes.create("pyvol", labels={"k": "v"})
        assert vol.name == "pyvol" and vol.attrs["Labels"] == {"k": "v"}
        (tmp_path / "in").write_text("host\n")
        out = client.containers.run("busybox", ["sh", "-c", "echo py > /p/f; cat /h/in /p/f"],
                                    volumes={"pyvol": {"bind": "/p", "mode": "rw"},
                                             str(tmp_path): {"bind": "/h", "mode": "ro"}},
                                    network_mode="none", remove=True)
        assert out == b"host\npy\n"
        assert [v.name for v in client.volumes.list()] == ["pyvol"]
        assert client.volumes.get("pyvol").attrs["Mountpoint"].endswith("/pyvol/_data")
        assert [v.name for v in client.volumes.list(filters={"label": "k=v"})] == ["pyvol"]
        import docker

        with pytest.raises(docker.errors.NotFound):
            client.volumes.get("nope")
        c = client.containers.create("busybox", "true", network_mode="none",
                                     mounts=[docker.types.Mount("/m", "pyvol", read_only=True)])
        with pytest.raises(docker.errors.APIError) as info:
            vol.remove()
        assert info.value.status_code == 409
        assert c.attrs["Mounts"][0]["Name"] == "pyvol" and c.attrs["Mounts"][0]["RW"] is False
        c.remove()
        assert client.volumes.prune()["VolumesDeleted"] == ["pyvol"]
        assert client.volumes.list() == []


# -- skiff's own CLI, beside docker's --------------------------------------------------------------
def test_skiff_volume_commands_match_dockers(daemon: Skiffd) -> None:
    from test_cli_images import skiff

    assert skiff(daemon, "volume", "create", "--label", "x=y", "-o", "type=tmpfs", "-o",
                 "device=tmpfs", "sv").stdout == "sv\n"
    skiff(daemon, "volume", "create", "plain")
    for args in (("volume", "ls"), ("volume", "ls", "-q"),
                 ("volume", "ls", "--filter", "label=x", "--format", "{{.Name}} {{.Labels}}"),
                 ("volume", "inspect", "sv"), ("volume", "inspect", "-f", "{{.Options}}", "sv")):
        assert skiff(daemon, *args).stdout == docker(daemon, *args).stdout, args
    p, q = (tool(daemon, "volume", "inspect", "nope", check=False) for tool in (skiff, docker))
    assert (p.returncode, p.stderr.strip()) == (q.returncode, q.stderr.strip())
    assert (p.returncode, p.stderr.strip()) == \
        (1, "Error response from daemon: get nope: no such volume")
    assert skiff(daemon, "volume", "rm", "sv").stdout == "sv\n"
    out = skiff(daemon, "volume", "prune", "-f").stdout
    assert out == "Deleted Volumes:\nplain\n\nTotal reclaimed space: 0B\n"


def test_skiff_run_with_mounts(daemon: Skiffd, tmp_path: Path) -> None:
    from test_cli_images import skiff

    (tmp_path / "in").write_text("host\n")
    out = skiff(daemon, "run", "--rm", "--network", "none", "-v", f"{tmp_path}:/h:ro",
                "-v", "sk:/data", "--mount", "type=tmpfs,destination=/t,tmpfs-size=1m",
                "--tmpfs", "/run:size=2m", "busybox", "sh", "-c",
                "cat /h/in; echo v > /data/f; df -k /t /run | tail -2 | awk '{print $2}'"
                ).stdout
    assert out == "host\n1024\n2048\n"
    assert (daemon.root / "volumes/sk/_data/f").read_text() == "v\n"
    p = skiff(daemon, "run", "--rm", "--mount", "type=bind,target=/x,volume-nocopy", "busybox",
              "true", check=False)
    assert p.returncode == 125
    assert "cannot mix 'volume-*' options with mount type 'bind'" in p.stderr
    p = skiff(daemon, "run", "--rm", "--network", "none", "-v", "/a:/b:bad", "busybox", "true",
              check=False)
    assert p.returncode == 125 and "invalid mode: bad" in p.stderr


def test_volumes_from(daemon: Skiffd, tmp_path: Path) -> None:
    src = docker(daemon, "create", "--network", "none", "-v", "vf:/data",
                 "-v", f"{tmp_path}:/host", "--tmpfs", "/scratch", "busybox",
                 "true").stdout.strip()
    run(daemon, "--volumes-from", src, "busybox", "sh", "-c", "echo shared > /data/f")
    out = run(daemon, "--volumes-from", f"{src}:ro", "busybox", "sh", "-c",
              "cat /data/f; touch /data/g 2>&1; touch /host/h 2>&1; grep -c ' /scratch ' "
              "/proc/mounts", check=False).stdout
    lines = out.splitlines()
    assert lines[0] == "shared" and "Read-only file system" in lines[1]
    assert "Read-only file system" in lines[2] and lines[3] == "0"  # no tmpfs inherited
    # a 404, as dockerd's (through the docker CLI, which takes a 404 for a missing image)
    status, body = daemon.json("POST", "/containers/create", {
        "Image": "busybox", "HostConfig": {"VolumesFrom": ["nosuch"]}})
    assert (status, body["message"]) == (404, "No such container: nosuch")
    p = run(daemon, "--volumes-from", f"{src}:rshared", "busybox", "true", check=False)
    assert p.returncode == 125 and "invalid mode: rshared" in p.stderr
    docker(daemon, "rm", src)


def test_shared_propagation_needs_a_shared_source(daemon: Skiffd, tmp_path: Path) -> None:
    spot = tmp_path / "spot"
    spot.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(spot)], check=True)
    try:
        subprocess.run(["mount", "--make-private", str(spot)], check=True)
        p = run(daemon, "-v", f"{spot}:/x:rshared", "busybox", "true", check=False)
        assert p.returncode == 125
        assert f"path {spot} is mounted on {spot} but it is not a shared mount" in p.stderr
        subprocess.run(["mount", "--make-shared", str(spot)], check=True)
        # shared both ways: what the container mounts below /x appears on the host
        out = run(daemon, "--privileged", "-v", f"{spot}:/x:rshared", "busybox", "sh", "-c",
                  "mkdir /x/in && mount -t tmpfs t /x/in && grep -c ' /x/in ' /proc/mounts"
                  ).stdout
        assert out == "1\n"
        assert os.path.ismount(spot / "in")
        subprocess.run(["umount", str(spot / "in")], check=True)
    finally:
        subprocess.run(["umount", "-R", str(spot)], check=False)
