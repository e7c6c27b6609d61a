"""`skiff`: the command, with the docker CLI's syntax, output and exit codes.

This module reads the global options (``-H/--host``, ``--config``, ``-D``, ``-l``,
``-v/--version``), finds the command in one table, and imports only the module that runs
it (`images`, `containers`, `container_ops`, `container_copy`, `run`, `transfer`,
`archive`, `auth`, `system`, `volumes`, `networks`, `capsules`, `capsule_attach`, `events`, `disk`), so
`skiff --version` imports next to nothing and `skiff images` no more than it needs. Management
commands (`skiff image ls`, `skiff container rm`) map onto the same handlers. Exit codes are
docker's: 0, 1 for any error (the daemon's, a wrong argument count), 125 for a malformed
command line (which also prints the usage lines), 130 on Ctrl-C; `run` returns the
container's own code, or 125/126/127 as docker's run does. A handler gets a `Context`: the global options, the
output streams, and an engine client made on first use — which is when skiffd is started
if skiff's own socket has no daemon behind it.
"""

from __future__ import annotations

import os
import sys

from skiff import __version__
from skiff.errors import SkiffError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, TextIO

    from skiff.cli.flags import Command
    from skiff.client.api import EngineClient
    from skiff.client.credentials import ConfigFile

PROG = "skiff"

# name -> (module in skiff.cli, handler, one-line purpose); the order is help's order
COMMON = {
    "run": ("run", "run", "Create and run a new container from an image"),
    "ps": ("containers", "ps", "List containers"),
    "pull": ("transfer", "pull", "Download an image from a registry"),
    "push": ("transfer", "push", "Upload an image to a registry"),
    "images": ("images", "images", "List images"),
    "login": ("auth", "login", "Authenticate to a registry"),
    "logout": ("auth", "logout", "Log out from a registry"),
    "version": ("system", "version", "Show the skiff version information"),
    "info": ("system", "info", "Display system-wide information"),
}
OTHERS = {
    "attach": ("containers", "attach", "Attach local standard input, output, and error streams to a running container"),
    "commit": ("container_ops", "commit", "Create a new image from a container's changes"),
    "cp": ("container_copy", "cp", "Copy files/folders between a container and the local filesystem"),
    "create": ("run", "create", "Create a new container"),
    "diff": ("container_ops", "diff", "Inspect changes to files or directories on a container's filesystem"),
    "events": ("events", "events", "Get real time events from the server"),
    "exec": ("exec", "exec_", "Execute a command in a running container"),
    "export": ("container_ops", "export", "Export a container's filesystem as a tar archive"),
    "history": ("images", "history", "Show the history of an image"),
    "import": ("archive", "import_", "Import the contents from a tarball to create a filesystem image"),
    "inspect": ("images", "inspect", "Return low-level information on Docker objects"),
    "kill": ("containers", "kill", "Kill one or more running containers"),
    "load": ("archive", "load", "Load an image from a tar archive or STDIN"),
    "logs": ("containers", "logs", "Fetch the logs of a container"),
    "pause": ("container_ops", "pause", "Pause all processes within one or more containers"),
    "port": ("container_ops", "port", "List port mappings or a specific mapping for the container"),
    "rename": ("container_ops", "rename", "Rename a container"),
    "restart": ("containers", "restart", "Restart one or more containers"),
    "rm": ("containers", "rm", "Remove one or more containers"),
    "rmi": ("images", "rmi", "Remove one or more images"),
    "save": ("archive", "save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "start": ("containers", "start", "Start one or more stopped containers"),
    "stats": ("container_ops", "stats", "Display a live stream of container(s) resource usage statistics"),
    "stop": ("containers", "stop", "Stop one or more running containers"),
    "tag": ("images", "tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "top": ("container_ops", "top", "Display the running processes of a container"),
    "unpause": ("container_ops", "unpause", "Unpause all processes within one or more containers"),
    "update": ("container_ops", "update", "Update configuration of one or more containers"),
    "wait": ("containers", "wait", "Block until one or more containers stop, then print their exit codes"),
}
CONTAINER = {
    "attach": OTHERS["attach"],
    "commit": OTHERS["commit"],
    "cp": OTHERS["cp"],
    "create": OTHERS["create"],
    "diff": OTHERS["diff"],
    "exec": OTHERS["exec"],
    "export": OTHERS["export"],
    "inspect": ("containers", "container_inspect", "Display detailed information on one or more containers"),
    "kill": OTHERS["kill"],
    "logs": OTHERS["logs"],
    "ls": ("containers", "ps", "List containers"),
    "pause": OTHERS["pause"],
    "port": OTHERS["port"],
    "prune": ("containers", "prune", "Remove all stopped containers"),
    "rename": OTHERS["rename"],
    "restart": OTHERS["restart"],
    "rm": OTHERS["rm"],
    "run": COMMON["run"],
    "start": OTHERS["start"],
    "stats": OTHERS["stats"],
    "stop": OTHERS["stop"],
    "top": OTHERS["top"],
    "unpause": OTHERS["unpause"],
    "update": OTHERS["update"],
    "wait": OTHERS["wait"],
}
IMAGE = {
    "history": OTHERS["history"],
    "import": OTHERS["import"],
    "inspect": ("images", "image_inspect", "Display detailed information on one or more images"),
    "load": OTHERS["load"],
    "ls": ("images", "images", "List images"),
    "prune": ("images", "prune", "Remove unused images"),
    "pull": COMMON["pull"],
    "push": COMMON["push"],
    "rm": ("images", "rmi", "Remove one or more images"),
    "save": OTHERS["save"],
    "tag": OTHERS["tag"],
}
SYSTEM = {
    "df": ("disk", "df", "Show skiff disk usage"),
    "events": OTHERS["events"],
    "info": COMMON["info"],
    "prune": ("disk", "prune", "Remove unused data"),
}
VOLUME = {
    "create": ("volumes", "create", "Create a volume"),
    "inspect": ("volumes", "inspect", "Display detailed information on one or more volumes"),
    "ls": ("volumes", "ls", "List volumes"),
    "prune": ("volumes", "prune", "Remove unused local volumes"),
    "rm": ("volumes", "rm", "Remove one or more volumes"),
}
NETWORK = {
    "connect": ("networks", "connect", "Connect a container to a network"),
    "create": ("networks", "create", "Create a network"),
    "disconnect": ("networks", "disconnect", "Disconnect a container from a network"),
    "inspect": ("networks", "inspect", "Display detailed information on one or more networks"),
    "ls": ("networks", "ls", "List networks"),
    "prune": ("networks", "prune", "Remove all unused networks"),
    "rm": ("networks", "rm", "Remove one or more networks"),
}
# skiff's own: versioned, read-only bundles of files, attached to running containers
CAPSULE = {
    "attach": ("capsule_attach", "attach", "Attach a capsule to a container, live if it runs"),
    "create": ("capsules", "create", "Create a capsule from files, a folder or a tar archive"),
    "detach": ("capsule_attach", "detach", "Detach a capsule from a container"),
    "inspect": ("capsules", "inspect", "Display detailed information on one or more capsules"),
    "ls": ("capsules", "ls", "List capsules"),
    "prune": ("capsules", "prune", "Remove unused capsules"),
    "pull": ("capsules", "pull", "Pull a capsule from a registry"),
    "push": ("capsules", "push", "Push a capsule to a registry as an OCI artifact"),
    "rm": ("capsules", "rm", "Remove one or more capsules"),
}
GROUPS = {
    "capsule": ("Manage capsules (versioned, read-only bundles of files)", CAPSULE,
                {"list": "ls", "remove": "rm"}),
    "container": ("Manage containers", CONTAINER, {"list": "ls", "ps": "ls", "remove": "rm"}),
    "image": ("Manage images", IMAGE, {"list": "ls", "remove": "rm"}),
    "network": ("Manage networks", NETWORK, {"list": "ls", "remove": "rm"}),
    "system": ("Manage skiff", SYSTEM, {}),
    "volume": ("Manage volumes", VOLUME, {"list": "ls", "remove": "rm"}),
}


class Context:
    """What every handler gets: the global options, the streams, the client (lazily)."""

    def __init__(self, hosts: list[str] | None = None, config_dir: str | None = None,
                 debug: bool = False, out: TextIO | None = None, err: TextIO | None = None,
                 stdin: TextIO | None = None) -> None:
        self.hosts = hosts or []
        self.config_dir = config_dir
        self.debug = debug
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.stdin = stdin or sys.stdin
        self._client: EngineClient | None = None

    @property
    def client(self) -> EngineClient:
        if self._client is None:
            from skiff.client.connect import connect
            self._client = connect(self.hosts)
        return self._client

    def config(self) -> ConfigFile:
        from skiff.client.credentials import ConfigFile
        return ConfigFile(self.config_dir)

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")


def _root_command() -> Command:
    from skiff.cli.flags import Command, flag, option, repeated
    home = os.path.join(os.path.expanduser("~"), ".docker")
    return Command(PROG, "[OPTIONS] COMMAND [ARG...]", "A Docker-compatible container engine", [
        option("config", "", "Location of client config files", home),
        flag("debug", "D", "Enable debug mode"),
        repeated("host", "H", "Daemon socket to connect to"),
        option("log-level", "l", 'Set the logging level ("debug", "info", "warn", "error", '
               '"fatal")', "info"),
        flag("version", "v", "Print version information and quit"),
    ], nargs=(0, None))


def root_help(root: Command) -> str:
    from skiff.cli.flags import flag_usages

    from skiff.cli.flags import NAME_PADDING

    names = list(COMMON) + list(OTHERS) + list(GROUPS)
    pad = max([NAME_PADDING] + [len(n) for n in names])

    def block(title: str, table: dict[str, str]) -> list[str]:
        return ["", f"{title}:"] + [f"  {name.ljust(pad)} {short}" for name, short in table.items()]

    out = [f"Usage:  {PROG} [OPTIONS] COMMAND", "", root.short]
    out += block("Common Commands", {n: v[2] for n, v in COMMON.items()})
    out += block("Management Commands", {n: g[0] for n, g in GROUPS.items()})
    out += block("Commands", {n: v[2] for n, v in OTHERS.items()})
    out += ["", "Global Options:", flag_usages([f for f in root.flags if not f.hidden]), "",
            f"Run '{PROG} COMMAND --help' for more information on a command.", ""]
    return "\n".join(out)


def group_help(name: str) -> str:
    from skiff.cli.flags import NAME_PADDING

    about, table, _ = GROUPS[name]
    pad = max([NAME_PADDING] + [len(n) for n in table])
    lines = [f"Usage:  {PROG} {name} COMMAND", "", about, "", "Commands:"]
    lines += [f"  {n.ljust(pad)} {table[n][2]}" for n in table]
    lines += ["", f"Run '{PROG} {name} COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)


def _handler(entry: tuple[str, str, str]) -> Callable[[Context, str, list[str]], int]:
    # __import__, not importlib: the importlib package costs half a millisecond to import
    module = __import__(f"skiff.cli.{entry[0]}", fromlist=[entry[1]])
    return getattr(module, entry[1])  # type: ignore[no-any-return]


def run(argv: list[str], ctx: Context | None = None) -> int:
    """Run one command line (without the program name); its exit code. Errors are
    written to the context's stderr as docker writes them."""
    root = _root_command()
    context = ctx or Context()
    try:
        try:
            opts = root.parse(argv, interspersed=False)
        except UsageError as exc:
            if exc.help:
                context.out.write(root_help(root))
                return 0
            raise
        if opts.version:
            context.out.write(f"{PROG} version {__version__}\n")
            return 0
        context.hosts = opts.host
        if opts.given("config"):
            context.config_dir = opts.config
        context.debug = opts.debug
        args = opts.args
        if not args:
            context.out.write(root_help(root))
            return 0
        name, rest = args[0], args[1:]
        if name == "help":
            return _help(context, root, rest)
        if name in GROUPS:
            _, table, aliases = GROUPS[name]
            if not rest or rest[0] in ("-h", "--help"):
                context.out.write(group_help(name))
                return 0
            sub = aliases.get(rest[0], rest[0])
            if sub not in table:
                raise SkiffError(f"{PROG}: unknown command: {PROG} {name} {rest[0]}\n\n"
                                 f"Usage:  {PROG} {name}\n\n"
                                 f"Run '{PROG} {name} --help' for more information")
            return _handler(table[sub])(context, f"{PROG} {name} {rest[0]}", rest[1:])
        entry = COMMON.get(name) or OTHERS.get(name)
        if entry is None:
            raise SkiffError(f"{PROG}: unknown command: {PROG} {name}\n\n"
                             f"Run '{PROG} --help' for more information")
        return _handler(entry)(context, f"{PROG} {name}", rest)
    except UsageError as exc:
        if exc.help:
            context.out.write(str(exc))
            return 0
        context.err.write(f"{exc}\n")
        return 125
    except SkiffError as exc:
        text = str(exc)
        if text:
            context.err.write(text + "\n")
        return 1
    except KeyboardInterrupt:
        return 130


def _help(context: Context, root: Command, rest: list[str]) -> int:
    if not rest:
        context.out.write(root_help(root))
        return 0
    if rest[0] in GROUPS and len(rest) == 1:
        context.out.write(group_help(rest[0]))
        return 0
    return run(rest + ["--help"], context)


def entry() -> None:
    try:
        code = run(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (`skiff images | head -1`): nothing more to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141
    except OSError as exc:
        sys.stderr.write(f"{exc.strerror or exc}: {exc.filename}\n" if exc.filename else f"{exc}\n")
        code = 1
    try:
        sys.stderr.flush()
    except OSError:
        pass
    # all is said and every file a command wrote is closed: the interpreter's teardown of
    # each module and object would only add ~2 ms to every command (docker's exits at once)
    os._exit(code)
