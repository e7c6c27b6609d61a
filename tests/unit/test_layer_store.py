"""`LayerStore` on small layers built in memory with tarfile.

Checks the chain IDs against ones computed by hand, that a stored layer is shared (a second
`ensure` neither unpacks nor replaces it), that a diff ID mismatch leaves nothing, that a
losing concurrent `ensure` drops its copy quietly, the overlay lowerdir order, and that a
layer cannot be removed from under the one stacked on it. Root: layers keep numeric owners.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from pathlib import Path
from typing import IO, Callable

import pytest

from conftest import digest, tar_of
from skiff.errors import LayerError, StoreError
from skiff.store.layer_store import LayerInfo, LayerStore, chain_id

pytestmark = pytest.mark.root


def opener(data: bytes, calls: list[int] | None = None) -> Callable[[], IO[bytes]]:
    def open_stream() -> IO[bytes]:
        if calls is not None:
            calls.append(1)
        return io.BytesIO(data)
    return open_stream


BOTTOM = tar_of({"etc/os-release": b"ID=skiff\n", "bin/sh": b"#!\n"})
TOP = tar_of({"app/main.py": b"print('hi')\n"})


def test_chain_ids_match_the_oci_formula(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    d0, d1 = digest(BOTTOM), digest(TOP)
    c0 = store.ensure(None, d0, opener(gzip.compress(BOTTOM)))
    c1 = store.ensure(c0, d1, opener(TOP))
    assert c0 == d0
    assert c1 == "sha256:" + hashlib.sha256(f"{d0} {d1}".encode()).hexdigest()
    assert chain_id(c0, d1) == c1 == LayerStore.chain_id(c0, d1)
    assert store.list() == sorted([c0, c1])
    assert (Path(store.diff_dir(c0)) / "etc/os-release").read_bytes() == b"ID=skiff\n"
    assert (Path(store.diff_dir(c1)) / "app/main.py").is_file()
    meta = json.loads((tmp_path / "layers" / c1[7:] / "meta.json").read_text())
    assert meta["diff_id"] == d1 and meta["parent"] == c0 and meta["size"] == len(TOP)
    assert store.info(c1) == LayerInfo(chain_id=c1, diff_id=d1, parent=c0, size=len(TOP))
    assert store.info(c0).parent is None


def test_diff_id_may_be_learnt_from_the_stream(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    assert store.ensure(None, None, opener(gzip.compress(BOTTOM))) == digest(BOTTOM)


def test_ensure_again_is_a_no_op(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    c0 = store.ensure(None, digest(BOTTOM), opener(BOTTOM))
    before = os.stat(store.diff_dir(c0)).st_ino
    calls: list[int] = []
    assert store.ensure(None, digest(BOTTOM), opener(BOTTOM, calls)) == c0
    assert calls == []  # not even opened
    # without the diff ID it must be unpacked to learn it, but the stored copy stays
    assert store.ensure(None, None, opener(BOTTOM, calls)) == c0
    assert calls == [1]
    assert os.stat(store.diff_dir(c0)).st_ino == before
    assert sorted(os.listdir(tmp_path / "layers")) == [c0[7:]]


def test_losing_a_race_drops_the_copy_without_error(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    d0 = digest(BOTTOM)
    winner: list[int] = []

    def slow_open() -> IO[bytes]:  # another ensure finishes while this one is unpacking
        assert store.ensure(None, d0, opener(BOTTOM)) == d0
        winner.append(os.stat(store.diff_dir(d0)).st_ino)
        return io.BytesIO(BOTTOM)

    # diff ID unknown: the outer call must unpack, and its rename then loses
    assert store.ensure(None, None, slow_open) == d0
    assert winner == [os.stat(store.diff_dir(d0)).st_ino]
    assert sorted(os.listdir(tmp_path / "layers")) == [d0[7:]]


def test_wrong_diff_id_leaves_nothing(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    wrong = digest(b"something else")
    with pytest.raises(LayerError, match="diff ID"):
        store.ensure(None, wrong, opener(BOTTOM))
    assert not store.exists(wrong)
    assert os.listdir(tmp_path / "layers") == []


def test_corrupt_stream_leaves_nothing(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    with pytest.raises(LayerError):
        store.ensure(None, None, opener(gzip.compress(BOTTOM)[:-20]))
    assert os.listdir(tmp_path / "layers") == []


def test_malformed_ids_and_missing_parent_are_refused(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    with pytest.raises(LayerError, match="not a sha256"):
        store.ensure(None, "sha256:nothex", opener(BOTTOM))
    with pytest.raises(LayerError, match="parent layer"):
        store.ensure(digest(b"no such parent"), digest(TOP), opener(TOP))
    with pytest.raises(LayerError):
        store.exists("../../etc")


def test_lower_dirs_are_topmost_first(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    c0 = store.ensure(None, digest(BOTTOM), opener(BOTTOM))
    c1 = store.ensure(c0, digest(TOP), opener(TOP))
    assert store.lower_dirs([c0, c1]) == [store.diff_dir(c1), store.diff_dir(c0)]
    assert store.lower_dirs([]) == []
    with pytest.raises(StoreError, match="not in the store"):
        store.lower_dirs([c0, digest(b"missing")])


def test_remove_goes_top_down(tmp_path: Path) -> None:
    store = LayerStore(tmp_path)
    c0 = store.ensure(None, digest(BOTTOM), opener(BOTTOM))
    c1 = store.ensure(c0, digest(TOP), opener(TOP))
    with pytest.raises(StoreError, match=f"{c1} is stacked on it"):
        store.remove(c0)
    assert store.exists(c0) and store.exists(c1)
    store.remove(c1)
    store.remove(c0)
    assert store.list() == []
    assert os.listdir(tmp_path / "layers") == []
    with pytest.raises(StoreError, match="not in the store"):
        store.remove(c0)
