"""The desk's own read-only connection to the journal (WAL lets it read while the engine writes).

The engine's writer connection is never used for display queries, so a slow view can never hold a
transaction open or see uncommitted rows. Close it: an open aiosqlite connection keeps a thread alive.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from engine.audit.replay import Replayed, replay
from engine.audit.why import Link, explain
from engine.store.db import Db, PgDb, SqliteDb, is_postgres
from ui.viewmodels.rows import EscalationRow, GroupRow, IntentView, NodeView

# The journal columns the desk shows (the journal's schema is in migrations/).
INTENT_COLUMNS = (
    "client_order_id",
    "intent_id",
    "attempt",
    "group_id",
    "role",
    "purpose",
    "wave",
    "symbol",
    "side",
    "qty",
    "order_type",
    "status",
    "order_status",
    "filled_qty",
    "broker_order_id",
    "hedge_node_id",
    "reason",
    "fills_qty",
)
NODE_COLUMNS = (
    "node_id",
    "group_id",
    "parent_id",
    "depth",
    "kind",
    "symbol",
    "side",
    "target_qty",
    "filled_qty",
    "status",
    "reason",
)


@dataclass(frozen=True, slots=True)
class AuditLine:
    """One line of a group's audit trail: a state transition or a command a person gave."""

    source: str  # TRANSITION, COMMAND or REJECTED
    entity: str
    entity_id: str
    change: str
    detail: str
    ts_broker_ms: int | None
    ts_local_ns: int | None
    ts_wall_ms: int | None
    who: str

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.source, self.entity_id, self.ts_local_ns or 0, self.change)


class JournalReader:
    def __init__(self, conn: Db, target: Path | str = "") -> None:
        self._conn = conn
        self.target = target
        self.where = conn.where  # for messages (engine.audit reads through fetch and where)

    @classmethod
    async def open(cls, target: Path | str) -> JournalReader:
        """A file (read-only connection) or a postgresql:// URL (the desk login reads only)."""
        if is_postgres(target):
            db: Db = await PgDb.connect(str(target))
            await db.execute("SET default_transaction_read_only = on")
            return cls(db, target)
        conn = await aiosqlite.connect(f"file:{target}?mode=ro", uri=True)
        await conn.execute("PRAGMA query_only=ON")
        return cls(SqliteDb(conn, Path(target)), target)

    async def close(self) -> None:
        await self._conn.close()

    async def why(self, ident: str) -> Link:
        """The causal chain of an order, hedge node or escalation (engine.audit.why)."""
        return await explain(self, ident)

    async def replay_at(self, seq: int) -> Replayed:
        """The engine's state after input ``seq``, rebuilt from the nearest checkpoint (checking
        the inputs stepped). Stepping is CPU work: it runs in a worker thread, on a connection of
        its own, so the desk (and an engine it hosts) keeps its loop."""

        async def rebuild() -> Replayed:
            reader = await JournalReader.open(self.target)
            try:
                return await replay(reader, seq)
            finally:
                await reader.close()

        return await asyncio.to_thread(lambda: asyncio.run(rebuild()))

    async def group_inputs(self, group_id: str) -> list[tuple[int, str, int]]:
        """The inputs that changed this group or its orders, in order: (seq, kind, wall ms)."""
        rows = await self.fetch(
            "SELECT i.seq, i.kind, i.ts_wall_ms FROM inputs i WHERE i.seq IN ("
            " SELECT t.cause_seq FROM transitions t WHERE t.entity='GROUP' AND t.entity_id=?"
            " UNION SELECT t.cause_seq FROM transitions t JOIN intents o ON o.client_order_id=t.entity_id"
            " WHERE o.group_id=? UNION SELECT cause_seq FROM intents WHERE group_id=?"
            " UNION SELECT cause_seq FROM groups WHERE group_id=?) ORDER BY i.seq",
            (group_id, group_id, group_id, group_id),
        )
        return [(int(s), str(k), int(w)) for s, k, w in rows]

    async def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await self._conn.fetch(sql, params)

    async def intents(self) -> list[IntentView]:
        cols = ", ".join(INTENT_COLUMNS)
        rows = await self.fetch(f"SELECT {cols} FROM intents ORDER BY rowid")
        out = []
        for values in rows:
            d = dict(zip(INTENT_COLUMNS, values, strict=True))
            out.append(
                IntentView(
                    d["client_order_id"],
                    d["intent_id"],
                    d["attempt"],
                    d["group_id"],
                    d["role"],
                    d["purpose"],
                    d["wave"],
                    d["symbol"],
                    d["side"],
                    d["qty"],
                    d["order_type"],
                    d["status"],
                    d["order_status"],
                    d["filled_qty"],
                    d["broker_order_id"] or "",
                    d["hedge_node_id"] or "",
                    d["reason"],
                    d["fills_qty"],
                )
            )
        return out

    async def groups(self, intents: list[IntentView], escalated: set[str]) -> list[GroupRow]:
        """Every group in the journal, with fills and net exposure from ``intents`` (all of them)."""
        legs: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
        for gid, role, symbol, qty in await self.fetch("SELECT group_id, role, symbol, qty FROM legs"):
            legs[gid][role] = (symbol, qty)
        orders: dict[str, list[IntentView]] = defaultdict(list)
        for i in intents:
            orders[i.group_id].append(i)
        out = []
        for gid, template, state, reason, stop in await self.fetch(
            "SELECT group_id, template, state, reason, stop_trigger_paise FROM groups ORDER BY rowid"
        ):
            h_sym, h_qty = legs[gid].get("HEDGE", ("", 0))
            r_sym, r_qty = legs[gid].get("RISK", ("", 0))
            out.append(
                GroupRow.build(
                    group_id=gid,
                    template=template,
                    state=state,
                    reason=reason,
                    hedge_symbol=h_sym,
                    risk_symbol=r_sym,
                    hedge_qty=h_qty,
                    risk_qty=r_qty,
                    orders=[o.fill() for o in orders.get(gid, ())],
                    escalated=gid in escalated,
                    stop_trigger_paise=None if stop is None else int(stop),
                )
            )
        return out

    async def nodes(self) -> list[NodeView]:
        rows = await self.fetch(f"SELECT {', '.join(NODE_COLUMNS)} FROM hedge_nodes ORDER BY rowid")
        out = []
        for values in rows:
            d = dict(zip(NODE_COLUMNS, values, strict=True))
            out.append(
                NodeView(
                    d["node_id"],
                    d["group_id"],
                    d["parent_id"] or "",
                    d["depth"],
                    d["kind"],
                    d["symbol"],
                    d["side"],
                    d["target_qty"],
                    d["filled_qty"],
                    d["status"],
                    d["reason"],
                )
            )
        return out

    async def escalations(self) -> list[EscalationRow]:
        rows = await self.fetch(
            "SELECT escalation_id, kind, severity, status, COALESCE(group_id, ''), COALESCE(client_order_id, ''),"
            " symbol, unhedged_qty, reason, COALESCE(acknowledged_by, ''), COALESCE(acknowledged_role, ''),"
            " COALESCE(resolved_by, '') FROM escalations ORDER BY escalation_id"
        )
        return [EscalationRow(*r) for r in rows]

    async def finished_wall_ms(self) -> dict[str, int]:
        """When each finished group finished: the wall time of the input that ended it."""
        rows = await self.fetch(
            "SELECT t.entity_id, MAX(i.ts_wall_ms) FROM transitions t JOIN inputs i ON i.seq=t.cause_seq"
            " WHERE t.entity='GROUP' AND t.to_state IN ('COMPLETED','REJECTED','FAILED','CANCELLED')"
            " GROUP BY t.entity_id"
        )
        return {str(g): int(ms) for g, ms in rows if ms is not None}

    async def launch_wall_ms(self) -> dict[str, int]:
        """When each group was launched, by the wall clock of the audit log (display only)."""
        rows = await self.fetch(
            "SELECT target, MIN(ts_wall_ms) FROM audit_log WHERE command='launch' AND outcome='OK' GROUP BY target"
        )
        return {str(t): int(ms) for t, ms in rows}

    async def audit_trail(self, group_id: str, client_order_ids: list[str]) -> list[AuditLine]:
        """Transitions of the group and its orders, commands given on them, and refused events."""
        ids = [group_id, *client_order_ids]
        marks = ",".join("?" * len(ids))
        esc_ids = [
            str(e) for (e,) in await self.fetch("SELECT escalation_id FROM escalations WHERE group_id=?", (group_id,))
        ]
        targets = ids + esc_ids
        tmarks = ",".join("?" * len(targets))
        # a transition's wall time is its cause's (the input that made it: engine.audit)
        lines = [
            AuditLine("TRANSITION", e, eid, f"{a} → {b}", cause, ts_ex, ts_loc, wall, "")
            for e, eid, a, b, cause, ts_ex, ts_loc, wall in await self.fetch(
                "SELECT t.entity, t.entity_id, t.from_state, t.to_state, t.cause, t.ts_exchange_ms, t.ts_local_ns,"
                " i.ts_wall_ms FROM transitions t LEFT JOIN inputs i ON i.seq=t.cause_seq"
                f" WHERE t.entity_id IN ({marks}) ORDER BY t.id",
                tuple(ids),
            )
        ]
        lines += [
            AuditLine(
                "COMMAND", "COMMAND", target, f"{command} {outcome}", detail, None, ts_loc, wall, f"{user} ({role})"
            )
            for target, command, outcome, detail, ts_loc, wall, user, role in await self.fetch(
                "SELECT target, command, outcome, detail_json, ts_local_ns, ts_wall_ms, os_user, role FROM audit_log"
                f" WHERE target IN ({tmarks}) ORDER BY id",
                tuple(targets),
            )
        ]
        lines += [
            AuditLine("REJECTED", "EVENT", coid or group_id, "refused", reason, ts_ex, ts_loc, wall, "")
            for coid, reason, ts_ex, ts_loc, wall in await self.fetch(
                "SELECT r.client_order_id, r.reason, r.ts_exchange_ms, r.ts_local_ns, i.ts_wall_ms"
                " FROM rejected_events r LEFT JOIN inputs i ON i.seq=r.cause_seq"
                f" WHERE r.client_order_id IN ({marks}) OR json_extract(r.event_json, '$.group_id')=? ORDER BY r.id",
                (*ids, group_id),
            )
        ]
        # one trail in time order: commands interleaved with the transitions they caused (wall
        # time first, across restarts; the monotonic clock orders what shares a millisecond)
        return sorted(lines, key=lambda a: (a.ts_wall_ms or 0, a.ts_local_ns or 0))
