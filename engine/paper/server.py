"""The paper exchange as a process: ``trading-desk exchange``, a websocket JSON server on loopback.

It hosts the same venue the in-process adapter uses (``PaperBroker``: ExchangeCore + state file +
ticker), so both sides share one matching core and one persistence path. Every event the venue
commits gets the sequence number of its row in the state file's append-only log; that number is
global and durable, so a client that reconnects (or an exchange that restarts) resumes with
``subscribe after_seq=N``: the server replays from its log, then streams live.

Faults (seeded, see ``engine.paper.faults``): live delivery to each connection goes through its
own ``DeliveryPlan`` (duplicates, delay, reordering); a connection is dropped after a seeded
lifetime (``disconnect_every_ms``) and whatever it had not yet been sent is lost until the client
replays; an accepted order's reply may be withheld (lost ack); a place may be refused outright
(random reject, in the venue); the exchange clock is skewed and jumps forward.

Bad input (malformed JSON, unknown type, bad fields, unknown symbol, oversized message) gets an
error reply on that connection and a log line; nothing is changed and every other client is
served as before. See docs/EXCHANGE_PROTOCOL.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiosqlite
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from engine.broker.paper import PaperBroker
from engine.core.events import Ambiguous, BrokerEvent, Rejected, event_to_dict
from engine.core.instruments import Instrument
from engine.paper import protocol as proto
from engine.paper.exchange import UnknownOrder
from engine.paper.faults import DeliveryPlan, FaultProfile, FaultStats

log = logging.getLogger(__name__)

# The transport refuses frames above this outright (close code 1009); between MAX_MESSAGE_BYTES
# and this, the client gets a TOO_LARGE error reply and the connection stays up.
TRANSPORT_MAX_BYTES = 1024 * 1024
# A connection whose unsent backlog grows past this is dropped; its client replays from the log.
MAX_OUTBOX = 20_000
REPLAY_CHUNK = 1000
DISCONNECT_CODE = 4001  # application close code: fault injection


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclasses.dataclass
class ServerStats:
    connections: int = 0
    injected_disconnects: int = 0
    acks_lost: int = 0
    bad_messages: int = 0
    replayed: int = 0


Logged = tuple[int, dict[str, Any]]  # (seq, event as a dict)


class _Connection:
    """One client: an outbox drained by one writer task, and live events through its fault plan."""

    def __init__(self, ws: ServerConnection, number: int, profile: FaultProfile) -> None:
        self.ws = ws
        self.number = number
        # Each connection suffers its own, reproducible faults: seeded by profile seed and number.
        self.plan: DeliveryPlan[Logged] = DeliveryPlan(dataclasses.replace(profile, seed=profile.seed * 7919 + number))
        self.outbox: asyncio.Queue[str] = asyncio.Queue()
        self.live = False  # subscribed: committed events are offered to ``plan``
        self.held: list[Logged] | None = None  # live events held back while a replay is queued
        self.wake = asyncio.Event()

    def send(self, message: Mapping[str, Any]) -> None:
        if self.outbox.qsize() >= MAX_OUTBOX:
            raise OverflowError("client is not reading its messages")
        self.outbox.put_nowait(proto.encode(message))

    def offer(self, logged: Logged, now_ms: int) -> None:
        if self.held is not None:
            self.held.append(logged)
            return
        self.plan.offer(logged, now_ms)
        self.wake.set()


class ExchangeServer:
    """Create with ``await ExchangeServer.open(...)``, then ``await start()``; ``close()`` saves."""

    def __init__(
        self,
        venue: PaperBroker,
        reader: aiosqlite.Connection,
        head_seq: int,
        profile: FaultProfile,
        symbols: Mapping[str, Instrument],
        clock: Callable[[], int],
    ) -> None:
        self.venue = venue
        self.profile = profile
        self.head_seq = head_seq
        self.stats = ServerStats()
        self._reader = reader
        self._symbols = symbols
        self._clock = clock
        self._decisions = random.Random(f"server:{profile.seed}")
        self._lifetimes = random.Random(f"lifetimes:{profile.seed}")
        self._connections: set[_Connection] = set()
        self._closed_plans: list[FaultStats] = []
        self._numbers = 0
        self._server: Server | None = None
        self._closed = False
        venue.add_commit_listener(self._on_commit)

    @classmethod
    async def open(
        cls,
        state_path: Path,
        catalog: Mapping[str, Instrument],
        profile: FaultProfile,
        *,
        seed: int = 1,
        tick_interval_ms: int = 50,
    ) -> ExchangeServer:
        """Open (or resume) the exchange on ``state_path``. Raises PaperStateError naming the file."""
        started_ms = _wall_ms()

        def clock() -> int:
            now = _wall_ms()
            return now + profile.exchange_offset_ms(now - started_ms)

        # The venue draws only the random rejects; delivery faults and lost acks happen per connection.
        venue_faults = FaultProfile(seed=profile.seed, reject_rate=profile.reject_rate)
        venue = await PaperBroker.open(
            state_path, dict(catalog), venue_faults, seed=seed, exchange_clock=clock, tick_interval_ms=tick_interval_ms
        )
        try:
            reader = await aiosqlite.connect(f"file:{state_path}?mode=ro", uri=True)
        except BaseException:
            await venue.close()
            raise
        try:
            async with reader.execute("SELECT COALESCE(MAX(seq), 0) FROM events") as cur:
                row = await cur.fetchone()
        except BaseException:
            await reader.close()
            await venue.close()
            raise
        head = int(row[0]) if row else 0
        return cls(venue, reader, head, profile, catalog, clock)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the bound port (useful with ``port=0``). Raises OSError if it is taken."""
        self._server = await serve(
            self._handle,
            host,
            port,
            max_size=TRANSPORT_MAX_BYTES,
            compression=None,
            ping_interval=5,
            ping_timeout=10,
            close_timeout=2,
        )
        sockets = list(self._server.sockets)
        return int(sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening, drop every client, save the final state and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    await self._server.wait_closed()
        await self.venue.close()
        await self._reader.close()

    # --- the committed-event stream -------------------------------------------------------------

    def _on_commit(self, events: list[BrokerEvent]) -> None:
        now = self._local_ms()
        for event in events:
            self.head_seq += 1
            logged = (self.head_seq, event_to_dict(event))
            for conn in list(self._connections):
                if conn.live:
                    conn.offer(logged, now)

    @staticmethod
    def _local_ms() -> int:
        return int(asyncio.get_running_loop().time() * 1000)

    # --- one connection -------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        self._numbers += 1
        conn = _Connection(ws, self._numbers, self.profile)
        self.stats.connections += 1
        self._connections.add(conn)
        peer = ws.remote_address
        log.info("connection %d from %s", conn.number, peer)
        tasks = [
            asyncio.create_task(self._write_forever(conn), name=f"exchange-writer-{conn.number}"),
            asyncio.create_task(self._deliver_forever(conn), name=f"exchange-delivery-{conn.number}"),
        ]
        lifetime = self.profile.connection_lifetime_ms(self._lifetimes)
        if lifetime is not None:
            tasks.append(asyncio.create_task(self._drop_after(conn, lifetime), name=f"exchange-drop-{conn.number}"))
        try:
            async for message in ws:
                await self.handle_message(conn, message)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:
                self.stats.bad_messages += 1
                log.warning(
                    "connection %d: TOO_LARGE: frame above %d bytes; closed (1009)", conn.number, TRANSPORT_MAX_BYTES
                )
        except OverflowError:
            log.warning("connection %d: backlog above %d messages; dropped (it may replay)", conn.number, MAX_OUTBOX)
        finally:
            self._connections.discard(conn)
            self._closed_plans.append(conn.plan.stats)
            conn.live = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("connection %d closed (%s)", conn.number, ws.close_code)

    async def handle_message(self, conn: _Connection, raw: str | bytes) -> None:
        request = proto.decode_request(raw, self._symbols)
        if isinstance(request, proto.ProtocolError):
            self.stats.bad_messages += 1
            log.warning("connection %d: %s: %s", conn.number, request.code, request.message)
            conn.send(request.to_reply())
            return
        if isinstance(request, proto.Place):
            await self._place(conn, request)
        elif isinstance(request, proto.Cancel):
            await self._cancel(conn, request)
        elif isinstance(request, proto.Subscribe):
            await self._subscribe(conn, request)
        elif isinstance(request, proto.ServerTime):
            conn.send({"type": "time", "req_id": request.req_id, "ts_exchange_ms": self._clock()})
        elif isinstance(request, proto.Stats):
            conn.send({"type": "stats", "req_id": request.req_id, "stats": self.stats_dict()})
        else:
            conn.send(proto.answer_query(self.venue.core, request))

    async def _place(self, conn: _Connection, request: proto.Place) -> None:
        order = request.order
        try:
            ack = await self.venue.place(order)
        except Rejected as exc:
            conn.send(proto.rejected_reply(request.req_id, order.client_order_id, str(exc), self._clock()))
            return
        except Ambiguous as exc:  # the venue could not persist: the order's fate is unknown
            log.error("connection %d: place %s: %s", conn.number, order.client_order_id, exc)
            conn.send(proto.ProtocolError(proto.INTERNAL, str(exc), request.req_id).to_reply())
            return
        if self.profile.lost_ack_rate and self._decisions.random() < self.profile.lost_ack_rate:
            self.stats.acks_lost += 1
            log.info("connection %d: ack for %s withheld (fault)", conn.number, ack.broker_order_id)
            return
        conn.send(proto.placed_reply(request.req_id, ack))

    async def _cancel(self, conn: _Connection, request: proto.Cancel) -> None:
        try:
            ack = await self.venue.cancel(request.broker_order_id)
        except UnknownOrder:
            message = f"no order {request.broker_order_id!r} at this exchange"
            conn.send(proto.ProtocolError(proto.UNKNOWN_ORDER, message, request.req_id).to_reply())
            return
        conn.send(proto.cancel_reply(request.req_id, ack))

    async def _subscribe(self, conn: _Connection, request: proto.Subscribe) -> None:
        """Replay (after_seq, head] from the log, then stream live. The head is taken and the
        connection goes live in the same step, so every later event reaches it live."""
        head = self.head_seq
        conn.held = []
        conn.live = True
        after = head if request.after_seq is None else min(request.after_seq, head)
        if request.after_seq is not None:
            after = max(0, after - self.profile.replay_overlap)
        conn.send({"type": "subscribed", "req_id": request.req_id, "head_seq": head, "replay_after": after})
        position = after
        while position < head:
            async with self._reader.execute(
                "SELECT seq, json FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                (position, head, REPLAY_CHUNK),
            ) as cur:
                rows = list(await cur.fetchall())
            if not rows:
                break
            for seq, text in rows:
                conn.outbox.put_nowait(f'{{"type":"event","seq":{int(seq)},"replay":true,"event":{text}}}')
                self.stats.replayed += 1
            position = int(rows[-1][0])
        held, conn.held = conn.held, None
        now = self._local_ms()
        for logged in held:
            conn.offer(logged, now)

    async def _deliver_forever(self, conn: _Connection) -> None:
        plan = conn.plan
        while True:
            conn.wake.clear()
            try:
                for seq, event in plan.due(self._local_ms()):
                    conn.send(proto.event_message(seq, event))
            except OverflowError:
                log.warning(
                    "connection %d: backlog above %d messages; dropped (it may replay)", conn.number, MAX_OUTBOX
                )
                await conn.ws.close(1008, "backlog too large; reconnect and replay")
                return
            next_due = plan.next_due_ms()
            timeout = None if next_due is None else max(0, next_due - self._local_ms()) / 1000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await conn.wake.wait()

    async def _write_forever(self, conn: _Connection) -> None:
        while True:
            text = await conn.outbox.get()
            await conn.ws.send(text)

    async def _drop_after(self, conn: _Connection, lifetime_ms: int) -> None:
        await asyncio.sleep(lifetime_ms / 1000)
        self.stats.injected_disconnects += 1
        log.info("connection %d: dropped after %d ms (fault)", conn.number, lifetime_ms)
        await conn.ws.close(DISCONNECT_CODE, "fault injection: disconnect")

    def stats_dict(self) -> dict[str, int]:
        """Server counters plus the delivery faults injected on every connection so far."""
        totals = dataclasses.asdict(self.stats)
        plans = self._closed_plans + [c.plan.stats for c in self._connections]
        totals["duplicates"] = sum(p.duplicates_injected for p in plans)
        totals["reordered"] = sum(p.reordered for p in plans)
        totals["delayed"] = sum(p.delayed for p in plans)
        totals["rejects"] = self.venue.stats()["rejects"]
        return totals


async def run(
    state_path: Path,
    catalog: Mapping[str, Instrument],
    profile: FaultProfile,
    *,
    port: int,
    seed: int,
    profile_name: str,
    host: str = "127.0.0.1",
) -> None:
    """Serve until SIGINT or SIGTERM, then save and exit. Prints one line once listening."""
    server = await ExchangeServer.open(state_path, catalog, profile, seed=seed)
    try:
        bound = await server.start(host, port)
        print(
            f"exchange listening on ws://{host}:{bound} state {state_path} faults {profile_name} "
            f"seed {profile.seed} head_seq {server.head_seq}",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("exchange stopping: %s", server.stats_dict())
    finally:
        await server.close()
