"""Group 2, transport floor: one client's sequential save and find, against an echo.

The floor is a bare pyzmq ROUTER in a separate process that sends every
message straight back, asked by a DEALER with a msgpack request of exactly the
size our client sends (captured from a real request, not estimated). The echo
client packs that request and unpacks the echoed bytes on every round trip, as
a minimal msgpack RPC would. Both run over ipc and over tcp on 127.0.0.1, one
request in flight at a time, in this process; the server and the echo each
have their own process. The difference is what the server does per request:
decode, SQL, commit, encode, and the client's conversion of the row.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from collections.abc import Callable, Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, NamedTuple

import msgpack
import zmq
from micro_namedtuple_sqlite_persister import wire
from micro_namedtuple_sqlite_persister.client import RemoteEngine, connect
from micro_namedtuple_sqlite_persister.server.process import ServerProcess

from . import ops
from .common import (
    Progress,
    Result,
    Timings,
    Workload,
    in_turn,
    register_group,
    time_call,
)
from .processes import context, free_tcp_port, ignore_interrupts, running_process

GROUP = "transport"
OURS = "our client + server"
ECHO = "pyzmq ROUTER echo"
SAVE_TARGET_RATIO = 1.3
ECHO_TIMEOUT_MS = 10_000
WARM_UP = -1
READY_TIMEOUT_S = 30.0


class Size(NamedTuple):
    round_trips: int
    warm_up: int
    repetitions: int


FULL = Size(round_trips=3_000, warm_up=500, repetitions=7)
QUICK = Size(round_trips=200, warm_up=20, repetitions=1)

NOTES = f"""
One client in this process makes {FULL.round_trips:,} sequential round trips per
timed run ({QUICK.round_trips} with `--quick`), after {FULL.warm_up} untimed ones.
**{OURS}**: `engine.save(row)` of a new `MyModel` row (synchronous=normal) or
`engine.find(MyModel, id)` of an existing one, through the server in its own
process. **{ECHO}** (the baseline): a DEALER sends a msgpack request of the same
size as ours (packed anew each time) to a ROUTER in another process that returns
it untouched, and unpacks the answer (so the echo carries the request's bytes
back, more than our short reply). Per round trip = median time / round
trips. Frame sizes are measured from the requests our client really sends.
"""


# -- the echo process ---------------------------------------------------------------


def serve_echo(addresses: list[str], ready: Event) -> None:
    """Return every message to its sender until terminated (runs in a child)."""
    ignore_interrupts()
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    for address in addresses:
        router.bind(address)
    ready.set()
    while True:
        router.send_multipart(router.recv_multipart())


class EchoClient:
    """A DEALER that sends one msgpack request and waits for it to come back."""

    def __init__(self, address: str) -> None:
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVTIMEO, ECHO_TIMEOUT_MS)
        self._socket.connect(address)

    def round_trips(self, message: list[Any], count: int) -> Any:
        """Send `message` packed, `count` times in turn; the last answer, unpacked."""
        send, recv = self._socket.send, self._socket.recv
        packb, unpackb = msgpack.packb, msgpack.unpackb
        answer = None
        for _ in range(count):
            send(packb(message, use_bin_type=True))
            answer = unpackb(recv(), raw=False)
        return answer

    def close(self) -> None:
        self._socket.close(linger=0)
        self._context.term()


# -- measuring our real frames --------------------------------------------------------


def capture_request(call: Callable[[], object]) -> bytes:
    """The last request frame our client encodes while running `call`."""
    original = wire.encode_request
    frames: list[bytes] = []

    def spy(*args: Any) -> bytes:
        frame = original(*args)
        frames.append(frame)
        return frame

    wire.encode_request = spy  # type: ignore[assignment]
    try:
        call()
    finally:
        wire.encode_request = original  # type: ignore[assignment]
    return frames[-1]


# -- the run --------------------------------------------------------------------------


class Channel(NamedTuple):
    """One transport: our client and an echo client over it."""

    name: str
    engine: RemoteEngine
    echo: EchoClient


class Addresses(NamedTuple):
    server_ipc: str
    server_tcp: str
    echo_ipc: str
    echo_tcp: str


def make_addresses(directory: str) -> Addresses:
    return Addresses(
        f"ipc://{directory}/server.sock",
        f"tcp://127.0.0.1:{free_tcp_port()}",
        f"ipc://{directory}/echo.sock",
        f"tcp://127.0.0.1:{free_tcp_port()}",
    )


@contextlib.contextmanager
def running_echo(addresses: list[str]) -> Iterator[None]:
    ready = context().Event()
    with running_process(serve_echo, addresses, ready):
        if not ready.wait(READY_TIMEOUT_S):
            raise RuntimeError(
                f"the echo process did not bind within {READY_TIMEOUT_S} s."
            )
        yield


@contextlib.contextmanager
def open_channels(directory: str) -> Iterator[list[Channel]]:
    """Server and echo processes on ipc and tcp, and a client pair for each."""
    addresses = make_addresses(directory)
    database = str(Path(directory) / "transport.db")
    with contextlib.ExitStack() as stack:
        stack.enter_context(running_echo([addresses.echo_ipc, addresses.echo_tcp]))
        stack.enter_context(
            ServerProcess(
                database,
                addresses.server_ipc,
                bind=addresses.server_tcp,
                synchronous="normal",
            )
        )
        channels = []
        for name, ours, echo in (
            ("ipc", addresses.server_ipc, addresses.echo_ipc),
            ("tcp", addresses.server_tcp, addresses.echo_tcp),
        ):
            engine = stack.enter_context(connect(ours, timeout=ops.CLIENT_TIMEOUT_S))
            echo_client = EchoClient(echo)
            stack.callback(echo_client.close)
            channels.append(Channel(name, engine, echo_client))
        channels[0].engine.ensure_table_created(ops.MyModel)
        yield channels


class Probe(NamedTuple):
    """One workload on one channel: our call, and the request the echo repeats."""

    workload: Workload
    ours: Callable[[int], object]
    request: list[Any]


def make_probes(channel: Channel, size: Size) -> list[Probe]:
    """Save and find workloads on `channel`, with their real request frames."""
    engine = channel.engine
    saves = itertools.count()

    def save(count: int) -> object:
        return [engine.save(ops.make_row(0, next(saves))) for _ in range(count)]

    def find(count: int) -> object:
        return [
            engine.find(ops.MyModel, 1 + index % size.warm_up) for index in range(count)
        ]

    save_frame = capture_request(lambda: save(size.warm_up))
    find_frame = capture_request(lambda: find(size.warm_up))
    probes = []
    for op, call, frame in (
        ("save", save, save_frame),
        ("find by id", find, find_frame),
    ):
        name = f"{op} over {channel.name} ({len(frame)} B request)"
        target = SAVE_TARGET_RATIO if (op, channel.name) == ("save", "ipc") else None
        workload = Workload(name, size.round_trips, ECHO, (OURS, ECHO), target, OURS)
        probes.append(Probe(workload, call, msgpack.unpackb(frame, raw=False)))
    return probes


def run_probe(
    probe: Probe,
    channel: Channel,
    repetition: int,
    size: Size,
    timings: Timings | None,
) -> None:
    """Time our client and the echo on one probe, in this repetition's order."""
    calls: dict[str, Callable[[], object]] = {
        OURS: lambda: probe.ours(size.round_trips),
        ECHO: lambda: channel.echo.round_trips(probe.request, size.round_trips),
    }
    for contender in in_turn((OURS, ECHO), repetition):
        seconds, _ = time_call(calls[contender])
        if timings is not None:
            timings.add(probe.workload.name, contender, seconds)


@register_group(
    GROUP,
    "Transport floor: one client through the server against a pyzmq echo",
    NOTES,
    item="round trip",
)
def run_transport(quick: bool, progress: Progress) -> list[Result]:
    """Each probe once untimed, then `size.repetitions` timed, order alternating."""
    size = QUICK if quick else FULL
    timings = Timings(GROUP)
    with tempfile.TemporaryDirectory(prefix="mnsp-bench-") as directory:
        with open_channels(directory) as channels:
            probes = [(p, c) for c in channels for p in make_probes(c, size)]
            progress.reset(total=len(probes) * (size.repetitions + 1))
            for repetition in range(WARM_UP, size.repetitions):
                label = "warm-up" if repetition == WARM_UP else repetition + 1
                progress.set_description(
                    f"transport floor, repetition {label}/{size.repetitions}"
                )
                recorded = None if repetition == WARM_UP else timings
                for probe, channel in probes:
                    run_probe(probe, channel, repetition, size, recorded)
                    progress.update(1)
    return timings.results([probe.workload for probe, _ in probes])
