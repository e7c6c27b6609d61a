"""`unpack_layer` and `apply_layer` on layers built in memory with tarfile.

Each test writes a tar (plain and gzip where it matters), unpacks it below tmp_path and
checks what Docker's overlay snapshotter would leave: every entry kind with its mode,
numeric owner, mtime and xattrs; whiteouts and opaque directories in their overlay form;
and the diff ID of the uncompressed stream. The hostile cases sit next to an `outside`
folder that stands for the host, and check that the entry is refused, that `outside` stays
empty and, for `unpack_layer`, that no destination or temporary folder is left behind.
Every test needs root: owners, devices and trusted xattrs are set for real.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Callable

import pytest

from skiff.errors import SkiffError
from skiff.store.layers import LayerDiff, LayerError, apply_layer, unpack_layer

pytestmark = pytest.mark.root  # owners are set numerically (uid 0 too), devices made
MTIME = 1_600_000_000


def entry(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", mode: int = 0o644,
          uid: int = 0, gid: int = 0, linkname: str = "", dev: tuple[int, int] = (0, 0),
          mtime: int = MTIME, xattrs: dict[str, bytes] | None = None) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
    info.linkname = linkname
    info.devmajor, info.devminor = dev
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    if xattrs:
        info.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                            for k, v in xattrs.items()}
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "layer"


def unpack(data: bytes, dest: Path) -> LayerDiff:
    return unpack_layer(io.BytesIO(data), dest)


def refused(data: bytes, dest: Path, *words: str) -> LayerError:
    with pytest.raises(LayerError) as info:
        unpack(data, dest)
    for word in words:
        assert word in str(info.value)
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(dest.name)] == []  # no .tmp-
    return info.value


# -- every entry kind ---------------------------------------------------------------------
@pytest.mark.parametrize("compress", [lambda b: b, gz], ids=["plain", "gzip"])
def test_entries_keep_mode_owner_mtime_and_xattrs(dest: Path, compress: Callable[[bytes], bytes]) -> None:
    binary = b"\x00\x01\xff\xfe"
    plain = make_tar(
        entry("./", tarfile.DIRTYPE, mode=0o750, uid=1234, gid=5678, mtime=MTIME + 1),
        entry("bin", tarfile.DIRTYPE, mode=0o555, uid=1234, gid=5678, mtime=MTIME + 2),
        entry("bin/su", data=b"#!/bin/sh\n", mode=0o4755, uid=1234, gid=5678,
              xattrs={"user.note": b"hello", "user.bin": binary}),
        entry("tmp", tarfile.DIRTYPE, mode=0o1777, mtime=MTIME + 3,
              xattrs={"trusted.kept": b"t"}),
        entry("bin/sh", tarfile.SYMTYPE, linkname="/bin/busybox", uid=1234, gid=5678,
              mtime=MTIME + 4),
        entry("bin/su2", tarfile.LNKTYPE, linkname="bin/su"),
        entry("dev/null", tarfile.CHRTYPE, dev=(1, 3), mode=0o666, uid=1234, gid=5678),
        entry("dev/loop0", tarfile.BLKTYPE, dev=(7, 0), mode=0o660, gid=6),
        entry("run/fifo", tarfile.FIFOTYPE, mode=0o620, uid=1234),
        entry("empty", data=b"", mode=0o000, mtime=0),
    )
    diff = unpack(compress(plain), dest)

    assert diff.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert diff.size == len(plain)
    assert diff.compression == ("gzip" if compress is gz else "none")

    def check(path: str, kind: Callable[[int], bool], mode: int, uid: int, gid: int,
              mtime: int = MTIME) -> os.stat_result:
        st = os.lstat(dest / path)
        assert kind(st.st_mode), path
        if not stat.S_ISLNK(st.st_mode):
            assert stat.S_IMODE(st.st_mode) == mode, (path, oct(st.st_mode))
        assert (st.st_uid, st.st_gid) == (uid, gid), path
        assert st.st_mtime_ns == mtime * 1_000_000_000, path
        return st

    check(".", stat.S_ISDIR, 0o750, 1234, 5678, MTIME + 1)
    check("bin", stat.S_ISDIR, 0o555, 1234, 5678, MTIME + 2)  # filled although read-only
    su = check("bin/su", stat.S_ISREG, 0o4755, 1234, 5678)
    assert (dest / "bin/su").read_bytes() == b"#!/bin/sh\n"
    assert os.getxattr(dest / "bin/su", "user.note") == b"hello"
    assert os.getxattr(dest / "bin/su", "user.bin") == binary
    check("tmp", stat.S_ISDIR, 0o1777, 0, 0, MTIME + 3)
    assert os.getxattr(dest / "tmp", "trusted.kept") == b"t"
    check("bin/sh", stat.S_ISLNK, 0, 1234, 5678, MTIME + 4)
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    su2 = os.lstat(dest / "bin/su2")
    assert (su2.st_ino, su2.st_nlink) == (su.st_ino, 2)
    null = check("dev/null", stat.S_ISCHR, 0o666, 1234, 5678)
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    loop = check("dev/loop0", stat.S_ISBLK, 0o660, 0, 6)
    assert (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 0)
    check("run/fifo", stat.S_ISFIFO, 0o620, 1234, 0)
    check("empty", stat.S_ISREG, 0o000, 0, 0, 0)
    # Parents the archive never named are made as Docker makes them.
    assert stat.S_IMODE(os.lstat(dest / "dev").st_mode) == 0o755


def test_pax_mtime_keeps_nanoseconds(dest: Path) -> None:
    info, data = entry("f", data=b"x")
    info.pax_headers = {"mtime": "1600000000.123456789"}
    unpack(make_tar((info, data)), dest)
    assert os.lstat(dest / "f").st_mtime_ns == 1_600_000_000_123_456_789


def test_later_entry_replaces_earlier(dest: Path) -> None:
    unpack(make_tar(entry("a", data=b"one"), entry("a", tarfile.SYMTYPE, linkname="x"),
                    entry("a", data=b"two"), entry("d/f", data=b"f"),
                    entry("d", data=b"now a file")), dest)
    assert (dest / "a").read_bytes() == b"two"
    assert (dest / "d").read_bytes() == b"now a file"


# -- whiteouts ----------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [lambda b: b, gz], ids=["plain", "gzip"])
def test_whiteouts_become_overlay_forms(dest: Path, compress: Callable[[bytes], bytes]) -> None:
    unpack(compress(make_tar(
        entry("etc", tarfile.DIRTYPE, mode=0o755),
        entry("etc/.wh.motd"),
        entry("var/cache/.wh..wh..opq"),
        entry(".wh..wh.plnk"),  # aufs hard-link dir: meaningless for overlayfs
    )), dest)
    st = os.lstat(dest / "etc/motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert not os.path.lexists(dest / "etc/.wh.motd")
    assert os.getxattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(dest / "var/cache")) == []
    assert sorted(os.listdir(dest)) == ["etc", "var"]


# -- hostile archives ---------------------------------------------------------------------
def test_dotdot_entry_is_refused(dest: Path, outside: Path) -> None:
    err = refused(make_tar(entry("../etc/x", data=b"pwned")), dest, "../etc/x", "..")
    assert err.entry == "../etc/x"
    refused(make_tar(entry("a/../../outside/x", data=b"pwned")), dest, "a/../../outside/x")
    assert list(outside.iterdir()) == []


def test_absolute_entry_is_made_relative(dest: Path, outside: Path) -> None:
    # As Docker and GNU tar do: `/etc/x` lands at <layer>/etc/x, never at the host's /etc/x.
    target = f"{outside}/x"
    unpack(make_tar(entry("/etc/x", data=b"inside"), entry(target, data=b"inside too")), dest)
    assert (dest / "etc/x").read_bytes() == b"inside"
    assert (dest / target.lstrip("/")).read_bytes() == b"inside too"
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("gzipped", [False, True])
def test_no_write_through_absolute_symlink(dest: Path, outside: Path, gzipped: bool) -> None:
    data = make_tar(entry("evil", tarfile.SYMTYPE, linkname=str(outside)),
                    entry("evil/pwned", data=b"pwned"))
    refused(gz(data) if gzipped else data, dest, "evil/pwned", "`evil` is a symlink")
    assert list(outside.iterdir()) == []


def test_no_write_through_dotdot_symlink(dest: Path, outside: Path) -> None:
    for kind in (tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.FIFOTYPE):
        data = make_tar(entry("a/up", tarfile.SYMTYPE, linkname="../../.."),
                        entry("a/up/outside/pwned", kind, data=b"pwned", linkname="/"))
        refused(data, dest, "`a/up` is a symlink")
    assert list(outside.iterdir()) == []


def test_symlink_pointing_out_is_kept_as_data(dest: Path, outside: Path) -> None:
    unpack(make_tar(entry("evil", tarfile.SYMTYPE, linkname=str(outside)),
                    entry("up", tarfile.SYMTYPE, linkname="../../..")), dest)
    assert os.readlink(dest / "evil") == str(outside)
    assert os.readlink(dest / "up") == "../../.."


def test_no_write_through_symlink_to_another_layer_dir(dest: Path) -> None:
    # Even a link that stays inside the layer is not followed: an entry names its own path.
    refused(make_tar(entry("real", tarfile.DIRTYPE), entry("alias", tarfile.SYMTYPE, linkname="real"),
                     entry("alias/f", data=b"x")), dest, "`alias` is a symlink")


def test_directory_replaced_by_symlink_keeps_outside_untouched(dest: Path, outside: Path) -> None:
    before = os.lstat(outside)
    unpack(make_tar(entry("d", tarfile.DIRTYPE, mode=0o700, mtime=1),
                    entry("d", tarfile.SYMTYPE, linkname=str(outside))), dest)
    assert os.readlink(dest / "d") == str(outside)
    after = os.lstat(outside)
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)


@pytest.mark.parametrize("link", ["/etc/passwd", "../x", "../../outside/x", "nowhere"])
def test_hard_link_out_of_the_layer_is_refused(dest: Path, outside: Path, link: str) -> None:
    (outside.parent / "x").write_text("host file")
    try:
        refused(make_tar(entry("f", data=b"f"), entry("l", tarfile.LNKTYPE, linkname=link)),
                dest, "`l`", link)
    finally:
        (outside.parent / "x").unlink()
    assert list(outside.iterdir()) == []


def test_hard_link_through_symlink_is_refused(dest: Path, outside: Path) -> None:
    (outside / "secret").write_text("host")
    refused(make_tar(entry("evil", tarfile.SYMTYPE, linkname=str(outside)),
                     entry("l", tarfile.LNKTYPE, linkname="evil/secret")), dest, "`l`")
    assert os.lstat(outside / "secret").st_nlink == 1


def test_absolute_hard_link_means_this_layers_entry(dest: Path) -> None:
    unpack(make_tar(entry("etc/passwd", data=b"root"), entry("l", tarfile.LNKTYPE,
                                                              linkname="/etc/passwd")), dest)
    assert os.lstat(dest / "l").st_ino == os.lstat(dest / "etc/passwd").st_ino


# -- broken streams -----------------------------------------------------------------------
def big_tar() -> bytes:
    return make_tar(entry("a", data=os.urandom(200_000)), entry("b", data=b"b" * 5000))


def test_truncated_gzip_is_refused(dest: Path) -> None:
    data = gz(big_tar())
    refused(data[: len(data) // 2], dest, "gzip", "truncated")
    refused(data[:-4], dest, "gzip")  # the size trailer missing


def test_truncated_plain_tar_is_refused(dest: Path) -> None:
    data = big_tar()
    refused(data[:100_000], dest)  # inside a's data
    refused(data[:200_000 + 1024 + 300], dest)  # inside b's header or data


def test_entry_longer_than_declared_is_refused(dest: Path) -> None:
    info, _ = entry("f", data=b"12345")
    header = info.tobuf(tarfile.PAX_FORMAT)
    body = b"x" * 700  # 5 bytes declared, 700 written
    data = header + body + b"\0" * (1024 - len(body)) + b"\0" * 1024
    refused(data, dest, "invalid tar header")


def test_garbage_is_refused(dest: Path) -> None:
    refused(b"this is not a tar stream at all" * 40, dest)
    refused(b"", dest)


def test_zstd_layers_unpack(dest: Path) -> None:
    import zstandard  # a dependency of skiff's: OCI's +zstd layers

    plain = make_tar(entry("f", data=b"z"))
    diff = unpack(zstandard.ZstdCompressor().compress(plain), dest)
    assert diff.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert (dest / "f").read_bytes() == b"z"


def test_diff_id_covers_the_whole_uncompressed_stream(dest: Path) -> None:
    plain = make_tar(entry("f", data=b"data"))
    assert len(plain) > 1536  # end-of-archive blocks and record padding included
    diff = unpack(gz(plain), dest)
    assert diff == LayerDiff(diff_id="sha256:" + hashlib.sha256(plain).hexdigest(),
                             size=len(plain), compression="gzip")


def test_wrong_expected_diff_id_leaves_nothing(dest: Path, outside: Path) -> None:
    with pytest.raises(LayerError, match="diff ID"):
        unpack_layer(io.BytesIO(make_tar(entry("f"))), dest, diff_id="sha256:" + "0" * 64)
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(dest.name)] == []


def test_existing_dest_is_refused(dest: Path) -> None:
    dest.mkdir()
    with pytest.raises(LayerError, match="already exists"):
        unpack(make_tar(entry("f")), dest)


def test_apply_layer_fills_an_existing_directory(dest: Path) -> None:
    dest.mkdir()
    apply_layer(io.BytesIO(make_tar(entry("f", data=b"1"))), dest)
    assert (dest / "f").read_bytes() == b"1"


def test_layer_error_is_a_skiff_error() -> None:
    assert issubclass(LayerError, SkiffError)
