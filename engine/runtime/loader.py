"""Load the engine's state from the journal, once, at start (recovery step 1-2). Everything a
decision needs afterwards is in the state: no decision reads the database."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from engine.core.book import EscalationRecord, GroupRuntime
from engine.core.groups import GroupSpec, LegSpec
from engine.core.instruments import Instrument
from engine.core.margin import MarginModel
from engine.core.model import (
    TERMINAL_GROUP_STATES,
    EscalationKind,
    EscalationStatus,
    GroupState,
    LegRole,
    Side,
)
from engine.core.state import EngineConfig, EngineState
from engine.core.trading_state import TradingState
from engine.store.journal import Journal

_UNFINISHED = ("PENDING", "SENT", "UNKNOWN", "ORPHANED")


async def load_state(
    journal: Journal,
    catalog: Mapping[str, Instrument],
    config: EngineConfig,
    margin_model: MarginModel,
    new_id: Callable[[], str],
    *,
    everything: bool = False,
) -> EngineState:
    """The engine's state: open groups and what is unfinished. With ``everything`` (an attached
    desk's view of the journal), every group and every order, finished or not."""
    state = EngineState(catalog, config, margin_model, new_id)
    book = state.book
    j = journal
    terminal = tuple(s.value for s in TERMINAL_GROUP_STATES)
    marks = ",".join("?" * len(terminal))
    groups = await j.fetch(
        "SELECT group_id, template, state, reason, stop_trigger_paise, close_requested, cancel_requested,"
        f" margin_paise FROM groups WHERE state NOT IN ({marks}) OR ?=1 ORDER BY rowid",
        (*terminal, int(everything)),
    )
    open_ids = tuple(str(g[0]) for g in groups)
    legs = await j.fetch(
        "SELECT group_id, role, symbol, side, qty, lot_size, tick_paise, freeze_qty, limit_price_paise FROM legs"
        + (f" WHERE group_id IN ({','.join('?' * len(open_ids))})" if open_ids else " WHERE 0"),
        open_ids,
    )
    by_group: dict[str, dict[LegRole, LegSpec]] = {}
    for g, role, symbol, side, qty, lot, tick, freeze, limit in legs:
        by_group.setdefault(g, {})[LegRole(role)] = LegSpec(
            LegRole(role), symbol, Side(side), qty, lot, tick, freeze, limit
        )
    for group_id, template, gstate, reason, stop_trigger, close_requested, cancel_requested, margin in groups:
        legs_of = by_group[group_id]
        spec = GroupSpec(group_id, legs_of[LegRole.HEDGE], legs_of[LegRole.RISK], template, stop_trigger)
        runtime = GroupRuntime(spec, GroupState(gstate), reason, margin_paise=int(margin or 0))
        runtime.close_requested = bool(close_requested)
        runtime.cancel_requested = bool(cancel_requested)
        book.groups[group_id] = runtime
    state.group_ids = await j.group_ids()
    unfinished = ",".join("?" * len(_UNFINISHED))
    where = f"status IN ({unfinished}) OR fills_qty < filled_qty OR ?=1"
    params: tuple[str | int, ...] = (*_UNFINISHED, int(everything))
    if open_ids:
        where += f" OR group_id IN ({','.join('?' * len(open_ids))})"
        params += open_ids
    node_where = "status='WORKING' OR ?=1"
    node_params: tuple[str | int, ...] = (int(everything),)
    if open_ids:
        node_where += f" OR group_id IN ({','.join('?' * len(open_ids))})"
        node_params += open_ids
    for node in await j.load_nodes(node_where, node_params):
        book.add_node(node)
    rows = await j.load_intents(where, params)
    for row in rows:
        book.add(row)
    intent_ids = sorted({r.intent_id for r in rows})
    for i in range(0, len(intent_ids), 500):
        chunk = tuple(intent_ids[i : i + 500])
        for intent_id, attempt in await j.fetch(
            f"SELECT intent_id, MAX(attempt) FROM intents WHERE intent_id IN ({','.join('?' * len(chunk))})"
            " GROUP BY intent_id",
            chunk,
        ):
            state.attempts[str(intent_id)] = int(attempt)
    state.trading_state = TradingState(await j.setting("trading_state", TradingState.ACTIVE.value))
    for esc_id, kind, status, group_id, coid in await j.fetch(
        "SELECT escalation_id, kind, status, group_id, client_order_id FROM escalations ORDER BY escalation_id"
    ):
        state.escalations[int(esc_id)] = EscalationRecord(
            int(esc_id), EscalationKind(kind), EscalationStatus(status), group_id, coid
        )
        if kind == EscalationKind.SL_UNCONFIRMED.value and status != EscalationStatus.RESOLVED.value:
            book.stop_escalated.add(str(coid))
    next_id = await j.fetch("SELECT COALESCE(MAX(escalation_id), 0) FROM escalations")
    used = int(next_id[0][0])
    if j.dialect == "sqlite":  # AUTOINCREMENT never reuses an id, even one whose row is gone
        seq = await j.fetch("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name='escalations'")
        used = max(used, int(seq[0][0]))
    state.next_escalation_id = used + 1
    book.resettle(set(book.groups) | {r.group_id for r in rows})
    return state
