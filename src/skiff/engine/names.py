"""Container IDs and names as Docker makes and checks them.

An ID is 64 random hex digits whose 12-digit short form is never all digits (Docker redraws
those, since a short ID that reads as a number would be taken for one by tools).
A name is what Docker's `validContainerNamePattern` allows — ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``,
with an optional leading ``/`` — and is stored without the slash. Default names are
Docker-like ``adjective_surname`` pairs (``eager_hopper``): the lists are skiff's own, an
adjective a reader would take kindly and the surname of someone who shaped computing or
science. A taken name is drawn again with a digit appended, as Docker's generator does after
its first try, so a busy engine still finds free names fast.
"""

from __future__ import annotations

import os
import random

from skiff.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_REST = _FIRST | frozenset("_.-")

ADJECTIVES = (
    "able", "adoring", "agile", "amazing", "amused", "ardent", "awesome", "blissful",
    "bold", "brave", "bright", "busy", "calm", "careful", "charming", "cheerful", "clever",
    "cool", "cosmic", "curious", "daring", "dazzling", "determined", "devoted", "diligent",
    "eager", "earnest", "ecstatic", "elated", "elegant", "eloquent", "epic", "fervent",
    "festive", "fond", "friendly", "funny", "gallant", "gentle", "gifted", "glad",
    "gracious", "happy", "hardy", "hopeful", "humble", "inspiring", "jolly", "jovial",
    "keen", "kind", "lively", "loving", "lucid", "lucky", "magical", "merry", "mindful",
    "modest", "musing", "mystic", "nervy", "nifty", "noble", "nostalgic", "optimistic",
    "patient", "peaceful", "pensive", "placid", "plucky", "polished", "practical",
    "proud", "quiet", "quirky", "radiant", "relaxed", "resolute", "romantic", "serene",
    "sharp", "sincere", "sleepy", "snappy", "spirited", "stoic", "sunny", "swift",
    "tender", "thirsty", "thoughtful", "tidy", "trusting", "upbeat", "valiant", "vibrant",
    "vigilant", "vivid", "wise", "witty", "wonderful", "zealous", "zen",
)

SURNAMES = (
    "agnesi", "allen", "archimedes", "babbage", "backus", "bardeen", "bartik", "bell",
    "berners", "bohr", "boole", "borg", "bose", "brahmagupta", "brattain", "carson",
    "cerf", "chandrasekhar", "chebyshev", "clarke", "cohen", "conway", "copernicus",
    "corbato", "cray", "curie", "darwin", "davinci", "diffie", "dijkstra", "dirac",
    "easley", "einstein", "engelbart", "euclid", "euler", "faraday", "fermat", "fermi",
    "feynman", "franklin", "galileo", "gauss", "germain", "goldberg", "goodall",
    "hamilton", "hawking", "heisenberg", "hellman", "hertz", "hodgkin", "hoover", "hopper",
    "hypatia", "jackson", "jepsen", "johnson", "kalam", "kare", "kepler", "khorana",
    "knuth", "kowalevski", "lalande", "lamarr", "lamport", "leakey", "leavitt", "lederberg",
    "lehmann", "lovelace", "mahavira", "margulis", "maxwell", "mayer", "mccarthy",
    "mcclintock", "meitner", "mendel", "merkle", "minsky", "mirzakhani", "morse", "napier",
    "nash", "neumann", "newton", "nobel", "noether", "norvig", "ohm", "pare", "pascal",
    "pasteur", "payne", "perlman", "pike", "planck", "poincare", "raman", "ramanujan",
    "ride", "ritchie", "rivest", "rosalind", "saha", "sammet", "shamir", "shannon",
    "shockley", "sinoussi", "snyder", "spence", "stallman", "stonebraker", "swartz",
    "tesla", "thompson", "torvalds", "turing", "varahamihira", "villani", "volta",
    "wilbur", "wiles", "williams", "wing", "wozniak", "wright", "yalow", "yonath",
)


def new_id() -> str:
    """64 random hex digits; never one whose short ID is all digits."""
    while True:
        cid = os.urandom(32).hex()
        if not cid[:12].isdigit():
            return cid


def is_full_id(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def valid_name(name: str) -> bool:
    """Docker's container name rule (a leading ``/`` allowed, at least two characters)."""
    body = name[1:] if name.startswith("/") else name
    return len(body) >= 2 and body[0] in _FIRST and set(body[1:]) <= _REST


def check_name(name: str) -> str:
    """`name` without its leading ``/``, or Docker's 400 for an invalid one."""
    if not valid_name(name):
        raise InvalidArgument(f"Invalid container name ({name}), only "
                              f"[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.removeprefix("/")


def random_name(retry: int = 0, rng: random.Random | None = None) -> str:
    """An ``adjective_surname`` pair; from the second try on, with a digit appended."""
    pick = rng or random
    name = f"{pick.choice(ADJECTIVES)}_{pick.choice(SURNAMES)}"
    return f"{name}{pick.randint(0, 9)}" if retry > 0 else name


def free_name(taken: Callable[[str], bool], rng: random.Random | None = None) -> str:
    """A random name `taken` says is free (plain names first, then with digits, then with
    a random suffix so that it always ends)."""
    for retry in range(12):
        name = random_name(retry, rng)
        if not taken(name):
            return name
    while True:
        name = f"{random_name(0, rng)}_{os.urandom(3).hex()}"
        if not taken(name):
            return name
