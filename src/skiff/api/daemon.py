"""`skiffd`: the daemon that holds the engine and serves the Docker Engine API.

It listens where ``-H`` says (``unix:///path`` or ``tcp://host:port``, repeatable; by default
``unix://$SKIFF_RUN/skiff.sock``), on an engine rooted at ``--root`` (SKIFF_ROOT) with its
run-time state under ``--exec-root`` (SKIFF_RUN). A unix socket is made with mode 0660 (its
folders made first); a socket file nobody answers on is stale and replaced, but one another
skiffd answers on makes this one refuse to start, as does a pid file naming a live process.
SIGTERM and SIGINT stop it cleanly: listeners closed, socket files and pid file removed.
Its umask is 022 whatever its caller's, as dockerd's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from aiohttp import web

import skiff
from skiff.errors import SkiffError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

_log = logging.getLogger("skiff.skiffd")
DEFAULT_ROOT = "/var/lib/skiff"
DEFAULT_RUN = "/run/skiff"
SOCKET_NAME = "skiff.sock"
PID_NAME = "skiffd.pid"
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiffd", description="skiff's daemon: the Docker "
                                "Engine API on a unix socket (or TCP), over skiff's engine")
    p.add_argument("-H", "--host", action="append", default=[], metavar="HOST",
                   help="where to listen: unix:///path or tcp://127.0.0.1:PORT (repeatable; "
                        "default unix://$SKIFF_RUN/skiff.sock)")
    p.add_argument("--root", help="persistent state (default $SKIFF_ROOT or /var/lib/skiff)")
    p.add_argument("--exec-root", help="run-time state (default $SKIFF_RUN or /run/skiff)")
    p.add_argument("--insecure-registry", action="append", default=[], metavar="REGISTRY",
                   help="a registry (host[:port] or CIDR) to reach without TLS verification")
    p.add_argument("--pidfile", help="pid file (default $SKIFF_RUN/skiffd.pid)")
    p.add_argument("--cgroup-parent", default="/skiff", metavar="PATH",
                   help="the cgroup every container's goes below, from the hierarchy's root "
                        "(default /skiff; a container's --cgroup-parent wins)")
    p.add_argument("--userns-remap", default="", metavar="USER[:GROUP]",
                   help="user namespace remapping: 'default' (the user dockremap) or a user "
                        "with ranges in /etc/subuid and /etc/subgid")
    p.add_argument("-b", "--bridge", default=os.environ.get("SKIFF_BRIDGE", ""), metavar="NAME",
                   help="the default bridge network's Linux bridge (default $SKIFF_BRIDGE or "
                        "skiff0)")
    p.add_argument("--bip", default=os.environ.get("SKIFF_BRIDGE_SUBNET", ""), metavar="CIDR",
                   help="the default bridge network's subnet, its gateway the first address "
                        "(default $SKIFF_BRIDGE_SUBNET or 172.29.0.0/16)")
    p.add_argument("--dns-upstream", action="append", metavar="ADDR[:PORT]",
                   help="where the embedded DNS server of user networks forwards the names "
                        "it does not know, for containers without --dns (repeatable; "
                        "default $SKIFF_DNS_UPSTREAM, comma-separated, or the host's "
                        "resolv.conf; 'none': nowhere)")
    p.add_argument("-l", "--log-level", default="info", choices=sorted(_LEVELS),
                   help="log level (default info)")
    p.add_argument("-D", "--debug", action="store_true", help="debug mode (log level debug)")
    p.add_argument("-v", "--version", action="version",
                   version=f"skiffd version {skiff.__version__}")
    return p.parse_args(list(argv))


class Listener:
    """One ``-H`` address: its kind and where."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        if spec.startswith("unix://"):
            self.kind, self.path = "unix", spec[len("unix://"):]
            if not self.path.startswith("/"):
                raise UsageError(f"-H {spec}: a unix socket needs an absolute path")
        elif spec.startswith("tcp://"):
            host, _, port = spec[len("tcp://"):].rstrip("/").rpartition(":")
            if not port.isdigit():
                raise UsageError(f"-H {spec}: expected tcp://HOST:PORT")
            self.kind, self.host, self.port = "tcp", host.strip("[]") or "127.0.0.1", int(port)
        else:
            raise UsageError(f"-H {spec}: expected unix:///path or tcp://HOST:PORT")


def answers(path: str) -> bool:
    """Whether something accepts connections on the unix socket `path`."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
    except OSError:
        return False
    finally:
        s.close()
    return True


def bind_unix(path: str) -> socket.socket:
    """A listening socket at `path`, mode 0660 from the start; a stale file is replaced,
    a live one refused."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    if os.path.lexists(path):
        if answers(path):
            raise SkiffError(f"another daemon is already serving on {path}")
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)
    try:
        s.bind(path)
    except OSError as e:
        s.close()
        raise SkiffError(f"bind {path}: {e.strerror}") from e
    finally:
        os.umask(old)
    os.chmod(path, 0o660)
    s.listen(128)
    return s


def write_pidfile(path: str) -> None:
    try:
        with open(path) as f:
            old = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        old = 0
    if old and old != os.getpid() and _alive(old):
        raise SkiffError(f"pid file {path} names process {old}, which is running: is "
                         f"another skiffd using it? (stop it, or remove the file)")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def serve(args: argparse.Namespace) -> None:
    from skiff.api.server import ApiServer
    from skiff.engine import Engine, EngineOptions

    root = os.path.abspath(args.root or os.environ.get("SKIFF_ROOT") or DEFAULT_ROOT)
    run = os.path.abspath(args.exec_root or os.environ.get("SKIFF_RUN") or DEFAULT_RUN)
    listeners = [Listener(h) for h in args.host] or [
        Listener(f"unix://{os.path.join(run, SOCKET_NAME)}")]
    pidfile = os.path.abspath(args.pidfile or os.path.join(run, PID_NAME))
    options = EngineOptions(insecure_registries=tuple(args.insecure_registry),
                            debug=args.debug or args.log_level == "debug",
                            userns_remap=args.userns_remap,
                            cgroup_parent=_cgroup_parent(args.cgroup_parent),
                            bridge_name=args.bridge, bridge_subnet=args.bip,
                            dns_upstreams=_dns_upstreams(args.dns_upstream))
    # a signal during start-up must still clean up: take them over first
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # the sockets next: a second daemon must stop here, before it touches anything
    sockets: list[tuple[Listener, socket.socket]] = []
    made: list[str] = []
    try:
        for listener in listeners:
            if listener.kind == "unix":
                sockets.append((listener, bind_unix(listener.path)))
                made.append(listener.path)
        write_pidfile(pidfile)
        engine = Engine(root, run, options)
        await loop.run_in_executor(None, engine.start)
        engine.containers.monitors.warm()  # the monitors' zygote loads while we start serving
        server = ApiServer(engine)
        # a stop waits this long for answers still streaming (a pull), then closes them
        runner = web.AppRunner(server.app, access_log=None, handle_signals=False,
                               shutdown_timeout=10.0)
        await runner.setup()
        try:
            for listener, sock in sockets:
                await web.SockSite(runner, sock).start()
            for listener in listeners:
                if listener.kind == "tcp":
                    if listener.host not in ("127.0.0.1", "::1", "localhost"):
                        _log.warning("listening on %s without TLS: anyone who reaches it "
                                     "controls this host", listener.spec)
                    await web.TCPSite(runner, listener.host, listener.port).start()
            _log.info("skiffd %s serving the Docker Engine API on %s (root %s)",
                      skiff.__version__, ", ".join(lst.spec for lst in listeners), root)
            await stop.wait()
            _log.info("skiffd stopping")
        finally:
            await runner.cleanup()
            engine.close()  # the containers go on; the monitors' zygote ends
    finally:
        for _, sock in sockets:
            sock.close()
        for path in made:
            _remove(path)
        if os.path.exists(pidfile):
            try:
                with open(pidfile) as f:
                    mine = f.read().strip() == str(os.getpid())
            except OSError:
                mine = False
            if mine:
                _remove(pidfile)


def _dns_upstreams(given: list[str] | None) -> tuple[str, ...]:
    """--dns-upstream's values, else $SKIFF_DNS_UPSTREAM's (the flag wins, as for
    --bridge), checked before anything is made."""
    from skiff.engine.network_dns import parse_upstreams

    values = tuple(given) if given else tuple(
        v.strip() for v in os.environ.get("SKIFF_DNS_UPSTREAM", "").split(",") if v.strip())
    parse_upstreams(values)
    return values


def _cgroup_parent(text: str) -> str:
    """dockerd's --cgroup-parent for the cgroupfs driver: a path, taken from the hierarchy's
    root whether or not it starts with / (skiff never nests below its caller's cgroup)."""
    parts = [p for p in text.split("/") if p]
    if not parts or ".." in parts:
        raise SkiffError(f"invalid --cgroup-parent {text!r}: a path below the cgroup root")
    return "/" + "/".join(parts)


def entry(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    level = logging.DEBUG if args.debug else _LEVELS[args.log_level]
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level > logging.DEBUG:
        logging.getLogger("aiohttp").setLevel(logging.WARNING)
    # an answer goes from a worker thread to the event loop's: with the default 5 ms
    # interval, each hand-off of the GIL to a thread woken while another runs (a removal
    # deleting a tree) may wait that long, and a run --rm's last answer took up to 15 ms
    sys.setswitchinterval(0.0005)
    # dockerd's setDefaultUmask: the folders skiffd makes get their modes whatever its
    # caller's umask (under 077 a remapped root could not enter its own containers' rootfs)
    os.umask(0o022)
    try:
        asyncio.run(serve(args))
    except (SkiffError, OSError) as e:
        print(f"skiffd: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
