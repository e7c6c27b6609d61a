"""`login` and `logout`: registry credentials checked by the daemon (POST /auth) and kept in
Docker's config.json, with the docker CLI's prompts, warnings and words.

`login` takes `-u` and `-p` (warned about: the password is visible to other users),
`--password-stdin`, or asks on the terminal; with neither it first tries the credentials
already stored for that server. An identity token the registry hands out is stored instead
of the password. Docker Hub is the default server, kept under its historic key
``https://index.docker.io/v1/``; other servers are kept under their host[:port].
"""

from __future__ import annotations

from skiff.cli.flags import Command, flag, option
from skiff.errors import APIError, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from skiff.cli.main import Context
    from skiff.client.credentials import ConfigFile, Credentials

STORED_WARNING = ("\nWARNING! Your credentials are stored unencrypted in '{path}'.\n"
                  "Configure a credential helper to remove this warning. See\n"
                  "https://docs.docker.com/go/credential-store/\n")
CLI_PASSWORD_WARNING = "WARNING! Using --password via the CLI is insecure. Use --password-stdin."


def _server_key(server: str) -> str:
    from skiff.reference import INDEX_SERVER, server_hostname
    return INDEX_SERVER if server in ("", "docker.io") else server_hostname(server)


def login(ctx: Context, path: str, argv: list[str]) -> int:
    from skiff.client.credentials import Credentials

    cmd = Command(path, "[OPTIONS] [SERVER]", "Authenticate to a registry", [
        option("password", "p", "Password or Personal Access Token (PAT)"),
        flag("password-stdin", "", "Take the Password or Personal Access Token (PAT) from stdin"),
        option("username", "u", "Username"),
    ], (0, 1), long="Authenticate to a registry.\nDefaults to Docker Hub if no server is specified.")
    opts = cmd.parse(argv)
    if opts.password and opts.password_stdin:
        raise SkiffError("conflicting options: cannot specify both --password and --password-stdin")
    username, password = opts.username, opts.password
    if opts.password_stdin:
        if not username:
            raise SkiffError("the --password-stdin option requires --username to be set")
        password = ctx.stdin.read().rstrip("\n").rstrip("\r")
    if opts.password:
        ctx.warn(CLI_PASSWORD_WARNING)
    server = _server_key(opts.args[0] if opts.args else "")
    config = ctx.config()
    if not username and not password:
        stored = config.get(server)
        if stored is not None and (stored.username or stored.identitytoken):
            if _stored_login(ctx, stored):
                ctx.out.write("Login Succeeded\n")
                return 0
    if not username or not password:
        username, password = _prompt(ctx, server, username, config.get(server))
    creds = Credentials(server, username, password)
    answer = ctx.client.post("/auth", json=creds.auth_config()) or {}
    token = answer.get("IdentityToken") or ""
    if token:
        creds = Credentials(server, username, "", token)
    config.put(creds)
    config.save()
    if not config.helper(server):
        ctx.warn(STORED_WARNING.format(path=config.path))
    ctx.out.write("Login Succeeded\n")
    return 0


def _stored_login(ctx: Context, stored: Credentials) -> bool:
    user = f" [Username: {stored.username}]" if stored.username else ""
    ctx.warn(f"Authenticating with existing credentials...{user}\n\n Info -> To login with a "
             "different account, run 'skiff logout' followed by 'skiff login'\n\n")
    try:
        ctx.client.post("/auth", json=stored.auth_config())
    except APIError as exc:
        ctx.warn(f"Login did not succeed, error: {exc}")
        return False
    return True


def _prompt(ctx: Context, server: str, username: str,
            stored: Credentials | None) -> tuple[str, str]:
    stdin = ctx.stdin
    try:
        interactive = stdin.isatty()
    except (AttributeError, ValueError):
        interactive = False
    if not interactive:
        raise SkiffError("Error: Cannot perform an interactive login from a non TTY device")
    if not username:
        default = stored.username if stored else ""
        ctx.out.write(f"Username ({default}): " if default else "Username: ")
        ctx.out.flush()
        username = stdin.readline().strip() or default
        if not username:
            raise SkiffError("Error: Non-null Username Required")
    password = _read_secret(ctx, "Password: ")
    if not password:
        raise SkiffError("Error: Password Required")
    return username, password


def _read_secret(ctx: Context, prompt: str) -> str:
    import termios

    fd = ctx.stdin.fileno()
    ctx.out.write(prompt)
    ctx.out.flush()
    old = termios.tcgetattr(fd)
    quiet = list(old)
    quiet[3] &= ~termios.ECHO
    try:
        termios.tcsetattr(fd, termios.TCSADRAIN, quiet)
        line = ctx.stdin.readline()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
        ctx.out.write("\n")
    return line.rstrip("\n").rstrip("\r")


def logout(ctx: Context, path: str, argv: list[str]) -> int:
    cmd = Command(path, "[SERVER]", "Log out from a registry", [], (0, 1),
                  long="Log out from a registry.\n"
                       "If no server is specified, the default is defined by the daemon.")
    opts = cmd.parse(argv)
    server = _server_key(opts.args[0] if opts.args else "")
    config: ConfigFile = ctx.config()
    ctx.out.write(f"Removing login credentials for {server}\n")
    if config.remove(server):
        config.save()
    return 0
