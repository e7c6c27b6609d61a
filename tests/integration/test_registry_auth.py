"""Authentication and TLS against the real registries: htpasswd Basic auth over TLS with
the test CA, and the Bearer token flow through the fixtures' token server.

Right credentials pull and push; wrong ones, or none, fail with AuthenticationFailed in
Docker's words; a registry whose CA is not trusted fails with a clear TLS error (once
loopback's default insecurity is turned off, since Docker would not verify it at all);
`login` answers "" for a password a registry accepts and the identity token a token
service hands out, which pulls on its own after.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_registry import (
    Registry,
    add_to_store,
    oci_layout,
    put_image,
    skopeo_inspect,
)

from skiff.errors import AuthenticationFailed, RegistryError
from skiff.registry.auth import AuthConfig
from skiff.registry.options import RegistryOptions
from skiff.registry.pull import pull
from skiff.registry.push import push
from skiff.registry.session import login
from skiff.store.images import ImageStore

pytestmark = pytest.mark.registry


@pytest.fixture
def store(image_store: ImageStore) -> ImageStore:
    return image_store


def creds(reg: Registry, password: str | None = None) -> AuthConfig:
    return AuthConfig(username=reg.username, password=password or reg.password)


def verified(reg: Registry) -> RegistryOptions:
    assert reg.certs_dir is not None
    return RegistryOptions(certs_dir=reg.certs_dir, loopback_insecure=False)


# -- Basic over TLS ------------------------------------------------------------------------
def test_basic_auth_over_verified_tls(secure_registry: Registry, store: ImageStore,
                                      work: Path) -> None:
    reg = secure_registry
    made = put_image(reg, "auth/basic:v1", work)
    result = pull(store, reg.ref("auth/basic:v1"), auth=creds(reg), options=verified(reg))
    assert result.digest == made.digest
    store.tag(reg.ref("auth/basic:v1"), reg.ref("auth/basic-copy:v1"))
    pushed = push(store, reg.ref("auth/basic-copy:v1"), auth=creds(reg), options=verified(reg))
    assert pushed.digest == made.digest
    assert login(reg.host, creds(reg), verified(reg)) == ""
    assert login(f"https://{reg.host}/v1/", creds(reg), verified(reg)) == ""


def test_wrong_password_is_refused(secure_registry: Registry, store: ImageStore,
                                   work: Path) -> None:
    reg = secure_registry
    put_image(reg, "auth/refused:v1", work)
    with pytest.raises(AuthenticationFailed) as pulled:
        pull(store, reg.ref("auth/refused:v1"), auth=creds(reg, "wrong"), options=verified(reg))
    assert str(pulled.value).startswith(
        f"pull access denied for {reg.host}/auth/refused, repository does not exist or may "
        f"require 'docker login': unauthorized: ")
    with pytest.raises(AuthenticationFailed) as no_creds:
        pull(store, reg.ref("auth/refused:v1"), options=verified(reg))
    assert "no basic auth credentials" in str(no_creds.value)
    with pytest.raises(AuthenticationFailed) as logged:
        login(reg.host, creds(reg, "wrong"), verified(reg))
    assert str(logged.value) == (f"login attempt to https://{reg.host}/v2/ failed with "
                                 f"status: 401 Unauthorized")
    assert store.list() == []


def test_untrusted_ca_is_a_clear_tls_error(secure_registry: Registry, store: ImageStore,
                                           work: Path) -> None:
    reg = secure_registry
    options = RegistryOptions(certs_dir=str(work / "no-certs"), loopback_insecure=False)
    with pytest.raises(RegistryError) as failed:
        pull(store, reg.ref("auth/any:v1"), auth=creds(reg), options=options)
    assert str(failed.value).startswith(f'Get "https://{reg.host}/v2/": tls: failed to verify '
                                        f"certificate: x509: certificate signed by unknown "
                                        f"authority")
    # loopback is insecure by default, as Docker has it: TLS is used but not verified
    assert login(reg.host, creds(reg), RegistryOptions(certs_dir=str(work / "no-certs"))) == ""


def test_insecure_listing_skips_verification(secure_registry: Registry, work: Path) -> None:
    reg = secure_registry
    options = RegistryOptions(certs_dir=str(work / "no-certs"), loopback_insecure=False,
                              insecure=("127.0.0.0/8",))
    assert login(reg.host, creds(reg), options) == ""


# -- Bearer tokens -------------------------------------------------------------------------
def test_token_flow_pull_and_push(token_registry: Registry, store: ImageStore,
                                  work: Path) -> None:
    reg = token_registry
    tokens = reg.token_server
    assert tokens is not None
    made = put_image(reg, "auth/token:v1", work, layers=[{"a": b"1"}, {"b": b"2"}, {"c": b"3"}])
    before = len(tokens.requests)
    result = pull(store, reg.ref("auth/token:v1"), auth=creds(reg))
    assert result.digest == made.digest
    fetched = tokens.requests[before:]
    # one token for the repository, shared by the parallel layer downloads
    assert [r["query"].get("scope") for r in fetched] == [["repository:auth/token:pull"]]
    assert fetched[0]["query"]["service"] == [tokens.service]
    assert fetched[0]["query"]["account"] == [reg.username]

    store.tag(reg.ref("auth/token:v1"), reg.ref("auth/token-copy:v1"))
    pushed = push(store, reg.ref("auth/token-copy:v1"), auth=creds(reg))
    assert pushed.digest == made.digest
    info = skopeo_inspect(reg.ref("auth/token-copy:v1"), creds=f"{reg.username}:{reg.password}")
    assert info["Layers"] == made.image.layer_digests


def test_token_flow_refuses_anonymous_and_wrong_password(token_registry: Registry,
                                                         store: ImageStore, work: Path) -> None:
    reg = token_registry
    put_image(reg, "auth/private:v1", work)
    with pytest.raises(AuthenticationFailed) as anonymous:
        pull(store, reg.ref("auth/private:v1"))
    assert str(anonymous.value) == (
        f"pull access denied for {reg.host}/auth/private, repository does not exist or may "
        f"require 'docker login': denied: requested access to the resource is denied")
    with pytest.raises(AuthenticationFailed) as wrong:
        pull(store, reg.ref("auth/private:v1"), auth=creds(reg, "wrong"))
    assert str(wrong.value) == (f'Get "http://{reg.host}/v2/auth/private/manifests/v1": '
                                f"unauthorized: authentication required")
    with pytest.raises(AuthenticationFailed) as logged:
        login(reg.host, creds(reg, "wrong"))
    assert str(logged.value).startswith(f'Get "http://{reg.host}/v2/": unauthorized: ')
    assert store.list() == []


def test_login_gives_an_identity_token_that_pulls(token_registry: Registry, store: ImageStore,
                                                  work: Path) -> None:
    reg = token_registry
    assert reg.token_server is not None
    made = put_image(reg, "auth/identity:v1", work)
    identity = login(reg.host, creds(reg))
    assert identity in reg.token_server.refresh_tokens
    before = len(reg.token_server.requests)
    result = pull(store, reg.ref("auth/identity:v1"),
                  auth=AuthConfig(username=reg.username, identitytoken=identity))
    assert result.digest == made.digest
    grants = [r["form"].get("grant_type") for r in reg.token_server.requests[before:]]
    assert grants == [["refresh_token"]]


def test_token_push_mounts_across_repositories(token_registry: Registry, store: ImageStore,
                                               work: Path) -> None:
    reg = token_registry
    layout = oci_layout(work / "layout")
    add_to_store(store, layout, reg.ref("auth/mount-a:v1"))
    push(store, reg.ref("auth/mount-a:v1"), auth=creds(reg))
    store.tag(reg.ref("auth/mount-a:v1"), reg.ref("auth/mount-b:v1"))
    seen: list[str] = []
    push(store, reg.ref("auth/mount-b:v1"), auth=creds(reg),
         progress=lambda p: seen.append(p.status))
    assert "Mounted from auth/mount-a" in seen
