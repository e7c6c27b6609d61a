"""The built-in busybox image, made from the host's static busybox with no registry.

`ensure_busybox` builds a minimal root filesystem — the binary, a symlink per applet in
``bin/``, ``/etc/passwd`` and ``/etc/group`` and the usual empty directories — as one layer,
and stores it as an OCI image (OCI manifest and config
media types; Docker reads both). Everything is deterministic — entries sorted, mtimes 0,
owners 0:0, gzip without a name or time — so one host busybox always gives byte-identical
blobs and the same image ID, and a second call finds the layer stored and unpacks nothing.
The binary must be static (no ELF ``PT_INTERP``): the image has no libraries for it.
`write_rootfs` unpacks the same layer into a folder (``scripts/busybox-rootfs``, for bundles
made without an image store: the runtime's tests, its demo and its benchmark), so there is one
recipe for the rootfs.
"""

from __future__ import annotations

import io
import os
import struct

from skiff import jsonfast
from skiff.errors import StoreError
from skiff.oci.image_spec import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST
from skiff.store.blobs import digest_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.store.images import Image, ImageStore

HOST_BUSYBOX = "/bin/busybox"
HISTORY = "skiff: built-in busybox from the host's busybox-static"
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"
_DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755,
         "root": 0o700, "sbin": 0o755, "sys": 0o755, "tmp": 0o1777, "usr": 0o755,
         "usr/bin": 0o755, "usr/sbin": 0o755, "var": 0o755}
_EPOCH = "1970-01-01T00:00:00Z"  # the tar's mtimes are 0 too
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
           "armv6l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}
_PT_INTERP = 3
_INSTALL = "apt install busybox-static"


def ensure_busybox(store: ImageStore, ref: str = "busybox:latest", *,
                   binary: str = HOST_BUSYBOX) -> Image:
    """The built-in busybox image, stored and named `ref`; made from `binary` when it is not
    there yet. StoreError (saying what to install) when `binary` is missing or dynamic."""
    data = _read_static(binary)
    layer_tar = _layer_tar(data, _applets(binary))
    import gzip

    layer = gzip.compress(layer_tar, compresslevel=9, mtime=0)
    diff_id = digest_of(layer_tar)
    layer_digest = digest_of(layer)
    config = _json({
        "architecture": _GOARCH.get(os.uname().machine, os.uname().machine),
        "config": {"Cmd": ["sh"], "Env": [PATH]},
        "created": _EPOCH,
        "history": [{"created": _EPOCH, "created_by": HISTORY}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    manifest = _json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer)}],
    })
    try:
        image = store.get(ref)
    except StoreError:
        pass
    else:
        if image.manifest_digest == digest_of(manifest):
            return image
    return store.add(manifest, config, [(layer_digest, lambda: io.BytesIO(layer))], ref)


def write_rootfs(dest: str, *, binary: str = HOST_BUSYBOX) -> None:
    """Unpack the built-in image's root filesystem into the folder `dest` (made if missing)."""
    from skiff.store.layers import apply_layer

    os.makedirs(dest, exist_ok=True)
    apply_layer(io.BytesIO(_layer_tar(_read_static(binary), _applets(binary))), dest)


def _json(doc: dict[str, object]) -> bytes:
    return jsonfast.dumps(doc, sort_keys=True).encode()


def _read_static(binary: str) -> bytes:
    try:
        with open(binary, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise StoreError(f"built-in busybox: `{binary}` does not exist: {_INSTALL}") from None
    except OSError as e:
        raise StoreError(f"built-in busybox: read `{binary}`: {e.strerror}") from e
    if _has_interpreter(data, binary):
        raise StoreError(f"built-in busybox: `{binary}` is dynamically linked (it names an ELF "
                         f"interpreter), so it cannot run alone in an image: {_INSTALL}")
    return data


def _has_interpreter(data: bytes, binary: str) -> bool:
    """Whether the ELF `data` has a PT_INTERP program header (it needs ld.so)."""
    if len(data) < 52 or data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        raise StoreError(f"built-in busybox: `{binary}` is not an ELF executable: {_INSTALL}")
    end = "<" if data[5] == 1 else ">"
    if data[4] == 2:  # 64-bit
        phoff, = struct.unpack_from(end + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 54)
    else:
        phoff, = struct.unpack_from(end + "I", data, 28)
        phentsize, phnum = struct.unpack_from(end + "HH", data, 42)
    for i in range(phnum):
        offset = phoff + i * phentsize
        if offset + 4 > len(data):
            raise StoreError(f"built-in busybox: `{binary}` has truncated program headers")
        if struct.unpack_from(end + "I", data, offset)[0] == _PT_INTERP:
            return True
    return False


def _applets(binary: str) -> list[str]:
    import subprocess

    try:
        out = subprocess.run([binary, "--list"], capture_output=True, check=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise StoreError(f"built-in busybox: `{binary} --list`: {e}") from e
    names = sorted({n for n in out.decode().split() if n and n != "busybox"})
    for name in names:
        if "/" in name or name.startswith("."):
            raise StoreError(f"built-in busybox: `{binary} --list` gave applet {name!r}")
    return names


def _layer_tar(binary: bytes, applets: list[str]) -> bytes:
    import tarfile

    entries: dict[str, tuple[bytes, str | None, int]] = {}  # name → data, link, mode
    for name, mode in _DIRS.items():
        entries[name] = (b"", None, mode)
    entries["bin/busybox"] = (binary, None, 0o755)
    for applet in applets:
        entries.setdefault(f"bin/{applet}", (b"", "busybox", 0o777))
    entries["etc/passwd"] = (PASSWD, None, 0o644)
    entries["etc/group"] = (GROUP, None, 0o644)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(entries):
            data, link, mode = entries[name]
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if name in _DIRS:
                info.type = tarfile.DIRTYPE
            elif link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return buf.getvalue()
