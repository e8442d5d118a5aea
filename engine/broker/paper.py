"""In-process adapter to the paper exchange: the Broker port over ExchangeCore, with faults.

Every change to the exchange is committed to its own state file *before* the caller hears of it,
so the exchange outlives a restart of the engine (reopen the same file). Events then pass through
the seeded fault scheduler (duplicates, delays, reordering) to whoever iterates ``events()``.
Events published while nobody is subscribed are dropped, as a real feed does between sessions: the
engine reconciles through ``find()``/``order()`` when it (re)starts. The append-only log in the state
file still holds every event for reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path

from engine.broker.fanout import EventFanout
from engine.core.events import (
    Ambiguous,
    BrokerEvent,
    CancelAck,
    FeedItem,
    OrderRequest,
    OrderSnapshot,
    PlaceAck,
    Rejected,
    event_to_dict,
)
from engine.core.instruments import Instrument
from engine.core.quotes import Quote
from engine.paper.exchange import ExchangeCore, UnknownOrder
from engine.paper.faults import PRESETS, DeliveryPlan, FaultProfile
from engine.paper.pricing import MarketModel
from engine.paper.state import PaperStateStore, open_state

__all__ = ["PaperBroker", "UnknownOrder"]

log = logging.getLogger(__name__)

# Steps that produce no event still move prices; saving those only every so often keeps the
# fsync rate sane. Losing a few price steps in a crash is harmless; events are always saved.
_QUIET_STEPS_PER_SAVE = 20


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class PaperBroker:
    """The Broker port implemented in-process. Create it with ``await PaperBroker.open(...)``."""

    def __init__(
        self,
        core: ExchangeCore,
        store: PaperStateStore,
        faults: FaultProfile,
        exchange_clock: Callable[[], int],
        tick_interval_ms: int,
        local_clock_ms: Callable[[], int] | None = None,
        manual_delivery: bool = False,
    ) -> None:
        self.core = core
        self.faults = faults
        self._store = store
        self._clock = exchange_clock
        self._tick_interval_ms = tick_interval_ms
        self._plan: DeliveryPlan[BrokerEvent] = DeliveryPlan(faults)
        self._lock = asyncio.Lock()  # one core mutation + its commit at a time
        self._fanout = EventFanout()
        self._unsaved: set[str] = set()  # order ids a failed save still owes the state file
        self._wake = asyncio.Event()
        self._quiet_steps = 0
        self._closed = False
        self._local_clock_ms = local_clock_ms
        self._delivery: asyncio.Task[None] | None = (
            None if manual_delivery else asyncio.create_task(self._deliver_forever(), name="paper-delivery")
        )
        self._ticker: asyncio.Task[None] | None = None
        self._commit_listeners: list[Callable[[list[BrokerEvent]], None]] = []
        self._market_changed = asyncio.Event()  # replaced on every change; quote streams wait on it

    @classmethod
    async def open(
        cls,
        state_path: Path,
        catalog: Mapping[str, Instrument],
        faults: FaultProfile = PRESETS["none"],
        *,
        seed: int = 1,
        exchange_clock: Callable[[], int] | None = None,
        tick_interval_ms: int = 50,
        cancel_latency_steps: int = 0,
        auto_tick: bool = True,
        local_clock_ms: Callable[[], int] | None = None,
        manual_delivery: bool = False,
        market: MarketModel | None = None,
    ) -> PaperBroker:
        """Open the exchange on ``state_path``, resuming its saved state if there is one.

        ``seed`` only seeds a fresh exchange; a resumed one continues its saved random streams.
        ``exchange_clock`` defaults to wall-clock ms plus ``faults.clock_skew_ms``: the simulated
        venue's own clock, which the engine only ever sees through event timestamps.
        ``local_clock_ms`` (default: the event loop's clock) times the fault scheduler's delays;
        with ``manual_delivery`` no task delivers events: the caller takes them with
        ``deliver_due()``. A virtual clock and manual delivery make a seeded run replay exactly.
        ``market`` (engine.paper.pricing) gives the underlyings spot prices and prices the options
        from them; a resumed exchange keeps the model it was saved with.
        """
        store = await open_state(state_path)
        try:
            saved = await store.load()
            core = (
                ExchangeCore(catalog, seed, market=market)
                if saved is None
                else ExchangeCore.from_state(catalog, saved, market=market)
            )
        except BaseException:
            await store.close()
            raise
        core.cancel_latency_steps = cancel_latency_steps
        skew = faults.clock_skew_ms
        clock = exchange_clock or (lambda: _wall_clock_ms() + skew)
        broker = cls(core, store, faults, clock, tick_interval_ms, local_clock_ms, manual_delivery)
        if auto_tick:
            broker._ticker = asyncio.create_task(broker._tick_forever(), name="paper-ticker")
        return broker

    # --- the Broker port ------------------------------------------------------------------------

    async def place(self, order: OrderRequest) -> PlaceAck:
        """Raises Rejected (definite; recorded at the exchange) or Ambiguous (the order is live)."""
        async with self._lock:
            self._check_open()
            now = self._clock()
            outcome: PlaceAck | Rejected
            if self._plan.should_reject():
                outcome, events = self.core.reject(order, "rejected by broker risk check (injected)", now)
            else:
                outcome, events = self.core.place(order, now)
            try:
                await self._commit(events)
            except Exception as exc:
                # The order is in the book in memory but not on disk: its fate is unknown.
                raise Ambiguous(f"paper exchange could not persist the order: {exc}") from exc
        self._publish(events)
        if isinstance(outcome, Rejected):
            raise outcome
        if self._plan.should_lose_ack():
            raise Ambiguous("ack lost after acceptance")
        return outcome

    async def cancel(self, broker_order_id: str) -> CancelAck:
        """Raises UnknownOrder (a KeyError) when the exchange never issued ``broker_order_id``."""
        async with self._lock:
            self._check_open()
            ack, events = self.core.cancel(broker_order_id, self._clock())
            if events:
                try:
                    await self._commit(events)
                except Exception as exc:
                    raise Ambiguous(f"paper exchange could not persist the cancel: {exc}") from exc
        self._publish(events)
        return ack

    async def order(self, broker_order_id: str) -> OrderSnapshot:
        """Raises UnknownOrder (a KeyError) when the exchange never issued ``broker_order_id``."""
        return self.core.order(broker_order_id)

    async def find(self, client_order_id: str) -> OrderSnapshot | None:
        return self.core.find(client_order_id)

    async def orders(self) -> list[OrderSnapshot]:
        return self.core.orders()

    async def positions(self) -> dict[str, int]:
        """Net signed qty per symbol at the exchange (for the exchange report; not in the port)."""
        return self.core.positions()

    async def server_time_ms(self) -> int:
        return self._clock()

    def events(self) -> AsyncIterator[FeedItem]:
        """Events delivered from this call on, until close(). Each call is an independent subscriber.

        The subscription starts here, not at the first ``__anext__``, so an engine can subscribe,
        then reconcile through ``find()``, without missing what happens in between.
        """
        return self._fanout.subscribe()

    def quotes(self, symbols: Sequence[str]) -> AsyncIterator[Quote]:
        """Quotes of ``symbols`` from the exchange's own book and price process (so they agree
        with how orders fill): each symbol's current quote at once, then one whenever its book
        or price changes (after a step, a fill, a cancel), until close(). An underlying the market
        model prices (NIFTY) quotes its spot."""
        unknown = sorted(s for s in set(symbols) if not self.core.quotable(s))
        if unknown:
            raise ValueError(f"no such instrument: {', '.join(unknown)}")
        return self._quotes(tuple(dict.fromkeys(symbols)))

    async def _quotes(self, symbols: tuple[str, ...]) -> AsyncIterator[Quote]:
        sent: dict[str, tuple[object, ...]] = {}
        while not self._closed:
            changed = self._market_changed  # this generation: set by the next change
            now = self._clock()
            for symbol in symbols:
                q = self.core.quote(symbol, now)
                key = (q.bid_paise, q.ask_paise, q.bid_qty, q.ask_qty, q.last_paise, q.last_qty)
                if sent.get(symbol) != key:
                    sent[symbol] = key
                    yield q
            await changed.wait()

    def _markets_moved(self) -> None:
        moved, self._market_changed = self._market_changed, asyncio.Event()
        moved.set()

    async def close(self) -> None:
        """Stop ticking and delivering, save the final state, close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # Under the lock: the ticker is never cut off mid-commit, and a place() queued behind us
        # finds the broker closed instead of writing to a closed file.
        async with self._lock:
            tasks = [t for t in (self._ticker, self._delivery) if t is not None]
            for task in tasks:
                task.cancel()
            for result in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(result, Exception):
                    log.error("paper exchange task had failed: %r", result)
            try:
                await self._commit([], changed=self.core.live_order_ids())
            finally:
                await self._store.close()
                self._fanout.end()
                self._markets_moved()  # quote streams see the broker closed and end

    # --- test and operator hooks ----------------------------------------------------------------

    async def step(self) -> list[BrokerEvent]:
        """Advance the exchange one step now (the ticker calls this; tests call it directly)."""
        async with self._lock:
            self._check_open()
            events = self.core.step(self._clock())
            self._markets_moved()  # prices walk every step, with or without events
            self._quiet_steps = 0 if events else self._quiet_steps + 1
            if events or self._quiet_steps >= _QUIET_STEPS_PER_SAVE:
                self._quiet_steps = 0
                await self._commit(events, changed=self.core.live_order_ids())
        self._publish(events)
        return events

    def stats(self) -> dict[str, int]:
        s = self._plan.stats
        return {
            "duplicates": s.duplicates_injected,
            "reordered": s.reordered,
            "delayed": s.delayed,
            "acks_lost": s.acks_lost,
            "rejects": s.rejects_injected,
        }

    def add_commit_listener(self, listener: Callable[[list[BrokerEvent]], None]) -> None:
        """Call ``listener`` with every non-empty batch of events right after it is committed to the
        state file's log, in log order, before any fault is applied (the exchange server numbers
        and streams them from here). It runs under the commit lock: it must not block or raise."""
        self._commit_listeners.append(listener)

    def pending_deliveries(self) -> int:
        """Copies still held by the fault scheduler (delayed or buffered for reordering)."""
        return self._plan.pending()

    # --- internals ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the paper broker is closed")

    async def _commit(self, events: list[BrokerEvent], changed: Iterable[str] = ()) -> None:
        # Only the orders these events touched (plus the live ones, whose cancel countdowns move
        # without events) are rewritten; the rest of the day's orders are already on disk.
        # Orders of a save that failed stay owed until a save succeeds (they changed in memory).
        ids = {e.broker_order_id for e in events} | set(changed) | self._unsaved
        full = self._store.needs_full_save
        if full:
            ids = {o.broker_order_id for o in self.core.orders()}
        orders = self.core.orders_state(sorted(ids))
        try:
            await self._store.save(self.core.meta_state(), [event_to_dict(e) for e in events], orders)
        except BaseException:
            self._unsaved = ids
            raise
        self._unsaved = set()
        if full:
            self._store.needs_full_save = False
        if events:
            for listener in self._commit_listeners:
                listener(events)

    def _publish(self, events: list[BrokerEvent]) -> None:
        self._markets_moved()
        if not events:
            return
        now = self._local_ms()
        for event in events:
            self._plan.offer(event, now)
        self._wake.set()

    def _local_ms(self) -> int:
        if self._local_clock_ms is not None:
            return self._local_clock_ms()
        return int(asyncio.get_running_loop().time() * 1000)

    def deliver_due(self) -> list[BrokerEvent]:
        """Manual delivery: the copies the fault scheduler releases by now, in delivery order."""
        return self._plan.due(self._local_ms())

    async def _deliver_forever(self) -> None:
        while True:
            self._wake.clear()
            for event in self._plan.due(self._local_ms()):
                self._fanout.publish(event)
            next_due = self._plan.next_due_ms()
            timeout = None if next_due is None else max(0, next_due - self._local_ms()) / 1000
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval_ms / 1000)
            if self._closed:
                return
            try:
                await self.step()
            except Exception:
                log.exception("paper exchange tick failed; the ticker stops")
                raise
