"""The journal as one JSON document (`trading-desk journal --json`). Field names are a public
contract read by scripts and the chaos harness: add freely, rename only on purpose."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from engine.audit.source import JournalSource
from engine.core.instruments import paise_to_str
from engine.core.pnl import Fill, Mark, book_pnl, day_start_ms, mark_price
from engine.store.journal import Journal

PAGE = 2000  # rows per read: the document is streamed, never held whole

_INTENT_FIELDS = (
    "intent_id", "client_order_id", "group_id", "role", "wave", "symbol", "side", "qty", "order_type", "status",
    "order_status", "attempt", "broker_order_id", "filled_qty", "reason", "purpose", "hedge_node_id",
)  # fmt: skip
_NODE_FIELDS = (
    "node_id", "group_id", "parent_id", "depth", "kind", "symbol", "side", "target_qty", "filled_qty", "status",
    "reason", "escalation_id",
)  # fmt: skip
_FILL_FIELDS = ("trade_id", "client_order_id", "symbol", "side", "qty", "price_paise", "ts_exchange_ms", "group_id",
                "role")  # fmt: skip
_ESCALATION_FIELDS = ("escalation_id", "kind", "severity", "status", "group_id", "client_order_id", "symbol",
                      "unhedged_qty", "reason", "acknowledged_by")  # fmt: skip


async def _pages(journal: Journal, select: str, key: str) -> AsyncIterator[tuple[Any, ...]]:
    """The rows of ``select`` (its first column ``key``, the table's rowid) in rowid order, read
    PAGE at a time; each row without its key."""
    last = 0  # rowid (SQLite) and seq (PostgreSQL) start at 1
    while True:
        rows = await journal.fetch(f"{select} WHERE {key} > ? ORDER BY {key} LIMIT {PAGE}", (last,))
        for r in rows:
            yield tuple(r[1:])
        if len(rows) < PAGE:
            return
        last = rows[-1][0]


async def _groups(journal: Journal) -> AsyncIterator[dict[str, Any]]:
    select = (
        "SELECT g.rowid, g.group_id, g.template, g.state, g.reason, g.margin_paise, h.qty, r.qty FROM groups g"
        " LEFT JOIN legs h ON h.group_id=g.group_id AND h.role='HEDGE'"
        " LEFT JOIN legs r ON r.group_id=g.group_id AND r.role='RISK'"
    )
    async for g, t, s, why, m, hedge, risk in _pages(journal, select, "g.rowid"):
        yield {"group_id": g, "template": t, "state": s, "reason": why, "margin_paise": m, "hedge_qty": hedge,
               "risk_qty": risk}  # fmt: skip


async def _intents(journal: Journal) -> AsyncIterator[dict[str, Any]]:
    select = f"SELECT rowid, {', '.join(_INTENT_FIELDS)} FROM intents"
    async for row in _pages(journal, select, "rowid"):
        yield dict(zip(_INTENT_FIELDS, row, strict=True))


async def _fills(journal: Journal) -> AsyncIterator[dict[str, Any]]:
    select = (
        "SELECT f.rowid, f.trade_id, f.client_order_id, f.symbol, f.side, f.qty, f.price_paise, f.ts_exchange_ms,"
        " i.group_id, i.role FROM fills f LEFT JOIN intents i ON i.client_order_id=f.client_order_id"
    )
    async for row in _pages(journal, select, "f.rowid"):
        d = dict(zip(_FILL_FIELDS, row, strict=True))
        yield {**d, "price": paise_to_str(d["price_paise"])}


async def _nodes(journal: Journal) -> AsyncIterator[dict[str, Any]]:
    select = f"SELECT rowid, {', '.join(_NODE_FIELDS)} FROM hedge_nodes"
    async for row in _pages(journal, select, "rowid"):
        yield dict(zip(_NODE_FIELDS, row, strict=True))


async def journal_stream(journal: Journal, *, now_ms: int | None = None) -> dict[str, Any]:
    """``journal --json``'s document with its long lists (groups, intents, fills, hedge nodes) as
    async iterators that read the journal a page at a time, for a writer that streams them
    (``app.cli.write_json_records``). The lists are read when they are written, each in rowid
    order, as separate reads (no snapshot across them, as before): a row committed meanwhile may
    show in a later list and not an earlier one."""
    marks = await latest_marks(journal)
    escalations = [
        dict(zip(_ESCALATION_FIELDS, row, strict=True))
        for row in await journal.fetch(
            f"SELECT {', '.join(_ESCALATION_FIELDS)} FROM escalations ORDER BY escalation_id"
        )
    ]
    return {
        "schema_version": journal.schema_version,
        "hedge_nodes": _nodes(journal),
        "trading_state": await journal.setting("trading_state", "ACTIVE"),
        "broker_state": await journal.setting("broker_state", "USABLE"),
        "groups": _groups(journal),
        "intents": _intents(journal),
        "fills": _fills(journal),
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
        "pnl": await pnl_of(journal, now_ms=now_ms),
        "escalations": escalations,
        "duplicate_events": await journal.counter("duplicate_events"),
        "rejected_events": await journal.counter("rejected_events"),
    }


async def journal_document(journal: Journal, *, now_ms: int | None = None) -> dict[str, Any]:
    """The whole document in memory (tests and small journals; the command streams it)."""
    doc = await journal_stream(journal, now_ms=now_ms)
    return {k: [x async for x in v] if isinstance(v, AsyncIterator) else v for k, v in doc.items()}


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
    return (await pnl_inputs(source, now_ms=now_ms)).compute()


@dataclass(frozen=True)
class PnlInputs:
    """What the P&L is computed from, read from the journal; ``compute`` touches nothing else
    (a desk runs it on a worker thread: thousands of fills are not its event loop's work)."""

    fills: list[Fill]
    marks: dict[str, Mark]
    day_start: int
    marks_at_day_start: dict[str, Mark]

    def compute(self) -> dict[str, Any]:
        return book_pnl(self.fills, self.marks, day_start=self.day_start, marks_at_day_start=self.marks_at_day_start)


async def pnl_inputs(source: JournalSource, *, now_ms: int | None = None) -> PnlInputs:
    rows = await source.fetch(
        "SELECT f.symbol, f.side, f.qty, f.price_paise, i.group_id, i.role, f.ts_exchange_ms FROM fills f"
        " LEFT JOIN intents i ON i.client_order_id=f.client_order_id ORDER BY f.rowid"
    )
    fills = [
        Fill(str(s), str(side), int(q), int(p), str(g or ""), str(r or ""), int(ts)) for s, side, q, p, g, r, ts in rows
    ]
    start = day_start_ms(now_ms if now_ms is not None else _wall_ms())
    before = await latest_marks(source, before_ms=start)
    return PnlInputs(fills, await latest_marks(source), start, before)
