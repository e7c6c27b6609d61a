"""Unpacked image layers, each kept once and shared by every image that stacks it.

A layer is keyed by its OCI chain ID — the digest of the whole stack up to and including it
(ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))) — because
an unpacked tree is only meaningful on top of the layers below it. Each lives at
``<root>/layers/<chain-hex>/`` as ``diff/`` (the tree, used as an overlayfs lower dir) and
``meta.json`` (diff ID, parent chain ID, size). A layer is built in a hidden staging folder
beside the others and renamed into place whole, so a layer folder is always complete: a
failed or mismatched unpack leaves nothing, and of two concurrent `ensure` calls for the
same layer one rename wins and the other quietly drops its copy. Layers are never
modified once published; `remove` refuses a layer that another layer stacks on.
"""

from __future__ import annotations

import errno as _errno
import os

from skiff import jsonfast
from skiff.errors import LayerError, StoreError
from skiff.log import logger
from skiff.record import Record
from skiff.store.durable import fsync_dir, write_atomic
from skiff.store.layers import unpack_layer

TYPE_CHECKING = False
if TYPE_CHECKING:
    import builtins
    from typing import IO, Callable

_log = logger("skiff.store.layer_store")
_HEX = frozenset("0123456789abcdef")
_STAGING = ".tmp-"


class LayerInfo(Record):
    """One stored layer: its chain ID, diff ID, parent chain ID (None at the bottom) and
    the size in bytes of its uncompressed tar."""

    chain_id: str
    diff_id: str
    parent: str | None
    size: int


def _hex_of(digest: str, what: str) -> str:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not set(hexpart) <= _HEX:
        raise LayerError(f"{what} `{digest}` is not a sha256:<64 lowercase hex> digest")
    return hexpart


def chain_id(parent: str | None, diff_id: str) -> str:
    """The OCI chain ID of the layer `diff_id` stacked on the chain `parent`."""
    _hex_of(diff_id, "diff ID")
    if parent is None:
        return diff_id
    _hex_of(parent, "parent chain ID")
    import hashlib

    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


class LayerStore:
    """The unpacked layers below ``<root>/layers``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.layers = os.path.join(self.root, "layers")

    chain_id = staticmethod(chain_id)

    # -- paths ------------------------------------------------------------------------------
    def path(self, chain: str) -> str:
        return os.path.join(self.layers, _hex_of(chain, "chain ID"))

    def diff_dir(self, chain: str) -> str:
        """The unpacked tree of `chain` (an overlayfs lower dir)."""
        return os.path.join(self.path(chain), "diff")

    # -- queries ----------------------------------------------------------------------------
    def exists(self, chain: str) -> bool:
        return os.path.isfile(os.path.join(self.path(chain), "meta.json"))

    def info(self, chain: str) -> LayerInfo:
        meta = os.path.join(self.path(chain), "meta.json")
        try:
            with open(meta, "rb") as f:
                data = jsonfast.loads(f.read())
        except FileNotFoundError:
            raise StoreError(f"layer {chain} is not in the store") from None
        except (OSError, ValueError) as e:
            raise StoreError(f"layer {chain}: read `{meta}`: {e}") from e
        return LayerInfo(chain_id=chain, diff_id=data["diff_id"], parent=data.get("parent"),
                         size=int(data.get("size", 0)))

    def list(self) -> list[str]:
        """The chain IDs of every stored layer, sorted."""
        try:
            names = os.listdir(self.layers)
        except FileNotFoundError:
            return []
        return sorted("sha256:" + n for n in names
                      if len(n) == 64 and set(n) <= _HEX
                      and os.path.isfile(os.path.join(self.layers, n, "meta.json")))

    def chain_of(self, diff_dir: str) -> str | None:
        """The chain ID of the stored layer whose tree is `diff_dir` (None: not one)."""
        folder, name = os.path.split(diff_dir)
        parent, hexpart = os.path.split(folder)
        if name != "diff" or parent != self.layers or len(hexpart) != 64 or \
                not set(hexpart) <= _HEX:
            return None
        chain = "sha256:" + hexpart
        return chain if self.exists(chain) else None

    def children(self, chain: str) -> builtins.list[str]:
        """The layers stacked directly on `chain`."""
        found = []
        for other in self.list():
            try:
                if self.info(other).parent == chain:
                    found.append(other)
            except StoreError:
                continue  # removed meanwhile
        return found

    def lower_dirs(self, chain_ids: builtins.list[str]) -> builtins.list[str]:
        """The diff dirs of a stack given bottom to top, in overlayfs `lowerdir` order:
        topmost first."""
        dirs = []
        for chain in chain_ids:
            if not self.exists(chain):
                raise StoreError(f"layer {chain} is not in the store")
            dirs.append(self.diff_dir(chain))
        dirs.reverse()
        return dirs

    # -- changes ----------------------------------------------------------------------------
    def ensure(self, parent_chain: str | None, diff_id: str | None,
               open_stream: Callable[[], IO[bytes]]) -> str:
        """Make sure the layer `diff_id` on `parent_chain` is stored; return its chain ID.

        When it is already there (or `diff_id` is known and some other caller stores it
        first) nothing is unpacked. Otherwise `open_stream()` gives the layer's tar, plain
        or compressed; its diff ID must be `diff_id` when one is given, else LayerError and
        nothing is left. With `diff_id` None the stream's own diff ID is trusted."""
        if parent_chain is not None and not self.exists(parent_chain):
            raise LayerError(f"parent layer {parent_chain} is not in the store")
        if diff_id is not None:
            chain = chain_id(parent_chain, diff_id)
            if self.exists(chain):
                return chain
        try:
            os.makedirs(self.layers, exist_ok=True)
            staging = os.path.join(self.layers, f"{_STAGING}{os.urandom(6).hex()}")
            os.mkdir(staging, 0o700)
        except OSError as e:
            raise StoreError(f"layer store: mkdir under `{self.layers}`: {_why(e)}") from e
        try:
            os.chmod(staging, 0o755)
            stream = open_stream()
            try:
                diff = unpack_layer(stream, os.path.join(staging, "diff"), diff_id=diff_id)
            finally:
                stream.close()
            chain = chain_id(parent_chain, diff.diff_id)
            write_atomic(os.path.join(staging, "meta.json"), jsonfast.dumps(
                {"chain_id": chain, "diff_id": diff.diff_id, "parent": parent_chain,
                 "size": diff.size, "compression": diff.compression}, indent=2) + "\n")
            final = self.path(chain)
            try:
                os.rename(staging, final)
            except OSError as e:
                if e.errno not in (_errno.EEXIST, _errno.ENOTEMPTY):
                    raise StoreError(f"layer store: rename `{staging}` to `{final}`: "
                                     f"{_why(e)}") from e
                _log.debug("layer %s was stored by another caller first", chain)
                _rmtree(staging)
            else:
                fsync_dir(self.layers)
            return chain
        except BaseException:
            _rmtree(staging)
            raise

    def remove(self, chain: str) -> None:
        """Delete the layer `chain`; refused while another layer is stacked on it."""
        if not self.exists(chain):
            raise StoreError(f"remove layer {chain}: it is not in the store")
        kids = self.children(chain)
        if kids:
            raise StoreError(f"remove layer {chain}: layer {kids[0]} is stacked on it "
                             f"(remove the layers above it first)")
        # Renamed away first, so the layer vanishes at once and whole.
        doomed = os.path.join(self.layers, f"{_STAGING}rm-{os.urandom(6).hex()}")
        try:
            os.rename(self.path(chain), doomed)
        except OSError as e:
            raise StoreError(f"remove layer {chain}: rename `{self.path(chain)}`: "
                             f"{_why(e)}") from e
        _rmtree(doomed)


def _why(e: OSError) -> str:
    code = e.errno or _errno.EIO
    return f"{_errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def _rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


