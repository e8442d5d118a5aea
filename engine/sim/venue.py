"""The simulated venue: the Broker port over the paper exchange's core, on the simulation's
virtual clock, with every fault drawn from the seed.

The matching, prices, depth and fills are the paper exchange's own (``ExchangeCore``); what this
adds is the way a real broker connection goes wrong, decided by seeded random streams:

- delivery (``DeliveryPlan``, the paper exchange's own): duplicates, reorders, delays;
- answers: lost acks (the order is live, the caller hears ``Ambiguous``), outright rejects,
  error replies to any call (the call did nothing);
- the connection: a disconnect drops everything in flight and refuses calls; on reconnect the
  feed replays from the first event not delivered, with an overlap the engine has already seen;
- the venue's clock: a skew, and steps forward and back;
- hostile events (the previous issue's classes): ids that disagree with the order they name, an
  unsolicited broker id, a fill for an order nobody sent, a fill with the wrong symbol, a
  malformed message, and a stale replay of an old event long after it was applied.

``on_send`` is called with every order before the venue accepts it, so an observer (the
invariant checker) sees each send at the moment it reaches the wire."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from engine.core.events import (
    Ambiguous,
    BrokerEvent,
    CancelAck,
    FeedItem,
    FillReport,
    MalformedEvent,
    OrderRequest,
    OrderSnapshot,
    OrderUpdate,
    PlaceAck,
    Rejected,
)
from engine.core.instruments import Instrument
from engine.core.model import OrderStatus, Side
from engine.core.quotes import Quote
from engine.paper.exchange import ExchangeCore
from engine.paper.faults import DeliveryPlan, FaultProfile


class VenueError(RuntimeError):
    """An error reply: the venue answered, and did nothing."""


class Disconnected(ConnectionError):
    """The connection is down: nothing was sent."""


@dataclass(frozen=True, slots=True)
class VenueFaults:
    """The venue's fault mix (rates are per call or per event, in [0, 1])."""

    duplicate_rate: float = 0.0
    reorder_window: int = 0
    max_delay_ms: int = 0
    lost_ack_rate: float = 0.0
    reject_rate: float = 0.0
    error_rate: float = 0.0  # any call answered with an error, having done nothing
    cancel_latency_steps: int = 0  # a cancel takes this many exchange steps: fills can race it
    replay_overlap: int = 0  # events re-sent after a reconnect that the engine already had
    clock_skew_ms: int = 0
    fill_lag_rate: float = 0.0  # a fill report trails its order's status report by up to a second


@dataclass
class VenueStats:
    events: int = 0
    delivered: int = 0
    duplicates: int = 0
    reordered: int = 0
    lost_acks: int = 0
    rejects: int = 0
    errors: int = 0
    disconnects: int = 0
    replayed: int = 0
    hostile: dict[str, int] = field(default_factory=dict)
    clock_steps: int = 0


HOSTILE_KINDS = ("ghost_ids", "unsolicited_id", "foreign_fill", "wrong_symbol", "malformed", "stale_replay")


class SimVenue:
    def __init__(
        self,
        catalog: Mapping[str, Instrument],
        seed: int,
        faults: VenueFaults,
        local_ms: Callable[[], int],
        exchange_base_ms: int,
        on_send: Callable[[OrderRequest], None] = lambda order: None,
        on_call: Callable[[str], None] = lambda what: None,
    ) -> None:
        self.catalog = catalog
        self.core = ExchangeCore(catalog, seed, cancel_latency_steps=faults.cancel_latency_steps)
        self.faults = faults
        self._plan: DeliveryPlan[int] = DeliveryPlan(
            FaultProfile(
                seed=seed,
                duplicate_rate=faults.duplicate_rate,
                reorder_window=faults.reorder_window,
                max_delay_ms=faults.max_delay_ms,
            )
        )
        self._rng = random.Random(f"venue:{seed}")
        self._local_ms = local_ms
        self._base_ms = exchange_base_ms
        self.clock_offset_ms = faults.clock_skew_ms
        self.on_send = on_send
        self.on_call = on_call
        self.log: list[FeedItem] = []  # every event the venue published, by feed index
        self._delivered = bytearray()  # per log index: 1 once delivered to the engine
        self._first_undelivered = 0
        self.connected = True
        self.stats = VenueStats()
        self.sent: list[str] = []  # client ids, in the order they reached the venue
        self._lagged: list[tuple[int, int]] = []  # (due local ms, log index): fills held back

    # --- time -----------------------------------------------------------------------------

    def now_ms(self) -> int:
        """The venue's clock: the engine sees it only through timestamps."""
        return self._base_ms + self._local_ms() + self.clock_offset_ms

    def step_clock(self, by_ms: int) -> None:
        self.clock_offset_ms += by_ms
        self.stats.clock_steps += 1

    # --- the Broker port ------------------------------------------------------------------

    def _answer_or_fail(self) -> None:
        if not self.connected:
            raise Disconnected("not connected to the venue")
        if self.faults.error_rate and self._rng.random() < self.faults.error_rate:
            self.stats.errors += 1
            raise VenueError("INTERNAL: the venue could not answer")

    async def place(self, order: OrderRequest) -> PlaceAck:
        self._answer_or_fail()
        self.on_send(order)
        self.sent.append(order.client_order_id)
        now = self.now_ms()
        if self.faults.reject_rate and self._rng.random() < self.faults.reject_rate:
            self.stats.rejects += 1
            refused, events = self.core.reject(order, "risk check failed (simulated)", now)
            self._publish(events)
            raise Rejected(str(refused))
        answer, events = self.core.place(order, now)
        self._publish(events)
        if isinstance(answer, Rejected):
            raise answer
        if self.faults.lost_ack_rate and self._rng.random() < self.faults.lost_ack_rate:
            self.stats.lost_acks += 1
            raise Ambiguous("no answer in time (the order is live)")
        return answer

    async def cancel(self, broker_order_id: str) -> CancelAck:
        self.on_call(f"cancel {broker_order_id}")
        self._answer_or_fail()
        ack, events = self.core.cancel(broker_order_id, self.now_ms())
        self._publish(events)
        return ack

    async def order(self, broker_order_id: str) -> OrderSnapshot:
        self.on_call(f"order {broker_order_id}")
        self._answer_or_fail()
        return self.core.order(broker_order_id)

    async def find(self, client_order_id: str) -> OrderSnapshot | None:
        self.on_call(f"find {client_order_id}")
        self._answer_or_fail()
        return self.core.find(client_order_id)

    async def orders(self) -> list[OrderSnapshot]:
        self.on_call("orders")
        self._answer_or_fail()
        return self.core.orders()

    async def positions(self) -> dict[str, int]:
        return self.core.positions()

    async def server_time_ms(self) -> int:
        self._answer_or_fail()
        return self.now_ms()

    def events(self) -> AsyncIterator[FeedItem]:
        raise RuntimeError("the simulated venue delivers in lockstep (deliver_due), never as a feed")

    def quotes(self, symbols: Sequence[str]) -> AsyncIterator[Quote]:
        raise RuntimeError("the simulated venue runs in lockstep; its quotes are read from its core (core.quote)")

    async def close(self) -> None:
        return None

    def stats_dict(self) -> dict[str, int]:
        s = self.stats
        return {
            "events": s.events,
            "delivered": s.delivered,
            "duplicates": self._plan.stats.duplicates_injected,
            "reordered": self._plan.stats.reordered,
            "lost_acks": s.lost_acks,
            "rejects": s.rejects,
            "errors": s.errors,
            "disconnects": s.disconnects,
            "replayed": s.replayed,
            "clock_steps": s.clock_steps,
            **{f"hostile_{k}": v for k, v in sorted(s.hostile.items())},
        }

    # --- the market and the feed ----------------------------------------------------------

    def step(self) -> None:
        """One exchange step: prices walk, resting orders match, cancels land."""
        self._publish(self.core.step(self.now_ms()))

    def _publish(self, events: list[BrokerEvent] | list[FeedItem]) -> None:
        for event in events:
            self.log.append(event)
            self._delivered.append(0)
            self.stats.events += 1
            if not self.connected:
                continue
            index = len(self.log) - 1
            lag = self.faults.fill_lag_rate
            if isinstance(event, FillReport) and lag and self._rng.random() < lag:
                self._lagged.append((self._local_ms() + self._rng.randint(100, 1_000), index))
            else:
                self._plan.offer(index, self._local_ms())

    def deliver_due(self) -> list[FeedItem]:
        if not self.connected:
            return []
        out: list[FeedItem] = []
        now = self._local_ms()
        if self._lagged and min(self._lagged)[0] <= now:
            for item in sorted(x for x in self._lagged if x[0] <= now):
                self._lagged.remove(item)
                self._plan.offer(item[1], now)
        for index in self._plan.due(now):
            out.append(self.log[index])
            self._delivered[index] = 1
        while self._first_undelivered < len(self.log) and self._delivered[self._first_undelivered]:
            self._first_undelivered += 1
        self.stats.delivered += len(out)
        return out

    def pending(self) -> int:
        return self._plan.pending() + len(self._lagged)

    def next_due_ms(self) -> int | None:
        return self._plan.next_due_ms()

    def disconnect(self) -> None:
        """The connection drops: what was in flight is lost, calls fail until reconnect."""
        if self.connected:
            self.connected = False
            self.stats.disconnects += 1
            self._plan.drop_in_flight()
            self._lagged.clear()

    def restart_feed(self) -> None:
        """A new engine process subscribes at the head of the log (the feed position lived in the
        dead process's memory): whatever was in flight or published meanwhile is never delivered;
        recovery's lookups are how the engine learns of it."""
        self._plan.drop_in_flight()
        self._lagged.clear()
        self._delivered = bytearray(b"\x01" * len(self.log))
        self._first_undelivered = len(self.log)

    def reconnect(self) -> None:
        """Resubscribe from the first event not delivered, less an overlap already seen."""
        if self.connected:
            return
        self.connected = True
        start = max(0, self._first_undelivered - self.faults.replay_overlap)
        now = self._local_ms()
        for index in range(start, len(self.log)):
            self.stats.replayed += self._delivered[index]
            self._plan.offer(index, now)

    def inject(self, kind: str, rng: random.Random) -> bool:
        """Publish one hostile event of ``kind`` (HOSTILE_KINDS); False if there is nothing to
        aim it at yet."""
        orders = self.core.orders()
        now = self.now_ms()
        event: FeedItem | None = None
        if kind == "foreign_fill":
            sym = sorted(self.catalog)[rng.randrange(len(self.catalog))]
            inst = self.catalog[sym]
            event = FillReport(
                f"X-{len(self.log)}", "B-FOREIGN", "TDFOREIGN0000000000", sym, _side(rng), inst.lot_size, 100, now
            )
        elif kind == "malformed":
            event = MalformedEvent.of('{"type": "fill", "qty": "NaN", "price": -1}', "qty: not a number", None)
        elif kind == "stale_replay":
            old = [e for e in self.log if not isinstance(e, MalformedEvent)]
            if not old:
                return False
            event = old[rng.randrange(len(old))]
        elif orders:
            o = orders[rng.randrange(len(orders))]
            if kind == "ghost_ids":
                other = next((x for x in orders if x.broker_order_id != o.broker_order_id), None)
                if other is None:
                    return False
                # the client id of one order with the broker id of another: which one moved?
                event = OrderUpdate(other.broker_order_id, o.client_order_id, OrderStatus.FILLED, o.qty, now)
            elif kind == "unsolicited_id":
                event = OrderUpdate(f"B-UNSOLICITED-{len(self.log)}", o.client_order_id, OrderStatus.ACCEPTED, 0, now)
            elif kind == "wrong_symbol":
                wrong = next(s for s in sorted(self.catalog) if s != o.symbol)
                event = FillReport(
                    f"X-{len(self.log)}", o.broker_order_id, o.client_order_id, wrong, o.side, 1, 100, now
                )
        if event is None:
            return False
        self.stats.hostile[kind] = self.stats.hostile.get(kind, 0) + 1
        self._publish([event])
        return True


def _side(rng: random.Random) -> Side:
    return Side.BUY if rng.random() < 0.5 else Side.SELL
