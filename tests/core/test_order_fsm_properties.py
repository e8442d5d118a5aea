"""Property: any interleaving of duplicates and reorderings of a valid event stream for one order
ends in the same state and filled qty as the clean stream (through the real dedupe keys)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.dedupe import dedupe_key
from engine.core.events import BrokerEvent, FillReport, OrderUpdate
from engine.core.model import OrderStatus, Side
from engine.core.order_fsm import OrderState, apply, apply_fill, broker_trigger

LOT = 75


@st.composite
def clean_streams(draw: st.DrawFn) -> tuple[int, list[BrokerEvent]]:
    lots = draw(st.integers(1, 8))
    qty = lots * LOT
    fills = draw(st.lists(st.integers(1, lots), min_size=0, max_size=lots))
    events: list[BrokerEvent] = [OrderUpdate("B1", "C1", OrderStatus.ACCEPTED, 0, 1)]
    cum = 0
    for i, f in enumerate(fills):
        step = min(f, lots - cum // LOT) * LOT
        if step <= 0:
            break
        cum += step
        events.append(FillReport(f"T{i}", "B1", "C1", "SYM", Side.BUY, step, 100, 2 + i))
        status = OrderStatus.FILLED if cum == qty else OrderStatus.PARTIALLY_FILLED
        events.append(OrderUpdate("B1", "C1", status, cum, 2 + i))
    if cum < qty and draw(st.booleans()):
        events.append(OrderUpdate("B1", "C1", OrderStatus.CANCELLED, cum, 100))
    return qty, events


def run(qty: int, events: list[BrokerEvent]) -> tuple[OrderState, int]:
    state, fills, seen = OrderState(OrderStatus.SUBMITTED, qty), 0, set()
    for ev in events:
        key = dedupe_key(ev)
        if key in seen:
            continue
        seen.add(key)
        if isinstance(ev, FillReport):
            outcome, fills = apply_fill(state, fills, ev.qty)
        else:
            outcome = apply(state, broker_trigger(ev.status), ev.filled_qty)
        state = outcome.state
    return state, fills


@settings(max_examples=300, deadline=None)
@given(data=st.data(), stream=clean_streams())
def test_duplicates_and_reordering_reach_the_clean_final_state(
    data: st.DataObject, stream: tuple[int, list[BrokerEvent]]
) -> None:
    qty, clean = stream
    noisy = list(clean) + data.draw(st.lists(st.sampled_from(clean), max_size=len(clean) * 2))
    noisy = data.draw(st.permutations(noisy))
    clean_state, clean_fills = run(qty, clean)
    noisy_state, noisy_fills = run(qty, noisy)
    assert noisy_state.filled_qty == clean_state.filled_qty
    assert noisy_fills == clean_fills
    assert noisy_state.status == clean_state.status
