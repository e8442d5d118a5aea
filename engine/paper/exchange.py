"""Deterministic, sans-I/O matching core of the paper exchange.

No asyncio, no I/O, no wall clock: every call takes the exchange time ``now_ms`` explicitly and every
event it returns carries exactly that time. The same seed and the same call sequence give the same
outputs, which is what lets the chaos harness replay a failing run.

Market model, per instrument: a seeded random walk of the last price (never below one tick) and a
book of ``depth_levels`` levels per side, one tick apart, each holding ``depth_lots_per_level`` lots.
Liquidity an order takes is gone until the next ``step()``, which refills every level; so a thin
book fills a large MARKET order only partly, and the remainder is cancelled (IOC), as on NSE.

With a market model (``engine.paper.pricing``), each underlying it names has a spot price of its
own and the options on it are priced from that spot by Black–Scholes instead of walking alone.
Every quote carries the day's open: the price at the first step of the exchange's (IST) day.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.core.events import (
    BrokerEvent,
    CancelAck,
    FillReport,
    OrderRequest,
    OrderSnapshot,
    OrderUpdate,
    PlaceAck,
    Rejected,
    event_from_dict,
    event_to_dict,
)
from engine.core.instruments import Instrument, round_to_tick
from engine.core.model import TERMINAL_ORDER_STATUSES, OrderStatus, OrderType, Side
from engine.core.quotes import Quote
from engine.paper.pricing import IST, MarketModel, Pricing

STATE_VERSION = 1
MARKET_REMAINDER_REASON = "market order remainder cancelled: insufficient depth"


class UnknownOrder(KeyError):
    """No order with this broker order id exists at the exchange."""


@dataclass
class _Market:
    inst: Instrument
    price: int
    rng: random.Random
    lots_per_level: int
    levels: int
    # Qty already taken from each level since the last refill; index 0 is the best level.
    bid_taken: list[int]
    ask_taken: list[int]

    @property
    def level_qty(self) -> int:
        return self.lots_per_level * self.inst.lot_size

    def best_bid(self) -> int:
        tick = self.inst.tick_paise
        half_spread = -(-self.inst.spread_ticks * tick // 2)  # ceil: the bid sits at or below mid
        return max(tick, round_to_tick(self.price - half_spread, tick, up=False))

    def best_ask(self) -> int:
        return self.best_bid() + self.inst.spread_ticks * self.inst.tick_paise

    def level_price(self, aggressor: Side, level: int) -> int | None:
        """Price of the ``level``-th level an aggressor on ``aggressor`` side takes from."""
        tick = self.inst.tick_paise
        if aggressor is Side.BUY:
            return self.best_ask() + level * tick
        price = self.best_bid() - level * tick
        return price if price >= tick else None  # the bid side ends at one tick

    def walk(self) -> None:
        vol = self.inst.volatility_ticks
        move = self.rng.randint(-vol, vol) * self.inst.tick_paise
        self.price = max(self.inst.tick_paise, self.price + move)

    def refill(self) -> None:
        self.bid_taken = [0] * self.levels
        self.ask_taken = [0] * self.levels


@dataclass
class _Order:
    broker_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType
    limit_price_paise: int | None
    trigger_price_paise: int | None
    status: OrderStatus
    ts_exchange_ms: int
    filled_qty: int = 0
    reason: str = ""
    triggered: bool = False  # a stop that has become a LIMIT (SL) or MARKET (SL-M)
    cancel_steps_left: int = 0  # > 0 while a PENDING_CANCEL waits out the cancel latency
    fills: list[FillReport] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.status not in TERMINAL_ORDER_STATUSES

    def snapshot(self) -> OrderSnapshot:
        return OrderSnapshot(
            broker_order_id=self.broker_order_id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            qty=self.qty,
            order_type=self.order_type,
            status=self.status,
            filled_qty=self.filled_qty,
            ts_exchange_ms=self.ts_exchange_ms,
            fills=tuple(self.fills),
            reason=self.reason,
            limit_price_paise=self.limit_price_paise,
            trigger_price_paise=self.trigger_price_paise,
        )


def _market_rng(seed: int, symbol: str) -> random.Random:
    # crc32, not hash(): str hashes are salted per process and would break reproducibility.
    return random.Random((seed << 32) | zlib.crc32(symbol.encode("utf-8")))


def _within_limit(side: Side, price: int, limit: int) -> bool:
    return price <= limit if side is Side.BUY else price >= limit


class ExchangeCore:
    """The matching core. See the module docstring for the market model."""

    def __init__(
        self,
        catalog: Mapping[str, Instrument],
        seed: int,
        *,
        cancel_latency_steps: int = 0,
        market: MarketModel | None = None,
    ):
        self.catalog = dict(catalog)
        self.pricing = None if market is None else Pricing(market, seed)
        self.seed = seed
        self.cancel_latency_steps = cancel_latency_steps
        self._markets = {sym: self._fresh_market(inst) for sym, inst in sorted(self.catalog.items())}
        self._orders: dict[str, _Order] = {}
        self._by_client: dict[str, str] = {}  # client id -> earliest broker order id
        self._order_seq = 0
        self._trade_seq = 0
        self._last_qty: dict[str, int] = {}  # symbol -> qty of its last trade (quotes only)
        self._opens: dict[str, int] = {}  # symbol or underlying -> price at the day's first step
        self._open_day: int | None = None  # the IST day (ordinal) the opens belong to
        self.steps = 0

    def _fresh_market(self, inst: Instrument) -> _Market:
        levels = inst.depth_levels
        return _Market(
            inst,
            inst.start_price_paise,
            _market_rng(self.seed, inst.symbol),
            inst.depth_lots_per_level,
            levels,
            [0] * levels,
            [0] * levels,
        )

    # --- orders ---------------------------------------------------------------------------------

    def place(self, req: OrderRequest, now_ms: int) -> tuple[PlaceAck | Rejected, list[BrokerEvent]]:
        """Accept or reject one order. Duplicate client ids are accepted, as real brokers do."""
        reason = self._validate(req)
        if reason is not None:
            return self.reject(req, reason, now_ms)
        is_stop = req.order_type in (OrderType.SL, OrderType.SL_M)
        order = self._new_order(req, OrderStatus.TRIGGER_PENDING if is_stop else OrderStatus.ACCEPTED, now_ms)
        events: list[BrokerEvent] = [self._update(order, now_ms)]
        if req.order_type is OrderType.MARKET:
            events += self._execute_market(order, now_ms)
        elif req.order_type is OrderType.LIMIT:
            events += self._execute_limit(order, now_ms)
        return PlaceAck(order.broker_order_id, order.client_order_id, now_ms), events

    def reject(self, req: OrderRequest, reason: str, now_ms: int) -> tuple[Rejected, list[BrokerEvent]]:
        """Record ``req`` as a REJECTED order: the exchange report shows every order it received."""
        order = self._new_order(req, OrderStatus.REJECTED, now_ms)
        order.reason = reason
        return Rejected(reason), [self._update(order, now_ms)]

    def cancel(self, broker_order_id: str, now_ms: int) -> tuple[CancelAck, list[BrokerEvent]]:
        order = self._get(broker_order_id)
        if not order.live or order.status is OrderStatus.PENDING_CANCEL:
            return CancelAck(broker_order_id, order.status, now_ms), []
        if self.cancel_latency_steps > 0:
            # The order stays matchable until the latency elapses: fills can race the cancel.
            order.status = OrderStatus.PENDING_CANCEL
            order.cancel_steps_left = self.cancel_latency_steps
        else:
            order.status = OrderStatus.CANCELLED
        return CancelAck(broker_order_id, order.status, now_ms), [self._update(order, now_ms)]

    def step(self, now_ms: int) -> list[BrokerEvent]:
        """Advance every price one step, refill depth, match resting orders, finish pending cancels."""
        self.steps += 1
        pricing = self.pricing
        if pricing is not None:
            pricing.advance(now_ms)
        for market in self._markets.values():
            if pricing is not None and pricing.priced(market.inst):
                price = pricing.model_price(market.inst, now_ms) + pricing.offsets.get(market.inst.symbol, 0)
                market.price = max(market.inst.tick_paise, price)
            else:
                market.walk()
            market.refill()
        self._note_open(now_ms)
        events: list[BrokerEvent] = []
        for order in [o for o in self._orders.values() if o.live and o.symbol in self._markets]:
            events += self._step_order(order, now_ms)
        for order in [o for o in self._orders.values() if o.cancel_steps_left > 0]:
            order.cancel_steps_left -= 1
            if order.cancel_steps_left == 0 and order.live:
                order.status = OrderStatus.CANCELLED
                events.append(self._update(order, now_ms))
        return events

    # --- queries --------------------------------------------------------------------------------

    def order(self, broker_order_id: str) -> OrderSnapshot:
        return self._get(broker_order_id).snapshot()

    def find(self, client_order_id: str) -> OrderSnapshot | None:
        """The earliest order sent with this client id (``orders()`` shows any later ones)."""
        broker_order_id = self._by_client.get(client_order_id)
        return None if broker_order_id is None else self._orders[broker_order_id].snapshot()

    def orders(self) -> list[OrderSnapshot]:
        return [o.snapshot() for o in self._orders.values()]

    def positions(self) -> dict[str, int]:
        """Signed net qty per symbol from every fill (BUY positive); flat symbols are omitted."""
        net: dict[str, int] = {}
        for order in self._orders.values():
            for fill in order.fills:
                net[fill.symbol] = net.get(fill.symbol, 0) + fill.side.sign * fill.qty
        return {sym: qty for sym, qty in sorted(net.items()) if qty}

    def last_price(self, symbol: str) -> int:
        return self._market(symbol).price

    def best_bid_ask(self, symbol: str) -> tuple[int, int]:
        market = self._market(symbol)
        return market.best_bid(), market.best_ask()

    def quotable(self, symbol: str) -> bool:
        """A catalog symbol, or an underlying the market model prices (its spot)."""
        return symbol in self._markets or (self.pricing is not None and symbol in self.pricing.spots)

    def spot(self, underlying: str) -> int | None:
        """The underlying's spot in paise (None without a market model that names it)."""
        return None if self.pricing is None else self.pricing.spot_paise(underlying)

    def quote(self, symbol: str, now_ms: int) -> Quote:
        """The book as an order would meet it now: the best levels and what is left on them,
        and the market's last price (the model's, which is where it trades). For an underlying
        the market model prices, its spot (bid = ask = last, nothing to trade)."""
        spot = self.spot(symbol)
        if spot is not None:
            return Quote(symbol, spot, spot, 0, 0, spot, 0, now_ms, self._opens.get(symbol))
        market = self._market(symbol)
        return Quote(
            symbol,
            market.best_bid(),
            market.best_ask(),
            max(0, market.level_qty - market.bid_taken[0]),
            max(0, market.level_qty - market.ask_taken[0]),
            market.price,
            self._last_qty.get(symbol, 0),
            now_ms,
            self._opens.get(symbol),
        )

    def _note_open(self, now_ms: int) -> None:
        """At the first step of each IST day, every price (and spot) is that day's open."""
        day = datetime.fromtimestamp(now_ms / 1000, IST).toordinal()
        if day == self._open_day:
            return
        self._open_day = day
        self._opens = {sym: m.price for sym, m in self._markets.items()}
        if self.pricing is not None:
            for name in self.pricing.spots:
                spot = self.pricing.spot_paise(name)
                if spot is not None:
                    self._opens[name] = spot

    # --- run-time market controls (operators and tests) -----------------------------------------

    def set_depth(self, symbol: str, lots_per_level: int, levels: int | None = None) -> None:
        """Make a book thinner or deeper from now on; ``lots_per_level=0`` empties it."""
        market = self._market(symbol)
        if lots_per_level < 0 or (levels is not None and levels < 1):
            raise ValueError("lots_per_level must be >= 0 and levels >= 1")
        market.lots_per_level = lots_per_level
        if levels is not None and levels != market.levels:
            market.levels = levels
            market.refill()

    def set_price(self, symbol: str, price_paise: int) -> None:
        """Move the last price, e.g. to gap through a stop; the walk continues from there (a
        priced option keeps the gap as an offset from its model price)."""
        market = self._market(symbol)
        if price_paise <= 0 or price_paise % market.inst.tick_paise:
            raise ValueError(f"price {price_paise} paise is not a positive multiple of the tick")
        pricing = self.pricing
        if pricing is not None and pricing.priced(market.inst) and pricing.last_ms is not None:
            model = pricing.model_price(market.inst, pricing.last_ms)
            pricing.offsets[symbol] = price_paise - model
        market.price = price_paise

    def set_spot(self, underlying: str, spot_paise: int) -> None:
        """Move an underlying's spot (its options follow at the next step)."""
        if self.pricing is None or underlying not in self.pricing.spots:
            raise KeyError(f"no spot price for {underlying}: the market model does not name it")
        if spot_paise <= 0:
            raise ValueError(f"spot {spot_paise} paise must be positive")
        self.pricing.spots[underlying].value = float(spot_paise)

    # --- internals ------------------------------------------------------------------------------

    def _validate(self, req: OrderRequest) -> str | None:
        inst = self.catalog.get(req.symbol)
        if inst is None:
            return f"unknown symbol {req.symbol}"
        problem = inst.check_qty(req.qty)
        if problem is not None:
            return problem
        if req.qty > inst.freeze_qty:
            return f"qty {req.qty} exceeds freeze quantity {inst.freeze_qty}"
        needs_limit = req.order_type in (OrderType.LIMIT, OrderType.SL)
        needs_trigger = req.order_type in (OrderType.SL, OrderType.SL_M)
        if needs_limit and req.limit_price_paise is None:
            return f"{req.order_type.value} order without limit price"
        if needs_trigger and req.trigger_price_paise is None:
            return f"{req.order_type.value} order without trigger price"
        for name, price in (("limit", req.limit_price_paise), ("trigger", req.trigger_price_paise)):
            if price is not None and (price <= 0 or price % inst.tick_paise):
                return f"{name} price {price} paise is not a positive multiple of tick {inst.tick_paise}"
        return None

    def _new_order(self, req: OrderRequest, status: OrderStatus, now_ms: int) -> _Order:
        self._order_seq += 1
        order = _Order(
            f"PX{self._order_seq:010d}",
            req.client_order_id,
            req.symbol,
            req.side,
            req.qty,
            req.order_type,
            req.limit_price_paise,
            req.trigger_price_paise,
            status,
            now_ms,
        )
        self._orders[order.broker_order_id] = order
        self._by_client.setdefault(order.client_order_id, order.broker_order_id)
        return order

    def _step_order(self, order: _Order, now_ms: int) -> list[BrokerEvent]:
        is_stop = order.order_type in (OrderType.SL, OrderType.SL_M)
        if is_stop and not order.triggered:
            price = self._market(order.symbol).price
            trigger = order.trigger_price_paise or 0
            if not (price >= trigger if order.side is Side.BUY else price <= trigger):
                return []
            order.triggered = True
            if order.status is OrderStatus.TRIGGER_PENDING:  # a pending cancel keeps its status
                order.status = OrderStatus.ACCEPTED  # triggered: a working order; its time is the anchor
            triggered = [self._update(order, now_ms)]
            if order.order_type is OrderType.SL_M:
                return triggered + self._execute_market(order, now_ms)
            return triggered + self._execute_limit(order, now_ms)
        return self._execute_limit(order, now_ms)

    def _execute_market(self, order: _Order, now_ms: int) -> list[BrokerEvent]:
        events = self._match(order, None, now_ms)
        if order.filled_qty < order.qty:
            # IOC: what the book could not absorb now is cancelled, never left to rest.
            order.status = OrderStatus.CANCELLED
            order.reason = MARKET_REMAINDER_REASON
            events.append(self._update(order, now_ms))
        return events

    def _execute_limit(self, order: _Order, now_ms: int) -> list[BrokerEvent]:
        return self._match(order, order.limit_price_paise, now_ms)

    def _match(self, order: _Order, limit: int | None, now_ms: int) -> list[BrokerEvent]:
        """Take liquidity level by level (one fill per level), then report the cumulative qty."""
        market = self._market(order.symbol)
        taken = market.ask_taken if order.side is Side.BUY else market.bid_taken
        events: list[BrokerEvent] = []
        for level in range(market.levels):
            price = market.level_price(order.side, level)
            remaining = order.qty - order.filled_qty
            if remaining == 0 or price is None:
                break
            if limit is not None and not _within_limit(order.side, price, limit):
                break
            qty = min(remaining, market.level_qty - taken[level])
            if qty > 0:
                taken[level] += qty
                events.append(self._fill(order, qty, price, now_ms))
        if events:
            if order.filled_qty == order.qty:
                order.status = OrderStatus.FILLED
            elif order.status is not OrderStatus.PENDING_CANCEL:  # a fill does not undo a cancel request
                order.status = OrderStatus.PARTIALLY_FILLED
            events.append(self._update(order, now_ms))
        return events

    def _fill(self, order: _Order, qty: int, price: int, now_ms: int) -> FillReport:
        self._trade_seq += 1
        fill = FillReport(
            f"T{self._trade_seq:010d}",
            order.broker_order_id,
            order.client_order_id,
            order.symbol,
            order.side,
            qty,
            price,
            now_ms,
        )
        order.fills.append(fill)
        order.filled_qty += qty
        self._last_qty[order.symbol] = qty
        return fill

    def _update(self, order: _Order, now_ms: int) -> OrderUpdate:
        order.ts_exchange_ms = now_ms
        return OrderUpdate(
            order.broker_order_id, order.client_order_id, order.status, order.filled_qty, now_ms, order.reason
        )

    def _get(self, broker_order_id: str) -> _Order:
        order = self._orders.get(broker_order_id)
        if order is None:
            raise UnknownOrder(broker_order_id)
        return order

    def _market(self, symbol: str) -> _Market:
        market = self._markets.get(symbol)
        if market is None:
            raise KeyError(f"unknown symbol {symbol}")
        return market

    # --- persistence ----------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """The full state as plain JSON-able data, RNG states included."""
        return {**self.meta_state(), "orders": [_order_to_state(o) for o in self._orders.values()]}

    def meta_state(self) -> dict[str, Any]:
        """Everything but the orders: counters, prices, depth and RNG states (small, fixed size)."""
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "steps": self.steps,
            "order_seq": self._order_seq,
            "trade_seq": self._trade_seq,
            "cancel_latency_steps": self.cancel_latency_steps,
            "markets": {sym: _market_to_state(m) for sym, m in self._markets.items()},
            "opens": dict(self._opens),
            "open_day": self._open_day,
            "pricing": None if self.pricing is None else self.pricing.to_state(),
        }

    def orders_state(self, broker_order_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The saved form of these orders (unknown ids are skipped)."""
        return [_order_to_state(self._orders[i]) for i in broker_order_ids if i in self._orders]

    def live_order_ids(self) -> list[str]:
        return [o.broker_order_id for o in self._orders.values() if o.live]

    @classmethod
    def from_state(
        cls, catalog: Mapping[str, Instrument], state: Mapping[str, Any], *, market: MarketModel | None = None
    ) -> ExchangeCore:
        """Rebuild a core from ``to_state()``. Symbols new to the catalog start fresh. A saved
        market model resumes as it was; ``market`` prices an exchange that was saved without one."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported paper exchange state version {state.get('version')!r}")
        core = cls(catalog, int(state["seed"]), cancel_latency_steps=int(state["cancel_latency_steps"]), market=market)
        if state.get("pricing") is not None:
            core.pricing = Pricing.from_state(state["pricing"])
        core._opens = {str(k): int(v) for k, v in state.get("opens", {}).items()}
        core._open_day = None if state.get("open_day") is None else int(state["open_day"])
        core.steps = int(state["steps"])
        core._order_seq = int(state["order_seq"])
        core._trade_seq = int(state["trade_seq"])
        for sym, raw in state["markets"].items():
            if sym in core._markets:
                _market_from_state(core._markets[sym], raw)
        for raw in state["orders"]:
            order = _order_from_state(raw)
            core._orders[order.broker_order_id] = order
            core._by_client.setdefault(order.client_order_id, order.broker_order_id)
        return core


def _market_to_state(m: _Market) -> dict[str, Any]:
    version, internal, gauss = m.rng.getstate()
    return {
        "price": m.price,
        "rng": [version, list(internal), gauss],
        "lots_per_level": m.lots_per_level,
        "levels": m.levels,
        "bid_taken": list(m.bid_taken),
        "ask_taken": list(m.ask_taken),
    }


def _market_from_state(m: _Market, raw: Mapping[str, Any]) -> None:
    version, internal, gauss = raw["rng"]
    m.rng.setstate((version, tuple(internal), gauss))
    m.price = int(raw["price"])
    m.lots_per_level = int(raw["lots_per_level"])
    m.levels = int(raw["levels"])
    m.bid_taken = [int(q) for q in raw["bid_taken"]]
    m.ask_taken = [int(q) for q in raw["ask_taken"]]


def _order_to_state(o: _Order) -> dict[str, Any]:
    raw = dataclasses.asdict(o)
    raw.update(side=o.side.value, order_type=o.order_type.value, status=o.status.value)
    raw["fills"] = [event_to_dict(f) for f in o.fills]
    return raw


def _order_from_state(raw: Mapping[str, Any]) -> _Order:
    fills = [event_from_dict(f) for f in raw["fills"]]
    return _Order(
        **{
            **raw,
            "side": Side(raw["side"]),
            "order_type": OrderType(raw["order_type"]),
            "status": OrderStatus(raw["status"]),
            "fills": [f for f in fills if isinstance(f, FillReport)],
        }
    )
