"""Container IDs and names as Docker makes and checks them (`engine.names`)."""

from __future__ import annotations

import random

import pytest

from skiff.engine.names import (ADJECTIVES, SURNAMES, check_name, free_name, is_full_id,
                                new_id, random_name, valid_name)
from skiff.errors import InvalidArgument


def test_ids_are_64_hex_and_never_all_digits_short() -> None:
    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert is_full_id(cid) and not cid[:12].isdigit()
    assert not is_full_id("ABC") and not is_full_id("g" * 64)


@pytest.mark.parametrize("name", ["web", "/web", "a1", "x_y.z-1", "0abc", "Web-2"])
def test_valid_names(name: str) -> None:
    assert valid_name(name)
    assert check_name(name) == name.lstrip("/")


@pytest.mark.parametrize("name", ["a", "/", "", "_web", "-x", ".x", "we b", "wé", "a/b", "//ab"])
def test_invalid_names_get_dockers_text(name: str) -> None:
    assert not valid_name(name)
    with pytest.raises(InvalidArgument) as info:
        check_name(name)
    assert str(info.value) == (f"Invalid container name ({name}), only "
                               f"[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def test_random_names_are_adjective_surname_and_valid() -> None:
    rng = random.Random(7)
    for retry in range(3):
        name = random_name(retry, rng)
        adjective, surname = name.split("_")
        assert adjective in ADJECTIVES and valid_name(name)
        assert surname.rstrip("0123456789") in SURNAMES
        assert (surname[-1].isdigit()) == (retry > 0)
    assert all(valid_name(f"{a}_{s}") for a in ADJECTIVES for s in SURNAMES[:3])


def test_free_name_skips_taken_ones_and_always_ends() -> None:
    rng = random.Random(1)
    first = random_name(0, random.Random(1))
    assert free_name(lambda n: n == first, rng) != first
    everything_plain = free_name(lambda n: "_" in n and n.count("_") == 1, random.Random(2))
    assert everything_plain.count("_") == 2 and valid_name(everything_plain)
