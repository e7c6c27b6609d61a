"""`run` and `create` (`container run`, `container create`), and the attached start that
`run` and `start -a` share: docker's cli/command/container run.go, create.go and opts.go.

The flags become the body docker sends to ``POST /containers/create`` — Config, HostConfig
and NetworkingConfig, with docker's defaults, its spellings (capabilities as ``CAP_…``,
``NetworkMode: default`` when none is asked for) and its checks, whose failures are usage
errors (exit 125). A missing image is pulled when ``--pull missing`` (the default) allows,
its progress on stderr after ``Unable to find image '…' locally``.

Without ``-d``, `run` does what the docker CLI does, in its order: create; attach (a
hijacked connection, stdout and stderr in stdcopy frames); ``wait`` with condition
``next-exit`` (``removed`` with ``--rm``), whose answer's head comes once the daemon holds
the waiter; start; copy the output until the stream ends; exit with the container's code.
Signals the command gets are passed on to the container (``--sig-proxy``, on by default).
Errors are docker 28's: ``skiff: Error response from daemon: No such image: x``, then
``Run 'skiff run --help' for more information``, exit 125 — or 127 when the start failed because the command was not
found, 126 when it could not be executed, as runStartContainerErr reads the daemon's text.
"""

from __future__ import annotations

import os

from skiff.cli.flags import Command, Flag, flag, option, repeated
from skiff.cli.run_security import apply_flags, security_flags
from skiff.cli.streams import binary, isatty
from skiff.errors import APIError, InvalidArgument, NotFound, SkiffError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, TextIO

    from skiff.cli.flags import Namespace
    from skiff.cli.main import Context
    from skiff.client.api import EngineClient

PULL_CHOICES = ("always", "missing", "never")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
# signals the docker CLI passes on to the container (notifyAllSignals minus those it skips)
_PROXIED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM",
            "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGWINCH")


# -- values, checked as docker's opts check them ------------------------------------------------
def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: ``64m``, ``1.5GiB``, ``512`` (1024-based), as its pattern
    ``^(\\d+(\\.\\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$`` reads them."""
    digits = "0123456789"
    j = 0
    while j < len(text) and text[j] in digits:
        j += 1
    while j and j < len(text) and text[j] == "." and text[j + 1:j + 2] in digits \
            and text[j + 1:j + 2]:
        j += 1
        while j < len(text) and text[j] in digits:
            j += 1
    number, rest = text[:j], text[j:].removeprefix(" ")
    unit = ""
    if rest and rest[0] in "kKmMgGtTpP":
        unit, rest = rest[0].lower(), rest[1:]
    if rest and rest[0] in "iI":
        rest = rest[1:]
    if rest and rest[0] in "bB":
        rest = rest[1:]
    if not number or rest or number.count(".") > 1:
        raise ValueError(f"invalid size: '{text}'")
    return int(float(number) * _UNITS[unit])


def nano_cpus(text: str) -> int:
    """opts.NanoCPUs: a rational number of CPUs, in units of 10^-9 CPU."""
    from fractions import Fraction

    try:
        cpus = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"failed to parse {text} as a rational number") from None
    nanos = cpus * 1_000_000_000
    if nanos.denominator != 1:
        raise ValueError("value is too precise")
    return int(nanos)


def check_env(value: str) -> None:
    if not value.partition("=")[0]:
        raise ValueError(f"invalid environment variable: {value}")


def check_label(value: str) -> None:
    if not value.partition("=")[0].strip():
        raise ValueError(f"invalid label '{value}': empty name")


def check_attach(value: str) -> None:
    if value.lower() not in ("stdin", "stdout", "stderr"):
        raise ValueError("valid streams are STDIN, STDOUT and STDERR")


def _check_mount(value: str) -> None:
    from skiff.cli.mount_flags import parse_mount

    try:
        parse_mount(value)
    except InvalidArgument as e:
        raise ValueError(str(e)) from None


def integer(long: str, short: str, help: str, default: int = 0) -> Flag:
    return Flag(long, short, "int", help, default, "int")


def duration(long: str, help: str) -> Flag:
    """A Go time.Duration flag (its value kept as text, checked)."""
    return Flag(long, "", "string", help, "0s", "duration", check=duration_ns)


def duration_ns(text: str) -> int:
    """Go's time.ParseDuration in nanoseconds; ValueError in pflag's words."""
    from skiff.units import go_duration_seconds

    seconds = go_duration_seconds(text)
    if seconds is None:
        raise ValueError(f'time: invalid duration "{text}"')
    return round(seconds * 1e9)


def restart_policy(text: str) -> dict[str, Any]:
    """The docker CLI's opts.ParseRestartPolicy (the daemon checks the rest)."""
    name, colon, count = text.partition(":")
    if colon and not name:
        raise InvalidArgument("invalid restart policy format: no policy provided before colon")
    maximum = 0
    if count:
        try:
            maximum = int(count)
        except ValueError:
            raise InvalidArgument("invalid restart policy format: maximum retry count must "
                                  "be an integer") from None
    return {"Name": name, "MaximumRetryCount": maximum}


def healthcheck(opts: Namespace) -> dict[str, Any] | None:
    """The docker CLI's health options: Config.Healthcheck, or None when none is given."""
    values = {key: duration_ns(getattr(opts, f"health_{key.lower()}"))
              for key in ("Interval", "Timeout")}
    values["StartPeriod"] = duration_ns(opts.health_start_period)
    for key, flag_name in (("Interval", "interval"), ("Timeout", "timeout"),
                           ("StartPeriod", "start-period")):
        if values[key] < 0:
            raise InvalidArgument(f"--health-{flag_name} cannot be negative")
    if opts.health_retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    given = bool(opts.health_cmd) or opts.health_retries != 0 or any(values.values())
    if opts.no_healthcheck:
        if given:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    test = ["CMD-SHELL", opts.health_cmd] if opts.health_cmd else None
    return {"Test": test, "Interval": values["Interval"], "Timeout": values["Timeout"],
            "StartPeriod": values["StartPeriod"], "Retries": opts.health_retries}


def normalize_capability(cap: str) -> str:
    cap = cap.strip().upper()
    if cap in ("ALL", "RESET") or cap.startswith("CAP_"):
        return cap
    return "CAP_" + cap


def effective_caps(add: list[str], drop: list[str]) -> tuple[list[str] | None,
                                                             list[str] | None]:
    """opts.EffectiveCapAddCapDrop: normalised, ALL trumping the rest, an added capability
    not dropped, sorted; None for an empty list (Go's nil slice)."""
    adds = {normalize_capability(c) for c in add}
    drops = {normalize_capability(c) for c in drop}
    if "ALL" in adds:
        adds = {"ALL"}
    if "ALL" in drops:
        drops = {"ALL"}
    cap_add = sorted(c for c in adds if c != "RESET")
    cap_drop = sorted(c for c in drops if c not in adds and c != "RESET")
    return cap_add or None, cap_drop or None


# -- the flags -------------------------------------------------------------------------------------
def container_flags() -> list[Flag]:
    """The container options `run` and `create` share (docker's AddFlags, the part skiff
    honours so far: the engine refuses what it does not do rather than ignoring it)."""
    return [
        repeated("add-host", "", "Add a custom host-to-IP mapping (host:ip)",
                 check=check_extra_host),
        repeated("attach", "a", "Attach to STDIN, STDOUT or STDERR", check=check_attach),
        repeated("cap-add", "", "Add Linux capabilities"),
        repeated("cap-drop", "", "Drop Linux capabilities"),
        repeated("capsule", "", "Attach a capsule at start: NAME:VERSION[:/TARGET]"),
        option("cidfile", "", "Write the container ID to the file"),
        integer("cpu-shares", "c", "CPU shares (relative weight)"),
        Flag("cpus", "", "string", "Number of CPUs", type_name="decimal", check=nano_cpus),
        repeated("dns", "", "Set custom DNS servers"),
        repeated("dns-option", "", "Set DNS options"),
        Flag("dns-opt", "", "list", "Set DNS options", hidden=True, dest="dns_option"),
        repeated("dns-search", "", "Set custom DNS search domains"),
        option("entrypoint", "", "Overwrite the default ENTRYPOINT of the image"),
        repeated("env", "e", "Set environment variables", check=check_env),
        repeated("env-file", "", "Read in a file of environment variables"),
        repeated("expose", "", "Expose a port or a range of ports"),
        option("health-cmd", "", "Command to run to check health"),
        duration("health-interval", "Time between running the check (ms|s|m|h) (default 0s)"),
        integer("health-retries", "", "Consecutive failures needed to report unhealthy"),
        duration("health-start-period", "Start period for the container to initialize "
                 "before starting health-retries countdown (ms|s|m|h) (default 0s)"),
        duration("health-timeout", "Maximum time to allow one check to run (ms|s|m|h) "
                 "(default 0s)"),
        option("hostname", "h", "Container host name"),
        flag("interactive", "i", "Keep STDIN open even if not attached"),
        option("ip", "", 'IPv4 address (e.g., "172.30.100.104")'),
        repeated("label", "l", "Set meta data on a container", check=check_label),
        repeated("label-file", "", "Read in a line delimited file of labels"),
        option("mac-address", "", 'Container MAC address (e.g., "92:d0:c6:0a:29:33")'),
        Flag("memory", "m", "string", "Memory limit", type_name="bytes", check=ram_in_bytes),
        repeated("mount", "", "Attach a filesystem mount to the container", type_name="mount",
                 check=_check_mount),
        option("network", "", "Connect a container to a network", type_name="network"),
        Flag("net", "", "string", "Connect a container to a network", hidden=True,
             dest="network"),
        Flag("net-alias", "", "list", "Add network-scoped alias for the container",
             hidden=True, dest="network_alias"),
        repeated("network-alias", "", "Add network-scoped alias for the container"),
        integer("pids-limit", "", "Tune container pids limit (set -1 for unlimited)"),
        flag("no-healthcheck", "", "Disable any container-specified HEALTHCHECK"),
        flag("privileged", "", "Give extended privileges to this container"),
        repeated("publish", "p", "Publish a container's port(s) to the host"),
        flag("publish-all", "P", "Publish all exposed ports to random ports"),
        flag("read-only", "", "Mount the container's root filesystem as read only"),
        flag("rm", "", "Automatically remove the container and its associated anonymous "
             "volumes when it exits"),
        option("restart", "", "Restart policy to apply when a container exits", "no"),
        option("stop-signal", "", "Signal to stop the container"),
        repeated("tmpfs", "", "Mount a tmpfs directory"),
        integer("stop-timeout", "", "Timeout (in seconds) to stop a container"),
        flag("tty", "t", "Allocate a pseudo-TTY"),
        option("user", "u", "Username or UID (format: <name|uid>[:<group|gid>])"),
        repeated("volume", "v", "Bind mount a volume"),
        option("volume-driver", "", "Optional volume driver for the container"),
        repeated("volumes-from", "", "Mount volumes from the specified container(s)"),
        option("workdir", "w", "Working directory inside the container"),
        *security_flags(),
    ]


def _common_flags(verb: str) -> list[Flag]:
    return [
        Flag("help", "", "bool", "Print usage"),  # no -h: that is --hostname
        option("name", "", "Assign a name to the container"),
        option("platform", "", "Set platform if server is multi-platform capable"),
        option("pull", "", f'Pull image before {verb} ("always", "missing", "never")',
               "missing"),
        flag("quiet", "q", "Suppress the pull output"),
    ]


def _sorted(flags: list[Flag]) -> list[Flag]:
    return sorted(flags, key=lambda f: f.long)


def _read_kv_file(path: str, env: bool) -> list[str]:
    """opts.ParseEnvFile / the label file: a line a value, ``#`` comments and blank lines
    skipped; an env line without ``=`` takes the variable from this environment if set."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}"
                              ) from None
    out = []
    for number, raw in enumerate(lines, 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if env:
            if not key:
                raise InvalidArgument(f"no variable name on line '{raw}'")
            if any(c.isspace() for c in key):
                raise InvalidArgument(f"variable '{key}' contains whitespaces")
            if not eq:
                found = os.environ.get(key)
                out.append(f"{key}={found}" if found is not None else key)
                continue
        out.append(f"{key}{eq}{value}" if eq else line)
    return out


def _env_value(value: str) -> str:
    key, eq, _ = value.partition("=")
    if not eq and key in os.environ:
        return f"{key}={os.environ[key]}"
    return value


def _labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        labels[key.strip()] = value
    return labels


def _network_mode(value: str) -> str:
    if not value:
        return "default"
    if "=" in value or "," in value:
        raise InvalidArgument(f"--network {value}: the advanced network syntax "
                              "(name=…,alias=…) is not supported by skiff yet")
    return value


def container_body(opts: Namespace, image: str, args: list[str]) -> dict[str, Any]:
    """The ``POST /containers/create`` body the docker CLI would send for these options;
    InvalidArgument or ValueError (docker's words) for options it would refuse."""
    if opts.pull not in PULL_CHOICES and opts.pull != "":
        raise InvalidArgument(f"invalid pull option: '{opts.pull}': must be one of "
                              '"always", "missing" or "never"')
    attach = {a.lower() for a in opts.attach}
    memory = ram_in_bytes(opts.memory) if opts.memory else 0
    cpus = nano_cpus(opts.cpus) if opts.cpus else 0
    env = [v for f in opts.env_file for v in _read_kv_file(f, True)]
    env += [_env_value(v) for v in opts.env]
    labels = [v for f in opts.label_file for v in _read_kv_file(f, False)] + list(opts.label)
    entrypoint: list[str] | None = None
    if opts.entrypoint:
        entrypoint = [opts.entrypoint]
    elif opts.given("entrypoint"):
        entrypoint = [""]  # `--entrypoint=`: the image's is reset
    cap_add, cap_drop = effective_caps(opts.cap_add, opts.cap_drop)
    from skiff.cli.mount_flags import parse_mount, split_volumes, tmpfs_map

    binds, volumes = split_volumes(opts.volume)
    exposed, bindings = _ports(opts)
    config: dict[str, Any] = {
        "Hostname": opts.hostname, "Domainname": "", "User": opts.user,
        "AttachStdin": "stdin" in attach or opts.interactive,
        "AttachStdout": "stdout" in attach or not attach,
        "AttachStderr": "stderr" in attach or not attach,
        "Tty": opts.tty, "OpenStdin": opts.interactive, "StdinOnce": False,
        "Env": env or None, "Cmd": list(args) or None, "Image": image, "Volumes": volumes,
        "WorkingDir": opts.workdir, "Entrypoint": entrypoint, "OnBuild": None,
        "Labels": _labels(labels),
    }
    if exposed:
        config["ExposedPorts"] = exposed
    if opts.given("stop_signal"):
        config["StopSignal"] = opts.stop_signal
    health = healthcheck(opts)
    if health is not None:
        config["Healthcheck"] = health
    policy = restart_policy(opts.restart)
    if opts.rm and policy["Name"] not in ("", "no"):
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
    if opts.given("stop_timeout"):
        config["StopTimeout"] = opts.stop_timeout
    config["StdinOnce"] = config["OpenStdin"] and config["AttachStdin"]
    config["HostConfig"] = {
        "Binds": binds, "ContainerIDFile": opts.cidfile,
        "LogConfig": {"Type": "", "Config": {}}, "NetworkMode": _network_mode(opts.network),
        "PortBindings": bindings, "RestartPolicy": policy,
        "AutoRemove": opts.rm, "VolumeDriver": opts.volume_driver,
        "VolumesFrom": list(opts.volumes_from) or None,
        "ConsoleSize": [0, 0], "CapAdd": cap_add, "CapDrop": cap_drop, "CgroupnsMode": "",
        "Dns": list(opts.dns), "DnsOptions": list(opts.dns_option),
        "DnsSearch": list(opts.dns_search), "ExtraHosts": list(opts.add_host) or None,
        "GroupAdd": None,
        "IpcMode": "", "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "",
        "Privileged": opts.privileged, "PublishAllPorts": opts.publish_all,
        "ReadonlyRootfs": opts.read_only, "SecurityOpt": None, "UTSMode": "",
        "UsernsMode": "", "ShmSize": 0, "Isolation": "", "CpuShares": opts.cpu_shares,
        "Memory": memory, "NanoCpus": cpus, "CgroupParent": "", "BlkioWeight": 0,
        "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0,
        "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
        "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None,
        "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": -1,
        "OomKillDisable": False, "PidsLimit": opts.pids_limit, "Ulimits": [], "CpuCount": 0,
        "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None,
        "ReadonlyPaths": None,
    }
    # omitempty fields of docker's HostConfig: sent only when given
    tmpfs, mounts = tmpfs_map(opts.tmpfs), [parse_mount(m) for m in opts.mount]
    if tmpfs:
        config["HostConfig"]["Tmpfs"] = tmpfs
    if mounts:
        config["HostConfig"]["Mounts"] = mounts
    if opts.capsule:  # skiff's own: attached at start (engine/container_capsules.py)
        config["HostConfig"]["Capsules"] = list(opts.capsule)
    apply_flags(opts, config["HostConfig"])
    if opts.mac_address:
        config["MacAddress"] = opts.mac_address  # API 1.41's place for it
    config["NetworkingConfig"] = {"EndpointsConfig": _endpoints(opts)}
    return config


def _ports(opts: Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """``-p`` and ``--expose`` as the docker CLI sends them: every published port is
    exposed too (ExposedPorts), the bindings by port (PortBindings)."""
    if not (opts.publish or opts.expose):
        return {}, {}
    from skiff.port_specs import parse_expose, parse_publish  # text only: cheap to import

    exposed, bindings = parse_publish(opts.publish)
    for key, value in parse_expose(opts.expose).items():
        exposed.setdefault(key, value)
    return exposed, bindings


def _endpoints(opts: Namespace) -> dict[str, Any]:
    """The docker CLI's parseNetworkOpts for one network: --ip and --network-alias go to
    the endpoint of the network the container joins (moby refuses them on the default)."""
    if not (opts.ip or opts.network_alias):
        return {}
    mode = _network_mode(opts.network)
    if mode in ("default", "host", "none") or mode.startswith("container:"):
        name = "bridge" if mode == "default" else mode
    else:
        name = mode
    settings: dict[str, Any] = {}
    if opts.ip:
        settings["IPAMConfig"] = {"IPv4Address": opts.ip}
    if opts.network_alias:
        settings["Aliases"] = list(opts.network_alias)
    return {name: settings}


def check_extra_host(value: str) -> None:
    """opts.ValidateExtraHost: ``name:address`` (or ``name=address``), address an IP or
    ``host-gateway``."""
    import ipaddress

    name, sep, address = value.replace("=", ":", 1).partition(":") if "=" in value \
        else value.partition(":")
    if not sep or not name:
        raise ValueError(f"bad format for add-host: {value!r}")
    if address != "host-gateway":
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            raise ValueError(f"invalid IP address in add-host: {address!r}") from None


def _parse_container_command(ctx: Context, path: str, argv: list[str], verb: str,
                             extra: list[Flag]) -> Namespace:
    short = ("Create and run a new container from an image" if verb == "run"
             else "Create a new container")
    prog = path.split(" ", 1)[0]
    cmd = Command(path, "[OPTIONS] IMAGE [COMMAND] [ARG...]", short,
                  _sorted(container_flags() + _common_flags(
                      "running" if verb == "run" else "creating") + extra),
                  (1, None), aliases=f"{prog} container {verb}, {prog} {verb}")
    return cmd.parse(argv, interspersed=False)


# -- create, with docker's pull of a missing image ---------------------------------------------
def report(ctx: Context, verb: str, text: str) -> None:
    """docker 28's reportError, as it prints: ``skiff: <message>``, a blank line, and
    where to get help."""
    ctx.err.write(f"skiff: {text}\n\nRun 'skiff {verb} --help' for more information\n")
    ctx.err.flush()


def start_exit_code(message: str) -> int:
    """runStartContainerErr: 127 for a command not found, 126 for one not executable,
    else 125 — read off the daemon's words."""
    text = message.removeprefix("Error response from daemon: ")
    if ("executable file not found" in text or "no such file or directory" in text
            or "system cannot find the file specified" in text):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 125


def _pull(ctx: Context, image: str, opts: Namespace) -> None:
    from skiff.cli.progress import Display
    from skiff.cli.transfer import auth_header
    from skiff.reference import parse_reference

    ref = parse_reference(image).with_default_tag()
    query = {"fromImage": ref.familiar_name, "tag": ref.digest or ref.tag,
             "platform": opts.platform.lower() or None}
    messages = ctx.client.stream("POST", "/images/create", query,
                                 headers=auth_header(ctx, ref))
    if opts.quiet:
        for message in messages:  # errors still end the pull
            Display(_Discard(), False).show(message)  # type: ignore[arg-type]
        return
    terminal = isatty(ctx.err)
    Display(ctx.err, terminal).show_all(messages)


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _named(image: str) -> str | None:
    """The image as a familiar name with its tag, or None when it is an ID (not pulled)."""
    from skiff.errors import ReferenceError_
    from skiff.reference import is_image_id, parse_reference

    if is_image_id(image):
        return None
    try:
        ref = parse_reference(image).with_default_tag()
    except ReferenceError_:
        return None
    return ref.familiar()


def create_container(ctx: Context, opts: Namespace, body: dict[str, Any]) -> str:
    """POST /containers/create (pulling the image first or on a 404, as ``--pull`` says);
    the new container's ID. Warnings go to stderr, the ID to ``--cidfile``."""
    cidfile = opts.cidfile
    if cidfile and os.path.exists(cidfile):
        raise InvalidArgument(f"container ID file found, make sure the other container "
                              f"isn't running or delete {cidfile}")
    # (the reference is parsed only for a pull: its grammar costs `re`, ~5 ms of a run)
    if opts.pull == "always" and _named(body["Image"]) is not None:
        _pull(ctx, body["Image"], opts)
    query = {"name": opts.name or None, "platform": opts.platform or None}
    try:
        answer = ctx.client.post("/containers/create", query, json=body)
    except NotFound:
        named = _named(body["Image"]) if opts.pull in ("missing", "") else None
        if named is None:
            raise
        if not opts.quiet:
            ctx.err.write(f"Unable to find image '{named}' locally\n")
            ctx.err.flush()
        _pull(ctx, body["Image"], opts)
        answer = ctx.client.post("/containers/create", query, json=body)
    for warning in answer.get("Warnings") or []:
        ctx.err.write(f"WARNING: {warning}\n")
    cid = str(answer["Id"])
    if cidfile:
        try:
            with open(cidfile, "x") as f:
                f.write(cid)
        except OSError as exc:
            raise SkiffError(f"failed to write the container ID to the file: {exc}") from None
    return cid


def create(ctx: Context, path: str, argv: list[str]) -> int:
    opts = _parse_container_command(ctx, path, argv, "create", [])
    try:
        body = container_body(opts, opts.args[0], opts.args[1:])
    except (InvalidArgument, ValueError) as exc:
        report(ctx, "create", str(exc))
        return 125
    ctx.out.write(create_container(ctx, opts, body) + "\n")
    return 0


# -- run -----------------------------------------------------------------------------------------
class SignalProxy:
    """While attached: signals this command gets are sent to the container (docker's
    ForwardAllSignals), and the old handlers come back at the end."""

    def __init__(self, client: EngineClient, cid: str) -> None:
        import _signal as signal  # `signal` itself builds its enums: ~1 ms of every run

        self.client, self.cid = client, cid
        self.saved: dict[int, Any] = {}
        for name in _PROXIED:
            number = getattr(signal, name, None)
            if number is None:
                continue
            try:
                self.saved[number] = signal.signal(number, self._forward)
            except (OSError, ValueError):  # not the main thread, or not catchable
                pass

    def _forward(self, number: int, frame: Any) -> None:
        try:
            self.client.open("POST", f"/containers/{self.cid}/kill",
                             {"signal": str(number)}).read()
        except SkiffError:
            pass  # the container is gone already: nothing to pass the signal to

    def restore(self) -> None:
        import _signal as signal

        for number, handler in self.saved.items():
            signal.signal(number, handler)


class Attachment:
    """An attach to `cid` as a `with` block: the hijacked ``POST /containers/{id}/attach``
    stream (its write side closed at once when there is no stdin to send) and the wait for
    `condition` — in the docker CLI's order: `run` and `start` attach first, `attach` waits
    first (`wait_first`) so that an exit during the attach is not missed — and with
    `sig_proxy` the signals this command gets passed on; all let go at the end."""

    def __init__(self, ctx: Context, cid: str, condition: str, *, stdout: bool = True,
                 stderr: bool = True, stdin: bool = False, tty: bool = False,
                 detach_keys: str = "", sig_proxy: bool = False,
                 wait_first: bool = False) -> None:
        self.ctx, self.cid = ctx, cid
        self.stdout, self.stderr, self.stdin, self.tty = stdout, stderr, stdin, tty
        query: dict[str, Any] = {"stream": True, "stdin": stdin, "stdout": stdout,
                                 "stderr": stderr}
        if detach_keys:
            query["detachKeys"] = detach_keys
        calls = [("wait", {"condition": condition}), ("attach", query)]
        opened: dict[str, Any] = {}
        try:
            for what, args in calls if wait_first else reversed(calls):
                opened[what] = ctx.client.open("POST", f"/containers/{cid}/{what}", args,
                                               upgrade=what == "attach")
        except BaseException:
            for response in opened.values():
                response.close()
            raise
        self.stream, self.waiter = opened["attach"], opened["wait"]
        if not stdin:
            self.stream.close_write()
        self.proxy = SignalProxy(ctx.client, cid) if sig_proxy else None

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proxy is not None:
            self.proxy.restore()
        self.stream.close()
        self.waiter.close()

    def copy(self) -> bool:
        """Copy the output here (and with stdin our stdin there; with a TTY raw, the
        terminal raw: `cli.interactive`) until it ends; True when it ended by the detach
        keys: the container still runs (the daemon says nothing on a detach)."""
        from skiff.client import stdcopy

        ctx, stream = self.ctx, self.stream
        out = binary(ctx.out) if self.stdout else None
        err = binary(ctx.err) if self.stderr else None
        if not (self.stdin or self.tty):
            stdcopy.copy(stream.iter_hijacked(), out, err)
            return False
        from skiff.cli.interactive import Session

        with Session(ctx.client, self.cid, stream, stdin=self.stdin, tty=self.tty):
            if self.tty:  # a TTY's output is raw
                raw = binary(ctx.out)
                for data in stream.iter_hijacked():
                    raw.write(data)
                    raw.flush()
            else:
                stdcopy.copy(stream.iter_hijacked(), out, err)
        # the daemon ends an attach at the container's exit only once the exit is recorded
        try:
            state = ctx.client.get(f"/containers/{self.cid}/json").get("State") or {}
        except NotFound:  # --rm: gone with its exit
            return False
        return bool(state.get("Running"))

    def exit_status(self) -> int:
        """The container's exit code from the wait's answer (125 when the wait failed)."""
        from skiff import jsonfast

        answer = jsonfast.loads(self.waiter.read() or b"{}")
        error = answer.get("Error") if isinstance(answer, dict) else None
        if error:
            self.ctx.err.write(f"Error waiting for container: "
                               f"{error.get('Message', error)}\n")
            return 125
        return int(answer.get("StatusCode", 125)) if isinstance(answer, dict) else 125


def attached_start(ctx: Context, verb: str, cid: str, auto_remove: bool, sig_proxy: bool,
                   stdout: bool = True, stderr: bool = True, stdin: bool = False,
                   tty: bool = False, detach_keys: str = "") -> int:
    """Wait (next-exit, or removed), attach, start, copy the output, and return the
    container's exit code — or docker's 125/126/127 when the start failed, or 0 after a
    detach."""
    with Attachment(ctx, cid, "removed" if auto_remove else "next-exit", stdout=stdout,
                    stderr=stderr, stdin=stdin, tty=tty, detach_keys=detach_keys,
                    sig_proxy=sig_proxy) as attached:
        try:
            ctx.client.open("POST", f"/containers/{cid}/start").read()
        except APIError as exc:
            attached.stream.close()
            if auto_remove:
                attached.waiter.read()  # the daemon removes it: wait for that
            report(ctx, verb, str(exc))
            return start_exit_code(str(exc))
        if attached.copy():
            return 0  # detached: it runs on (docker run -it does the same)
        return attached.exit_status()


def run(ctx: Context, path: str, argv: list[str]) -> int:
    opts = _parse_container_command(ctx, path, argv, "run", [
        flag("detach", "d", "Run container in background and print container ID"),
        option("detach-keys", "", "Override the key sequence for detaching a container"),
        Flag("sig-proxy", "", "bool", "Proxy received signals to the process", True),
    ])
    try:
        if opts.detach and opts.attach:
            raise InvalidArgument("Conflicting options: -a and -d")
        body = container_body(opts, opts.args[0], opts.args[1:])
    except (InvalidArgument, ValueError) as exc:
        report(ctx, "run", str(exc))
        return 125
    if opts.detach:
        for key in ("AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce"):
            body[key] = False
    try:
        cid = create_container(ctx, opts, body)
    except SkiffError as exc:
        report(ctx, "run", str(exc))
        return start_exit_code(str(exc))
    stdout, stderr = body["AttachStdout"], body["AttachStderr"]
    if opts.detach or not (stdout or stderr):
        # docker prints the ID as the start goes out: it is there even if the start fails
        ctx.out.write(cid + "\n")
        ctx.out.flush()
        try:
            ctx.client.open("POST", f"/containers/{cid}/start").read()
        except APIError as exc:
            report(ctx, "run", str(exc))
            return start_exit_code(str(exc))
        return 0
    return attached_start(ctx, "run", cid, opts.rm, opts.sig_proxy and not opts.tty, stdout,
                          stderr, stdin=bool(body["AttachStdin"]), tty=bool(opts.tty),
                          detach_keys=opts.detach_keys or "")
