"""``POST /containers/{id}/attach`` and ``POST /containers/{id}/resize``, as dockerd serves
them.

An attach hijacks the connection (`api.hijack`) and streams the container's output from
its json-file log — raw with a TTY, in stdcopy frames without — as long as the container
runs (``logs=1``: what it wrote before, too). With ``stdin=1``, and a container made with
``-i`` (OpenStdin; without it the client's input is ignored, as dockerd does), what the
client sends goes to the monitor's attach socket (`monitor.control` frames) and so to the
container's stdin — from its first byte, even when the attach comes before the start
(``docker run`` attaches, then starts): the input waits for the run to begin. How the
input ends decides the attach's end, by moby's rules (container/stream/attach.go):

- the detach keys (``detachKeys``, else the container's Config.DetachKeys, else ctrl-p,
  ctrl-q; watched only with a TTY) end the stream at once, nothing more is sent, and the
  container goes on (event ``detach``);
- an end of input (EOF, or the client gone) of a StdinOnce container without a TTY closes
  the container's stdin, and the output goes on until the container ends (``docker run -i``
  with a pipe); any other end of input ends the stream.

Events: ``attach`` once the stream is set up, ``detach`` when the keys or the client ended
it, ``resize`` with ``height`` and ``width`` (`engine.attach`).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from skiff.api.detach_keys import DetachScanner, parse
from skiff.api.hijack import STDERR, STDOUT, Hijacked, OutputPump, frame, stream_media_type
from skiff.engine import attach as engine_attach
from skiff.engine.monitor import control
from skiff.errors import ContainerConflict, InvalidArgument
from skiff.log import logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from skiff.api.server import Call
    from skiff.engine.attach import AttachTarget
    from skiff.engine.containers import ContainerService

_log = logger("skiff.api.attach")
_RUN_POLL = 0.01  # how often an attach to a container that does not run looks for its run
_HEAD_ALONE = 0.01  # how long an attach's head goes ahead of output that is ready at once
_GONE = ConnectionError


def _run_began(state: dict[str, object], before: str) -> bool:
    """Whether a run began since the attach saw StartedAt `before` (a quick one may be over
    already: its start time tells)."""
    return bool(state.get("Running")) or state.get("StartedAt") != before


async def attach(call: Call) -> web.StreamResponse:
    stdout, stderr = call.flag("stdout"), call.flag("stderr")
    replay, stream = call.flag("logs"), call.flag("stream")
    containers = call.engine.containers
    target = await call.run(engine_attach.attach_target, containers, call.params["name"])
    keys = parse(call.query("detachKeys") or target.detach_keys)  # a 400 before the hijack
    if target.status == "paused":
        raise ContainerConflict(f"container {call.params['name']} is paused, unpause the "
                                "container before attach")
    takes_input = call.flag("stdin") and target.open_stdin and stream
    hijacked = Hijacked.open(call, stream_media_type(call.version, not target.tty),
                             takes_input=takes_input)
    if replay or target.running:
        # output may be ready at once; docker-py reads the hijacked socket from under
        # http.client's buffer, so frames sent right behind the head could be read into that
        # buffer with it and lost: let the head go alone first (the docker CLI keeps them)
        await asyncio.sleep(_HEAD_ALONE)
    await call.run(engine_attach.emit, containers, target.id, "attach")
    tasks: set[asyncio.Future[str]] = set()
    if (stdout or stderr) and (replay or stream):
        tasks.add(asyncio.ensure_future(_send_output(call, containers, target, hijacked,
                                                     stdout, stderr, replay, stream)))
    input_task = None
    if takes_input:
        scanner = DetachScanner(keys) if target.tty else None
        input_task = asyncio.ensure_future(_feed_stdin(call, target, hijacked, scanner))
        tasks.add(input_task)
    end = ""
    while tasks:
        done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if input_task in done:
            end = input_task.result()
            if end != "detached" and target.stdin_once and not target.tty:
                continue  # stdin is closed; the output goes on to the container's end
        break  # the output ended, or the input ended the stream
    for task in tasks:
        task.cancel()
    if end == "detached":  # moby tells it for the keys only, not for a client gone away
        await call.run(engine_attach.emit, containers, target.id, "detach")
    hijacked.close()
    return hijacked.response


async def _send_output(call: Call, containers: ContainerService, target: AttachTarget,
                       hijacked: Hijacked, stdout: bool, stderr: bool, replay: bool,
                       stream: bool) -> str:
    source = _output_source(containers, target, hijacked, stdout=stdout, stderr=stderr,
                            replay=replay, stream=stream)
    pump = OutputPump(source, name="skiffd-attach", closing=call.server.closing)
    try:
        async for kind, data in pump:
            if target.tty:
                await hijacked.write(data)
            elif (kind == STDOUT and stdout) or (kind == STDERR and stderr):
                await hijacked.write(frame(kind, data))
    except _GONE:
        _log.debug("attach %s: the client went away", target.id)
    finally:
        pump.stop()  # (also when cancelled: the input ended the stream)
    if pump.error is not None:
        _log.debug("attach %s: %s", target.id, pump.error)
    return "output"


def _output_source(containers: ContainerService, target: AttachTarget, hijacked: Hijacked,
                   *, stdout: bool, stderr: bool, replay: bool,
                   stream: bool) -> Callable[[], Iterable[tuple[int, bytes]]]:
    """What an attach streams, from the moment it was made: a running container's output
    from now on (``logs=1``: all it wrote before, too); a created container's from its
    first run; a stopped one's from its next run (`docker start -a` attaches, then starts),
    which the engine's followed log does not wait for — so wait here for the run to begin
    (or the client to leave), then take the log since the attach."""
    since = ""
    tail = "all" if replay or target.status == "created" else "0"
    waits = stream and not replay and target.status not in ("created", "running")
    if stream and not replay and target.status != "created":
        # from the attach's moment, not from wherever the log ends once the follower has
        # opened it: what the attach's own stdin makes the container print comes in between
        moment = time.time()
        since, tail = f"{int(moment)}.{int(moment % 1 * 1e9):09d}", "all"

    def source() -> Iterable[tuple[int, bytes]]:
        if waits:
            while not hijacked.gone:
                if _run_began(containers.inspect(target.id).get("State") or {},
                              target.started_at):
                    break
                time.sleep(_RUN_POLL)
            else:
                return ()
        # with a TTY everything is stdout: a client asking for either gets it
        return containers.logs(target.id, stdout=stdout or target.tty, stderr=stderr,
                               follow=stream, since=since, until="", timestamps=False,
                               tail=tail)
    return source


async def _feed_stdin(call: Call, target: AttachTarget, hijacked: Hijacked,
                      scanner: DetachScanner | None) -> str:
    """The client's input to the container's stdin, through its monitor; how it ended
    ("eof", "gone", "detached"). Before a run the input waits (held back by TCP) until it
    begins; what comes after the run is over goes nowhere."""
    containers = call.engine.containers
    while not target.running and not hijacked.gone:
        state = (await call.run(containers.inspect, target.id)).get("State") or {}
        if _run_began(state, target.started_at):
            break
        await asyncio.sleep(_RUN_POLL)
    writer: asyncio.StreamWriter | None = None
    try:
        with engine_attach.reachable(target.socket) as name:
            _, writer = await asyncio.open_unix_connection(name)
    except OSError as e:
        _log.debug("attach %s: no monitor to take stdin (%s)", target.id, e)

    async def write(data: bytes) -> None:
        nonlocal writer
        if writer is None:
            return
        try:
            for at in range(0, len(data), 1 << 16):
                writer.write(control.stdin(data[at:at + (1 << 16)]))
            await writer.drain()  # a container that does not read holds the client back
        except OSError:
            writer = None  # the run is over: the rest of the input goes nowhere

    try:
        end = await hijacked.copy_input(write, scanner)
        if writer is not None and end != "detached" and target.stdin_once and not target.tty:
            try:
                writer.write(control.close())
                await writer.drain()
            except OSError:
                pass
        return end
    finally:
        if writer is not None:
            writer.close()


def _size_query(call: Call, name: str) -> int:
    text = call.query(name)
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f'strconv.Atoi: parsing "{text}": invalid syntax') from None


async def resize(call: Call) -> web.Response:
    height, width = _size_query(call, "h"), _size_query(call, "w")
    if not (0 <= height < 1 << 16 and 0 <= width < 1 << 16):
        raise InvalidArgument(f"invalid terminal size: {height}x{width}")
    await call.run(engine_attach.resize, call.engine.containers, call.params["name"],
                   height, width)
    return web.Response(status=200)
