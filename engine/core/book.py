"""The engine's state of open work: domain rows and the book that indexes them.

The book is indexed by group, by hedge node and by broker order id, and keeps the set of orders
that timers must look at, so the cost of a step depends on what its input names, not on how many
groups the day has finished. Rebuilt from the journal at every start (engine.runtime.loader).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.core.groups import GroupSpec
from engine.core.model import (
    TERMINAL_GROUP_STATES,
    EscalationKind,
    EscalationStatus,
    GroupState,
    IntentStatus,
    LegRole,
    NodeKind,
    NodeStatus,
    OrderStatus,
    OrderType,
    Purpose,
    Side,
)
from engine.core.order_fsm import OrderState, is_working

HELD_REASON = "not sent: "  # an order the kill switch held back at the moment of sending


@dataclass(frozen=True, slots=True)
class OrderView:
    client_order_id: str
    role: LegRole
    wave: int
    qty: int
    filled_qty: int
    fills_qty: int
    status: OrderStatus
    intent_status: IntentStatus
    purpose: Purpose = Purpose.LEG
    held: bool = False  # never sent: the kill switch held it back at the moment of sending


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
    purpose: Purpose = Purpose.LEG
    hedge_node_id: str | None = None
    trigger_price_paise: int | None = None
    ts_triggered_exchange_ms: int | None = None  # a stop's trigger time: its 2 s deadline starts here
    ts_cancel_requested_exchange_ms: int | None = None  # broker time when we asked for the cancel
    # why it exists (the time-travel audit): the input that caused it, the rule that fired and
    # the facts the rule read, as JSON
    cause_seq: int | None = None
    rule: str = ""
    why_json: str = "{}"
    # not persisted: when the engine last asked the broker about this order (local monotonic)
    last_query_local_ns: int = field(default=0, compare=False)
    # not persisted: a query about this order is out at the broker; no second one is sent
    query_in_flight: bool = field(default=False, compare=False)
    # not persisted: the ack's and the trigger's timestamps on the continuous broker-time line
    # (exchange clock steps taken out); None after a restart, when the raw timestamps serve
    deadline_base_ms: int | None = field(default=None, compare=False)
    trigger_base_ms: int | None = field(default=None, compare=False)
    # not persisted: lookups of this order that failed or changed nothing, and when to ask next
    quiet_lookups: int = field(default=0, compare=False)
    next_query_local_ns: int = field(default=0, compare=False)
    cancel_resent: bool = field(default=False, compare=False)
    # not persisted: the feed reported this order (with a broker id no answer confirmed yet): it
    # may well exist, so a "not found" is not trusted enough to orphan or retry it
    seen_at_broker: bool = field(default=False, compare=False)

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
            self.order_status is OrderStatus.REJECTED and self.reason.startswith(HELD_REASON),
        )


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
    cause_seq: int | None = None
    rule: str = ""
    why_json: str = "{}"


@dataclass
class GroupRuntime:
    spec: GroupSpec
    state: GroupState
    reason: str = ""
    waiting_on_person: bool = False
    close_requested: bool = False
    cancel_requested: bool = False
    margin_paise: int = 0
    # escalations that say an exit is queued behind the kill switch; resolved when it is sent
    # (not journaled: after a restart they stay open for a person to resolve)
    held_exit_escalations: list[int] = field(default_factory=list)

    def __setstate__(self, state: dict[str, object]) -> None:
        # a checkpoint written before a field existed (engine.audit.checkpoint) loads with its default
        self.__dict__.update({"held_exit_escalations": [], **state})

    @property
    def settled(self) -> bool:
        if self.state is GroupState.HEDGED and self.close_requested:
            return self.waiting_on_person  # closing: settled once COMPLETED, or once the close is stuck on a person
        return self.state in TERMINAL_GROUP_STATES or self.state is GroupState.HEDGED or self.waiting_on_person


@dataclass
class EscalationRecord:
    """What a decision needs to know of an escalation (the journal holds the whole row)."""

    escalation_id: int
    kind: EscalationKind
    status: EscalationStatus
    group_id: str | None
    client_order_id: str | None


_CLOSED_BY_OPERATOR = (IntentStatus.RETRY_APPROVED, IntentStatus.ABANDONED)


def needs_watch(row: IntentRow) -> bool:
    """Timers must look at this order: it may still move at the broker, fill reports are
    missing, or it is a stop (whose fallback rules run on a clock)."""
    if row.status in _CLOSED_BY_OPERATOR:
        return False
    return is_working(row.order_status) or row.fills_qty < row.filled_qty or row.purpose is Purpose.STOP


@dataclass
class Book:
    groups: dict[str, GroupRuntime] = field(default_factory=dict)
    intents: dict[str, IntentRow] = field(default_factory=dict)
    by_broker: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, NodeRow] = field(default_factory=dict)
    unknown_lookups: dict[str, int] = field(default_factory=dict)
    stop_queries: dict[str, int] = field(default_factory=dict)  # stop coid -> broker ms of the last lookup
    stop_asked: dict[str, int] = field(default_factory=dict)  # stop coid -> broker ms a lookup went out
    stop_escalated: set[str] = field(default_factory=set)  # stops whose unconfirmed cancel was escalated
    cancel_escalated: set[str] = field(default_factory=set)  # leg/hedge orders whose cancel never confirmed
    contradicted: set[str] = field(default_factory=set)  # orders the broker's answer contradicts (escalated)
    watched: dict[str, IntentRow] = field(default_factory=dict)  # insertion-ordered: timers walk it
    unsettled: set[str] = field(default_factory=set)
    _by_group: dict[str, dict[str, IntentRow]] = field(default_factory=dict)
    _nodes_by_group: dict[str, dict[str, NodeRow]] = field(default_factory=dict)
    _by_node: dict[str, dict[str, IntentRow]] = field(default_factory=dict)

    def add(self, row: IntentRow) -> None:
        self.intents[row.client_order_id] = row
        self._by_group.setdefault(row.group_id, {})[row.client_order_id] = row
        if row.hedge_node_id:
            self._by_node.setdefault(row.hedge_node_id, {})[row.client_order_id] = row
        self.refresh(row)

    def refresh(self, row: IntentRow) -> None:
        """Re-index a row whose broker id or status changed."""
        if row.broker_order_id:
            self.by_broker[row.broker_order_id] = row.client_order_id
        if self._watch(row):
            self.watched.setdefault(row.client_order_id, row)
        else:
            self.watched.pop(row.client_order_id, None)

    def _watch(self, row: IntentRow) -> bool:
        """Whatever its group's state, an order that may still move is watched (a manual hedge
        of a finished group, say); a stop only while its group is open."""
        if not needs_watch(row):
            return False
        if row.purpose is not Purpose.STOP or is_working(row.order_status):
            return True
        group = self.groups.get(row.group_id)
        return group is None or group.state not in TERMINAL_GROUP_STATES

    def add_node(self, node: NodeRow) -> None:
        self.nodes[node.node_id] = node
        self._nodes_by_group.setdefault(node.group_id, {})[node.node_id] = node

    def lookup(self, client_order_id: str, broker_order_id: str) -> IntentRow | None:
        row = self.intents.get(client_order_id) if client_order_id else None
        if row is None and broker_order_id in self.by_broker:
            row = self.intents.get(self.by_broker[broker_order_id])
        return row

    def of_group(self, group_id: str) -> list[IntentRow]:
        return list(self._by_group.get(group_id, {}).values())

    def nodes_of(self, group_id: str) -> list[NodeRow]:
        return list(self._nodes_by_group.get(group_id, {}).values())

    def orders_of_node(self, node_id: str) -> list[IntentRow]:
        return list(self._by_node.get(node_id, {}).values())

    def group_finished(self, group_id: str) -> None:
        """A terminal group's orders need no more timers, unless one may still move."""
        for row in self._by_group.get(group_id, {}).values():
            self.refresh(row)

    def group_settled(self, group_id: str) -> bool:
        """HEDGED, terminal or waiting on a person, with nothing of it still in flight."""
        group = self.groups.get(group_id)
        if group is not None and not group.settled:
            return False
        rows = self._by_group.get(group_id, {}).values()
        waiting = {r.hedge_node_id for r in rows if r.status is IntentStatus.ORPHANED or self.cancel_stuck(r)}
        for node in self._nodes_by_group.get(group_id, {}).values():
            if node.status is NodeStatus.WORKING and node.node_id not in waiting:
                return False  # a node waiting only on an operator is settled for now
        return not any(
            r.fills_qty < r.filled_qty
            or r.status in (IntentStatus.PENDING, IntentStatus.UNKNOWN)
            or (r.purpose in _EXIT_SIDE and _in_play(r))
            for r in rows
            if r.status is not IntentStatus.ORPHANED
            and r.status not in _CLOSED_BY_OPERATOR
            and not self.cancel_stuck(r)
        )

    def cancel_stuck(self, row: IntentRow) -> bool:
        """Escalated, waiting on a person: a cancel the broker never confirmed (it may still fill),
        or an order whose reports the broker's own answer contradicts."""
        if row.client_order_id in self.contradicted:
            return row.fills_qty < row.filled_qty or is_working(row.order_status)
        escalated = row.client_order_id in self.cancel_escalated or row.client_order_id in self.stop_escalated
        return escalated and row.order_status is OrderStatus.PENDING_CANCEL

    def resettle(self, group_ids: Iterable[str]) -> None:
        for gid in group_ids:
            if self.group_settled(gid):
                self.unsettled.discard(gid)
            else:
                self.unsettled.add(gid)

    def settled(self) -> bool:
        return not self.unsettled

    def orphans(self) -> list[IntentRow]:
        return [r for r in self.intents.values() if r.status is IntentStatus.ORPHANED]


_EXIT_SIDE = (Purpose.STOP, Purpose.FALLBACK, Purpose.EXIT)


def _in_play(row: IntentRow) -> bool:
    """An exit-side order that may still fill. A stop resting untriggered is settled: it waits
    at the broker, and a restarted engine resumes watching it."""
    return row.order_status not in (
        OrderStatus.TRIGGER_PENDING,
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
    )
