"""Quotes through the broker port (in-process paper exchange): each symbol's current quote at
once, then a new one when the book or the price moves; they agree with how orders fill."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.broker.paper import PaperBroker
from engine.core.events import OrderRequest
from engine.core.instruments import Instrument
from engine.core.model import Side
from engine.core.quotes import Quote

SYM, OTHER = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"


async def test_quotes_start_with_the_book_and_move_with_it(tmp_path: Path, catalog: dict[str, Instrument]) -> None:
    broker = await PaperBroker.open(tmp_path / "x.db", catalog, auto_tick=False)
    try:
        stream = broker.quotes([SYM, OTHER])
        first = [await anext(stream), await anext(stream)]
        assert {q.symbol for q in first} == {SYM, OTHER}
        q = next(q for q in first if q.symbol == SYM)
        bid, ask = broker.core.best_bid_ask(SYM)
        lot = catalog[SYM].lot_size
        assert (q.bid_paise, q.ask_paise, q.last_paise) == (bid, ask, broker.core.last_price(SYM))
        assert q.ask_qty == q.bid_qty == catalog[SYM].depth_lots_per_level * lot and q.last_qty == 0

        # a market buy of two lots takes them off the best ask: the next quote says so
        ack = await broker.place(OrderRequest("Q1", SYM, Side.BUY, 2 * lot))
        after = await asyncio.wait_for(anext(stream), 5)
        assert after.symbol == SYM and after.ask_qty == q.ask_qty - 2 * lot and after.last_qty == 2 * lot
        (fill,) = (await broker.order(ack.broker_order_id)).fills
        assert fill.price_paise == after.ask_paise  # the quote is the price the order met

        # a step moves prices and refills the book: a changed quote follows for what changed
        seen: set[str] = set()
        for _ in range(20):
            await broker.step()
            while True:
                try:
                    moved = await asyncio.wait_for(anext(stream), 0.05)
                except TimeoutError:
                    break
                seen.add(moved.symbol)
                assert (moved.bid_paise, moved.ask_paise) == broker.core.best_bid_ask(moved.symbol)
                assert moved.last_paise == broker.core.last_price(moved.symbol)
            if seen == {SYM, OTHER}:
                break
        assert seen == {SYM, OTHER}, "prices walk: both symbols' quotes moved"
    finally:
        await broker.close()


async def test_an_unknown_symbol_is_refused_and_close_ends_the_stream(
    tmp_path: Path, catalog: dict[str, Instrument]
) -> None:
    broker = await PaperBroker.open(tmp_path / "x.db", catalog, auto_tick=False)
    with pytest.raises(ValueError, match="no such instrument: NOPE"):
        broker.quotes([SYM, "NOPE"])
    stream = broker.quotes([SYM])
    assert (await anext(stream)).symbol == SYM
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    await broker.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)


def test_a_quote_with_impossible_prices_is_refused() -> None:
    with pytest.raises(ValueError, match="bid 500 above ask 400"):
        Quote(SYM, 500, 400, 75, 75, 450, 0, 1)
    with pytest.raises(ValueError, match="not a positive number of paise"):
        Quote(SYM, -5, 400, 75, 75, 450, 0, 1)
    with pytest.raises(ValueError, match="not a count"):
        Quote(SYM, 300, 400, -75, 75, 450, 0, 1)
