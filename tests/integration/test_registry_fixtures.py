"""The registry fixtures themselves, checked with skopeo: what `put_image` puts in is what
the registry serves back (the same digests), over plain HTTP, over TLS with htpasswd, and
behind the token server."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_registry import Registry, put_image, skopeo_inspect

pytestmark = pytest.mark.registry


def test_plain_registry_serves_what_skopeo_put(registry: Registry, work: Path) -> None:
    made = put_image(registry, "fixtures/plain:v1", work)
    info = skopeo_inspect(registry.ref("fixtures/plain:v1"))
    assert info["Digest"] == made.digest
    assert info["Layers"] == made.image.layer_digests


def test_secure_registry_needs_its_ca_and_password(secure_registry: Registry, work: Path) -> None:
    reg = secure_registry
    assert reg.certs_dir and (Path(reg.certs_dir) / reg.host / "ca.crt").is_file()
    status, headers, _ = reg.request("GET", "/v2/", headers={"Authorization": "Basic eDp5"})
    assert status == 401 and headers["www-authenticate"].startswith("Basic ")
    made = put_image(reg, "fixtures/secure:v1", work)
    info = skopeo_inspect(reg.ref("fixtures/secure:v1"), creds=f"{reg.username}:{reg.password}",
                          cert_dir=str(Path(reg.certs_dir) / reg.host))
    assert info["Digest"] == made.digest


def test_token_registry_challenges_with_bearer(token_registry: Registry, work: Path) -> None:
    reg = token_registry
    assert reg.token_server is not None
    status, headers, _ = reg.request("GET", "/v2/")
    assert status == 401
    assert headers["www-authenticate"].startswith(f'Bearer realm="{reg.token_server.realm}"')
    made = put_image(reg, "fixtures/token:v1", work)
    info = skopeo_inspect(reg.ref("fixtures/token:v1"), creds=f"{reg.username}:{reg.password}")
    assert info["Digest"] == made.digest
    with pytest.raises(RuntimeError):
        skopeo_inspect(reg.ref("fixtures/token:v1"), creds=f"{reg.username}:wrong")


def test_multi_platform_layout_is_pushed_as_an_index(registry: Registry, work: Path) -> None:
    made = put_image(registry, "fixtures/multi:v1", work,
                     platforms=("linux/amd64", "linux/arm64/v8"))
    raw = skopeo_inspect(registry.ref("fixtures/multi:v1"), raw=True)
    assert raw == made.index
