"""Row types shared by the journal and the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.hedge_tree import NodeKind, NodeStatus
from engine.core.lifecycle import OrderView
from engine.core.model import IntentStatus, LegRole, OrderStatus, OrderType, Side
from engine.core.order_fsm import OrderState


@dataclass
class IntentRow:
    """One attempt of one intent: the journal row written before the order is sent."""

    client_order_id: str
    intent_id: str
    attempt: int
    group_id: str
    role: LegRole
    wave: int
    symbol: str
    side: Side
    qty: int
    order_type: OrderType
    limit_price_paise: int | None
    status: IntentStatus = IntentStatus.PENDING
    order_status: OrderStatus = OrderStatus.INTENT
    broker_order_id: str | None = None
    filled_qty: int = 0
    fills_qty: int = 0
    reason: str = ""
    ts_created_local_ns: int = 0
    ts_ack_exchange_ms: int | None = None
    ts_updated_local_ns: int = 0
    purpose: str = "LEG"  # LEG, HEDGE (a hedge-tree node's order), STOP, FALLBACK, EXIT
    hedge_node_id: str | None = None
    trigger_price_paise: int | None = None
    ts_triggered_exchange_ms: int | None = None  # a stop's trigger time: its 2 s deadline starts here
    ts_cancel_requested_exchange_ms: int | None = None  # broker time when we asked for the cancel
    # not persisted: when the runtime last asked the broker about this order
    last_query_local_ns: int = field(default=0, compare=False)

    @property
    def order_state(self) -> OrderState:
        return OrderState(self.order_status, self.qty, self.filled_qty)

    def view(self) -> OrderView:
        return OrderView(
            self.client_order_id,
            self.role,
            self.wave,
            self.qty,
            self.filled_qty,
            self.fills_qty,
            self.order_status,
            self.status,
            self.purpose,
        )


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
        purpose=str(d["purpose"]),
        hedge_node_id=None if d["hedge_node_id"] is None else str(d["hedge_node_id"]),
        trigger_price_paise=None if d["trigger_price_paise"] is None else int(str(d["trigger_price_paise"])),
        ts_triggered_exchange_ms=_opt_int(d["ts_triggered_exchange_ms"]),
        ts_cancel_requested_exchange_ms=_opt_int(d["ts_cancel_requested_exchange_ms"]),
    )


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))


@dataclass
class NodeRow:
    """One node of the hedge recursion tree."""

    node_id: str
    group_id: str
    parent_id: str | None
    depth: int
    kind: NodeKind
    symbol: str
    side: Side
    lot_size: int
    target_qty: int
    filled_qty: int = 0
    status: NodeStatus = NodeStatus.WORKING
    reason: str = ""
    escalation_id: int | None = None
    ts_created_local_ns: int = 0
    ts_updated_local_ns: int = 0


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
)


def node_values(row: NodeRow) -> tuple[object, ...]:
    return tuple(v.value if hasattr(v, "value") else v for v in (getattr(row, c) for c in NODE_COLUMNS))
