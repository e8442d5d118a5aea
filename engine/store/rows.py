"""How the domain rows (engine.core.book) map onto journal columns."""

from __future__ import annotations

from engine.core.book import IntentRow, NodeRow
from engine.core.model import IntentStatus, LegRole, OrderStatus, OrderType, Purpose, Side

__all__ = ["INTENT_COLUMNS", "NODE_COLUMNS", "IntentRow", "NodeRow", "intent_from_db", "intent_values", "node_values"]


INTENT_COLUMNS = (
    "client_order_id",
    "intent_id",
    "attempt",
    "group_id",
    "role",
    "wave",
    "symbol",
    "side",
    "qty",
    "order_type",
    "limit_price_paise",
    "status",
    "order_status",
    "broker_order_id",
    "filled_qty",
    "fills_qty",
    "reason",
    "ts_created_local_ns",
    "ts_ack_exchange_ms",
    "ts_updated_local_ns",
    "purpose",
    "hedge_node_id",
    "trigger_price_paise",
    "ts_triggered_exchange_ms",
    "ts_cancel_requested_exchange_ms",
    "cause_seq",
    "rule",
    "why_json",
)


def intent_values(row: IntentRow) -> tuple[object, ...]:
    return tuple(v.value if hasattr(v, "value") else v for v in (getattr(row, c) for c in INTENT_COLUMNS))


def intent_from_db(values: tuple[object, ...]) -> IntentRow:
    d = dict(zip(INTENT_COLUMNS, values, strict=True))
    return IntentRow(
        client_order_id=str(d["client_order_id"]),
        intent_id=str(d["intent_id"]),
        attempt=int(str(d["attempt"])),
        group_id=str(d["group_id"]),
        role=LegRole(str(d["role"])),
        wave=int(str(d["wave"])),
        symbol=str(d["symbol"]),
        side=Side(str(d["side"])),
        qty=int(str(d["qty"])),
        order_type=OrderType(str(d["order_type"])),
        limit_price_paise=None if d["limit_price_paise"] is None else int(str(d["limit_price_paise"])),
        status=IntentStatus(str(d["status"])),
        order_status=OrderStatus(str(d["order_status"])),
        broker_order_id=None if d["broker_order_id"] is None else str(d["broker_order_id"]),
        filled_qty=int(str(d["filled_qty"])),
        fills_qty=int(str(d["fills_qty"])),
        reason=str(d["reason"]),
        ts_created_local_ns=int(str(d["ts_created_local_ns"])),
        ts_ack_exchange_ms=None if d["ts_ack_exchange_ms"] is None else int(str(d["ts_ack_exchange_ms"])),
        ts_updated_local_ns=int(str(d["ts_updated_local_ns"])),
        purpose=Purpose(str(d["purpose"])),
        hedge_node_id=None if d["hedge_node_id"] is None else str(d["hedge_node_id"]),
        trigger_price_paise=None if d["trigger_price_paise"] is None else int(str(d["trigger_price_paise"])),
        ts_triggered_exchange_ms=_opt_int(d["ts_triggered_exchange_ms"]),
        ts_cancel_requested_exchange_ms=_opt_int(d["ts_cancel_requested_exchange_ms"]),
        cause_seq=_opt_int(d["cause_seq"]),
        rule=str(d["rule"]),
        why_json=str(d["why_json"]),
    )


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


NODE_COLUMNS = (
    "node_id",
    "group_id",
    "parent_id",
    "depth",
    "kind",
    "symbol",
    "side",
    "lot_size",
    "target_qty",
    "filled_qty",
    "status",
    "reason",
    "escalation_id",
    "ts_created_local_ns",
    "ts_updated_local_ns",
    "cause_seq",
    "rule",
    "why_json",
)


def node_values(row: NodeRow) -> tuple[object, ...]:
    return tuple(v.value if hasattr(v, "value") else v for v in (getattr(row, c) for c in NODE_COLUMNS))
