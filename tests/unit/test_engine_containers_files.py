"""/etc/hostname, /etc/hosts and /etc/resolv.conf of a container (`container_files`), as
Docker writes them for each network mode; the working directory made in the rootfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.engine.container_files import (DEFAULT_HOSTS, files_in, hosts_text,
                                          make_working_dir, resolv_conf_text, write_files)
from skiff.errors import KernelError, SkiffError

HOST_RESOLV = ("# from the host\n"
               "nameserver 127.0.0.53\n"
               "nameserver 10.0.0.2\n"
               "search corp.example\n"
               "options edns0 trust-ad\n")


def test_hosts() -> None:
    assert hosts_text("none") == DEFAULT_HOSTS
    assert DEFAULT_HOSTS.startswith("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost")
    assert hosts_text("default", ["db:10.1.2.3"]).endswith("10.1.2.3\tdb\n")
    assert hosts_text("host", [], host_hosts="1.2.3.4 me") == "1.2.3.4 me\n"
    on_networks = hosts_text("default", ["gw:host-gateway"], own=["10.5.0.2", "10.6.0.3"],
                             hostname="box", host_gateway="10.5.0.1")
    assert on_networks == DEFAULT_HOSTS + "10.5.0.1\tgw\n10.5.0.2\tbox\n10.6.0.3\tbox\n"


def test_resolv_conf_of_a_user_network_names_the_embedded_server() -> None:
    text = resolv_conf_text("mynet", host_file=HOST_RESOLV, internal_dns=True)
    # the host's options stay, ndots:0 is added (moby's resolvconf.TransformForIntNS)
    assert text == ("search corp.example\nnameserver 127.0.0.11\n"
                    "options edns0 trust-ad ndots:0\n")
    text = resolv_conf_text("mynet", ["1.1.1.1"], ["a.example"], ["ndots:3", "edns0"],
                            host_file=HOST_RESOLV, internal_dns=True)
    # --dns servers are the embedded server's to forward to, not the container's to ask
    assert text == "search a.example\nnameserver 127.0.0.11\noptions ndots:3 edns0\n"
    # --dns-option replaces the host's options
    text = resolv_conf_text("mynet", [], [], ["attempts:2"], internal_dns=True,
                            host_file="options ndots:5 rotate\n")
    assert text == "nameserver 127.0.0.11\noptions attempts:2 ndots:0\n"


def test_resolv_conf_filters_localhost_and_falls_back_to_public_resolvers() -> None:
    text = resolv_conf_text("none", host_file=HOST_RESOLV)
    assert "127.0.0.53" not in text and "nameserver 10.0.0.2\n" in text
    assert "search corp.example\n" in text and "options edns0 trust-ad\n" in text
    only_local = resolv_conf_text("default", host_file="nameserver 127.0.0.1\n")
    assert only_local == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert resolv_conf_text("host", host_file=HOST_RESOLV) == HOST_RESOLV


def test_dns_options_replace_the_hosts() -> None:
    text = resolv_conf_text("none", ["1.1.1.1"], ["a.example", "b.example"], ["ndots:2"],
                            host_file=HOST_RESOLV)
    assert text == ("search a.example b.example\nnameserver 1.1.1.1\noptions ndots:2\n")
    kept = resolv_conf_text("none", dns=["9.9.9.9"], host_file=HOST_RESOLV)
    assert "search corp.example" in kept and "nameserver 9.9.9.9" in kept
    assert "10.0.0.2" not in kept


def test_write_files(tmp_path: Path) -> None:
    files = files_in(str(tmp_path))
    write_files(files, {"Hostname": "box"}, {"NetworkMode": "none", "ExtraHosts": ["x:1.2.3.4"],
                                             "Dns": ["1.1.1.1"]})
    assert Path(files.hostname).read_text() == "box\n"
    assert Path(files.hosts).read_text() == DEFAULT_HOSTS + "1.2.3.4\tx\n"
    assert "nameserver 1.1.1.1\n" in Path(files.resolv_conf).read_text()
    write_files(files, {"Hostname": "box"}, {"NetworkMode": "host",
                                             "ExtraHosts": ["gw:host-gateway"]}, "172.29.0.1")
    assert Path(files.hosts).read_text().endswith("172.29.0.1\tgw\n")


def test_working_dir(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "busybox").write_bytes(b"")
    make_working_dir(str(tmp_path), "/srv/app/")
    assert (tmp_path / "srv" / "app").is_dir()
    with pytest.raises(SkiffError) as caught:  # moby's words, no host path
        make_working_dir(str(tmp_path), "/bin//busybox/")
    assert str(caught.value) == "Cannot mkdir: /bin/busybox is not a directory"
    with pytest.raises(KernelError, match="ENOTDIR"):  # below a file: the call's own error
        make_working_dir(str(tmp_path), "/bin/busybox/sub")
