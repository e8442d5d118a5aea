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

A script (``engine.paper.script``, ``--script FILE.json``) makes the exchange misbehave in exactly
specified ways: its rules are matched here, against each request (and each committed event), and
their actions are applied around the normal execution: before it, instead of it, after it, on the
reply, and as injected events. An injected event is appended to the state file's log, so it has a
real seq and replays like any logged event. See docs/EXCHANGE_PROTOCOL.md, "Scripts".
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
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
from engine.paper.pricing import MarketModel
from engine.paper.script import (
    Answer,
    ClockStep,
    Delay,
    Drop,
    ErrorReply,
    Fired,
    HoldCancel,
    Inject,
    LiveFilters,
    Market,
    Patch,
    PatchOrder,
    Script,
    ScriptError,
    TemplateError,
    context,
    fill_like,
    matches,
    parse_script,
    plan,
    render,
    status_like,
)

log = logging.getLogger(__name__)

# The transport refuses frames above this outright (close code 1009); between MAX_MESSAGE_BYTES
# and this, the client gets a TOO_LARGE error reply and the connection stays up.
TRANSPORT_MAX_BYTES = 1024 * 1024
# A connection whose unsent backlog grows past this is dropped; its client replays from the log.
MAX_OUTBOX = 20_000
REPLAY_CHUNK = 1000
DISCONNECT_CODE = 4001  # application close code: fault injection
# A held cancel (script action ``hold_cancel``) is a cancel whose latency never runs out.
HELD_CANCEL_STEPS = 10**15


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclasses.dataclass
class ServerStats:
    connections: int = 0
    injected_disconnects: int = 0
    acks_lost: int = 0
    bad_messages: int = 0
    replayed: int = 0


@dataclasses.dataclass
class ScriptStats:
    script_withheld: int = 0
    script_injected: int = 0
    script_errors: int = 0  # actions skipped: a template named a value the request does not have


Logged = tuple[int, Any]  # (seq, event: a dict, or whatever a script injected)


class ExchangeClock:
    """The exchange's own clock: the local wall clock, plus the fault profile's skew and forward
    jumps, plus every step a script made (either sign)."""

    def __init__(self, profile: FaultProfile, started_ms: int) -> None:
        self._profile = profile
        self._started_ms = started_ms
        self.stepped_ms = 0

    def __call__(self) -> int:
        now = _wall_ms()
        return now + self._profile.exchange_offset_ms(now - self._started_ms) + self.stepped_ms

    def step(self, ms: int) -> None:
        self.stepped_ms += ms


def _event_frame(seq: int, event: Any) -> str:
    # NaN and Infinity pass here: a script may inject them, as a broken venue would send them.
    return json.dumps({"type": "event", "seq": seq, "replay": False, "event": event}, separators=(",", ":"))


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
        self.quotes: asyncio.Task[None] | None = None  # the quote stream (subscribe_quotes)

    def send(self, message: Mapping[str, Any]) -> None:
        self.send_text(proto.encode(message))

    def send_text(self, text: str) -> None:
        if self.outbox.qsize() >= MAX_OUTBOX:
            raise OverflowError("client is not reading its messages")
        self.outbox.put_nowait(text)

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
        script: Script | None = None,
        writer: aiosqlite.Connection | None = None,
    ) -> None:
        self.venue = venue
        self.profile = profile
        self.head_seq = head_seq
        self.stats = ServerStats()
        self.script = script
        self.script_stats = ScriptStats()
        self._reader = reader
        self._writer = writer  # appends injected events to the log (only when a script injects)
        self._symbols = symbols
        self._clock = clock
        self._filters: LiveFilters[Logged] = LiveFilters(lambda logged: logged[1])
        self._cancel_lock = asyncio.Lock()  # a held cancel changes the venue's cancel latency briefly
        self._background: set[asyncio.Task[None]] = set()
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
        script: Script | None = None,
        market: MarketModel | None = None,
    ) -> ExchangeServer:
        """Open (or resume) the exchange on ``state_path``. Raises PaperStateError naming the file.
        ``script``: rules to misbehave by (``engine.paper.script``; ``load_script`` reads a file)."""
        clock = ExchangeClock(profile, _wall_ms())
        # The venue draws only the random rejects; delivery faults and lost acks happen per connection.
        venue_faults = FaultProfile(seed=profile.seed, reject_rate=profile.reject_rate)
        venue = await PaperBroker.open(
            state_path,
            dict(catalog),
            venue_faults,
            seed=seed,
            exchange_clock=clock,
            tick_interval_ms=tick_interval_ms,
            market=market,
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
        writer = None
        if script is not None and any(isinstance(a, Inject) for r in script.rules for a in r.actions):
            try:
                writer = await aiosqlite.connect(state_path, isolation_level=None)
                await writer.execute("PRAGMA synchronous=FULL")
            except BaseException:
                if writer is not None:
                    await writer.close()
                await reader.close()
                await venue.close()
                raise
        return cls(venue, reader, head, profile, catalog, clock, script, writer)

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
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.venue.close()
        await self._reader.close()
        if self._writer is not None:
            await self._writer.close()

    # --- the committed-event stream -------------------------------------------------------------

    def _on_commit(self, events: list[BrokerEvent]) -> None:
        """Number the venue's committed events (runs under the venue's lock, right after the
        commit) and offer them to every live connection, through the script's filters."""
        for event in events:
            self.head_seq += 1
            logged = (self.head_seq, event_to_dict(event))
            self._publish(logged)
            if self.script is not None and self.script.wants("event"):
                self._event_rules(logged)

    def _publish(self, logged: Logged) -> None:
        released = self._filters.offer(logged) if self._filters.active else [logged]
        if not released:
            return
        now = self._local_ms()
        for conn in list(self._connections):
            if conn.live:
                for item in released:
                    conn.offer(item, now)

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
            if conn.quotes is not None:
                tasks.append(conn.quotes)
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
        kind = _SCRIPTABLE.get(type(request))
        if self.script is not None and kind is not None:
            fields = context(_request_fields(request), self._named_order(request))
            fired = self.script.fire(kind, fields)
            if fired:
                await self._scripted(conn, request, fired)
                return
        reply = await self._execute(conn, request)
        if reply is not None:
            conn.send(reply)

    async def _execute(self, conn: _Connection, request: proto.Request) -> dict[str, Any] | None:
        """Carry out one request; its reply, or None when the fault profile loses the ack."""
        if isinstance(request, proto.Place):
            return await self._place(conn, request)
        if isinstance(request, proto.Cancel):
            return await self._cancel(request)
        if isinstance(request, proto.Subscribe):
            await self._subscribe(conn, request)
            return None
        if isinstance(request, proto.SubscribeQuotes):
            return self._subscribe_quotes(conn, request)
        if isinstance(request, proto.ServerTime):
            return {"type": "time", "req_id": request.req_id, "ts_exchange_ms": self._clock()}
        if isinstance(request, proto.Stats):
            return {"type": "stats", "req_id": request.req_id, "stats": self.stats_dict()}
        return proto.answer_query(self.venue.core, request)

    async def _place(self, conn: _Connection, request: proto.Place) -> dict[str, Any] | None:
        order = request.order
        try:
            ack = await self.venue.place(order)
        except Rejected as exc:
            return proto.rejected_reply(request.req_id, order.client_order_id, str(exc), self._clock())
        except Ambiguous as exc:  # the venue could not persist: the order's fate is unknown
            log.error("connection %d: place %s: %s", conn.number, order.client_order_id, exc)
            return proto.ProtocolError(proto.INTERNAL, str(exc), request.req_id).to_reply()
        if self.profile.lost_ack_rate and self._decisions.random() < self.profile.lost_ack_rate:
            self.stats.acks_lost += 1
            log.info("connection %d: ack for %s withheld (fault)", conn.number, ack.broker_order_id)
            return None
        return proto.placed_reply(request.req_id, ack)

    async def _cancel(self, request: proto.Cancel, *, hold: bool = False) -> dict[str, Any]:
        """``hold``: a cancel that is acknowledged PENDING_CANCEL and never completes (the order
        stays matchable); an order already pending or terminal is answered as it stands."""
        async with self._cancel_lock:
            core = self.venue.core
            latency = core.cancel_latency_steps
            if hold:
                core.cancel_latency_steps = HELD_CANCEL_STEPS
            try:
                ack = await self.venue.cancel(request.broker_order_id)
            except UnknownOrder:
                message = f"no order {request.broker_order_id!r} at this exchange"
                return proto.ProtocolError(proto.UNKNOWN_ORDER, message, request.req_id).to_reply()
            finally:
                core.cancel_latency_steps = latency
        return proto.cancel_reply(request.req_id, ack)

    # --- scripts --------------------------------------------------------------------------------

    async def _scripted(self, conn: _Connection, request: proto.Request, fired: list[Fired]) -> None:
        """Apply the fired rules' actions around the request: before, instead of or after its
        execution, on its reply, and as events injected after the reply."""
        for f in fired:
            log.info(
                "connection %d: script rule %d fired (%s #%d)", conn.number, f.rule.number, f.rule.on, f.occurrence
            )
        steps = plan(fired)
        fields = _request_fields(request)
        before = self._named_order(request)
        for early, f in steps.before:
            names = context(fields, before, now_ms=self._clock(), n=f.occurrence, rule=f.rule.number)
            self._apply_early(early, names)
        reply: dict[str, Any] | None = None
        instead = steps.instead
        if instead is not None and isinstance(instead[0], HoldCancel) and isinstance(request, proto.Cancel):
            reply = await self._cancel(request, hold=True)
        elif instead is not None and isinstance(instead[0], ErrorReply):
            reply = proto.ProtocolError(instead[0].code, instead[0].message, request.req_id).to_reply()
        elif instead is not None and isinstance(instead[0], Answer):
            names = context(fields, before, now_ms=self._clock(), n=instead[1].occurrence, rule=instead[1].rule.number)
            try:
                reply = {**render(instead[0].template, names), "req_id": request.req_id}
            except TemplateError as exc:
                self._template_failed(instead[1], exc)
                reply = await self._execute(conn, request)
        else:
            reply = await self._execute(conn, request)
        for market, _f in steps.after:
            self._move_market(market)
        after = self._order_after(request, reply)
        if reply is not None:
            sent = copy.deepcopy(reply) if steps.patches else reply
            for patch, f in steps.patches:
                names = context(fields, after, reply, now_ms=self._clock(), n=f.occurrence, rule=f.rule.number)
                try:
                    _apply_patch(sent, patch, names)
                except TemplateError as exc:
                    self._template_failed(f, exc)
            if steps.withhold:
                self.script_stats.script_withheld += 1
                log.info("connection %d: %s reply withheld (script)", conn.number, reply.get("type"))
            else:
                conn.send_text(json.dumps(sent, separators=(",", ":")))
        for inject, f in steps.injects:
            names = context(fields, after, reply, n=f.occurrence, rule=f.rule.number)
            await self._inject(inject, names, after, f)

    def _apply_early(self, action: ClockStep | Drop | Delay | Market, names: Mapping[str, Any]) -> None:
        if isinstance(action, ClockStep):
            self._clock_step(action.ms)
        elif isinstance(action, Market):
            self._move_market(action)
        else:
            try:
                where = render(action.where, names)
            except TemplateError as exc:
                self.script_stats.script_errors += 1
                log.warning("script filter names {%s}, which this request does not have; not installed", exc.args[0])
                return
            if isinstance(action, Drop):
                self._filters.drop(where, action.count)
            else:
                self._filters.delay(where, action.after, action.count)

    def _clock_step(self, ms: int) -> None:
        if isinstance(self._clock, ExchangeClock):
            self._clock.step(ms)
            log.info("exchange clock stepped by %+d ms (script); now %d", ms, self._clock())

    def _move_market(self, action: Market) -> None:
        core = self.venue.core
        try:
            if action.lots_per_level is not None:
                core.set_depth(action.symbol, action.lots_per_level, action.levels)
            if action.price_paise is not None:
                core.set_price(action.symbol, action.price_paise)
        except (KeyError, ValueError) as exc:
            self.script_stats.script_errors += 1
            log.warning("script market change on %s refused: %s", action.symbol, exc)

    def _template_failed(self, f: Fired, exc: TemplateError) -> None:
        self.script_stats.script_errors += 1
        log.warning("script rule %d: {%s} is not known for this request; action skipped", f.rule.number, exc.args[0])

    async def _inject(self, action: Inject, names: Mapping[str, Any], order: dict[str, Any] | None, f: Fired) -> None:
        """Append an event to the log, under the venue's lock so no venue commit takes its seq,
        then deliver it live like any logged event (through the filters and fault plans)."""
        if self._writer is None:
            return
        if action.like is not None and order is None:
            self.script_stats.script_errors += 1
            log.warning("script rule %d: no order to inject an event 'like'; skipped", f.rule.number)
            return
        async with self.venue._lock:  # the venue's commit lock: the seq we take is the log's next row
            seq = self.head_seq + 1
            now = self._clock()
            try:
                body = render(action.template, {**names, "seq": seq, "now_ms": now})
            except TemplateError as exc:
                self._template_failed(f, exc)
                return
            payload: Any = body
            if action.like is not None and order is not None:
                symbol = str(order.get("symbol"))
                price = self.venue.core.last_price(symbol) if symbol in self._symbols else 0
                base = status_like(order, now) if action.like == "status" else fill_like(order, now, f"S{seq}", price)
                payload = {**base, **body}
            text = json.dumps(payload, separators=(",", ":"))
            await self._writer.execute("INSERT INTO events (seq, json) VALUES (?, ?)", (seq, text))
            self.head_seq = seq
            self.script_stats.script_injected += 1
            log.info("script rule %d: injected event %d: %.300s", f.rule.number, seq, text)
            self._publish((seq, payload))

    def _event_rules(self, logged: Logged) -> None:
        """Rules ``on: event`` fire as the venue commits an event. They act from the next event on;
        an injection waits for the venue's lock, so it follows the batch being committed."""
        assert self.script is not None
        seq, event = logged
        order = None
        if isinstance(event, dict) and isinstance(event.get("broker_order_id"), str):
            with contextlib.suppress(UnknownOrder):
                order = proto.snapshot_to_dict(self.venue.core.order(event["broker_order_id"]))
        fired = self.script.fire("event", context(event=event, order=order, seq=seq))
        for f in fired:
            log.info("script rule %d fired (event %d)", f.rule.number, seq)
            names = context(event=event, order=order, seq=seq, now_ms=self._clock(), n=f.occurrence, rule=f.rule.number)
            for action in f.rule.actions:
                if isinstance(action, Inject):
                    task = asyncio.create_task(self._inject(action, names, order, f), name="exchange-script-inject")
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
                elif isinstance(action, ClockStep | Drop | Delay | Market):
                    self._apply_early(action, names)

    def _named_order(self, request: proto.Request) -> dict[str, Any] | None:
        """The order a request names, as the venue has it now (None: no such order)."""
        core = self.venue.core
        try:
            if isinstance(request, proto.Cancel | proto.GetOrder):
                return proto.snapshot_to_dict(core.order(request.broker_order_id))
        except UnknownOrder:
            return None
        if isinstance(request, proto.Find):
            found = core.find(request.client_order_id)
            return None if found is None else proto.snapshot_to_dict(found)
        return None  # a place names no order before it is executed

    def _order_after(self, request: proto.Request, reply: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The order a request was about, as the venue has it after the request."""
        if isinstance(request, proto.Place):
            if reply is not None and reply.get("type") == "placed":
                with contextlib.suppress(UnknownOrder):
                    return proto.snapshot_to_dict(self.venue.core.order(str(reply["broker_order_id"])))
            found = self.venue.core.find(request.order.client_order_id)
            return None if found is None else proto.snapshot_to_dict(found)
        return self._named_order(request)

    def _subscribe_quotes(self, conn: _Connection, request: proto.SubscribeQuotes) -> dict[str, Any]:
        """Stream ``quote`` messages for these symbols (from the venue's book and price process),
        replacing this connection's previous quote stream. Quotes are not journaled or replayed:
        a (re)subscription starts with the current quote of each symbol. Symbols the venue cannot
        quote are named in the reply's ``unknown`` and left out; the rest stream."""
        if conn.quotes is not None:
            conn.quotes.cancel()
            conn.quotes = None
        known = tuple(s for s in request.symbols if self.venue.core.quotable(s))
        unknown = [s for s in request.symbols if s not in known]
        if known:
            conn.quotes = asyncio.create_task(self._quote_forever(conn, known), name=f"quotes-{conn.number}")
        return {"type": "quotes_subscribed", "req_id": request.req_id, "symbols": list(known), "unknown": unknown}

    async def _quote_forever(self, conn: _Connection, symbols: tuple[str, ...]) -> None:
        async for quote in self.venue.quotes(symbols):
            conn.send(proto.quote_to_dict(quote))

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
                    conn.send_text(_event_frame(seq, event))
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
        if self.script is not None:
            totals.update(dataclasses.asdict(self.script_stats))
            totals["script_dropped"] = self._filters.stats.dropped
            totals["script_delayed"] = self._filters.stats.delayed
            totals["script_held_back"] = self._filters.held()
            totals["script_clock_step_ms"] = self._clock.stepped_ms if isinstance(self._clock, ExchangeClock) else 0
            totals.update(self.script.stats())
        return totals


_SCRIPTABLE: dict[type, str] = {
    proto.Place: "place",
    proto.Cancel: "cancel",
    proto.GetOrder: "order",
    proto.Find: "find",
    proto.ListOrders: "orders",
    proto.ServerTime: "time",
}


def _request_fields(request: proto.Request) -> dict[str, Any]:
    fields: dict[str, Any] = {"req_id": request.req_id}
    if isinstance(request, proto.Place):
        o = request.order
        fields.update(
            client_order_id=o.client_order_id,
            symbol=o.symbol,
            side=o.side.value,
            qty=o.qty,
            order_type=o.order_type.value,
            limit_price_paise=o.limit_price_paise,
            trigger_price_paise=o.trigger_price_paise,
        )
    elif isinstance(request, proto.Cancel | proto.GetOrder):
        fields["broker_order_id"] = request.broker_order_id
    elif isinstance(request, proto.Find):
        fields["client_order_id"] = request.client_order_id
    return fields


def _apply_patch(reply: dict[str, Any], patch: Patch | PatchOrder, names: Mapping[str, Any]) -> None:
    fields = render(patch.fields, names)
    if isinstance(patch, Patch):
        reply.update(fields)
        return
    where = render(patch.where, names)
    snapshot = reply.get("order")
    if isinstance(snapshot, dict) and matches(where, snapshot):
        snapshot.update(fields)
    for snapshot in reply.get("orders") or ():
        if isinstance(snapshot, dict) and matches(where, snapshot):
            snapshot.update(fields)


def load_script(path: Path, catalog: Mapping[str, Instrument]) -> Script:
    """Read and validate a script file. Raises ScriptError naming the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"cannot read script {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ScriptError(f"script {path} is not UTF-8 text: {exc.reason}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScriptError(f"script {path} is not valid JSON: {exc}") from exc
    try:
        return parse_script(raw, catalog)
    except ScriptError as exc:
        raise ScriptError(f"script {path}: {exc}") from exc


async def run(
    state_path: Path,
    catalog: Mapping[str, Instrument],
    profile: FaultProfile,
    *,
    port: int,
    seed: int,
    profile_name: str,
    host: str = "127.0.0.1",
    script: Script | None = None,
    market: MarketModel | None = None,
    tick_interval_ms: int = 50,
) -> None:
    """Serve until SIGINT or SIGTERM, then save and exit. Prints one line once listening.
    ``tick_interval_ms``: how often the market moves (every symbol, each time)."""
    server = await ExchangeServer.open(
        state_path, catalog, profile, seed=seed, script=script, market=market, tick_interval_ms=tick_interval_ms
    )
    try:
        bound = await server.start(host, port)
        rules = "" if script is None else f" script {len(script.rules)} rule(s)"
        print(
            f"exchange listening on ws://{host}:{bound} state {state_path} faults {profile_name} "
            f"seed {profile.seed} head_seq {server.head_seq}{rules}",
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
