"""Immutable rows the desk shows, derived from the engine's in-memory book (no Qt here).

Each row type is a frozen dataclass with a ``key``; equality decides whether a view must repaint
it, so a row holds only what is displayed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from engine.core.book import GroupRuntime, IntentRow, NodeRow
from engine.core.exposure import FilledOrder, group_fills, net_cover_qty
from engine.core.model import GroupState, LegRole, OrderStatus, Purpose, Side

K = TypeVar("K")
R = TypeVar("R")

# Colour family per group state; the Qt layer maps a family to a colour of the theme.
STATE_FAMILY: dict[str, str] = {
    GroupState.CREATED.value: "pending",
    GroupState.VALIDATED.value: "pending",
    GroupState.HEDGE_SUBMITTED.value: "working",
    GroupState.HEDGE_PARTIAL.value: "working",
    GroupState.HEDGE_FILLED.value: "working",
    GroupState.RISK_SUBMITTED.value: "working",
    GroupState.RISK_PARTIAL.value: "working",
    GroupState.RISK_FILLED.value: "working",
    GroupState.HEDGED.value: "working",
    GroupState.COMPLETED.value: "done",
    GroupState.REJECTED.value: "failed",
    GroupState.FAILED.value: "failed",
    GroupState.CANCELLED.value: "done",
}


@dataclass(frozen=True, slots=True)
class GroupRow:
    group_id: str
    template: str
    state: str
    reason: str
    hedge_symbol: str
    risk_symbol: str
    hedge_qty: int
    risk_qty: int
    hedge_filled_qty: int
    risk_filled_qty: int
    # Signed hedge units held minus those the open short needs in the group's own hedge:risk
    # ratio (engine.core.exposure, the engine's formula); negative means part of the short is
    # uncovered. Computed from the group's orders when the row is built (``GroupRow.build``).
    net_cover_qty: int
    pending_cancel: bool = False
    escalated: bool = False
    stop_trigger_paise: int | None = None

    @classmethod
    def build(
        cls,
        *,
        group_id: str,
        template: str,
        state: str,
        reason: str,
        hedge_symbol: str,
        risk_symbol: str,
        hedge_qty: int,
        risk_qty: int,
        orders: Iterable[FilledOrder],
        pending_cancel: bool = False,
        escalated: bool = False,
        stop_trigger_paise: int | None = None,
    ) -> GroupRow:
        """The row of a group from its spec's legs and all of its orders (confirmed fills)."""
        fills = group_fills(orders)
        return cls(
            group_id=group_id,
            template=template,
            state=state,
            reason=reason,
            hedge_symbol=hedge_symbol,
            risk_symbol=risk_symbol,
            hedge_qty=hedge_qty,
            risk_qty=risk_qty,
            hedge_filled_qty=fills.hedge_bought_qty,
            risk_filled_qty=fills.risk_sold_qty,
            net_cover_qty=net_cover_qty(fills, hedge_qty, risk_qty),
            pending_cancel=pending_cancel,
            escalated=escalated,
            stop_trigger_paise=stop_trigger_paise,
        )

    @property
    def key(self) -> str:
        return self.group_id

    @property
    def hedge_fill_pct(self) -> float:
        return 100.0 * self.hedge_filled_qty / self.hedge_qty if self.hedge_qty else 0.0

    @property
    def risk_fill_pct(self) -> float:
        return 100.0 * self.risk_filled_qty / self.risk_qty if self.risk_qty else 0.0

    @property
    def family(self) -> str:
        """Colour family: escalated and pending-cancel win over the lifecycle state."""
        if self.state in ("REJECTED", "FAILED"):
            return "failed"
        if self.escalated:
            return "escalated"
        if self.pending_cancel:
            return "pending_cancel"
        return STATE_FAMILY.get(self.state, "pending")


@dataclass(frozen=True, slots=True)
class IntentView:
    client_order_id: str
    intent_id: str
    attempt: int
    group_id: str
    role: str
    purpose: str
    wave: int
    symbol: str
    side: str
    qty: int
    order_type: str
    status: str
    order_status: str
    filled_qty: int
    broker_order_id: str
    hedge_node_id: str
    reason: str
    fills_qty: int = 0  # the part of filled_qty that fill reports (trade ids) confirm
    limit_paise: int | None = None
    trigger_paise: int | None = None

    @property
    def key(self) -> str:
        return self.client_order_id

    @classmethod
    def of(cls, r: IntentRow) -> IntentView:
        return cls(
            r.client_order_id,
            r.intent_id,
            r.attempt,
            r.group_id,
            r.role.value,
            r.purpose.value,
            r.wave,
            r.symbol,
            r.side.value,
            r.qty,
            r.order_type.value,
            r.status.value,
            r.order_status.value,
            r.filled_qty,
            r.broker_order_id or "",
            r.hedge_node_id or "",
            r.reason,
            r.fills_qty,
            r.limit_price_paise,
            r.trigger_price_paise,
        )

    def matches(self, text: str) -> bool:
        t = text.lower()
        return any(t in v.lower() for v in (self.client_order_id, self.group_id, self.symbol, self.reason))

    def fill(self) -> Fill:
        """What the exposure formula reads of this order (the journal's strings as enums)."""
        return Fill(LegRole(self.role), Side(self.side), Purpose(self.purpose), self.filled_qty, self.fills_qty)


@dataclass(frozen=True, slots=True)
class Fill:
    """An order as ``engine.core.exposure`` reads it (satisfies its ``FilledOrder``)."""

    role: LegRole
    side: Side
    purpose: Purpose
    filled_qty: int
    fills_qty: int


@dataclass(frozen=True, slots=True)
class NodeView:
    node_id: str
    group_id: str
    parent_id: str
    depth: int
    kind: str
    symbol: str
    side: str
    target_qty: int
    filled_qty: int
    status: str
    reason: str

    @property
    def key(self) -> str:
        return self.node_id

    @classmethod
    def of(cls, n: NodeRow) -> NodeView:
        return cls(
            n.node_id,
            n.group_id,
            n.parent_id or "",
            n.depth,
            n.kind.value,
            n.symbol,
            n.side.value,
            n.target_qty,
            n.filled_qty,
            n.status.value,
            n.reason,
        )


@dataclass(frozen=True, slots=True)
class EscalationRow:
    escalation_id: int
    kind: str
    severity: str
    status: str
    group_id: str
    client_order_id: str
    symbol: str
    unhedged_qty: int
    reason: str
    acknowledged_by: str
    acknowledged_role: str
    resolved_by: str

    @property
    def key(self) -> int:
        return self.escalation_id

    @property
    def is_open(self) -> bool:
        return self.status == "OPEN"

    @property
    def handled_by(self) -> str:
        if self.resolved_by:
            return f"resolved by {self.resolved_by}"
        if self.acknowledged_by:
            return f"{self.acknowledged_by} ({self.acknowledged_role})"
        return ""


def group_rows(
    groups: Iterable[GroupRuntime], intents: Iterable[IntentRow], escalated_groups: set[str]
) -> list[GroupRow]:
    """One row per group, from the confirmed cumulative fills of the book's orders of the group
    (the book holds every order of a group it holds)."""
    orders: dict[str, list[IntentRow]] = defaultdict(list)
    cancelling: set[str] = set()
    for r in intents:
        orders[r.group_id].append(r)
        if r.order_status is OrderStatus.PENDING_CANCEL:
            cancelling.add(r.group_id)
    rows = []
    for g in groups:
        gid = g.spec.group_id
        rows.append(
            GroupRow.build(
                group_id=gid,
                template=g.spec.template,
                state=g.state.value,
                reason=g.reason,
                hedge_symbol=g.spec.hedge.symbol,
                risk_symbol=g.spec.risk.symbol,
                hedge_qty=g.spec.hedge.qty,
                risk_qty=g.spec.risk.qty,
                orders=orders.get(gid, ()),
                pending_cancel=gid in cancelling,
                escalated=gid in escalated_groups,
                stop_trigger_paise=g.spec.stop_trigger_paise,
            )
        )
    return rows


def changed(old: dict[K, R], new: Iterable[tuple[K, R]]) -> list[R]:
    """Rows of ``new`` that are absent from ``old`` or differ from it; ``old`` is updated in place."""
    out = []
    for key, row in new:
        if old.get(key) != row:
            old[key] = row
            out.append(row)
    return out
