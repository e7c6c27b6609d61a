"""Docker Hub's API host, Docker's insecure-registry rules and certs.d. (The names `login`
accepts are tested with the rest of Docker's naming in test_reference.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from skiff.registry.options import (
    RegistryOptions,
    api_host,
    is_insecure,
    split_host,
    ssl_context,
)


def test_docker_hub_is_served_by_registry_1() -> None:
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("index.docker.io") == "registry-1.docker.io"
    assert api_host("127.0.0.1:5000") == "127.0.0.1:5000"


@pytest.mark.parametrize(("host", "expected"), [
    ("127.0.0.1:5000", ("127.0.0.1", 5000)), ("localhost", ("localhost", None)),
    ("[::1]:443", ("::1", 443)), ("reg.example", ("reg.example", None))])
def test_split_host(host: str, expected: tuple[str, int | None]) -> None:
    assert split_host(host) == expected


@pytest.mark.parametrize(("domain", "options", "insecure"), [
    ("127.0.0.1:5000", RegistryOptions(), True),
    ("localhost:5000", RegistryOptions(), True),
    ("[::1]:5000", RegistryOptions(), True),
    ("127.0.0.1:5000", RegistryOptions(loopback_insecure=False), False),
    ("reg.example:5000", RegistryOptions(), False),
    ("reg.example:5000", RegistryOptions(insecure=("reg.example:5000",)), True),
    ("reg.example:5000", RegistryOptions(insecure=("reg.example",)), True),
    ("10.1.2.3:5000", RegistryOptions(insecure=("10.0.0.0/8",)), True),
    ("10.1.2.3:5000", RegistryOptions(insecure=("192.168.0.0/16",)), False),
    ("docker.io", RegistryOptions(insecure=("docker.io",)), False),
])
def test_insecure_registries(domain: str, options: RegistryOptions, insecure: bool) -> None:
    assert is_insecure(domain, options) is insecure


def test_certs_d_gives_the_ca_and_the_client_certificate(tmp_path: Path) -> None:
    import ssl

    from fixtures_registry import TestCA, certs_d

    ca = TestCA.make(tmp_path / "pki")
    folder = certs_d(tmp_path / "certs.d", "reg.example:5000", ca)
    cert, key = ca.issue("client", "extendedKeyUsage=clientAuth\n")
    (folder / "reg.example:5000" / "client.cert").write_bytes(cert.read_bytes())
    (folder / "reg.example:5000" / "client.key").write_bytes(key.read_bytes())
    options = RegistryOptions(certs_dir=str(folder))
    context = ssl_context("reg.example:5000", options, verify=True)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [dict(x[0] for x in c["subject"]) for c in context.get_ca_certs()]
    assert {"commonName": "skiff test CA"} in subjects
    insecure = ssl_context("reg.example:5000", options, verify=False)
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname
    bare = ssl_context("other.example", options, verify=True)
    assert {"commonName": "skiff test CA"} not in [dict(x[0] for x in c["subject"])
                                                   for c in bare.get_ca_certs()]
