"""ExchangeCore: validation, matching against limited depth, stops, cancels, determinism, state."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engine.catalog import load_catalog
from engine.core.events import (
    BrokerEvent,
    CancelAck,
    FillReport,
    OrderRequest,
    OrderUpdate,
    PlaceAck,
    Rejected,
)
from engine.core.model import OrderStatus, OrderType, Side
from engine.paper.exchange import MARKET_REMAINDER_REASON, ExchangeCore, UnknownOrder

CATALOG = load_catalog()
DEEP = "NIFTY26DEC24000CE"  # lot 75, freeze 1800, 5 levels x 20 lots
THIN = "NIFTY26DEC25000CE"  # lot 75, 3 levels x 2 lots
TICK = CATALOG[DEEP].tick_paise


def req(
    cid: str,
    qty: int = 75,
    side: Side = Side.BUY,
    order_type: OrderType = OrderType.MARKET,
    limit: int | None = None,
    trigger: int | None = None,
    symbol: str = DEEP,
) -> OrderRequest:
    return OrderRequest(cid, symbol, side, qty, order_type, limit, trigger)


def updates(events: list[BrokerEvent]) -> list[OrderUpdate]:
    return [e for e in events if isinstance(e, OrderUpdate)]


def fills(events: list[BrokerEvent]) -> list[FillReport]:
    return [e for e in events if isinstance(e, FillReport)]


def place_ok(core: ExchangeCore, r: OrderRequest, now: int = 1000) -> tuple[PlaceAck, list[BrokerEvent]]:
    ack, events = core.place(r, now)
    assert isinstance(ack, PlaceAck), ack
    return ack, events


@pytest.fixture
def core() -> ExchangeCore:
    return ExchangeCore(CATALOG, seed=7)


@pytest.mark.parametrize(
    ("request_", "reason_part"),
    [
        (req("A1", qty=1875), "exceeds freeze quantity 1800"),
        (req("A2", qty=100), "not a multiple of lot size 75"),
        (req("A3", qty=0), "must be positive"),
        (req("A4", symbol="NOPE"), "unknown symbol NOPE"),
        (req("A5", order_type=OrderType.LIMIT), "without limit price"),
        (req("A6", order_type=OrderType.LIMIT, limit=21243), "not a positive multiple of tick"),
        (req("A7", order_type=OrderType.SL_M), "without trigger price"),
    ],
)
def test_invalid_orders_are_rejected_and_recorded(core: ExchangeCore, request_: OrderRequest, reason_part: str) -> None:
    outcome, events = core.place(request_, 500)
    assert isinstance(outcome, Rejected)
    assert reason_part in str(outcome)
    [update] = events
    expected = OrderUpdate(update.broker_order_id, request_.client_order_id, OrderStatus.REJECTED, 0, 500, str(outcome))
    assert update == expected
    found = core.find(request_.client_order_id)
    assert found is not None and found.status is OrderStatus.REJECTED and reason_part in found.reason


def test_freeze_qty_exact_message(core: ExchangeCore) -> None:
    outcome, _ = core.place(req("F1", qty=1875), 1)
    assert str(outcome) == "qty 1875 exceeds freeze quantity 1800"


def test_duplicate_client_ids_are_both_accepted(core: ExchangeCore) -> None:
    first, _ = place_ok(core, req("DUP", qty=75))
    second, _ = place_ok(core, req("DUP", qty=150))
    assert first.broker_order_id != second.broker_order_id
    found = core.find("DUP")
    assert found is not None and found.broker_order_id == first.broker_order_id and found.qty == 75
    assert [o.client_order_id for o in core.orders()] == ["DUP", "DUP"]
    assert core.positions() == {DEEP: 225}


def test_market_order_fills_at_best_ask_with_cumulative_updates(core: ExchangeCore) -> None:
    _, ask = core.best_bid_ask(DEEP)
    ack, events = place_ok(core, req("M1", qty=225), now=1234)
    assert [u.status for u in updates(events)] == [OrderStatus.ACCEPTED, OrderStatus.FILLED]
    assert updates(events)[-1].filled_qty == 225
    [fill] = fills(events)
    assert (fill.qty, fill.price_paise, fill.broker_order_id) == (225, ask, ack.broker_order_id)
    assert all(e.ts_exchange_ms == 1234 for e in events)
    assert core.order(ack.broker_order_id).fills == (fill,)


def test_thin_book_fills_market_partly_and_cancels_the_remainder(core: ExchangeCore) -> None:
    _, ask = core.best_bid_ask(THIN)
    _, events = place_ok(core, req("THIN1", qty=1800, symbol=THIN))
    level_qty = 2 * 75
    assert [(f.qty, f.price_paise) for f in fills(events)] == [
        (level_qty, ask),
        (level_qty, ask + TICK),
        (level_qty, ask + 2 * TICK),
    ]
    assert [(u.status, u.filled_qty) for u in updates(events)] == [
        (OrderStatus.ACCEPTED, 0),
        (OrderStatus.PARTIALLY_FILLED, 450),
        (OrderStatus.CANCELLED, 450),
    ]
    assert updates(events)[-1].reason == MARKET_REMAINDER_REASON
    # The liquidity is gone until the next step refills the book.
    _, again = place_ok(core, req("THIN2", qty=75, symbol=THIN))
    assert fills(again) == [] and updates(again)[-1].status is OrderStatus.CANCELLED
    core.step(2000)
    _, refilled = place_ok(core, req("THIN3", qty=75, symbol=THIN))
    assert updates(refilled)[-1].status is OrderStatus.FILLED
    assert len({f.trade_id for f in fills(events) + fills(refilled)}) == 4


def test_set_depth_makes_a_book_thin_at_run_time(core: ExchangeCore) -> None:
    core.set_depth(DEEP, lots_per_level=1, levels=2)
    _, events = place_ok(core, req("SD", qty=300, side=Side.SELL))
    assert sum(f.qty for f in fills(events)) == 150
    assert core.positions() == {DEEP: -150}


def test_limit_rests_then_fills_on_step(core: ExchangeCore) -> None:
    bid, _ = core.best_bid_ask(DEEP)
    ack, events = place_ok(core, req("L1", qty=150, order_type=OrderType.LIMIT, limit=bid))
    assert [u.status for u in updates(events)] == [OrderStatus.ACCEPTED] and not fills(events)
    core.set_price(DEEP, bid - 10 * TICK)  # the ask falls well below the limit, whatever the walk does
    stepped = core.step(5000)
    [fill] = fills(stepped)
    assert fill.price_paise <= bid and fill.ts_exchange_ms == 5000
    assert core.order(ack.broker_order_id).status is OrderStatus.FILLED


def test_marketable_limit_fills_part_and_rests_the_rest(core: ExchangeCore) -> None:
    _, ask = core.best_bid_ask(DEEP)
    ack, events = place_ok(core, req("L2", qty=1800, order_type=OrderType.LIMIT, limit=ask))
    assert sum(f.qty for f in fills(events)) == 1500  # one level of 20 lots at the limit
    snap = core.order(ack.broker_order_id)
    assert (snap.status, snap.filled_qty) == (OrderStatus.PARTIALLY_FILLED, 1500)


def test_sl_m_triggers_into_a_market_order(core: ExchangeCore) -> None:
    price = core.last_price(DEEP)
    ack, events = place_ok(core, req("S1", order_type=OrderType.SL_M, trigger=price + 20 * TICK))
    assert not fills(events)
    core.set_price(DEEP, price - 20 * TICK)
    assert core.step(10) == []  # not crossed
    core.set_price(DEEP, price + 40 * TICK)
    stepped = core.step(20)
    assert sum(f.qty for f in fills(stepped)) == 75
    assert core.order(ack.broker_order_id).status is OrderStatus.FILLED


def test_sell_sl_triggers_into_a_limit_at_its_limit_price(core: ExchangeCore) -> None:
    price = core.last_price(DEEP)
    trigger, limit = price - 20 * TICK, price - 200 * TICK
    ack, _ = place_ok(core, req("S2", side=Side.SELL, order_type=OrderType.SL, limit=limit, trigger=trigger))
    core.set_price(DEEP, trigger - 10 * TICK)
    stepped = core.step(30)
    assert [f.price_paise >= limit for f in fills(stepped)] == [True]
    assert core.positions() == {DEEP: -75}
    assert core.order(ack.broker_order_id).order_type is OrderType.SL


def test_cancel_live_terminal_and_unknown(core: ExchangeCore) -> None:
    bid, _ = core.best_bid_ask(DEEP)
    ack, _ = place_ok(core, req("C1", order_type=OrderType.LIMIT, limit=bid - 10 * TICK))
    cancel_ack, events = core.cancel(ack.broker_order_id, 99)
    assert cancel_ack == CancelAck(ack.broker_order_id, OrderStatus.CANCELLED, 99)
    assert [(u.status, u.filled_qty, u.ts_exchange_ms) for u in updates(events)] == [(OrderStatus.CANCELLED, 0, 99)]
    again, no_events = core.cancel(ack.broker_order_id, 100)
    assert again.status is OrderStatus.CANCELLED and no_events == []
    filled, _ = place_ok(core, req("C2"))
    assert core.cancel(filled.broker_order_id, 101)[0].status is OrderStatus.FILLED
    with pytest.raises(UnknownOrder):
        core.cancel("PX-nope", 102)
    with pytest.raises(KeyError):
        core.order("PX-nope")


def test_cancel_latency_lets_a_fill_race_the_cancel() -> None:
    core = ExchangeCore(CATALOG, seed=3, cancel_latency_steps=2)
    core.set_depth(DEEP, lots_per_level=1, levels=1)
    bid, _ = core.best_bid_ask(DEEP)
    ack, _ = place_ok(core, req("R1", qty=225, order_type=OrderType.LIMIT, limit=bid - 10 * TICK))
    cancel_ack, events = core.cancel(ack.broker_order_id, 10)
    assert cancel_ack.status is OrderStatus.PENDING_CANCEL
    assert [u.status for u in updates(events)] == [OrderStatus.PENDING_CANCEL]
    core.set_price(DEEP, bid - 40 * TICK)
    first = core.step(20)  # the fill arrives after the cancel request: legal, and reported
    assert sum(f.qty for f in fills(first)) == 75
    assert [(u.status, u.filled_qty) for u in updates(first)] == [(OrderStatus.PENDING_CANCEL, 75)]
    second = core.step(30)  # latency elapses at this step, after it matched once more
    assert [(u.status, u.filled_qty) for u in updates(second)] == [
        (OrderStatus.PENDING_CANCEL, 150),
        (OrderStatus.CANCELLED, 150),
    ]
    assert core.step(40) == []
    assert core.order(ack.broker_order_id).filled_qty == 150


def test_cancel_latency_loses_to_a_complete_fill() -> None:
    core = ExchangeCore(CATALOG, seed=3, cancel_latency_steps=1)
    bid, _ = core.best_bid_ask(DEEP)
    ack, _ = place_ok(core, req("R2", order_type=OrderType.LIMIT, limit=bid - 10 * TICK))
    core.cancel(ack.broker_order_id, 10)
    core.set_price(DEEP, bid - 40 * TICK)
    events = core.step(20)
    assert [u.status for u in updates(events)] == [OrderStatus.FILLED]
    assert core.cancel(ack.broker_order_id, 30)[0].status is OrderStatus.FILLED


def test_price_never_falls_below_one_tick() -> None:
    inst = CATALOG[THIN]
    cheap = {THIN: dataclasses.replace(inst, start_price_paise=inst.tick_paise, volatility_ticks=5)}
    core = ExchangeCore(cheap, seed=11)
    for i in range(300):
        core.step(i)
        assert core.last_price(THIN) >= inst.tick_paise
        bid, ask = core.best_bid_ask(THIN)
        assert bid >= inst.tick_paise and ask == bid + inst.tick_paise


def _script(core: ExchangeCore) -> list[object]:
    """A fixed call sequence touching every code path; returns everything the core said."""
    out: list[object] = []
    for i in range(40):
        now = 1000 + i * 50
        out.append(core.step(now))
        side = Side.BUY if i % 3 else Side.SELL
        bid, ask = core.best_bid_ask(DEEP)
        out.append(core.place(req(f"D{i}", qty=75 * (1 + i % 4), side=side), now))
        limit = bid - TICK if side is Side.BUY else ask + TICK
        ack, events = core.place(req(f"E{i}", side=side, order_type=OrderType.LIMIT, limit=limit), now)
        out.append((ack, events))
        if i % 5 == 0 and isinstance(ack, PlaceAck):
            out.append(core.cancel(ack.broker_order_id, now))
        out.append(core.place(req(f"T{i}", qty=300, symbol=THIN), now))
    out.append(core.orders())
    out.append(core.positions())
    return out


def test_same_seed_same_calls_give_identical_outputs() -> None:
    assert _script(ExchangeCore(CATALOG, seed=42)) == _script(ExchangeCore(CATALOG, seed=42))
    assert _script(ExchangeCore(CATALOG, seed=42)) != _script(ExchangeCore(CATALOG, seed=43))


def test_state_round_trip_continues_identically() -> None:
    original = ExchangeCore(CATALOG, seed=5, cancel_latency_steps=1)
    _script(original)
    state = json.loads(json.dumps(original.to_state()))
    restored = ExchangeCore.from_state(CATALOG, state)
    assert restored.orders() == original.orders()
    assert restored.positions() == original.positions()
    assert restored.to_state() == original.to_state()
    assert _script(restored) == _script(original)  # counters and rng streams continue in step
    ids = [o.broker_order_id for o in restored.orders()]
    assert len(ids) == len(set(ids))


def test_from_state_rejects_an_unknown_version() -> None:
    state = ExchangeCore(CATALOG, seed=1).to_state()
    state["version"] = 99
    with pytest.raises(ValueError, match="version"):
        ExchangeCore.from_state(CATALOG, state)
