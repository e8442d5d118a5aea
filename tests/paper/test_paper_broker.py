"""PaperBroker: the Broker port over the paper exchange, with persistence and injected faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from engine.broker.paper import PaperBroker
from engine.broker.port import Broker
from engine.catalog import load_catalog
from engine.core.events import (
    Ambiguous,
    BrokerEvent,
    FillReport,
    OrderRequest,
    OrderUpdate,
    Rejected,
)
from engine.core.model import OrderStatus, OrderType, Side
from engine.paper.exchange import UnknownOrder
from engine.paper.faults import FaultProfile
from engine.paper.state import PaperStateError, open_state

CATALOG = load_catalog()
SYM = "NIFTY26DEC24000CE"
THIN = "NIFTY26DEC25000CE"
TICK = CATALOG[SYM].tick_paise


def fake_clock(start: int = 1_700_000_000_000) -> Callable[[], int]:
    now = [start]

    def clock() -> int:
        now[0] += 7
        return now[0]

    return clock


NO_FAULTS = FaultProfile()


async def open_broker(
    path: Path,
    faults: FaultProfile = NO_FAULTS,
    *,
    seed: int = 1,
    auto_tick: bool = False,
    tick_interval_ms: int = 50,
    cancel_latency_steps: int = 0,
) -> PaperBroker:
    return await PaperBroker.open(
        path,
        CATALOG,
        faults,
        seed=seed,
        exchange_clock=fake_clock(),
        auto_tick=auto_tick,
        tick_interval_ms=tick_interval_ms,
        cancel_latency_steps=cancel_latency_steps,
    )


async def collect(stream: AsyncIterator[BrokerEvent], count: int) -> list[BrokerEvent]:
    """Read exactly ``count`` events, failing if one takes more than two seconds to arrive."""
    out: list[BrokerEvent] = []
    for _ in range(count):
        out.append(await asyncio.wait_for(anext(stream), 2.0))
    return out


async def nothing_more(stream: AsyncIterator[BrokerEvent]) -> bool:
    try:
        await asyncio.wait_for(anext(stream), 0.1)
    except TimeoutError:
        return True
    return False


def buy(
    cid: str,
    qty: int = 75,
    symbol: str = SYM,
    order_type: OrderType = OrderType.MARKET,
    limit_price_paise: int | None = None,
) -> OrderRequest:
    return OrderRequest(cid, symbol, Side.BUY, qty, order_type, limit_price_paise)


async def test_implements_the_broker_port(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "x.db")
    port: Broker = broker
    assert await port.server_time_ms() > 0
    await broker.close()
    await broker.close()  # idempotent


async def test_place_delivers_events_and_reports(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "x.db")
    try:
        stream = broker.events()
        ack = await broker.place(buy("P1", 150))
        events = await collect(stream, 3)
        assert [type(e) for e in events] == [OrderUpdate, FillReport, OrderUpdate]
        filled = OrderUpdate(ack.broker_order_id, "P1", OrderStatus.FILLED, 150, ack.ts_exchange_ms)
        assert events[-1] == filled
        assert await nothing_more(stream)
        snap = await broker.order(ack.broker_order_id)
        assert snap.status is OrderStatus.FILLED and len(snap.fills) == 1
        assert await broker.find("P1") == snap and await broker.find("never") is None
        assert await broker.positions() == {SYM: 150}
        with pytest.raises(UnknownOrder):
            await broker.cancel("PX-none")
    finally:
        await broker.close()


async def test_definite_reject_raises_and_is_recorded(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "x.db")
    try:
        with pytest.raises(Rejected, match="exceeds freeze quantity 1800"):
            await broker.place(buy("BIG", 1875))
        found = await broker.find("BIG")
        assert found is not None and found.status is OrderStatus.REJECTED
    finally:
        await broker.close()


async def test_injected_reject(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "x.db", FaultProfile(reject_rate=1.0))
    try:
        with pytest.raises(Rejected, match="injected"):
            await broker.place(buy("RJ"))
        found = await broker.find("RJ")
        assert found is not None and found.status is OrderStatus.REJECTED
        assert await broker.positions() == {} and broker.stats()["rejects"] == 1
    finally:
        await broker.close()


async def test_lost_ack_raises_ambiguous_but_the_order_is_live(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "x.db", FaultProfile(lost_ack_rate=1.0))
    try:
        stream = broker.events()
        bid, _ = broker.core.best_bid_ask(SYM)
        with pytest.raises(Ambiguous, match="ack lost"):
            await broker.place(buy("LOST", order_type=OrderType.LIMIT, limit_price_paise=bid - 5 * TICK))
        found = await broker.find("LOST")
        assert found is not None and found.status is OrderStatus.ACCEPTED
        [accepted] = await collect(stream, 1)  # its events are still delivered
        assert isinstance(accepted, OrderUpdate) and accepted.broker_order_id == found.broker_order_id
        assert (await broker.cancel(found.broker_order_id)).status is OrderStatus.CANCELLED
        assert broker.stats()["acks_lost"] == 1
    finally:
        await broker.close()


async def test_duplicates_are_delivered(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "x.db", FaultProfile(duplicate_rate=1.0))
    try:
        stream = broker.events()
        await broker.place(buy("DUP1"))
        events = await collect(stream, 6)
        assert len(set(events)) == 3 and all(events.count(e) == 2 for e in events)
        assert await nothing_more(stream)
        assert broker.stats()["duplicates"] == 3
    finally:
        await broker.close()


async def test_delayed_and_reordered_events_all_arrive(tmp_path: Path) -> None:
    faults = FaultProfile(seed=8, reorder_window=3, max_delay_ms=20)
    broker = await open_broker(tmp_path / "x.db", faults)
    try:
        stream = broker.events()
        sent: list[BrokerEvent] = []
        for i in range(5):
            with_events = broker.core.orders()
            await broker.place(buy(f"DL{i}"))
            sent += [e for o in broker.core.orders()[len(with_events) :] for e in o.fills]
        events = await collect(stream, 15)
        assert {e for e in events if isinstance(e, FillReport)} == set(sent)
        assert broker.pending_deliveries() == 0 and broker.stats()["delayed"] > 0
    finally:
        await broker.close()


async def test_state_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "exchange.db"
    broker = await open_broker(path, seed=21)
    bid, _ = broker.core.best_bid_ask(SYM)
    await broker.place(buy("K1", 150))
    resting = await broker.place(buy("K2", order_type=OrderType.LIMIT, limit_price_paise=bid - 10 * TICK))
    await broker.place(OrderRequest("K3", THIN, Side.SELL, 1800))
    await broker.step()
    before_orders, before_positions = await broker.orders(), await broker.positions()
    await broker.close()

    reopened = await open_broker(path, seed=999)  # the saved state wins over the seed
    try:
        assert await reopened.orders() == before_orders
        assert await reopened.positions() == before_positions == {SYM: 150, THIN: -450}
        ack = await reopened.place(buy("K4"))
        ids = [o.broker_order_id for o in await reopened.orders()]
        trades = [f.trade_id for o in await reopened.orders() for f in o.fills]
        assert ack.broker_order_id not in ids[:-1] and len(set(ids)) == len(ids) == 4
        assert len(set(trades)) == len(trades)
        # The resting order is still live at the exchange and fills once the market comes to it.
        reopened.core.set_price(SYM, bid - 50 * TICK)
        await reopened.step()
        assert (await reopened.order(resting.broker_order_id)).status is OrderStatus.FILLED
    finally:
        await reopened.close()
    store = await open_state(path)
    try:
        logged = await store.read_events()
        assert any(e["type"] == "fill" and e["client_order_id"] == "K2" for _, e in logged)
    finally:
        await store.close()


async def test_a_new_subscriber_works_after_the_old_one_went_away(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "x.db")
    try:
        first = broker.events()
        consumer = asyncio.create_task(collect(first, 100))
        await broker.place(buy("S1"))
        await asyncio.sleep(0.05)
        consumer.cancel()  # the engine crashed mid-iteration
        with pytest.raises(asyncio.CancelledError):
            await consumer
        second = broker.events()
        ack = await broker.place(buy("S2"))
        events = await collect(second, 3)
        assert {e.broker_order_id for e in events} == {ack.broker_order_id}
    finally:
        await broker.close()


async def test_close_ends_the_event_stream(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "x.db")
    stream = broker.events()
    await broker.close()
    assert [e async for e in stream] == []
    with pytest.raises(RuntimeError, match="closed"):
        await broker.place(buy("AFTER"))


async def test_ticker_fills_a_resting_limit_order(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "x.db", auto_tick=True, tick_interval_ms=5)
    try:
        stream = broker.events()
        bid, _ = broker.core.best_bid_ask(SYM)
        ack = await broker.place(buy("TK", order_type=OrderType.LIMIT, limit_price_paise=bid - 10 * TICK))
        broker.core.set_price(SYM, bid - 50 * TICK)
        events = await collect(stream, 3)
        assert isinstance(events[1], FillReport) and events[1].broker_order_id == ack.broker_order_id
        last = events[-1]
        assert last == OrderUpdate(ack.broker_order_id, "TK", OrderStatus.FILLED, 75, last.ts_exchange_ms)
    finally:
        await broker.close()


async def test_cancel_latency_races_through_the_broker(tmp_path: Path) -> None:
    broker = await open_broker(tmp_path / "x.db", cancel_latency_steps=1)
    try:
        bid, _ = broker.core.best_bid_ask(SYM)
        ack = await broker.place(buy("CL", order_type=OrderType.LIMIT, limit_price_paise=bid - 10 * TICK))
        assert (await broker.cancel(ack.broker_order_id)).status is OrderStatus.PENDING_CANCEL
        broker.core.set_price(SYM, bid - 50 * TICK)
        await broker.step()
        assert (await broker.order(ack.broker_order_id)).status is OrderStatus.FILLED
    finally:
        await broker.close()


async def test_default_exchange_clock_is_skewed_wall_time(tmp_path: Path) -> None:
    skew = FaultProfile(clock_skew_ms=-60_000)
    broker = await PaperBroker.open(tmp_path / "x.db", CATALOG, skew, auto_tick=False)
    try:
        skewed = await broker.server_time_ms()
        assert abs(skewed - (time.time_ns() // 1_000_000 - 60_000)) < 5_000
    finally:
        await broker.close()


async def test_a_file_that_is_not_sqlite_is_named_in_the_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.db"
    bogus.write_text("this is not a database, just some text that is long enough " * 20)
    with pytest.raises(PaperStateError, match=r"notes\.db"):
        await PaperBroker.open(bogus, CATALOG, auto_tick=False)


async def test_orders_are_saved_one_row_each_and_an_old_whole_state_file_is_carried_over(tmp_path: Path) -> None:
    import json
    import sqlite3

    from engine.catalog import load_catalog
    from engine.paper.exchange import ExchangeCore
    from engine.paper.state import open_state

    catalog = load_catalog()
    old = ExchangeCore(catalog, 7)
    old.place(OrderRequest("OLD1", "NIFTY26DEC24000CE", Side.BUY, 75, OrderType.MARKET), 1_000)
    store = await open_state(tmp_path / "x.db")
    await store.save(old.to_state(), [])  # the earlier format: every order inside the one state row
    await store.close()

    broker = await PaperBroker.open(tmp_path / "x.db", catalog, auto_tick=False)
    assert (await broker.find("OLD1")) is not None
    await broker.place(OrderRequest("NEW1", "NIFTY26DEC24000CE", Side.BUY, 75, OrderType.MARKET))
    await broker.close()

    conn = sqlite3.connect(tmp_path / "x.db")
    meta = json.loads(conn.execute("SELECT json FROM exchange_state").fetchone()[0])
    rows = [r[0] for r in conn.execute("SELECT broker_order_id FROM orders ORDER BY broker_order_id")]
    conn.close()
    assert "orders" not in meta and len(rows) == 2
    again = await PaperBroker.open(tmp_path / "x.db", catalog, auto_tick=False)
    try:
        assert {o.client_order_id for o in await again.orders()} == {"OLD1", "NEW1"}
        assert (await again.positions()) == {"NIFTY26DEC24000CE": 150}
    finally:
        await again.close()
