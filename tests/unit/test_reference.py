"""skiff.reference: Docker's grammar and normalisation (distribution/reference v0.6, as the
docker 28 CLI and dockerd use it), its error messages, the familiar and canonical forms, image
IDs, and the registry names: Docker Hub's aliases, config.json keys, login servers."""

from __future__ import annotations

import pytest

from skiff.errors import ReferenceError_, StoreError
from skiff.reference import (
    INDEX_SERVER,
    Reference,
    check_any,
    familiar_parts,
    index_server,
    is_docker_hub,
    is_image_id,
    parse_reference,
    server_domain,
    server_hostname,
)

HEX = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
DIGEST = f"sha256:{HEX}"
LOWERCASE = "invalid reference format: repository name ({}) must be lowercase"


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
    (f"busybox@sha512:{'a' * 128}", "docker.io", "library/busybox", None, f"sha512:{'a' * 128}"),
    (f"busybox@sha384:{'a' * 96}", "docker.io", "library/busybox", None, f"sha384:{'a' * 96}"),
    ("library/" + "a" * 247, "docker.io", "library/" + "a" * 247, None, None),  # path: 255
    ("example.com/" + "a" * 250, "example.com", "a" * 250, None, None),  # the domain not counted
])
def test_parse_and_normalise(text, domain, path, tag, digest):
    ref = parse_reference(text)
    assert ref == Reference(domain, path, tag, digest)
    assert ref.name == f"{domain}/{path}"


@pytest.mark.parametrize("text, message", [
    ("Busybox", LOWERCASE.format("library/Busybox")),
    ("library/Busybox", LOWERCASE.format("library/Busybox")),
    ("docker.io/library/BusyBox:1", LOWERCASE.format("library/BusyBox")),
    ("index.docker.io/Bar", LOWERCASE.format("library/Bar")),
    ("localhost:5000/UP", LOWERCASE.format("UP")),
    (f"busybox@SHA256:{HEX}", LOWERCASE.format("library/busybox@SHA256")),
    ("busybox:\u212a", "repository name must be lowercase"),  # the Kelvin sign lowers to "k"
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
    ("busybox@sha512:" + "a" * 64, "invalid checksum digest length"),
    ("busybox@sha384:" + "a" * 64, "invalid checksum digest length"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("busybox@foo+bar:" + "a" * 64, "unsupported digest algorithm"),
    ("busybox:t@SHA256:" + "a" * 64, "invalid checksum digest format"),
    ("busybox:t@Foo:" + "a" * 64, "invalid checksum digest format"),
    (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
    ("example.com/" + "a" * 256, "repository name must not be more than 255 characters"),
    ("x/" + "a" * 254, "repository name must not be more than 255 characters"),
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
    assert parse_reference("busybox").name_only
    assert str(parse_reference("busybox").with_default_tag()) == "docker.io/library/busybox:latest"
    assert parse_reference("busybox").with_default_tag().familiar() == "busybox:latest"
    tagged = parse_reference("busybox:1.36")
    assert tagged.with_default_tag() is tagged
    pinned = parse_reference(f"busybox@{DIGEST}")
    assert pinned.with_default_tag() is pinned
    assert not tagged.name_only and not pinned.name_only


def test_references_are_values():
    ref = parse_reference("busybox")
    assert ref == parse_reference("docker.io/library/busybox")
    assert hash(ref) == hash(parse_reference("index.docker.io/library/busybox"))
    with pytest.raises(AttributeError):
        ref.tag = "x"  # type: ignore[misc]


def test_image_ids_and_any_reference():
    assert is_image_id(HEX) and is_image_id(DIGEST) and is_image_id("sha256:abc")
    assert not is_image_id("abc") and not is_image_id("sha256:") and not is_image_id("busybox")
    check_any(HEX)
    check_any("sha256:abc")
    check_any("busybox:1")
    with pytest.raises(ReferenceError_, match="must be lowercase"):
        check_any("UP")


def test_familiar_parts_split_what_the_daemon_reports():
    assert familiar_parts("docker.io/library/busybox:latest") == ("busybox", "latest", None)
    assert familiar_parts("docker.io/user/app:v1") == ("user/app", "v1", None)
    assert familiar_parts("localhost:5000/x@sha256:ab") == ("localhost:5000/x", None, "sha256:ab")
    assert familiar_parts("localhost:5000/x") == ("localhost:5000/x", None, None)


@pytest.mark.parametrize("host", ["docker.io", "index.docker.io", "registry-1.docker.io",
                                  "registry.hub.docker.com"])
def test_docker_hub_names(host):
    assert is_docker_hub(host)
    assert index_server(host) == INDEX_SERVER == "https://index.docker.io/v1/"


def test_config_json_key_of_a_reference():
    assert index_server(parse_reference("busybox").domain) == INDEX_SERVER
    assert index_server(parse_reference("localhost:5000/x").domain) == "localhost:5000"
    assert not is_docker_hub("localhost:5000") and not is_docker_hub("docker.io.example")


@pytest.mark.parametrize(("server", "domain", "key"), [
    ("", "docker.io", INDEX_SERVER),
    ("docker.io", "docker.io", INDEX_SERVER),
    ("https://index.docker.io/v1/", "docker.io", INDEX_SERVER),
    ("index.docker.io/v1/", "docker.io", INDEX_SERVER),
    ("https://docker.io", "docker.io", INDEX_SERVER),
    ("registry-1.docker.io", "docker.io", INDEX_SERVER),
    ("https://127.0.0.1:5000/v2/", "127.0.0.1:5000", "127.0.0.1:5000"),
    ("http://reg:5000", "reg:5000", "reg:5000"),
    ("reg.example:5000/v1/", "reg.example:5000", "reg.example:5000"),
    ("Reg.Example:5000", "Reg.Example:5000", "Reg.Example:5000"),  # as Docker: case kept
])
def test_login_server_names(server, domain, key):
    assert server_domain(server) == domain
    assert server_hostname(server) == key


def test_import_does_not_compile_regexps():
    import subprocess
    import sys
    from pathlib import Path

    # the CLI (run as `python -S`, src/ first on the path) imports this module: it must not
    # pull in what start-up cannot afford
    src = str(Path(__file__).resolve().parents[2] / "src")
    code = (f"import sys; sys.path.insert(0, {src!r}); import skiff.reference, skiff.store.blobs; "
            "print(*(m in sys.modules for m in ('re', 'hashlib', 'typing', 'json')))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False"] * 4
