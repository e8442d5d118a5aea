"""The recursive hedge tree: every unit a hedge node was asked to cover ends confirmed filled or
in an escalation, never silently dropped (seed gap 4, defects 9 and 16).

A node's orders run until terminal (the runtime cancels the rest at the node's broker-time
deadline and waits for the cancel to be *confirmed*; a late fill counts). Only then is the node
judged from its confirmed cumulative fill: filled, a child for exactly the remainder at
depth + 1, or exhausted (past the maximum depth, or a remainder below one lot) with an
escalation for the exact unhedged quantity. Everything here is pure: the tree's work is done
on a step's context (engine.core.context), which only gathers effects.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.book import Book, GroupRuntime, IntentRow, NodeRow
from engine.core.context import StepContext
from engine.core.exposure import confirmed_qty, group_fills, net_cover_qty
from engine.core.intents import OPERATOR_OUTCOMES
from engine.core.lifecycle import TreeProgress
from engine.core.model import (
    EscalationKind,
    IntentStatus,
    LegRole,
    NodeKind,
    NodeStatus,
    OrderStatus,
    Purpose,
    Severity,
    Side,
)
from engine.core.notices import HedgeNodeStarted, HedgeNodeUpdated
from engine.core.order_fsm import is_working
from engine.core.trading_state import order_refusal

__all__ = ["TERMINAL_NODE_STATUSES", "NodeKind", "NodeStatus", "NodeVerdict", "judge"]


TERMINAL_NODE_STATUSES = frozenset({NodeStatus.FILLED, NodeStatus.CHILDED, NodeStatus.EXHAUSTED, NodeStatus.HALTED})


@dataclass(frozen=True, slots=True)
class NodeVerdict:
    status: NodeStatus
    remainder_qty: int = 0
    reason: str = ""


def judge(depth: int, target_qty: int, confirmed_filled_qty: int, lot_size: int, max_depth: int) -> NodeVerdict:
    """Judge a node whose orders are all terminal. Never call it while an order may still fill."""
    remainder = target_qty - confirmed_filled_qty
    if remainder <= 0:
        return NodeVerdict(NodeStatus.FILLED)
    if remainder < lot_size:
        return NodeVerdict(NodeStatus.EXHAUSTED, remainder, f"remainder {remainder} is below one lot of {lot_size}")
    if depth + 1 > max_depth:
        return NodeVerdict(
            NodeStatus.EXHAUSTED, remainder, f"filled {confirmed_filled_qty} of {target_qty} at max depth {max_depth}"
        )
    return NodeVerdict(NodeStatus.CHILDED, remainder, f"filled {confirmed_filled_qty} of {target_qty}")


# --- the tree at work: pure too, on a step's context -------------------------------------------


def _order_open(row: IntentRow) -> bool:
    """May still fill, or its fills are not all confirmed yet: not to be judged on."""
    if row.status in OPERATOR_OUTCOMES:
        return False
    return row.status is IntentStatus.ORPHANED or is_working(row.order_status) or row.fills_qty < row.filled_qty


def tree_progress(book: Book, group_id: str, kind: NodeKind = NodeKind.LEG) -> TreeProgress:
    nodes = [n for n in book.nodes_of(group_id) if n.kind is kind]
    orders = [r for n in nodes for r in book.orders_of_node(n.node_id)]
    if not nodes and kind is NodeKind.LEG:
        # A journal from before the hedge tree (schema 1): its hedge leg orders carry no node.
        legacy = [r for r in book.of_group(group_id) if r.role is LegRole.HEDGE and r.purpose is Purpose.LEG]
        if legacy:
            return TreeProgress(
                started=True,
                working=any(_order_open(r) and r.status is not IntentStatus.ORPHANED for r in legacy),
                filled_qty=sum(confirmed_qty(r) for r in legacy),
                orphaned=any(r.status is IntentStatus.ORPHANED for r in legacy),
            )
    return TreeProgress(
        started=bool(nodes),
        working=any(n.status is NodeStatus.WORKING for n in nodes),
        filled_qty=sum(confirmed_qty(r) for r in orders),
        orphaned=any(r.status is IntentStatus.ORPHANED for r in orders),
    )


def start_node(
    ctx: StepContext,
    group_id: str,
    kind: NodeKind,
    symbol: str,
    side: Side,
    target_qty: int,
    parent: NodeRow | None = None,
    reduces_exposure: bool = True,
    limit_price_paise: int | None = None,
) -> NodeRow:
    """Journal a node and send its orders (sliced at the freeze qty), unless the kill switch says no."""
    inst = ctx.state.catalog[symbol]
    node = NodeRow(
        node_id="N" + ctx.state.new_id()[2:],
        group_id=group_id,
        parent_id=parent.node_id if parent else None,
        depth=parent.depth + 1 if parent else 0,
        kind=kind,
        symbol=symbol,
        side=side,
        lot_size=inst.lot_size,
        target_qty=target_qty,
        ts_created_local_ns=ctx.now_ns,
        ts_updated_local_ns=ctx.now_ns,
        cause_seq=ctx.seq,
        rule=ctx.writes.rule,
        why_json=ctx.writes.why,
    )
    ctx.writes.nodes_new[node.node_id] = node
    ctx.book.add_node(node)
    ctx.touch(group_id)
    ctx.notify(HedgeNodeStarted(node.node_id, group_id, node.parent_id, node.depth, kind.value, target_qty))
    refusal = order_refusal(ctx.state.trading_state, reduces_exposure)
    if refusal:
        with ctx.because("hedge.held_by_kill_switch", node=node.node_id, trading_state=ctx.state.trading_state.value):
            _exhaust(ctx, node, target_qty, refusal, NodeStatus.HALTED)
        return node
    ctx.send_sliced(
        group_id,
        LegRole.HEDGE,
        node.depth + 1,
        symbol,
        side,
        target_qty,
        limit=limit_price_paise,
        purpose=Purpose.HEDGE,
        hedge_node_id=node.node_id,
        opens_exposure=not reduces_exposure,
    )
    return node


def service_nodes(ctx: StepContext, group: GroupRuntime) -> None:
    """Judge every working node whose orders are all terminal; recurse or escalate."""
    book = ctx.book
    for node in book.nodes_of(group.spec.group_id):
        if node.status in TERMINAL_NODE_STATUSES:
            continue
        orders = book.orders_of_node(node.node_id)
        filled = sum(confirmed_qty(r) for r in orders)  # a status report alone never sizes anything
        if any(_order_open(r) for r in orders):
            if filled != node.filled_qty:
                _save(ctx, node, filled=filled)
            continue
        if any(r.status is IntentStatus.ABANDONED for r in orders):
            # An operator closed an order of this node: re-sending its quantity would be a retry
            # nobody approved. A leg simply stops; uncovered exposure stays in front of a person.
            if node.kind is NodeKind.LEG:
                _save(ctx, node, filled=filled, status=NodeStatus.EXHAUSTED, reason="abandoned by operator")
            else:
                node.filled_qty = filled
                _exhaust(ctx, node, node.target_qty - filled, "abandoned by operator", NodeStatus.EXHAUSTED)
            continue
        verdict = judge(node.depth, node.target_qty, filled, node.lot_size, ctx.config.max_hedge_depth)
        if verdict.status is NodeStatus.FILLED:
            _save(ctx, node, filled=filled, status=NodeStatus.FILLED)
        elif verdict.status is NodeStatus.CHILDED and node.kind is NodeKind.LEG and group.cancel_requested:
            _save(ctx, node, filled=filled, status=NodeStatus.EXHAUSTED, reason="group cancelled by trader")
        elif verdict.status is NodeStatus.CHILDED:
            facts = _parent_facts(ctx, node, orders, filled, verdict.remainder_qty)
            with ctx.because("hedge.child_for_remainder", **facts):
                _save(ctx, node, filled=filled, status=NodeStatus.CHILDED, reason=verdict.reason)
                limit = group.spec.hedge.limit_price_paise if node.kind is NodeKind.LEG else None
                start_node(
                    ctx,
                    node.group_id,
                    node.kind,
                    node.symbol,
                    node.side,
                    verdict.remainder_qty,
                    parent=node,
                    reduces_exposure=node.kind is not NodeKind.LEG,
                    limit_price_paise=limit,
                )
        else:
            node.filled_qty = filled
            facts = _parent_facts(ctx, node, orders, filled, verdict.remainder_qty)
            with ctx.because("hedge.exhausted_at_depth", **facts):
                _exhaust(ctx, node, verdict.remainder_qty, verdict.reason, NodeStatus.EXHAUSTED)


def _parent_facts(
    ctx: StepContext, node: NodeRow, orders: list[IntentRow], filled: int, remainder: int
) -> dict[str, object]:
    """What a re-hedge decision read: the parent node, its orders' confirmed state, the depth."""
    return {
        "parent_node": node.node_id,
        "parent_target_qty": node.target_qty,
        "parent_confirmed_filled_qty": filled,
        "remainder_qty": remainder,
        "node_depth": node.depth,
        "child_depth": node.depth + 1,
        "max_depth": ctx.config.max_hedge_depth,
        "parent_orders": [
            {
                "client_order_id": r.client_order_id,
                "status": r.order_status.value,
                "filled_qty": r.filled_qty,
                "fills_qty": r.fills_qty,
                "cancel_confirmed": r.order_status is OrderStatus.CANCELLED,
            }
            for r in orders
        ],
        "trading_state": ctx.state.trading_state.value,
    }


def _save(ctx: StepContext, node: NodeRow, *, filled: int, status: NodeStatus | None = None, reason: str = "") -> None:
    node.filled_qty = filled
    if status is not None:
        node.status, node.reason = status, reason
    node.ts_updated_local_ns = ctx.now_ns
    ctx.writes.node(node)
    ctx.touch(node.group_id)
    ctx.notify(HedgeNodeUpdated(node.node_id, node.group_id, node.filled_qty, node.status.value))


def _exhaust(ctx: StepContext, node: NodeRow, unhedged_qty: int, reason: str, status: NodeStatus) -> None:
    """Stop re-hedging this node and put the exact remainder in front of a person."""
    leg_kind = node.kind is NodeKind.LEG
    why = f"{node.kind.value} hedge {node.side.value} {node.symbol}: {reason}; " + (
        "the risk leg is sold only against what filled" if leg_kind else "this quantity is NOT hedged"
    )
    node.status, node.reason, node.ts_updated_local_ns = status, reason, ctx.now_ns
    node.escalation_id = ctx.escalate(
        EscalationKind.HEDGE_EXHAUSTED,
        Severity.WARNING if leg_kind else Severity.CRITICAL,
        node.group_id,
        None,
        node.symbol,
        unhedged_qty,
        why,
    )
    ctx.writes.node(node)
    ctx.touch(node.group_id)


def uncovered_exposure(book: Book, group: GroupRuntime) -> int:
    """The open short beyond the hedge that covers it (engine.core.exposure), less what open hedge
    nodes are working on and what is already in an escalation. Rounded up to whole hedge lots."""
    spec = group.spec
    cover = net_cover_qty(group_fills(book.of_group(spec.group_id)), spec.hedge.qty, spec.risk.qty)
    in_flight = 0
    for node in book.nodes_of(spec.group_id):
        if node.status is NodeStatus.WORKING:
            in_flight += node.target_qty - sum(confirmed_qty(r) for r in book.orders_of_node(node.node_id))
        elif node.status in (NodeStatus.EXHAUSTED, NodeStatus.HALTED) and node.kind is not NodeKind.LEG:
            in_flight += node.target_qty - node.filled_qty
    gap = -cover - in_flight
    if gap <= 0:
        return 0
    lot = spec.hedge.lot_size
    return -(-gap // lot) * lot
