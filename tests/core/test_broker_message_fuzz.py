"""Bad broker messages, generated (hypothesis): missing fields, wrong types, negative, NaN,
infinite and huge numbers, unknown statuses and types, unknown orders and oversized strings.
The decoder either returns a well-formed event or raises BrokerEventError naming the field; the
engine's intake journals every refused message (a real journal takes the writes: nothing too
large or too long for it), moves no order it should not, and keeps serving the live group."""

from __future__ import annotations

import asyncio
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.commands import Launch
from engine.core.effects import Commit, JournalWrites, Place
from engine.core.events import (
    MAX_EVENT_INT,
    BrokerEventError,
    FillReport,
    MalformedEvent,
    OrderUpdate,
    event_from_dict,
)
from engine.core.model import OrderStatus, Role
from engine.runtime import command_rows
from engine.store.journal import Journal
from tests.core.stepkit import TRADER, Desk, of, spread

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.text(min_size=65, max_size=70),
    st.just("x" * 100_000),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
FIELDS = ("trade_id", "broker_order_id", "client_order_id", "symbol", "side", "qty", "price_paise", "status",
          "filled_qty", "ts_exchange_ms", "reason")  # fmt: skip


@st.composite
def messages(draw: st.DrawFn, coid: str, bid: str) -> Any:
    """Mostly almost-valid fills and status reports about the live order, with fields spoiled."""
    kind = draw(st.sampled_from(["fill", "order", "order", "fill", "cancel", None, 7]))
    base: dict[str, Any] = {
        "type": kind,
        "trade_id": draw(st.sampled_from(["T1", "T2", "TX"])),
        "broker_order_id": draw(st.sampled_from([bid, "BOTHER", ""])),
        "client_order_id": draw(st.sampled_from([coid, "TDUNKNOWN", ""])),
        "symbol": draw(st.sampled_from(["NIFTY26DEC24200CE", "NOPE"])),
        "side": draw(st.sampled_from(["BUY", "SELL", "buy", "HOLD"])),
        "qty": draw(st.sampled_from([75, 150, 0, -75, 10**20])),
        "price_paise": 10_000,
        "status": draw(st.sampled_from(["ACCEPTED", "FILLED", "PARTIALLY_FILLED", "INTENT", "WHATEVER"])),
        "filled_qty": draw(st.sampled_from([0, 75, 150, 151, 10**20])),
        "ts_exchange_ms": 1_700_000_000_000,
        "reason": draw(st.sampled_from(["", "r" * 10_000])),
    }
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        if draw(st.booleans()):
            base.pop(key, None)
        else:
            base[key] = draw(junk)
    return base if draw(st.integers(0, 20)) else draw(junk)


def test_the_decoder_returns_a_well_formed_event_or_names_the_bad_field() -> None:
    @settings(max_examples=400, deadline=None)
    @given(raw=messages("TDLIVE", "BTDLIVE"))
    def check(raw: Any) -> None:
        try:
            event = event_from_dict(raw)
        except BrokerEventError as exc:
            assert str(exc) and len(str(exc)) < 300, "a bounded message"
            return
        assert isinstance(event, (FillReport, OrderUpdate))
        ints = [event.qty, event.price_paise] if isinstance(event, FillReport) else [event.filled_qty]
        for value in [*ints, event.ts_exchange_ms]:
            assert isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_EVENT_INT
        assert all(len(x) <= 64 for x in (event.broker_order_id, event.client_order_id))
        if isinstance(event, OrderUpdate):
            assert len(event.reason) <= 512 and event.status is not OrderStatus.INTENT

    check()


def test_bad_messages_are_journaled_as_refused_and_the_live_group_keeps_going() -> None:
    async def journal_accepts(batches: list[JournalWrites], path: Path) -> None:
        journal = await Journal.open(path)
        try:
            # the launch's audit row names its command row, as the interpreter records it first
            await command_rows.submit(journal.db, "command-0001", "launch", {}, Role.TRADER, "tina")
            for batch in batches:  # as the interpreter commits them: one transaction per step
                async with journal.transaction():
                    await journal.flush(batch)
        finally:
            await journal.close()

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        desk = Desk()
        launch = desk.give(Launch(spread(qty=150), TRADER))
        (hedge,) = of(launch, Place)
        coid = hedge.request.client_order_id
        batches = [c.writes for effects in (launch, desk.ack(hedge)) for c in of(effects, Commit)]
        sent = 0
        for raw in data.draw(st.lists(messages(coid, desk.bid(coid)), min_size=1, max_size=8)):
            try:
                event: Any = event_from_dict(raw)
            except BrokerEventError as exc:
                event = MalformedEvent.of(raw, f"undecodable event: {exc}", None)
                sent += 1
            batches += [c.writes for c in of(desk.events(event), Commit)]
        rejected = [r for b in batches for r in b.rejected]
        assert len(rejected) >= sent, "every undecodable message is journaled"
        for row in rejected:
            assert len(str(row)) < 10_000, "a refused message is kept, cut"
        row = desk.state.book.intents[coid]
        assert row.fills_qty <= row.qty and row.filled_qty <= row.qty
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(journal_accepts(batches, Path(tmp) / "j.db"))
        # Still serving: the real fills of the live hedge go through, and the risk leg follows.
        if row.order_status not in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED):
            desk.cum[coid] = row.fills_qty
            rest = row.qty - row.fills_qty
            effects = desk.fill(coid, rest) if rest else desk.report(coid, OrderStatus.FILLED)
            assert desk.state.book.intents[coid].fills_qty == row.qty or of(effects, Place) == []

    check()


def test_nan_and_infinity_are_not_integers() -> None:
    for bad in (math.nan, math.inf, -math.inf, 1.5, "75"):
        raw = {"type": "order", "broker_order_id": "B", "client_order_id": "C", "status": "FILLED",
               "filled_qty": bad, "ts_exchange_ms": 1}  # fmt: skip
        try:
            event_from_dict(raw)
        except BrokerEventError as exc:
            assert "filled_qty" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted as a quantity")
