"""Recursive hedge monitoring (seed gap 4): every hedge is a node of a persisted tree.

A node sends its orders through the intent journal like any order. When every order of the node
is terminal (a resting remainder is cancelled at the broker-time deadline and the cancel is
*confirmed* first; a fill racing the cancel counts), the node is judged from its confirmed fill:
filled, a child for exactly the remainder at depth + 1, or exhausted with an escalation for the
exact unhedged qty. The group keeps running, and so does every other group.

Exposure (risk filled beyond the hedge that covers it) is always computed from confirmed fills
and is hedged by an INTERIM node; a trader's manual hedge is a MANUAL node.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from engine.core.hedge_tree import TERMINAL_NODE_STATUSES, NodeKind, NodeStatus, judge
from engine.core.lifecycle import TreeProgress
from engine.core.model import IntentStatus, LegRole, Side
from engine.core.order_fsm import is_working
from engine.core.trading_state import order_refusal
from engine.store.rows import IntentRow, NodeRow

if TYPE_CHECKING:
    from engine.runtime.engine import Engine
    from engine.runtime.state import GroupRuntime


def nodes_of(engine: Engine, group_id: str) -> list[NodeRow]:
    return [n for n in engine.book.nodes.values() if n.group_id == group_id]


def _orders_of(engine: Engine, node: NodeRow) -> list[IntentRow]:
    return [r for r in engine.book.intents.values() if r.hedge_node_id == node.node_id]


def _order_open(row: IntentRow) -> bool:
    if row.status in (IntentStatus.RETRY_APPROVED, IntentStatus.ABANDONED):
        return False
    return row.status is IntentStatus.ORPHANED or is_working(row.order_status)


def tree_progress(engine: Engine, group_id: str, kind: NodeKind = NodeKind.LEG) -> TreeProgress:
    nodes = [n for n in nodes_of(engine, group_id) if n.kind is kind]
    orders = [r for n in nodes for r in _orders_of(engine, n)]
    if not nodes and kind is NodeKind.LEG:
        # A journal from before the hedge tree (schema 1): its hedge leg orders carry no node.
        legacy = [r for r in engine.book.of_group(group_id) if r.role is LegRole.HEDGE and r.purpose == "LEG"]
        if legacy:
            return TreeProgress(
                started=True,
                working=any(_order_open(r) and r.status is not IntentStatus.ORPHANED for r in legacy),
                filled_qty=sum(r.filled_qty for r in legacy),
                orphaned=any(r.status is IntentStatus.ORPHANED for r in legacy),
            )
    return TreeProgress(
        started=bool(nodes),
        working=any(n.status is NodeStatus.WORKING for n in nodes),
        filled_qty=sum(r.filled_qty for r in orders),
        orphaned=any(r.status is IntentStatus.ORPHANED for r in orders),
    )


async def start_node(
    engine: Engine,
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
    inst = engine.catalog[symbol]
    now = engine.now_ns()
    node = NodeRow(
        node_id="N" + secrets.token_hex(9),
        group_id=group_id,
        parent_id=parent.node_id if parent else None,
        depth=parent.depth + 1 if parent else 0,
        kind=kind,
        symbol=symbol,
        side=side,
        lot_size=inst.lot_size,
        target_qty=target_qty,
        ts_created_local_ns=now,
        ts_updated_local_ns=now,
    )
    refusal = order_refusal(engine.trading_state, reduces_exposure)
    async with engine.journal.transaction():
        await engine.journal.insert_node(node)
    engine.book.nodes[node.node_id] = node
    engine.emit(
        {
            "type": "hedge_node",
            "node_id": node.node_id,
            "group_id": group_id,
            "parent_id": node.parent_id,
            "depth": node.depth,
            "kind": kind.value,
            "target_qty": target_qty,
        }
    )
    if refusal:
        await _exhaust(engine, node, target_qty, refusal, NodeStatus.HALTED)
        return node
    await engine.send_sliced(
        group_id,
        LegRole.HEDGE,
        node.depth + 1,
        symbol,
        side,
        target_qty,
        limit=limit_price_paise,
        purpose="HEDGE",
        hedge_node_id=node.node_id,
    )
    return node


async def service_nodes(engine: Engine, group: GroupRuntime) -> None:
    """Judge every working node whose orders are all terminal; recurse or escalate."""
    for node in list(nodes_of(engine, group.spec.group_id)):
        if node.status in TERMINAL_NODE_STATUSES:
            continue
        orders = _orders_of(engine, node)
        filled = sum(r.filled_qty for r in orders)
        if any(_order_open(r) for r in orders):
            if filled != node.filled_qty:
                await _save(engine, node, filled=filled)
            continue
        if any(r.status is IntentStatus.ABANDONED for r in orders):
            # An operator closed an order of this node: re-sending its quantity would be a retry
            # nobody approved. A leg simply stops; uncovered exposure stays in front of a person.
            if node.kind is NodeKind.LEG:
                await _save(engine, node, filled=filled, status=NodeStatus.EXHAUSTED, reason="abandoned by operator")
            else:
                node.filled_qty = filled
                await _exhaust(engine, node, node.target_qty - filled, "abandoned by operator", NodeStatus.EXHAUSTED)
            continue
        verdict = judge(node.depth, node.target_qty, filled, node.lot_size, engine.config.max_hedge_depth)
        if verdict.status is NodeStatus.FILLED:
            await _save(engine, node, filled=filled, status=NodeStatus.FILLED)
        elif verdict.status is NodeStatus.CHILDED and node.kind is NodeKind.LEG and group.cancel_requested:
            await _save(engine, node, filled=filled, status=NodeStatus.EXHAUSTED, reason="group cancelled by trader")
        elif verdict.status is NodeStatus.CHILDED:
            await _save(engine, node, filled=filled, status=NodeStatus.CHILDED, reason=verdict.reason)
            limit = group.spec.hedge.limit_price_paise if node.kind is NodeKind.LEG else None
            await start_node(
                engine,
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
            await _exhaust(engine, node, verdict.remainder_qty, verdict.reason, NodeStatus.EXHAUSTED)


async def _save(
    engine: Engine, node: NodeRow, *, filled: int, status: NodeStatus | None = None, reason: str = ""
) -> None:
    node.filled_qty = filled
    if status is not None:
        node.status, node.reason = status, reason
    node.ts_updated_local_ns = engine.now_ns()
    async with engine.journal.transaction():
        await engine.journal.update_node(node)
    engine.emit(
        {
            "type": "hedge_node_update",
            "node_id": node.node_id,
            "group_id": node.group_id,
            "filled_qty": node.filled_qty,
            "status": node.status.value,
        }
    )


async def _exhaust(engine: Engine, node: NodeRow, unhedged_qty: int, reason: str, status: NodeStatus) -> None:
    """Stop re-hedging this node and put the exact remainder in front of a person."""
    leg_kind = node.kind is NodeKind.LEG
    why = f"{node.kind.value} hedge {node.side.value} {node.symbol}: {reason}; " + (
        "the risk leg is sold only against what filled" if leg_kind else "this quantity is NOT hedged"
    )
    now = engine.now_ns()
    node.status, node.reason, node.ts_updated_local_ns = status, reason, now
    async with engine.journal.transaction():
        node.escalation_id = await engine.journal.insert_escalation(
            kind="HEDGE_EXHAUSTED",
            severity="WARNING" if leg_kind else "CRITICAL",
            group_id=node.group_id,
            client_order_id=None,
            symbol=node.symbol,
            unhedged_qty=unhedged_qty,
            reason=why,
            now_ns=now,
        )
        await engine.journal.update_node(node)
    engine.emit(
        {
            "type": "escalation",
            "escalation_id": node.escalation_id,
            "kind": "HEDGE_EXHAUSTED",
            "group_id": node.group_id,
            "unhedged_qty": unhedged_qty,
            "reason": why,
        }
    )


def uncovered_exposure(engine: Engine, group: GroupRuntime) -> int:
    """The open short beyond the hedge that covers it, from confirmed fills (hedge buys less hedge
    exit sells; risk sells less buy-backs), less what open hedge nodes are working on and what is
    already in an escalation. Rounded up to whole hedge lots."""
    spec = group.spec
    rows = engine.book.of_group(spec.group_id)
    risk_sold = sum(r.filled_qty for r in rows if r.role is LegRole.RISK and r.purpose == "LEG")
    risk_bought = sum(r.filled_qty for r in rows if r.role is LegRole.RISK and r.purpose != "LEG")
    short_open = max(0, risk_sold - risk_bought)
    needed = -(-short_open * spec.hedge.qty // spec.risk.qty)
    hedge_bought = sum(
        r.filled_qty for r in rows if r.role is LegRole.HEDGE and r.purpose in ("LEG", "HEDGE") and r.side is Side.BUY
    )
    hedge_sold = sum(r.filled_qty for r in rows if r.role is LegRole.HEDGE and r.side is Side.SELL)
    in_flight = 0
    for node in nodes_of(engine, spec.group_id):
        if node.status is NodeStatus.WORKING:
            in_flight += node.target_qty - sum(r.filled_qty for r in _orders_of(engine, node))
        elif node.status in (NodeStatus.EXHAUSTED, NodeStatus.HALTED) and node.kind is not NodeKind.LEG:
            in_flight += node.target_qty - node.filled_qty
    gap = needed - (hedge_bought - hedge_sold) - in_flight
    if gap <= 0:
        return 0
    lot = spec.hedge.lot_size
    return -(-gap // lot) * lot
