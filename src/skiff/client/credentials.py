"""Registry credentials in Docker's config.json, read and written as the docker CLI does.

The file is ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``, or the
`--config` folder): ``{"auths": {"<server>": {"auth": base64("user:password"),
"identitytoken": …}}}``, Docker Hub's key being ``https://index.docker.io/v1/``. A server
is looked up by its exact key first, then by any key that reduces to the same host (old
files keep ``https://host/v1/`` keys). Every other key of the file, and of each entry, is
kept as it was, so skiff and docker can share one file; it is written to a temporary file
with mode 0600 and renamed over the old one, so a crash never leaves half a file. The
`X-Registry-Auth` header is Docker's too: base64url of the JSON auth config (``e30=``,
``{}``, when there is none). A server with a credential helper (``credHelpers``, else
``credsStore``) has its secrets kept by ``docker-credential-<helper>`` (get/store/erase
over stdin, as docker runs it), and only an empty entry in ``auths``.
"""

from __future__ import annotations

import binascii
import os

from skiff import jsonfast
from skiff.errors import InvalidArgument
from skiff.reference import server_hostname

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Credentials:
    """A user's credentials for one registry."""

    __slots__ = ("server", "username", "password", "identitytoken")

    def __init__(self, server: str, username: str = "", password: str = "",
                 identitytoken: str = "") -> None:
        self.server, self.username, self.password = server, username, password
        self.identitytoken = identitytoken

    def auth_config(self) -> dict[str, str]:
        """The JSON that /auth takes and X-Registry-Auth carries (empty fields omitted)."""
        out = {"username": self.username, "password": self.password,
               "serveraddress": self.server, "identitytoken": self.identitytoken}
        return {k: v for k, v in out.items() if v}

    def __repr__(self) -> str:
        return f"Credentials({self.server!r}, {self.username!r})"


def config_dir(override: str | None = None) -> str:
    if override:
        return override
    env = os.environ.get("DOCKER_CONFIG")
    if env:
        return env
    return os.path.join(os.path.expanduser("~"), ".docker")


def registry_auth(creds: Credentials | None) -> str:
    """The X-Registry-Auth value (base64url of the JSON, padded as Go's URLEncoding)."""
    data = jsonfast.dumps(creds.auth_config() if creds else {}).encode()
    return binascii.b2a_base64(data, newline=False).decode().replace("+", "-").replace("/", "_")


class ConfigFile:
    """config.json, loaded whole; `save` writes it back with unknown keys kept."""

    def __init__(self, directory: str | None = None) -> None:
        self.path = os.path.join(config_dir(directory), "config.json")
        self.data: dict[str, Any] = {}
        try:
            with open(self.path, "rb") as f:
                text = f.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InvalidArgument(f"loading config file {self.path}: {exc.strerror}") from None
        if not text.strip():
            return
        try:
            data = jsonfast.loads(text)
        except ValueError as exc:
            raise InvalidArgument(f"loading config file {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidArgument(f"loading config file {self.path}: not a JSON object")
        self.data = data

    @property
    def auths(self) -> dict[str, Any]:
        auths = self.data.get("auths")
        if not isinstance(auths, dict):
            auths = self.data["auths"] = {}
        return auths

    def _key(self, server: str) -> str | None:
        auths = self.data.get("auths")
        if not isinstance(auths, dict):
            return None
        if server in auths:
            return server
        host = server_hostname(server)
        for key in auths:
            if server_hostname(key) == host:
                return key
        return None

    def helper(self, server: str) -> str | None:
        """The credential helper that keeps `server`'s secrets, if one is configured."""
        helpers = self.data.get("credHelpers")
        if isinstance(helpers, dict):
            host = server_hostname(server)
            for name, helper in helpers.items():
                if name == server or server_hostname(name) == host:
                    return str(helper)
        store = self.data.get("credsStore")
        return str(store) if store else None

    def get(self, server: str) -> Credentials | None:
        """The credentials stored for `server` (a config.json key or a registry host)."""
        helper = self.helper(server)
        if helper:
            return _helper_get(helper, server)
        key = self._key(server)
        if key is None:
            return None
        entry = self.auths[key]
        if not isinstance(entry, dict):
            return None
        username, password = entry.get("username") or "", entry.get("password") or ""
        if entry.get("auth"):
            try:
                decoded = binascii.a2b_base64(entry["auth"]).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, TypeError):
                raise InvalidArgument(f"invalid auth configuration file {self.path}: "
                                      f"bad base64 in the entry for {key}") from None
            username, sep, password = decoded.partition(":")
            if not sep:
                raise InvalidArgument(f"invalid auth configuration file {self.path}: "
                                      f"the entry for {key} holds no user:password")
        token = entry.get("identitytoken") or ""
        if not (username or password or token):
            return None
        return Credentials(server, username, password, token)

    def put(self, creds: Credentials) -> None:
        key = self._key(creds.server) or creds.server
        old = self.auths.get(key)
        entry: dict[str, Any] = dict(old) if isinstance(old, dict) else {}
        for stale in ("username", "password", "identitytoken", "auth"):
            entry.pop(stale, None)
        helper = self.helper(creds.server)
        if helper:
            _helper_store(helper, creds)
        else:
            pair = f"{creds.username}:{creds.password}".encode()
            entry["auth"] = binascii.b2a_base64(pair, newline=False).decode()
            if creds.identitytoken:
                entry["identitytoken"] = creds.identitytoken
        auths = self.auths
        auths[key] = entry
        self.data["auths"] = dict(sorted(auths.items()))  # Go writes a map's keys sorted

    def remove(self, server: str) -> bool:
        """Forget `server` (every key that names its host); True if something was there."""
        auths = self.data.get("auths")
        if not isinstance(auths, dict):
            return False
        helper = self.helper(server)
        if helper:
            _helper_run(helper, "erase", server)
        host = server_hostname(server)
        doomed = [k for k in auths if k == server or server_hostname(k) == host]
        for key in doomed:
            del auths[key]
        return bool(doomed)

    def save(self) -> None:
        target = os.path.realpath(self.path)  # a linked config.json is written where it is
        folder = os.path.dirname(target)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        temp = os.path.join(folder, f".config.json.{os.getpid()}.tmp")
        data = jsonfast.dumps(self.data, indent="\t").encode()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(temp, 0o600)
            os.rename(temp, target)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise


# -- credential helpers (docker-credential-*), as docker/docker-credential-helpers' client -----
_NOT_FOUND = "credentials not found in native keychain"
_TOKEN_USER = "<token>"  # the user name under which a helper keeps an identity token


def _helper_run(helper: str, action: str, data: str) -> str:
    import subprocess

    program = f"docker-credential-{helper}"
    try:
        p = subprocess.run([program, action], input=data.encode(), capture_output=True,
                           timeout=60, check=False)
    except OSError as exc:
        raise InvalidArgument(f"error getting credentials - err: exec: \"{program}\": "
                              f"{exc.strerror}") from None
    out = p.stdout.decode("utf-8", "replace").strip()
    if p.returncode != 0:
        if _NOT_FOUND in out:
            return ""
        raise InvalidArgument(f"error {action} credentials - err: exit status {p.returncode}, "
                              f"out: `{out}`")
    return out


def _helper_get(helper: str, server: str) -> Credentials | None:
    out = _helper_run(helper, "get", server)
    if not out:
        return None
    try:
        doc = jsonfast.loads(out)
    except ValueError:
        raise InvalidArgument(f"docker-credential-{helper} get: not JSON: {out[:80]}") from None
    user, secret = doc.get("Username") or "", doc.get("Secret") or ""
    if user == _TOKEN_USER:
        return Credentials(server, "", "", secret)
    return Credentials(server, user, secret) if (user or secret) else None


def _helper_store(helper: str, creds: Credentials) -> None:
    user, secret = creds.username, creds.password
    if creds.identitytoken:
        user, secret = _TOKEN_USER, creds.identitytoken
    _helper_run(helper, "store", jsonfast.dumps(
        {"ServerURL": creds.server, "Username": user, "Secret": secret}))
