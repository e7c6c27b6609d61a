"""The registry's API calls (distribution spec v2), authenticated as the registry asks.

`RegistryClient` wraps one `Transport` and one `Authorizer`: `ping` learns how the registry
wants to be authenticated (GET /v2/, as Docker starts every operation), and every call then
carries the ``Authorization`` its scopes need; a 401 teaches the authorizer the challenge
it carries and the call is sent once more. The calls are the spec's: manifests (GET with
the Accept list of the four formats skiff reads; PUT with the manifest's media type), blobs
(HEAD, GET with an optional Range), and uploads (POST, cross-repository mount, monolithic
PUT). Failed answers become errors through `spec_errors`.
"""

from __future__ import annotations

from urllib.parse import quote

from skiff.errors import AuthenticationFailed, RegistryError
from skiff.oci.image_spec import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from skiff.registry.auth import AuthConfig, Authorizer
from skiff.registry.options import RegistryOptions
from skiff.registry.spec_errors import response_error
from skiff.registry.transport import Response, Transport, go_method

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.registry.transport import Body

MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
MAX_MANIFEST = 4 << 20  # containerd's limit on a manifest's size


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


class RegistryClient:
    """One registry, for one operation; usable from several threads; close it after."""

    def __init__(self, domain: str, auth: AuthConfig | None = None,
                 options: RegistryOptions | None = None, login: bool = False) -> None:
        self.transport = Transport(domain, options)
        self.authorizer = Authorizer(auth, self.transport, login=login)
        self.domain = domain

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    # -- the frame of every call ------------------------------------------------------------
    def ping(self) -> Response:
        """GET /v2/: settle the scheme and learn the challenge. The response is returned
        read (its status tells whether credentials are needed)."""
        resp = self.transport.ping()
        body = resp.body()
        if resp.status == 401:
            self.authorizer.learn(_www_authenticate(resp))
        elif resp.status != 200:
            raise response_error(resp.status, body, _www_authenticate(resp))
        return resp

    def request(self, method: str, url: str, scopes: tuple[str, ...], *,
                headers: dict[str, str] | None = None, body: Body = None,
                ok: tuple[int, ...] = (200,), manifest: bool = False,
                retry: bool | None = None) -> Response:
        """Send with the authorization `scopes` need; a status outside `ok` raises."""
        for attempt in range(2):
            sent = dict(headers or {})
            try:
                value = self.authorizer.header(scopes)
            except AuthenticationFailed as e:
                # the token service refused: Docker names the request it was for
                raise AuthenticationFailed(f'{go_method(method)} "{self.transport.url(url)}": '
                                           f"{e}", status=None, code=e.code) from e
            if value is not None:
                sent["Authorization"] = value
            resp = self.transport.open(method, url, sent, body, retry)
            if resp.status == 401 and attempt == 0 and \
                    self.authorizer.learn(_www_authenticate(resp)) and \
                    not self.authorizer.basic_without_credentials():
                resp.discard()
                continue
            break
        if resp.status in ok:
            return resp
        data = resp.body() if method != "HEAD" else b""
        resp.close()
        if resp.status == 401 and self.authorizer.basic_without_credentials():
            raise AuthenticationFailed(f'{go_method(method)} "{resp.url}": no basic auth '
                                       f"credentials", status=401, code="UNAUTHORIZED")
        raise response_error(resp.status, data, _www_authenticate(resp), manifest=manifest)

    # -- manifests --------------------------------------------------------------------------
    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str | None, str | None]:
        """(bytes, Content-Type, Docker-Content-Digest) of a manifest or index by tag or
        digest."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{reference}", (pull_scope(repo),),
                            headers={"Accept": MANIFEST_ACCEPT}, manifest=True)
        media_type = resp.header("Content-Type")
        digest = resp.header("Docker-Content-Digest")
        return resp.body(MAX_MANIFEST), media_type, digest

    def put_manifest(self, repo: str, tag: str, data: bytes, media_type: str) -> str | None:
        """PUT a manifest; the Docker-Content-Digest the registry answers (None if none)."""
        resp = self.request("PUT", f"/v2/{repo}/manifests/{tag}", (push_scope(repo),),
                            headers={"Content-Type": media_type}, body=data, ok=(201, 200),
                            retry=True)
        resp.discard()
        return resp.header("Docker-Content-Digest")

    # -- blobs ------------------------------------------------------------------------------
    def blob_size(self, repo: str, digest: str, scopes: tuple[str, ...] | None = None) -> int | None:
        """HEAD a blob: its size, or None when the repository does not have it."""
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes or (pull_scope(repo),),
                            ok=(200, 404))
        resp.discard()
        if resp.status == 404:
            return None
        length = resp.header("Content-Length")
        return int(length) if length and length.isdigit() else -1

    def get_blob(self, repo: str, digest: str, offset: int = 0) -> Response:
        """GET a blob (from `offset` on, with Range, when it is not 0): the response is
        200 (the whole blob) or 206 (from `offset`); redirects are followed."""
        headers = {"Range": f"bytes={offset}-"} if offset else None
        return self.request("GET", f"/v2/{repo}/blobs/{digest}", (pull_scope(repo),),
                            headers=headers, ok=(200, 206))

    def mount_blob(self, repo: str, digest: str, source: str) -> str | None:
        """Ask for `digest` to be mounted from the repository `source` of this registry:
        None when it was (201), else the upload URL the registry opened instead (202)."""
        query = f"mount={quote(digest)}&from={quote(source, safe='/')}"
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/?{query}",
                            (push_scope(repo), pull_scope(source)),
                            headers={"Content-Length": "0"}, ok=(201, 202))
        resp.discard()
        if resp.status == 201:
            return None
        return self._location(resp)

    def start_upload(self, repo: str) -> str:
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", (push_scope(repo),),
                            headers={"Content-Length": "0"}, ok=(202,))
        resp.discard()
        return self._location(resp)

    def finish_upload(self, repo: str, location: str, digest: str, body: Body, size: int) -> None:
        """The monolithic PUT of a whole blob to an open upload."""
        sep = "&" if "?" in location else "?"
        resp = self.request("PUT", f"{location}{sep}digest={quote(digest)}", (push_scope(repo),),
                            headers={"Content-Type": "application/octet-stream",
                                     "Content-Length": str(size)},
                            body=body, ok=(201, 204), retry=False)
        resp.discard()

    def _location(self, resp: Response) -> str:
        location = resp.header("Location")
        if not location:
            raise RegistryError(f'{go_method(resp.method)} "{resp.url}": the registry opened '
                                f"an upload but sent no Location", status=resp.status)
        from urllib.parse import urljoin

        return urljoin(resp.url, location)


def _www_authenticate(resp: Response) -> str | None:
    values = resp.headers("WWW-Authenticate")
    return ", ".join(values) if values else None
