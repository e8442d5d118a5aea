"""Seed defect 5 (deterministic keys, id-less events refused) and freeze-qty slicing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.core.dedupe import DedupeKeyError, dedupe_key
from engine.core.events import BrokerEventError, FillReport, OrderUpdate, event_from_dict
from engine.core.model import OrderStatus, Side
from engine.core.slicing import SliceError, slice_qty


def test_defect5_resent_status_update_gets_the_same_key_without_an_event_id() -> None:
    a = OrderUpdate("PX1", "C1", OrderStatus.PARTIALLY_FILLED, 75, ts_exchange_ms=1000)
    resend = OrderUpdate("PX1", "C1", OrderStatus.PARTIALLY_FILLED, 75, ts_exchange_ms=1999)
    assert dedupe_key(a) == dedupe_key(resend)
    assert dedupe_key(a) != dedupe_key(OrderUpdate("PX1", "C1", OrderStatus.PARTIALLY_FILLED, 150, 1000))


def test_defect5_fill_key_is_the_trade_id() -> None:
    fill = FillReport("T9", "PX1", "C1", "S", Side.BUY, 75, 100, 5)
    assert dedupe_key(fill) == dedupe_key(FillReport("T9", "PX1", "C1", "S", Side.BUY, 75, 100, 6)) == "F:T9"


def test_defect5_id_less_event_is_refused_loudly() -> None:
    with pytest.raises(DedupeKeyError, match="trade id"):
        dedupe_key(FillReport("", "PX1", "C1", "S", Side.BUY, 75, 100, 5))
    with pytest.raises(DedupeKeyError, match="broker order id"):
        dedupe_key(OrderUpdate("", "C1", OrderStatus.ACCEPTED, 0, 5))
    with pytest.raises(BrokerEventError, match="trade_id"):
        event_from_dict(
            {
                "type": "fill",
                "broker_order_id": "PX1",
                "client_order_id": "C1",
                "symbol": "S",
                "side": "BUY",
                "qty": 75,
                "price_paise": 100,
                "ts_exchange_ms": 1,
            }
        )


@pytest.mark.parametrize(
    "raw, field",
    [
        (
            {
                "type": "order",
                "broker_order_id": "PX1",
                "client_order_id": "C",
                "status": "FILLED",
                "filled_qty": -5,
                "ts_exchange_ms": 1,
            },
            "filled_qty",
        ),
        (
            {
                "type": "order",
                "broker_order_id": "PX1",
                "client_order_id": "C",
                "status": "INTENT",
                "filled_qty": 0,
                "ts_exchange_ms": 1,
            },
            "INTENT",
        ),
        (
            {
                "type": "order",
                "broker_order_id": "PX1",
                "client_order_id": "C",
                "status": "FILLED",
                "filled_qty": 1.5,
                "ts_exchange_ms": 1,
            },
            "filled_qty",
        ),
        ({"type": "trade"}, "unknown event type"),
        ([], "JSON object"),
    ],
)
def test_malformed_broker_events_name_the_field(raw: object, field: str) -> None:
    with pytest.raises(BrokerEventError, match=field):
        event_from_dict(raw)


def test_slices_are_lot_multiples_at_most_the_freeze_qty_and_even() -> None:
    assert slice_qty(2250, 75, 1800) == [1125, 1125]
    assert slice_qty(150, 75, 1800) == [150]
    assert slice_qty(1800, 75, 1800) == [1800]


def test_slicing_refuses_a_qty_that_is_not_a_lot_multiple() -> None:
    with pytest.raises(SliceError, match="lot size 75"):
        slice_qty(100, 75, 1800)


@given(lots=st.integers(1, 500), lot=st.sampled_from([15, 35, 65, 75]), freeze_lots=st.integers(1, 40))
def test_slices_always_sum_to_the_qty_within_limits(lots: int, lot: int, freeze_lots: int) -> None:
    freeze = freeze_lots * lot + lot // 2  # freeze need not be a lot multiple
    slices = slice_qty(lots * lot, lot, freeze)
    assert sum(slices) == lots * lot
    assert all(0 < s <= freeze and s % lot == 0 for s in slices)
    assert max(slices) - min(slices) <= lot
