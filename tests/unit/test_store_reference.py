"""skiff.store.reference: Docker's grammar and normalisation (distribution/reference), its
error messages, and the familiar and canonical forms."""

from __future__ import annotations

import pytest

from skiff.errors import ReferenceError_, StoreError
from skiff.store.reference import Reference, parse_reference

HEX = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
DIGEST = f"sha256:{HEX}"


@pytest.mark.parametrize("text, domain, path, tag, digest", [
    ("busybox", "docker.io", "library/busybox", None, None),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
    ("library/busybox", "docker.io", "library/busybox", None, None),
    ("docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", None),
    ("docker.io/busybox", "docker.io", "library/busybox", None, None),
    ("index.docker.io/busybox", "docker.io", "library/busybox", None, None),
    ("index.docker.io/user/app:v1", "docker.io", "user/app", "v1", None),
    ("user/app", "docker.io", "user/app", None, None),
    ("a/b/c", "docker.io", "a/b/c", None, None),
    ("localhost/app", "localhost", "app", None, None),
    ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", None),
    ("127.0.0.1:5000/busybox:local", "127.0.0.1:5000", "busybox", "local", None),
    ("myreg:5000/x/y:tag", "myreg:5000", "x/y", "tag", None),
    ("[::1]:5000/app", "[::1]:5000", "app", None, None),
    ("Registry.Example.com/app", "Registry.Example.com", "app", None, None),
    ("Foo/bar", "Foo", "bar", None, None),  # an uppercase first component is a domain
    (f"example.com/x@{DIGEST}", "example.com", "x", None, DIGEST),
    (f"busybox@{DIGEST}", "docker.io", "library/busybox", None, DIGEST),
    (f"busybox:1.36@{DIGEST}", "docker.io", "library/busybox", "1.36", DIGEST),
    (f"example.com:443/x/y:v2@{DIGEST}", "example.com:443", "x/y", "v2", DIGEST),
    ("a-b_c__d---e/f.g", "docker.io", "a-b_c__d---e/f.g", None, None),
    ("busybox:UPPER_tag.1-x", "docker.io", "library/busybox", "UPPER_tag.1-x", None),
    ("busybox:" + "t" * 128, "docker.io", "library/busybox", "t" * 128, None),
    ("localhost", "docker.io", "library/localhost", None, None),  # as Docker: a bare name
])
def test_parse_and_normalise(text, domain, path, tag, digest):
    ref = parse_reference(text)
    assert ref == Reference(domain, path, tag, digest)
    assert ref.name == f"{domain}/{path}"


@pytest.mark.parametrize("text, message", [
    ("Busybox", "invalid reference format: repository name must be lowercase"),
    ("library/Busybox", "invalid reference format: repository name must be lowercase"),
    ("docker.io/library/BusyBox:1", "invalid reference format: repository name must be lowercase"),
    ("localhost:5000/UP", "invalid reference format: repository name must be lowercase"),
    ("", "invalid reference format"),
    ("a::b", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    ("busybox@", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("/busybox", "invalid reference format"),
    ("busybox/", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("-a/b", "invalid reference format"),
    ("a_/b", "invalid reference format"),
    ("a_b.c/d", "invalid reference format"),  # taken for a domain, and not one
    ("a___b", "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("busybox:.tag", "invalid reference format"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("busybox:t@g", "invalid reference format"),
    ("a b", "invalid reference format"),
    ("busybox:tág", "invalid reference format"),
    ("example.com:port/app", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),
    (f"busybox@{DIGEST}:tag", "invalid reference format"),
    ("busybox@sha256:" + "a" * 40, "invalid checksum digest length"),
    ("busybox@sha256:" + "A" * 64, "invalid checksum digest format"),
    ("busybox@sha512:" + "a" * 128, "unsupported digest algorithm"),
    (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
    ("example.com/" + "a" * 250, "repository name must not be more than 255 characters"),
])
def test_errors_say_what_docker_says(text, message):
    with pytest.raises(ReferenceError_) as info:
        parse_reference(text)
    assert str(info.value) == message
    assert isinstance(info.value, StoreError)


@pytest.mark.parametrize("text, familiar, full", [
    ("busybox", "busybox", "docker.io/library/busybox"),
    ("busybox:latest", "busybox:latest", "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox:1.36", "busybox:1.36", "docker.io/library/busybox:1.36"),
    ("user/app:v1", "user/app:v1", "docker.io/user/app:v1"),
    ("library/a/b", "library/a/b", "docker.io/library/a/b"),
    ("myreg:5000/x/y:tag", "myreg:5000/x/y:tag", "myreg:5000/x/y:tag"),
    ("localhost/library/app", "localhost/library/app", "localhost/library/app"),
    (f"busybox:1@{DIGEST}", f"busybox:1@{DIGEST}", f"docker.io/library/busybox:1@{DIGEST}"),
    (f"example.com/x@{DIGEST}", f"example.com/x@{DIGEST}", f"example.com/x@{DIGEST}"),
])
def test_familiar_and_full_forms(text, familiar, full):
    ref = parse_reference(text)
    assert ref.familiar() == familiar
    assert str(ref) == full
    assert parse_reference(full) == ref and parse_reference(familiar) == ref


def test_with_default_tag():
    assert str(parse_reference("busybox").with_default_tag()) == "docker.io/library/busybox:latest"
    assert parse_reference("busybox").with_default_tag().familiar() == "busybox:latest"
    tagged = parse_reference("busybox:1.36")
    assert tagged.with_default_tag() is tagged
    pinned = parse_reference(f"busybox@{DIGEST}")
    assert pinned.with_default_tag() is pinned


def test_references_are_values():
    ref = parse_reference("busybox")
    assert ref == parse_reference("docker.io/library/busybox")
    assert hash(ref) == hash(parse_reference("index.docker.io/library/busybox"))
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]


def test_import_does_not_compile_regexps():
    import subprocess
    import sys

    code = ("import sys; import skiff.store.reference, skiff.store.blobs; "
            "print('re' in sys.modules, 'hashlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
