"""A kill switch that waits is not a kill switch. With the broker not answering lookups at all,
HALT is decided in the next step, not behind the broker call, and no opening order is sent once
it is journaled. Measured in steps, not seconds."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.broker.paper import PaperBroker
from engine.core.commands import SetTradingState
from engine.core.events import Ambiguous, OrderRequest, OrderSnapshot, PlaceAck
from engine.core.model import LegRole, OrderStatus
from engine.core.trading_state import TradingState
from tests.runtime.harness import TRADER, Harness, group


class NoAnswers:
    """The paper exchange, except that order lookups never come back (a hung broker)."""

    def __init__(self, inner: PaperBroker) -> None:
        self.inner = inner
        self.places: list[OrderRequest] = []
        self.asked = 0
        self._never = asyncio.Event()

    async def place(self, order: OrderRequest) -> PlaceAck:
        self.places.append(order)
        ack = await self.inner.place(order)
        if len(self.places) == 1:
            raise Ambiguous("ack lost after acceptance")  # the first order's fate must be asked
        return ack

    async def order(self, broker_order_id: str) -> OrderSnapshot:
        self.asked += 1
        await self._never.wait()
        raise AssertionError("unreachable")

    async def find(self, client_order_id: str) -> OrderSnapshot | None:
        self.asked += 1
        await self._never.wait()
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_halt_is_decided_in_the_next_step_while_a_lookup_hangs_and_nothing_opens_after(
    harness: Harness,
) -> None:
    inner = await harness.open_broker(manual_delivery=True)
    broker = NoAnswers(inner)
    harness.broker = broker  # type: ignore[assignment]
    engine = await harness.start(fake_clock=True)
    await engine.launch(group("G1"), TRADER)  # the ack is lost: the hedge order is UNKNOWN
    await engine.launch(group("G2"), TRADER)  # acked; the exchange fills it, the reports wait
    unknown, hedge = engine.book.intents.values()
    assert unknown.order_status is OrderStatus.UNKNOWN and len(broker.places) == 2

    harness.clock_ns += 1_000_000_000  # past resolve_after_ms: the next tick asks the broker
    for _ in range(200):
        if broker.asked:
            break
        await asyncio.sleep(0.01)  # a real tick is due every 50 ms; wait for it, not for a time
    assert broker.asked == 1, "the engine is now waiting on a lookup that never returns"

    steps_before = engine.state.stats.steps
    await engine.execute(SetTradingState(TradingState.HALTED, TRADER))
    steps_to_halt = engine.state.stats.steps - steps_before
    assert engine.trading_state is TradingState.HALTED
    assert steps_to_halt <= 2, f"HALT took {steps_to_halt} steps (the command plus at most one tick)"
    assert engine.settled() is False and broker.asked == 1, "the lookup is still hanging"

    # The exchange filled G2's hedge all along; its reports arrive now. A risk wave would open
    # exposure: nothing may be sent.
    events = inner.deliver_due()
    assert any(e.client_order_id == hedge.client_order_id for e in events)
    await engine.ingest(events, settle=False)  # settling would wait on the hung lookup
    assert hedge.filled_qty == hedge.fills_qty == 150
    roles = [r.role for r in engine.book.intents.values()]
    assert roles == [LegRole.HEDGE, LegRole.HEDGE], "no risk intent was even decided"
    assert len(broker.places) == 2, f"an order was sent after HALT: {broker.places[2:]}"
    g2 = engine.book.groups["G2"]
    assert g2.waiting_on_person and "not sent: trading is HALTED" in g2.reason
    assert unknown.filled_qty == 0, "G1's reports carry a broker id no answer of the broker confirmed"
