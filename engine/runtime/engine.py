"""The interpreter: the only place that awaits. Decisions are ``engine.core.step``'s.

Per cycle it steps a batch of inputs (broker events, broker answers, a tick, commands), commits
the journal rows of every step in one transaction, and only then performs the I/O effects. It
never holds anything across a broker call: each call runs on its own and its answer comes back
as an input. So a command (HALT above all) is decided in the next cycle, never behind a slow
broker, and "journal before send" holds by construction.

Two ways to run: live (a main loop on the event loop's clock, I/O in tasks) and lockstep
(``run_until_quiet``: every I/O awaited in order and its answer stepped at once; with a virtual
clock and the paper exchange this replays a seeded run exactly).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from engine.audit.checkpoint import FORMAT as CHECKPOINT_FORMAT
from engine.audit.checkpoint import dump_state
from engine.audit.codec import input_row
from engine.broker.port import Broker
from engine.catalog import load_margin_model
from engine.core.book import Book, IntentRow
from engine.core.clock import BrokerClock
from engine.core.commands import Actor, Command, CommandError, Launch
from engine.core.dedupe import DedupeKeyError, dedupe_key
from engine.core.effects import AnchorClock, Cancel, Commit, Effect, JournalWrites, Notify, Place, Query, Reply
from engine.core.events import BrokerEvent, FeedItem, MalformedEvent, Rejected
from engine.core.groups import GroupSpec
from engine.core.inputs import (
    BrokerEvents,
    BrokerTime,
    CancelAnswered,
    Given,
    Input,
    LookedUp,
    Placed,
    PlaceUnsent,
    Recover,
    Tick,
)
from engine.core.instruments import Instrument
from engine.core.margin import MarginModel
from engine.core.model import TERMINAL_GROUP_STATES, GroupState, OrderStatus, Role
from engine.core.notices import EngineEvent, EngineStopped, FeedError
from engine.core.placing import HELD, send_refusal
from engine.core.quotes import Quote
from engine.core.state import EngineConfig, EngineState
from engine.core.step import step
from engine.core.trading_state import TradingState
from engine.runtime import command_rows
from engine.runtime.ids import new_client_order_id
from engine.runtime.loader import load_state
from engine.runtime.view import ConnectionState, EngineFailure, Touched
from engine.store.db import PgDb, listen
from engine.store.journal import Journal
from engine.store.lease import Fenced
from engine.store.users import roles_held

log = logging.getLogger(__name__)

CrashHook = Callable[[str], None]
Listener = Callable[[EngineEvent], None]


def _no_crash(point: str) -> None:
    return None


_Item = tuple[Input, "asyncio.Future[Any] | None"]


class Engine:
    def __init__(
        self,
        journal: Journal,
        broker: Broker,
        catalog: dict[str, Instrument],
        config: EngineConfig | None = None,
        *,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        id_factory: Callable[[], str] = new_client_order_id,
        crash_hook: CrashHook = _no_crash,
        margin_model: MarginModel | None = None,
        lockstep: bool = False,
    ) -> None:
        self.journal = journal
        self.broker = broker
        self.catalog = catalog
        self.config = config or EngineConfig()
        self.now_ns = monotonic_ns
        self.wall_ms = wall_ms  # audit display only; never used in a decision
        self.new_id = id_factory
        self.crash = crash_hook
        self.margin_model = margin_model or load_margin_model()
        self.lockstep = lockstep
        self.state = EngineState(catalog, self.config, self.margin_model, self._draw_id)
        # The time-travel audit: the next input's sequence number, the ids the current step drew
        # (a replay feeds them back), and where the last checkpoint of the state was taken.
        self._next_seq = 1
        self._drawn: list[str] = []
        self._checkpoint_seq = 0
        self._stepped_ns = 0  # local time of the last input stepped
        # Marks: the newest quote of each symbol an open group trades (what the hosting desk shows),
        # and when each was last journaled (local ns) with what it said.
        self.quotes: dict[str, Quote] = {}
        self.quotes_received = 0
        self._marked: dict[str, tuple[object, ...]] = {}  # symbol -> what its last mark said
        self._marks_at = 0  # local ns of the last look for marks due
        self._mark_symbols: tuple[int, list[str]] = (0, [])
        self._watched: set[str] = set()  # symbols a desk shows quotes of (display only)
        self._unquoted: set[str] = set()  # watched names (an index's spot) this broker refused to quote
        self.failure: BaseException | None = None
        self._inbox: asyncio.Queue[_Item] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._io: set[asyncio.Task[None]] = set()
        self._listeners: list[Listener] = []
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._claimed: set[int] = set()  # command rows queued by this engine (by seq)
        self._settled = asyncio.Event()
        self._quiet = asyncio.Event()
        self._busy = 0
        self._uncommitted = 0  # cycles that have stepped (the book moved) and not yet committed
        self._commit_us: collections.deque[int] = collections.deque(maxlen=256)
        self._touched: Touched | None = None  # None until a desk first reads: it reads everything
        journal.on_rollback = self._journal_rolled_back

    # --- what the desk reads (engine.runtime.view.EngineView) --------------------------------

    @property
    def book(self) -> Book:
        return self.state.book

    @property
    def clock(self) -> BrokerClock:
        return self.state.clock

    @property
    def trading_state(self) -> TradingState:
        return self.state.trading_state

    @property
    def stats(self) -> dict[str, int]:
        s = self.state.stats
        return {"events": s.events, "duplicates": s.duplicates, "rejected": s.rejected, "batches": s.batches}

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: EngineEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken view must never stop trading
                log.exception("listener failed on %s", event.type)

    def commit_latency_us(self) -> tuple[int, int] | None:
        """p50 and p99 of the last 256 journal commits, in microseconds."""
        if not self._commit_us:
            return None
        ordered = sorted(self._commit_us)
        return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]

    def clock_offset_ms(self) -> int | None:
        """Broker time minus local wall time (display only)."""
        if not self.clock.anchored:
            return None
        return self.clock.offset_ms(self.wall_ms(), self.now_ns())

    def snapshot(self) -> Book:
        """The book, for reading (EngineView). Valid until the next step; never mutate it."""
        return self.state.book

    def committed(self) -> bool:
        return self._uncommitted == 0

    def event_count(self) -> int:
        return self.state.stats.events

    def take_touched(self) -> Touched | None:
        touched, self._touched = self._touched, Touched()
        return touched

    def connection(self) -> ConnectionState:
        state = getattr(self.broker, "connection_state", None)  # adapters with a connection say so
        return ConnectionState.IN_PROCESS if state is None else ConnectionState(str(state))

    def broker_usable(self) -> bool:
        return not self.state.broker_unusable

    def waiting_rows(self) -> list[IntentRow]:
        return self.book.orphans()

    def unsettled_groups(self) -> list[str]:
        return sorted(g for g, rt in self.book.groups.items() if not rt.settled)

    def orders_in(self, *statuses: OrderStatus) -> list[IntentRow]:
        return [r for r in self.book.intents.values() if r.order_status in statuses]

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, resume: bool = True, standby: bool = False) -> None:
        """Take the journal's lease (one engine per journal), recover (the same path for a clean
        start and after a crash), then run."""
        await self.journal.take_lease(wait=standby)
        await self._heartbeat()
        if not self.lockstep:
            # Subscribe before asking the broker anything, so nothing falls between lookup and feed.
            feed = self.broker.events()
            self._tasks.append(asyncio.create_task(self._pump_events(feed), name="engine-events"))
        self.state = await load_state(self.journal, self.catalog, self.config, self.margin_model, self._draw_id)
        self._touched = None  # a new book: a desk reads it whole
        await self._abandon_unfinished_commands()
        await self._start_checkpoint()
        try:
            clock: BrokerTime = BrokerTime(self.now_ns(), await self.broker.server_time_ms())
        except Exception as exc:  # a broker that cannot answer yet: recovery asks again, timers anchor later
            clock = BrokerTime(self.now_ns(), None, _why(exc))
        await self.run_until_quiet([clock, Recover(self.now_ns(), resume)])
        if not self.lockstep:
            self._tasks.append(asyncio.create_task(self._main_loop(), name="engine-main"))
            self._tasks.append(asyncio.create_task(self._poll_commands(), name="engine-commands"))
            self._tasks.append(asyncio.create_task(self._keep_lease(), name="engine-lease"))
            self._tasks.append(asyncio.create_task(self._pump_quotes(), name="engine-quotes"))

    def _draw_id(self) -> str:
        new = self.new_id()
        self._drawn.append(new)
        return new

    async def _start_checkpoint(self) -> None:
        """What recovery loaded is where a replay of this run starts."""
        rows = await self.journal.fetch("SELECT COALESCE(MAX(seq), 0) FROM inputs")
        self._next_seq = int(rows[0][0]) + 1
        writes = JournalWrites()
        writes.checkpoint = self._checkpoint_row("START")
        async with self.journal.transaction():
            await self.journal.flush(writes)

    def _checkpoint_row(self, kind: str) -> tuple[Any, ...]:
        self._checkpoint_seq = self._next_seq
        blob = dump_state(self.state)
        return (self._next_seq, kind, self.journal.epoch, self.wall_ms(), CHECKPOINT_FORMAT, blob)

    def _input_row(self, inp: Input, seq: int) -> tuple[Any, ...]:
        clock = self.state.clock
        broker_ms = clock.now_ms(inp.now_ns) if clock.anchored else None  # for display only
        return input_row(inp, seq, self.journal.epoch, self.wall_ms(), broker_ms, self._drawn)

    async def _abandon_unfinished_commands(self) -> None:
        """A command the previous engine had taken but not finished (it died in between) wrote
        nothing: its effects and its outcome commit together. Say so; the person gives it again."""
        async with self.journal.transaction():
            await self.journal.db.execute(
                "UPDATE commands SET status='REFUSED', error=?, engine_epoch=?, ts_done_ms=? WHERE status='EXECUTING'",
                (
                    "the engine restarted before this command finished; nothing of it was done: give it again",
                    self.journal.epoch,
                    self.wall_ms(),
                ),
            )

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._io]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, BaseException):
                await task
        self._tasks.clear()
        self._io.clear()

    async def wait_settled(self, timeout_s: float) -> bool:
        """Wait until every group is HEDGED, terminal or waiting on a person; False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._settled.wait()
                # The event may be left over from before the latest input arrived: look again.
                while self.failure is None and not self.settled():
                    self._settled.clear()
                    await self._settled.wait()
        except TimeoutError:
            return False
        if self.failure:
            raise EngineFailure(str(self.failure)) from self.failure
        return True

    def settled(self) -> bool:
        return self.book.settled() and not self._io and self._inbox.empty() and not self._uncommitted

    def check_running(self) -> None:
        """Crash-only: after a failed transaction the in-memory state may be ahead of the journal,
        so no further command is taken; restart the engine (recovery rebuilds the state)."""
        if self.failure is not None:
            raise EngineFailure(f"engine stopped after an error ({self.failure!r}); restart it to recover")

    # --- inputs from outside -------------------------------------------------------------------

    async def execute(self, command: Command) -> Any:
        """Give a command from this process (the desk that hosts the engine, a tool, a test); it
        goes the one way every command goes: a row in ``commands`` (recorded first, durably),
        then a step that executes it and writes its outcome in the same transaction as its
        effects. Returns the answer once committed; raises RoleError or CommandError (audited)
        when it is refused. The actor's role must be one the person holds."""
        self.check_running()
        seq = await self._record_command(command)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = future
        try:
            await self._submit(Given(self.now_ns(), seq, command, self.wall_ms()), None)
        except BaseException:
            if future.done() and not future.cancelled():
                future.exception()  # lockstep: the cycle's failure is raised here, not twice
            raise
        return await future

    async def _record_command(self, command: Command) -> int:
        action, args = command_rows.encode(command)
        async with self.journal.transaction():
            rows = await self.journal.db.fetch(
                "INSERT INTO commands (command_id, action, args_json, submitted_by, role, ts_submitted_ms, status)"
                " VALUES (?,?,?,?,?,?,'EXECUTING') RETURNING seq",
                (
                    command_rows.new_command_id(),
                    action,
                    json.dumps(args, sort_keys=True),
                    command.actor.os_user,
                    command.actor.role.value,
                    self.wall_ms(),
                ),
            )
        seq = int(rows[0][0])
        self._claimed.add(seq)
        return seq

    async def _take_submitted(self) -> None:
        """Queue the command rows other processes submitted (attached desks, the shell), in
        order; a malformed one is refused and audited without a step."""
        for row in await command_rows.submitted(self.journal.db):
            if row.seq in self._claimed:
                continue
            self._claimed.add(row.seq)
            try:
                actor = Actor(row.submitted_by, Role(row.role))
                command = command_rows.decode(row.action, row.args_json, actor, self.catalog)
            except (ValueError, CommandError) as exc:
                await self._refuse_row(row, str(exc))
                continue
            self._inbox.put_nowait((Given(self.now_ns(), row.seq, command, self.wall_ms()), None))

    async def _refuse_row(self, row: command_rows.CommandRow, why: str) -> None:
        now = self.wall_ms()
        async with self.journal.transaction():
            await self.journal.db.execute(
                "UPDATE commands SET status='REFUSED', error=?, engine_epoch=?, ts_done_ms=? WHERE seq=?",
                (why, self.journal.epoch, now, row.seq),
            )
            await self.journal.db.execute(
                "INSERT INTO audit_log (ts_local_ns, ts_wall_ms, os_user, role, command, target, detail_json,"
                " outcome, command_seq) VALUES (?,?,?,?,?,?,?,'REFUSED',?)",
                (self.now_ns(), now, row.submitted_by, row.role, row.action, "", json.dumps({"refused": why}), row.seq),
            )

    async def _poll_commands(self) -> None:
        """Pick up submitted command rows. PostgreSQL: woken by the NOTIFY ``desk_submit`` sends,
        with a 1 s poll as the net for notifications lost while disconnected. SQLite (no
        notifications): a short poll of an indexed query."""
        wake = asyncio.Event()
        listener = None
        poll_s = self.config.command_poll_ms / 1000
        if isinstance(self.journal.db, PgDb):
            listener = asyncio.create_task(listen(self.journal.db.url, "td_commands", wake), name="engine-listen")
            poll_s = 1.0
        try:
            while True:
                wake.clear()
                try:
                    await self._take_submitted()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the journal failing is noticed by the next transaction
                    log.warning("reading submitted commands failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll_s):  # a poll interval, not a decision
                        await wake.wait()
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await listener

    def mark_symbols(self) -> list[str]:
        """The symbols the engine holds or works: every leg of every open group (recomputed at
        most once per ``mark_interval_ms``: it walks the book, and quotes arrive many times a second)."""
        now = self.now_ns()
        at, symbols = self._mark_symbols
        if symbols and now - at < self.config.mark_interval_ms * 1_000_000:
            return symbols
        groups = self.book.groups.values()
        symbols = sorted({leg.symbol for g in groups if g.state not in TERMINAL_GROUP_STATES for leg in g.spec.legs})
        self._mark_symbols = (now, symbols)
        return symbols

    def watch_quotes(self, symbols: Iterable[str]) -> None:
        """Also stream quotes of these symbols (a desk shows them: a launch dialog, a chain)."""
        new = set(symbols) - self._watched
        if new:
            self._watched |= new
            self._mark_symbols = (0, [])  # the pump resubscribes at its next look

    def quote(self, symbol: str) -> Quote | None:
        """The newest quote of ``symbol`` this engine's stream has seen (None: not streamed yet)."""
        return self.quotes.get(symbol)

    def _quote_symbols(self) -> list[str]:
        return sorted((set(self.mark_symbols()) | self._watched) - self._unquoted)

    async def _pump_quotes(self) -> None:
        """Keep a quote stream on the symbols open groups trade and desks watch (resubscribed
        when they change). The stream is read by a task of its own, so that looking at the
        symbols again never interrupts it (a cancelled read would end the stream)."""
        interval = self.config.mark_interval_ms / 1000
        while True:
            symbols = self._quote_symbols()
            if not symbols:
                await asyncio.sleep(interval)  # nothing to quote yet
                continue
            reader = asyncio.create_task(self._read_quotes(symbols), name="engine-quote-reader")
            try:
                while not reader.done() and self._quote_symbols() == symbols:
                    await asyncio.wait({reader}, timeout=interval)  # a look at the symbols, not a decision
                ended = reader.done()  # the stream ended (or failed) by itself
            finally:
                reader.cancel()
                results = await asyncio.gather(reader, return_exceptions=True)
            problem = results[0]
            extra = sorted(set(symbols) - set(self.catalog))
            if isinstance(problem, ValueError) and extra:
                # a spot (NIFTY) this broker does not quote: stream the instruments without it
                self._unquoted |= set(extra)
                log.info("the broker quotes no %s: %s", ", ".join(extra), _why(problem))
                continue
            if isinstance(problem, Exception):  # no quotes from this broker now: marks wait, trading goes on
                log.warning("quotes for %d symbols: %s", len(symbols), _why(problem))
            if ended:
                await asyncio.sleep(interval)  # before subscribing again

    async def _read_quotes(self, symbols: list[str]) -> None:
        async for quote in self.broker.quotes(symbols):
            self.quotes[quote.symbol] = quote
            self.quotes_received += 1

    def _marks_due(self) -> list[tuple[Any, ...]]:
        """Quotes to journal now: at most one look per ``mark_interval_ms`` for every symbol at
        once (so marks add at most one commit a second, and an attached desk one re-read), and
        only the symbols whose quote says something their last journaled mark did not."""
        if not self.quotes:
            return []
        now = self.now_ns()
        if self._marks_at and now - self._marks_at < self.config.mark_interval_ms * 1_000_000:
            return []
        self._marks_at = now
        wall = self.wall_ms()
        rows = []
        for symbol in self.mark_symbols():
            q = self.quotes.get(symbol)
            if q is None:
                continue
            key = (q.bid_paise, q.ask_paise, q.last_paise, q.bid_qty, q.ask_qty, q.last_qty)
            if self._marked.get(symbol) == key:
                continue
            self._marked[symbol] = key
            rows.append((symbol, *key[:3], *key[3:], q.ts_exchange_ms, now, wall))
        return rows

    async def _keep_lease(self) -> None:
        """Renew the lease (self-fencing: an engine that cannot show it still holds the lease
        stops deciding and sending at once, before a standby can take over) and publish a
        heartbeat with what attached desks show in their status bar."""
        while True:
            await asyncio.sleep(self.config.lease_renew_ms / 1000)  # renewal period, not a decision
            lease = self.journal.lease
            try:
                if lease is not None:
                    await lease.renew()
                await self._heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(Fenced(f"lease lost: {exc}; this engine stops sending (a standby may take over)"))
                return

    async def _heartbeat(self) -> None:
        if self.journal.epoch is None:
            return
        latency = self.commit_latency_us()
        status = {
            "connection": self.connection().value,
            "broker_usable": self.broker_usable(),
            "clock_offset_ms": self.clock_offset_ms(),
            "events": self.event_count(),
            "commit_us": list(latency) if latency else None,
            "failure": None if self.failure is None else repr(self.failure),
        }
        await self.journal.statement(
            "UPDATE lease SET ts_heartbeat_ms=?, status_json=? WHERE id=1 AND epoch=?",
            (self.wall_ms(), json.dumps(status), self.journal.epoch),
        )

    async def launch(self, spec: GroupSpec, actor: Actor) -> GroupState:
        state: GroupState = await self.execute(Launch(spec, actor))
        await self.quiesce()
        return state

    async def ingest(self, batch: list[BrokerEvent], *, settle: bool = True) -> None:
        """Apply a batch of events from outside the feed (tests, tools). Returns once its step has
        committed and, with ``settle``, once the I/O that followed has been answered."""
        self.check_running()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self._submit(BrokerEvents(self.now_ns(), tuple(batch)), future)
        await future
        if settle:
            await self.quiesce()

    async def tick(self) -> None:
        """Look at timers now (lockstep drivers and tests)."""
        await self._submit(Tick(self.now_ns()), None)

    async def quiesce(self) -> None:
        """Wait until nothing is queued or in flight (lockstep: already true). A failure that
        happens meanwhile (caused by what the caller started) is raised as it is."""
        before = self.failure
        while self.failure is None and not self.lockstep and (self._busy or self._io or not self._inbox.empty()):
            self._quiet.clear()
            await self._quiet.wait()
        if self.failure is not None and before is None:
            raise self.failure
        self.check_running()

    async def _submit(self, inp: Input, future: asyncio.Future[Any] | None) -> None:
        if self.lockstep:
            await self.run_until_quiet([inp], {id(inp): future} if future else None)
        else:
            self._inbox.put_nowait((inp, future))

    # --- the loop ------------------------------------------------------------------------------

    async def _pump_events(self, feed: AsyncIterator[FeedItem]) -> None:
        backoff_s = 0.05
        while True:
            try:
                async for event in feed:
                    self._inbox.put_nowait((BrokerEvents(0, (event,)), None))
                    backoff_s = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken feed is re-subscribed; the journal reconciles gaps
                self.emit(FeedError(str(exc)))
            await asyncio.sleep(backoff_s)  # reconnect backoff, not a timing decision
            backoff_s = min(backoff_s * 2, 2.0)
            feed = self.broker.events()

    async def _main_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick_s = self.config.tick_interval_ms / 1000
        next_tick = loop.time() + tick_s
        try:
            while True:
                items: list[_Item] = []
                # asyncio.timeout, not wait_for: on 3.11 a cancelled wait_for around Queue.get()
                # can hang forever in "cancelling" (seen here at shutdown).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_tick - loop.time())):
                        items.append(await self._inbox.get())
                while items and len(items) < self.config.batch_max and not self._inbox.empty():
                    items.append(self._inbox.get_nowait())
                if loop.time() >= next_tick:
                    items.append((Tick(0), None))
                    next_tick = loop.time() + tick_s
                self._busy += 1
                try:
                    await self._cycle(items)
                finally:
                    self._busy -= 1
                self._after_cycle()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # crash-only: stop deciding, keep what is committed
            self._fail(exc)
            if not isinstance(exc, Exception):
                return
            log.exception("engine stopped")

    def _after_cycle(self) -> None:
        if self.settled():
            self._settled.set()
        else:
            self._settled.clear()
        if not self._busy and not self._io and self._inbox.empty():
            self._quiet.set()

    async def run_until_quiet(self, inputs: list[Input], futures: dict[int, asyncio.Future[Any]] | None = None) -> None:
        """Lockstep: step ``inputs``, perform their I/O one effect at a time in order, step each
        answer, and repeat until nothing is left. Used at start (recovery asks in order) and by
        lockstep drivers."""
        pending: list[_Item] = [(inp, (futures or {}).get(id(inp))) for inp in inputs]
        try:
            while pending:
                effects = await self._cycle(pending, perform_io=False)
                pending = []
                for effect in effects:
                    if isinstance(effect, (Place, Cancel, Query, AnchorClock)):
                        pending.append((await self._perform(effect), None))
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            self._after_cycle()

    async def _cycle(self, items: list[_Item], perform_io: bool = True) -> list[Effect]:
        """Step every input (events merged into one batch), commit once, then act."""
        self.check_running()
        self._uncommitted += 1
        try:
            return await self._step_commit_act(self._merge(items), perform_io)
        finally:
            self._uncommitted -= 1
            if self.settled():  # waiters wake only once this cycle's rows are in the journal
                self._settled.set()

    async def _step_commit_act(self, merged: list[_Item], perform_io: bool) -> list[Effect]:
        effects: list[Effect] = []
        done: list[asyncio.Future[Any]] = []
        placed = False
        journaled: list[tuple[Any, ...]] = []
        for inp, future in merged:
            if future is not None:
                done.append(future)
            try:
                inp = await self._with_known_keys(self._stamped(inp))
                placed = placed or isinstance(inp, Placed)
                self._drawn = []
                out = step(self.state, inp, self._next_seq)
                if out or not isinstance(inp, Tick):  # a tick that changed nothing is not journaled
                    journaled.append(self._input_row(inp, self._next_seq))
                    self._next_seq += 1
                effects.extend(out)
            except BaseException as exc:
                # Everyone waiting on this cycle hears why: none of it was committed.
                for waiting in done + [f for _, f in merged if f is not None]:
                    if not waiting.done():
                        waiting.set_exception(exc)
                raise
        writes = JournalWrites()
        writes.inputs = journaled
        writes.marks = self._marks_due()
        if self._next_seq - self._checkpoint_seq >= self.config.checkpoint_every_inputs:
            writes.checkpoint = self._checkpoint_row("PERIODIC")
        for effect in effects:
            if isinstance(effect, Commit):
                writes.merge(effect.writes)
            elif isinstance(effect, Reply):
                writes.commands_done.append(self._outcome(effect))
        try:
            await self._commit(writes)
            if placed:
                self.crash("after_ack_recorded")
        except BaseException as exc:
            for future in done:
                if not future.done():
                    future.set_exception(exc)
            raise
        for future in done:
            if not future.done():
                future.set_result(None)
        for effect in effects:
            if isinstance(effect, Notify):
                self.emit(effect.event)
            elif isinstance(effect, Reply):
                self._answer(effect)
            elif perform_io and isinstance(effect, (Place, Cancel, Query, AnchorClock)):
                self._spawn(effect)
        return effects

    def _merge(self, items: list[_Item]) -> list[_Item]:
        """Consecutive feed events become one batch: one dedupe read, one group commit."""
        out: list[_Item] = []
        for inp, future in items:
            if (
                isinstance(inp, BrokerEvents)
                and future is None
                and out
                and isinstance(out[-1][0], BrokerEvents)
                and out[-1][1] is None
            ):
                prev = out[-1][0]
                assert isinstance(prev, BrokerEvents)
                out[-1] = (BrokerEvents(prev.now_ns, prev.events + inp.events), None)
            else:
                out.append((inp, future))
        return out

    def _stamped(self, inp: Input) -> Input:
        """Feed events and ticks are stamped when they are stepped, not when they were queued.
        No input is stepped at a local time before the previous one's (an answer stamped when
        its call returned may be queued behind one stamped later): broker time, read from it,
        then never goes backward, and a replay needs no memory of reads."""
        if isinstance(inp, BrokerEvents) and inp.now_ns == 0:
            inp = BrokerEvents(self.now_ns(), inp.events, inp.known_keys)
        elif isinstance(inp, Tick) and inp.now_ns == 0:
            inp = Tick(self.now_ns())
        if inp.now_ns < self._stepped_ns:
            inp = dataclasses.replace(inp, now_ns=self._stepped_ns)
        self._stepped_ns = inp.now_ns
        return inp

    async def _with_known_keys(self, inp: Input) -> Input:
        """Read which of the input's dedupe keys the journal already holds (a restart's memory)."""
        if isinstance(inp, BrokerEvents):
            return BrokerEvents(inp.now_ns, inp.events, await self._known(inp.events))
        if isinstance(inp, Given):
            held = await roles_held(self.journal.db, inp.command.actor.os_user, self.journal.path)
            return dataclasses.replace(inp, held=held)
        if isinstance(inp, LookedUp) and inp.snapshot is not None:
            known = await self._known(inp.snapshot.fills)
            status_key = f"S:{inp.snapshot.broker_order_id}:{inp.snapshot.status.value}:{inp.snapshot.filled_qty}"
            known |= await self._known_keys([status_key])
            return LookedUp(inp.now_ns, inp.client_order_id, inp.reason, inp.snapshot, inp.command_id, inp.error, known)
        return inp

    async def _known(self, events: tuple[FeedItem, ...]) -> frozenset[str]:
        keys = []
        for event in events:
            if isinstance(event, MalformedEvent):
                continue
            with contextlib.suppress(DedupeKeyError):
                keys.append(dedupe_key(event))
        return await self._known_keys(keys)

    async def _known_keys(self, keys: list[str]) -> frozenset[str]:
        fresh = [k for k in keys if k not in self.state.seen_keys]
        return frozenset(await self.journal.known_keys(fresh)) if fresh else frozenset()

    async def _commit(self, writes: JournalWrites) -> None:
        if not writes:
            return
        started = time.perf_counter_ns()  # a performance reading for the desk's chart, never a decision
        async with self.journal.transaction(durable=writes.durable):
            await self.journal.flush(writes)
            if any(r.attempt > 1 for r in writes.intents_new.values()):
                self.crash("before_retry_commit")
            elif writes.intents_new:
                self.crash("before_intent_commit")
        if self._touched is not None:
            self._touched.add(writes)
        self._commit_us.append((time.perf_counter_ns() - started) // 1_000)

    def _outcome(self, reply: Reply) -> tuple[Any, ...]:
        """The command row's outcome, written with the step's own rows."""
        epoch, now = self.journal.epoch, self.wall_ms()
        if reply.error is None:
            return ("DONE", command_rows.outcome_json(reply.value), None, None, epoch, now, reply.command_id)
        needed = getattr(reply.error, "role_needed", None)
        return ("REFUSED", None, str(reply.error), needed.value if needed else None, epoch, now, reply.command_id)

    def _answer(self, reply: Reply) -> None:
        future = self._waiting.pop(reply.command_id, None)
        if future is None or future.done():
            return
        if reply.error is not None:
            future.set_exception(reply.error)
        else:
            future.set_result(reply.value)

    # --- I/O -----------------------------------------------------------------------------------

    def _spawn(self, effect: Place | Cancel | Query | AnchorClock) -> None:
        task = asyncio.create_task(self._perform_into_inbox(effect), name=f"engine-io-{type(effect).__name__}")
        self._io.add(task)
        task.add_done_callback(self._io_done)

    def _io_done(self, task: asyncio.Task[None]) -> None:
        self._io.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._fail(task.exception())  # type: ignore[arg-type]
        if not self._busy and not self._io and self._inbox.empty():
            self._quiet.set()

    async def _perform_into_inbox(self, effect: Place | Cancel | Query | AnchorClock) -> None:
        answer = await self._perform(effect)
        self._inbox.put_nowait((answer, None))

    async def _perform(self, effect: Place | Cancel | Query | AnchorClock) -> Input:
        """One broker call. Its outcome, whatever it is, becomes an input: no reply from a broker,
        however wrong, stops the engine (only its own journal or invariants do)."""
        if isinstance(effect, Place):
            return await self._place(effect)
        if isinstance(effect, Cancel):
            try:
                ack = await self.broker.cancel(effect.broker_order_id)
            except KeyError as exc:  # UNKNOWN_ORDER: settled by a lookup by client id
                return CancelAnswered(self.now_ns(), effect.client_order_id, None, _why(exc), unknown_order=True)
            except Exception as exc:
                return CancelAnswered(self.now_ns(), effect.client_order_id, None, _why(exc))
            return CancelAnswered(self.now_ns(), effect.client_order_id, ack)
        if isinstance(effect, Query):
            try:
                snapshot = None
                if effect.broker_order_id:
                    with contextlib.suppress(KeyError):
                        snapshot = await self.broker.order(effect.broker_order_id)
                if snapshot is None:
                    snapshot = await self.broker.find(effect.client_order_id)
            except Exception as exc:
                error = _why(exc)
                return LookedUp(self.now_ns(), effect.client_order_id, effect.reason, None, effect.command_id, error)
            return LookedUp(self.now_ns(), effect.client_order_id, effect.reason, snapshot, effect.command_id)
        try:
            return BrokerTime(self.now_ns(), await self.broker.server_time_ms())
        except Exception as exc:
            return BrokerTime(self.now_ns(), None, _why(exc))

    async def _place(self, effect: Place) -> Input:
        coid = effect.request.client_order_id
        refusal = send_refusal(self.state, effect)  # the switch as it stands now, not at decision time
        if self.failure is not None:  # fenced or failed meanwhile: this engine sends nothing more
            refusal = f"the engine stopped ({self.failure})"
        if refusal:
            return PlaceUnsent(self.now_ns(), coid, f"{HELD}{refusal}")
        self.crash("after_intent_commit")
        try:
            ack = await self.broker.place(effect.request)
        except Rejected as exc:
            return PlaceUnsent(self.now_ns(), coid, f"broker rejected: {exc}")
        except Exception as exc:  # Ambiguous, or anything else: the order may be live; ask by id
            return PlaceUnsent(self.now_ns(), coid, f"outcome unknown: {_why(exc)}", ambiguous=True)
        self.crash("after_broker_accept")
        return Placed(self.now_ns(), coid, ack)

    # --- failure -------------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            self.emit(EngineStopped(repr(exc)))
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(exc)
        self._waiting.clear()
        self._settled.set()
        self._quiet.set()

    def _journal_rolled_back(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            self.emit(EngineStopped(f"journal transaction rolled back: {exc!r}"))
            self._settled.set()
            self._quiet.set()


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


__all__ = ["CommandError", "Engine", "EngineFailure"]
