"""skiff.store.blobs: round trips, streaming, digest and size checks that leave nothing
behind, atomic publishing that never replaces a blob, digest parsing, delete and listing."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from skiff.errors import BlobNotFound, DigestMismatch, InvalidDigest, StoreError
from skiff.store.blobs import BlobStore, digest_of, parse_digest

DATA = b"hello, skiff\n"
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
OTHER = "sha256:" + "0" * 64


@pytest.fixture
def store(tmp_path) -> BlobStore:
    return BlobStore(str(tmp_path))


def published(store: BlobStore) -> list[str]:
    return sorted(os.listdir(store.blob_dir)) if os.path.isdir(store.blob_dir) else []


def temps(store: BlobStore) -> list[str]:
    return os.listdir(store.tmp_dir) if os.path.isdir(store.tmp_dir) else []


def test_round_trip(store, tmp_path):
    assert store.put_bytes(DATA) == DIGEST == digest_of(DATA)
    assert store.path(DIGEST) == str(tmp_path / "blobs" / "sha256" / DIGEST[7:])
    assert store.exists(DIGEST)
    assert store.size(DIGEST) == len(DATA)
    assert store.read_bytes(DIGEST) == DATA
    with store.open(DIGEST) as f:
        assert f.read() == DATA
    assert temps(store) == []
    assert os.stat(store.path(DIGEST)).st_mode & 0o777 == 0o444


def test_put_bytes_with_the_right_expectation(store):
    assert store.put_bytes(DATA, expected=DIGEST) == DIGEST


def test_streaming_in_chunks(store):
    data = os.urandom(1 << 20)
    with store.writer(expected_size=len(data)) as w:
        for i in range(0, len(data), 65536):
            w.write(data[i:i + 65536])
        digest = w.commit()
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert w.digest == digest and w.written == len(data)
    assert store.read_bytes(digest) == data


def test_empty_blob(store):
    digest = store.put_bytes(b"")
    assert digest == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert store.size(digest) == 0


def test_wrong_digest_leaves_nothing(store):
    with pytest.raises(DigestMismatch) as info:
        store.put_bytes(DATA, expected=OTHER)
    assert info.value.expected == OTHER and info.value.actual == DIGEST
    assert OTHER in str(info.value) and DIGEST in str(info.value)
    assert published(store) == [] and temps(store) == []
    assert not store.exists(DIGEST)


def test_wrong_digest_in_a_stream_leaves_nothing(store):
    with pytest.raises(DigestMismatch):
        with store.writer(expected=OTHER) as w:
            w.write(b"abc")
            w.write(b"def")
            w.commit()
    assert published(store) == [] and temps(store) == []


def test_short_stream_is_a_size_mismatch(store):
    with pytest.raises(DigestMismatch) as info:
        with store.writer(expected=DIGEST, expected_size=len(DATA) + 1) as w:
            w.write(DATA)
            w.commit()
    assert info.value.what == "size"
    assert (info.value.expected, info.value.actual) == (len(DATA) + 1, len(DATA))
    assert "size mismatch" in str(info.value)
    assert published(store) == [] and temps(store) == []


def test_long_stream_fails_at_the_first_byte_too_many(store):
    with store.writer(expected_size=3) as w:
        w.write(b"abc")
        with pytest.raises(DigestMismatch, match="expected 3 bytes, got 4"):
            w.write(b"d")
        assert temps(store) == []
        with pytest.raises(ValueError):
            w.write(b"e")
    assert published(store) == []


def test_exception_inside_with_removes_the_temp_file(store):
    with pytest.raises(KeyError):
        with store.writer() as w:
            w.write(DATA)
            assert len(temps(store)) == 1
            raise KeyError("boom")
    assert temps(store) == [] and published(store) == []


def test_leaving_with_without_commit_removes_the_temp_file(store):
    with store.writer() as w:
        w.write(DATA)
    assert temps(store) == [] and published(store) == []
    assert w.digest is None


def test_existing_blob_is_not_replaced(store):
    store.put_bytes(DATA)
    before = os.stat(store.path(DIGEST))
    assert store.put_bytes(DATA) == DIGEST
    after = os.stat(store.path(DIGEST))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert temps(store) == []


def test_two_writers_of_the_same_content_both_succeed(store):
    first, second = store.writer(), store.writer()
    first.write(DATA)
    second.write(DATA)
    assert first.commit() == second.commit() == DIGEST
    assert published(store) == [DIGEST[7:]] and temps(store) == []


def test_concurrent_threads_make_one_blob(store):
    data = os.urandom(256 * 1024)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def put() -> None:
        barrier.wait()
        results.append(store.put_bytes(data))

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert published(store) == [results[0][7:]] and temps(store) == []
    assert store.read_bytes(results[0]) == data


def test_commit_twice_is_refused(store):
    w = store.writer()
    w.write(DATA)
    w.commit()
    with pytest.raises(ValueError):
        w.commit()


@pytest.mark.parametrize("text, words", [
    ("", "expected sha256:"),
    ("sha256", "expected sha256:"),
    ("sha256:", "expected sha256:"),
    (":" + "a" * 64, "expected sha256:"),
    ("sha256:abc", "64 hex digits, got 3"),
    ("sha256:" + "a" * 65, "64 hex digits, got 65"),
    ("sha256:" + "A" * 64, "lowercase"),
    ("sha256:" + "g" * 64, "lowercase"),
    ("sha512:" + "a" * 128, "unsupported digest algorithm"),
    ("md5:" + "a" * 32, "unsupported digest algorithm"),
    ("sha 256:" + "a" * 64, "expected sha256:"),
])
def test_bad_digest_strings(store, text, words):
    with pytest.raises(InvalidDigest, match=words) as info:
        parse_digest(text)
    assert isinstance(info.value, StoreError)
    with pytest.raises(InvalidDigest):
        store.exists(text)
    with pytest.raises(InvalidDigest):
        store.writer(expected=text)
    assert temps(store) == []


def test_parse_digest_splits():
    assert parse_digest(DIGEST) == ("sha256", DIGEST[7:])


def test_missing_blob(store):
    assert not store.exists(OTHER)
    for call in (store.open, store.size, store.read_bytes, store.delete):
        with pytest.raises(BlobNotFound, match=OTHER):
            call(OTHER)


def test_delete(store):
    store.put_bytes(DATA)
    store.delete(DIGEST)
    assert not store.exists(DIGEST)
    with pytest.raises(BlobNotFound):
        store.delete(DIGEST)


def test_digests_lists_stored_blobs_only(store):
    assert list(store.digests()) == []
    made = sorted(store.put_bytes(b"blob %d" % i) for i in range(3))
    with open(os.path.join(store.blob_dir, "stray.txt"), "w") as f:
        f.write("not a blob")
    assert list(store.digests()) == made
