"""The journal as one JSON document (`trading-desk journal --json`). Field names are a public
contract read by scripts and the chaos harness: add freely, rename only on purpose."""

from __future__ import annotations

import time
from typing import Any

from engine.audit.source import JournalSource
from engine.core.instruments import paise_to_str
from engine.core.pnl import Fill, Mark, book_pnl, day_start_ms, mark_price
from engine.store.journal import Journal


async def journal_document(journal: Journal, *, now_ms: int | None = None) -> dict[str, Any]:
    legs = {(g, role): qty for g, role, qty in await journal.fetch("SELECT group_id, role, qty FROM legs")}
    groups = [
        {
            "group_id": g,
            "template": t,
            "state": s,
            "reason": r,
            "margin_paise": m,
            "hedge_qty": legs.get((g, "HEDGE")),
            "risk_qty": legs.get((g, "RISK")),
        }
        for g, t, s, r, m in await journal.fetch(
            "SELECT group_id, template, state, reason, margin_paise FROM groups ORDER BY rowid"
        )
    ]
    intents = [
        {
            "intent_id": r.intent_id,
            "client_order_id": r.client_order_id,
            "group_id": r.group_id,
            "role": r.role.value,
            "wave": r.wave,
            "symbol": r.symbol,
            "side": r.side.value,
            "qty": r.qty,
            "order_type": r.order_type.value,
            "status": r.status.value,
            "order_status": r.order_status.value,
            "attempt": r.attempt,
            "broker_order_id": r.broker_order_id,
            "filled_qty": r.filled_qty,
            "reason": r.reason,
            "purpose": r.purpose,
            "hedge_node_id": r.hedge_node_id,
        }
        for r in await journal.load_intents()
    ]
    fills = [
        {
            "trade_id": t,
            "client_order_id": c,
            "symbol": s,
            "side": side,
            "qty": q,
            "price": paise_to_str(p),
            "price_paise": p,
            "ts_exchange_ms": ts,
            "group_id": g,
            "role": role,
        }
        for t, c, s, side, q, p, ts, g, role in await journal.fetch(
            "SELECT f.trade_id, f.client_order_id, f.symbol, f.side, f.qty, f.price_paise, f.ts_exchange_ms,"
            " i.group_id, i.role FROM fills f LEFT JOIN intents i ON i.client_order_id=f.client_order_id"
            " ORDER BY f.rowid"
        )
    ]
    marks = await latest_marks(journal)
    escalations = [
        {
            "escalation_id": e,
            "kind": k,
            "severity": sev,
            "status": st,
            "group_id": g,
            "client_order_id": c,
            "symbol": sym,
            "unhedged_qty": q,
            "reason": why,
            "acknowledged_by": ack,
        }
        for e, k, sev, st, g, c, sym, q, why, ack in await journal.fetch(
            "SELECT escalation_id, kind, severity, status, group_id, client_order_id, symbol, unhedged_qty, reason,"
            " acknowledged_by FROM escalations ORDER BY escalation_id"
        )
    ]
    hedge_nodes = [
        {
            "node_id": n.node_id,
            "group_id": n.group_id,
            "parent_id": n.parent_id,
            "depth": n.depth,
            "kind": n.kind.value,
            "symbol": n.symbol,
            "side": n.side.value,
            "target_qty": n.target_qty,
            "filled_qty": n.filled_qty,
            "status": n.status.value,
            "reason": n.reason,
            "escalation_id": n.escalation_id,
        }
        for n in await journal.load_nodes()
    ]
    return {
        "schema_version": journal.schema_version,
        "hedge_nodes": hedge_nodes,
        "trading_state": await journal.setting("trading_state", "ACTIVE"),
        "broker_state": await journal.setting("broker_state", "USABLE"),
        "groups": groups,
        "intents": intents,
        "fills": fills,
        "positions": await positions(journal),
        "marks": {
            m.symbol: {
                "bid_paise": m.bid_paise,
                "ask_paise": m.ask_paise,
                "last_paise": m.last_paise,
                "mark_paise": mark_price(m),
                "ts_exchange_ms": m.ts_exchange_ms,
            }
            for m in marks.values()
        },
        "pnl": book_pnl(
            [
                Fill(
                    f["symbol"],
                    f["side"],
                    f["qty"],
                    f["price_paise"],
                    f["group_id"] or "",
                    f["role"] or "",
                    f["ts_exchange_ms"],
                )
                for f in fills
            ],
            marks,
            day_start=(start := day_start_ms(now_ms if now_ms is not None else _wall_ms())),
            marks_at_day_start=await latest_marks(journal, before_ms=start),
        ),
        "escalations": escalations,
        "duplicate_events": await journal.counter("duplicate_events"),
        "rejected_events": await journal.counter("rejected_events"),
    }


async def positions(journal: Journal) -> dict[str, int]:
    """Signed position per symbol from confirmed fills, BUY positive; flat symbols are omitted."""
    rows = await journal.fetch(
        "SELECT symbol, SUM(CASE side WHEN 'BUY' THEN qty ELSE -qty END) FROM fills GROUP BY symbol ORDER BY symbol"
    )
    return {str(s): int(q) for s, q in rows if q}


async def latest_marks(journal: JournalSource, *, before_ms: int | None = None) -> dict[str, Mark]:
    """The newest journaled mark of each symbol (with ``before_ms``: the newest stamped by the
    exchange before then, i.e. the previous close)."""
    where, params = ("", ()) if before_ms is None else (" WHERE ts_exchange_ms < ?", (before_ms,))
    rows = await journal.fetch(
        "SELECT m.symbol, m.bid_paise, m.ask_paise, m.last_paise, m.ts_exchange_ms FROM marks m"
        f" JOIN (SELECT symbol, MAX(id) AS id FROM marks{where} GROUP BY symbol) newest ON newest.id=m.id"
        " ORDER BY m.symbol",
        params,
    )
    return {str(s): Mark(str(s), b, a, last, int(ts)) for s, b, a, last, ts in rows}


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


async def pnl_of(source: JournalSource, *, now_ms: int | None = None) -> dict[str, Any]:
    """``journal --json``'s ``pnl`` alone, from any reader of the journal (a desk's included);
    the day is the IST day of ``now_ms`` (default: the wall clock)."""
    rows = await source.fetch(
        "SELECT f.symbol, f.side, f.qty, f.price_paise, i.group_id, i.role, f.ts_exchange_ms FROM fills f"
        " LEFT JOIN intents i ON i.client_order_id=f.client_order_id ORDER BY f.rowid"
    )
    fills = [
        Fill(str(s), str(side), int(q), int(p), str(g or ""), str(r or ""), int(ts)) for s, side, q, p, g, r, ts in rows
    ]
    start = day_start_ms(now_ms if now_ms is not None else _wall_ms())
    before = await latest_marks(source, before_ms=start)
    return book_pnl(fills, await latest_marks(source), day_start=start, marks_at_day_start=before)
