"""`live_mount.check_target`: which targets a live mount takes, before anything is opened."""

from __future__ import annotations

import pytest

from skiff.errors import InvalidArgument
from skiff.runtime.live_mount import check_target


@pytest.mark.parametrize("given, expected", [
    ("/capsules/libssl/1.1.1", "/capsules/libssl/1.1.1"),
    ("//opt///x/", "/opt/x"),
    ("/opt/./x", "/opt/x"),
])
def test_a_plain_absolute_target_is_kept_normalised(given: str, expected: str) -> None:
    assert check_target(given) == expected


@pytest.mark.parametrize("target, words", [
    ("opt/x", "absolute"), ("", "absolute"), ("/..", "`..`"), ("/a/../../etc", "`..`"),
    ("/a/..", "`..`"), ("/", "root"), ("/./", "root"),
])
def test_a_bad_target_is_refused_with_its_reason(target: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_target(target)
    assert words in str(err.value) and f"`{target}`" in str(err.value)
