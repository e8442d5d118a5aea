"""The runtime's in-memory view of open work, rebuilt from the journal at every start."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.core.groups import GroupSpec
from engine.core.hedge_tree import NodeStatus
from engine.core.model import (
    TERMINAL_GROUP_STATES,
    GroupState,
    IntentStatus,
    OrderStatus,
    Role,
)
from engine.store.rows import IntentRow, NodeRow

Listener = Callable[[dict[str, Any]], None]


class RoleError(PermissionError):
    """A command was refused because the actor's role may not give it."""


class CommandError(ValueError):
    """A command cannot be carried out; the message says why. Nothing was written."""


@dataclass(frozen=True, slots=True)
class Actor:
    os_user: str
    role: Role


@dataclass
class GroupRuntime:
    spec: GroupSpec
    state: GroupState
    reason: str = ""
    waiting_on_person: bool = False
    close_requested: bool = False
    cancel_requested: bool = False

    @property
    def settled(self) -> bool:
        if self.state is GroupState.HEDGED and self.close_requested:
            return False  # closing: settled once COMPLETED
        return self.state in TERMINAL_GROUP_STATES or self.state is GroupState.HEDGED or self.waiting_on_person


@dataclass
class EngineConfig:
    max_waves: int = 3  # RISK-leg waves before the engine settles for what filled
    max_hedge_depth: int = 3  # hedge-tree depth; past it the remainder is escalated
    order_timeout_ms: int = 5_000  # broker time a working order may rest before it is cancelled
    resolve_after_ms: int = 300  # local monotonic wait before asking the broker about an order
    unknown_lookups_before_orphan: int = 3
    tick_interval_ms: int = 50
    stop_timeout_ms: int = 2_000  # broker time a triggered SL-LIMIT may take before the MARKET fallback
    stop_cancel_confirm_ms: int = 1_000  # broker time to wait for a stop's cancel to be confirmed
    batch_max: int = 500


@dataclass
class Book:
    groups: dict[str, GroupRuntime] = field(default_factory=dict)
    intents: dict[str, IntentRow] = field(default_factory=dict)
    by_broker: dict[str, str] = field(default_factory=dict)
    unknown_lookups: dict[str, int] = field(default_factory=dict)
    nodes: dict[str, NodeRow] = field(default_factory=dict)
    stop_queries: dict[str, int] = field(default_factory=dict)  # stop coid -> broker ms of the last lookup
    stop_escalated: set[str] = field(default_factory=set)  # stops whose unconfirmed cancel was escalated

    def add(self, row: IntentRow) -> None:
        self.intents[row.client_order_id] = row
        if row.broker_order_id:
            self.by_broker[row.broker_order_id] = row.client_order_id

    def lookup(self, client_order_id: str, broker_order_id: str) -> IntentRow | None:
        row = self.intents.get(client_order_id) if client_order_id else None
        if row is None and broker_order_id in self.by_broker:
            row = self.intents.get(self.by_broker[broker_order_id])
        return row

    def of_group(self, group_id: str) -> list[IntentRow]:
        return [r for r in self.intents.values() if r.group_id == group_id]

    def settled(self) -> bool:
        if not all(g.settled for g in self.groups.values()):
            return False
        working = {n.node_id for n in self.nodes.values() if n.status is NodeStatus.WORKING}
        waiting = {r.hedge_node_id for r in self.intents.values() if r.status is IntentStatus.ORPHANED}
        if working - waiting:  # a node waiting only on an operator is settled for now
            return False
        return not any(
            r.fills_qty < r.filled_qty
            or r.status in (IntentStatus.PENDING, IntentStatus.UNKNOWN)
            or (r.purpose in ("STOP", "FALLBACK", "EXIT") and _in_play(r))
            for r in self.intents.values()
            if r.status is not IntentStatus.ORPHANED
        )


def _in_play(row: IntentRow) -> bool:
    """An exit-side order that may still fill. A stop resting untriggered is settled: it waits
    at the broker, and a restarted engine resumes watching it."""
    return row.order_status not in (
        OrderStatus.TRIGGER_PENDING,
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
    )


def new_client_order_id() -> str:
    """20 alphanumerics: 'TD' + 18 base32 characters (90 random bits). Fits a Kite tag or ClOrdID."""
    return "TD" + base64.b32encode(secrets.token_bytes(12)).decode()[:18]


def intent_status_for(order_status: OrderStatus, current: IntentStatus) -> IntentStatus:
    """The intent status that follows from the order status. Operator outcomes are sticky."""
    if current in (IntentStatus.RETRY_APPROVED, IntentStatus.ABANDONED):
        return current
    if order_status in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED):
        return IntentStatus(order_status.value)
    if order_status in (
        OrderStatus.TRIGGER_PENDING,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
    ):
        return IntentStatus.SENT
    if order_status is OrderStatus.UNKNOWN:
        return IntentStatus.UNKNOWN
    return current
