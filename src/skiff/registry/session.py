"""``docker login``: check credentials against a registry, as dockerd's `loginV2` does.

GET /v2/ first: 200 means the registry wants no credentials, and the login succeeds. A
Basic challenge is answered with the username and password, and the registry's verdict
is the answer. A Bearer challenge sends them to the token service, asking for an offline
token (``offline_token=true``): a refresh token in its answer is the *identity token*
Docker keeps in config.json instead of the password; an identity token given in place of
a password is exchanged for an access token the same way. The server may be written as
Docker accepts it (``https://host:5000``, ``host:5000/v1/``); "", ``docker.io`` and Docker
Hub's other names mean Docker Hub (skiff.reference's `server_domain`).
"""

from __future__ import annotations

from skiff.errors import AuthenticationFailed, RegistryError
from skiff.reference import server_domain
from skiff.registry.client import RegistryClient
from skiff.registry.options import RegistryOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.registry.auth import AuthConfig


def login(server: str, auth: AuthConfig, options: RegistryOptions | None = None) -> str:
    """Check `auth` against `server`; return an identity token to keep instead of the
    password, or "" when the registry took the password (or wants none).
    AuthenticationFailed (Docker's words) when the credentials are refused."""
    with RegistryClient(server_domain(server), auth, options, login=True) as client:
        if client.ping().status == 200:
            return ""
        url = client.transport.url("/v2/")  # the scheme is settled by the ping
        authorizer = client.authorizer
        if authorizer.challenge is None:
            raise AuthenticationFailed(f'Get "{url}": the registry answered 401 without a '
                                       f"challenge this client knows", status=401)
        if authorizer.basic_without_credentials():
            raise AuthenticationFailed(f'Get "{url}": no basic auth credentials', status=401,
                                       code="UNAUTHORIZED")
        try:
            header = authorizer.header(())
        except AuthenticationFailed as e:
            raise AuthenticationFailed(f'Get "{url}": {e}', status=e.status, code=e.code) from e
        resp = client.transport.open("GET", "/v2/", {"Authorization": header} if header else {})
        resp.discard()
        if resp.status == 200:
            return authorizer.refresh_token or ""
        if resp.status in (401, 403):
            raise AuthenticationFailed(f"login attempt to {url} failed with status: "
                                       f"{resp.status} {resp.reason}", status=resp.status,
                                       code="UNAUTHORIZED")
        raise RegistryError(f"login attempt to {url} failed with status: {resp.status} "
                            f"{resp.reason}", status=resp.status)
