"""The journal: one aiosqlite writer connection in WAL mode, explicit transactions.

Guarantees:
- ``transaction()`` is all-or-nothing: a dedupe key and its event's effect commit together.
- With ``synchronous='FULL'`` (the default) a committed intent survives power loss before the
  broker call that follows it. ``NORMAL`` is faster and survives an application crash but not an
  OS crash or power cut in WAL mode; the choice is a setting, documented in README.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiosqlite

from engine.core.effects import JournalWrites
from engine.core.groups import GroupSpec
from engine.core.hedge_tree import NodeKind, NodeStatus
from engine.core.model import GroupState, Side
from engine.store.db import Db, InlineSqlite, PgDb, SqliteConn, SqliteDb, is_postgres, redact
from engine.store.lease import Fenced, FileLease, Lease, PgLease
from engine.store.migrations import MIGRATIONS_DIR, JournalError, migrate, migrate_pg
from engine.store.rows import (
    INTENT_COLUMNS,
    NODE_COLUMNS,
    IntentRow,
    NodeRow,
    intent_from_db,
    intent_values,
    node_values,
)


def _create_private(path: Path) -> None:
    """A new journal file is readable and writable by its owner only (mode 0600)."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


def _pg_reason(exc: BaseException) -> str:
    """libpq's message, first line only (it never holds the password, but a long DSN echo might)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")


class Journal:
    def __init__(self, db: Db, path: Path | None) -> None:
        self.db = db
        self.path = path  # the SQLite file; None on PostgreSQL
        self.where = db.where  # for messages: the file, or the URL without its password
        self.schema_version = 0
        self._depth = 0
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self.lease: Lease | None = None
        self.epoch: int | None = None  # set while this journal's lease is ours (the engine)
        self.commit_seq = 0  # the lease row's sequence after this engine's last commit
        self.synchronous = "FULL"  # the level of a durable commit (an intent, a command, an alert)
        self._mode = "FULL"
        self.commits = 0
        self.durable_commits = 0
        # Called with the error whenever a transaction rolls back. The engine uses it to stop
        # taking commands: its in-memory book may already hold what the journal just dropped.
        self.on_rollback: Callable[[BaseException], None] | None = None

    @property
    def in_transaction(self) -> bool:
        return self._depth > 0

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @classmethod
    async def open(
        cls,
        target: Path | str,
        *,
        synchronous: str = "FULL",
        migrations_dir: Path = MIGRATIONS_DIR,
        apply_migrations: bool | None = None,
        inline: bool = False,
    ) -> Journal:
        """Open a journal: a SQLite file (created with mode 0600 and migrated) or a
        ``postgresql://`` URL (its schema is created and upgraded by ``db init``, which needs an
        administrator; an engine or desk only checks it is the version this code knows)."""
        if synchronous not in SYNCHRONOUS_MODES:
            raise JournalError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}")
        if is_postgres(target):
            return await cls._open_pg(str(target), synchronous, migrations_dir, bool(apply_migrations))
        path = Path(target)
        if path.parent and not path.parent.exists():
            raise JournalError(f"directory {path.parent} for journal {path} does not exist")
        _create_private(path)
        # inline: the simulator's synchronous path (engine.store.db.InlineSqlite), never a desk's
        conn: SqliteConn = (
            InlineSqlite(sqlite3.connect(str(path), isolation_level=None))
            if inline
            else await aiosqlite.connect(str(path), isolation_level=None)
        )
        journal = cls(SqliteDb(conn, path), path)
        journal.synchronous = journal._mode = synchronous
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute(f"PRAGMA synchronous={synchronous}")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            journal.schema_version = await migrate(conn, str(path), migrations_dir)
        except sqlite3.DatabaseError as exc:
            await conn.close()
            raise JournalError(f"{path} is not a Trading Desk journal or is corrupt: {exc}") from exc
        except BaseException:
            await conn.close()
            raise
        return journal

    @classmethod
    async def _open_pg(cls, url: str, synchronous: str, migrations_dir: Path, apply: bool) -> Journal:
        try:
            db = await PgDb.connect(url)
        except Exception as exc:
            raise JournalError(f"cannot connect to {redact(url)}: {_pg_reason(exc)}") from None
        journal = cls(db, None)
        journal.synchronous = journal._mode = synchronous
        try:
            # synchronous_commit=on waits for the local WAL flush: SQLite's FULL. Every broker
            # call follows a commit made at this level (the default; never off, see README).
            await db.execute("SET synchronous_commit = on")
            journal.schema_version = await migrate_pg(db, migrations_dir, apply=apply)
        except BaseException:
            await db.close()
            raise
        return journal

    async def close(self) -> None:
        self.release_lease()
        await self.db.close()

    async def abort(self) -> None:
        """Drop the connection without committing (crash simulation): the database rolls back."""
        self.release_lease()
        await self.db.close()

    async def take_lease(self, *, wait: bool = False) -> int:
        """Become the one engine of this journal (see engine.store.lease); returns the epoch.
        Raises LeaseHeld naming the holder when another engine has it, or with ``wait`` (a
        standby) waits until it is free. Readers (desks, ``journal --json``) never need it."""
        if self.lease is None:
            self.lease = FileLease(self.path) if self.path is not None else PgLease(self._url())
        try:  # taking it writes the lease row: a journal the engine cannot write is found here
            self.epoch = await self.lease.acquire(self.db, wait=wait)
        except sqlite3.OperationalError as exc:
            if self.db.in_transaction:
                await self.db.rollback()
            self.release_lease()
            raise JournalError(_sqlite_problem(self.where, exc, "cannot be written")) from exc
        return self.epoch

    def _url(self) -> str:
        assert isinstance(self.db, PgDb)
        return self.db.url

    def release_lease(self) -> None:
        if self.lease is not None:
            self.lease.release()
        self.epoch = None

    async def engine_alive(self) -> bool:
        """Does some engine hold this journal's lease right now?"""
        if self.path is not None:
            return FileLease.held(self.path)
        return await PgLease.held(self.db)

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[None]:
        """All or nothing. ``durable`` (the default) commits at the configured synchronous level
        (FULL: survives power loss). A non-durable commit uses NORMAL: it survives the
        application crashing, and the next durable commit syncs it too (the WAL is appended in
        order), so a power cut can only lose a suffix of non-durable commits: event effects the
        engine re-derives from the broker at recovery, never an intent or a person's command.
        While this journal holds the lease, each transaction is fenced by its epoch."""
        task = asyncio.current_task()
        if self._depth and self._owner is task:
            raise JournalError("nested transaction")
        await self._lock.acquire()  # one transaction at a time on the one connection
        self._owner = task
        self._depth = 1
        mode = self.synchronous if durable else "NORMAL"
        db = self.db
        try:
            if db.dialect == "sqlite" and mode != self._mode:
                await db.execute(f"PRAGMA synchronous={mode}")
                self._mode = mode
            await db.begin()
            if db.dialect == "postgresql" and mode == "NORMAL":
                await db.execute("SET LOCAL synchronous_commit = off")
            if self.epoch is not None:
                rows = await db.fetch(
                    "UPDATE lease SET commit_seq=commit_seq+1 WHERE id=1 AND epoch=? RETURNING commit_seq",
                    (self.epoch,),
                )
                if not rows:
                    raise Fenced(
                        f"journal {self.where}: another engine took the lease (this one had epoch {self.epoch});"
                        " nothing was written, and this engine stops"
                    )
                seq = int(rows[0][0])
                if db.dialect == "postgresql":
                    await db.execute("SELECT pg_notify('td_journal', ?)", (str(seq),))
            yield
        except BaseException as exc:
            if db.in_transaction:
                await db.rollback()
            failure: BaseException = exc
            if isinstance(exc, sqlite3.OperationalError):
                failure = JournalError(_sqlite_problem(self.where, exc, "refused a transaction"))
            if self.on_rollback is not None:
                self.on_rollback(failure)
            if failure is exc:
                raise
            raise failure from exc
        else:
            await db.commit()
            if self.epoch is not None:
                self.commit_seq = seq
            self.commits += 1
            self.durable_commits += mode in ("FULL", "EXTRA")
        finally:
            self._depth = 0
            self._owner = None
            self._lock.release()

    async def statement(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """One statement on its own, outside any transaction (between them, never inside one)."""
        async with self._lock:
            await self.db.execute(sql, params)

    # --- writes (inside transaction()) -----------------------------------------------------

    async def insert_group(
        self, spec: GroupSpec, state: GroupState, reason: str, now_ns: int, cause_seq: int | None = None
    ) -> None:
        await self.db.execute(
            "INSERT INTO groups (group_id, template, state, reason, spec_json, ts_created_local_ns,"
            " ts_updated_local_ns, stop_trigger_paise, cause_seq) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                spec.group_id,
                spec.template,
                state.value,
                reason,
                json.dumps(spec.to_json()),
                now_ns,
                now_ns,
                spec.stop_trigger_paise,
                cause_seq,
            ),
        )
        await self.db.executemany(
            "INSERT INTO legs (group_id, role, symbol, side, qty, lot_size, tick_paise, freeze_qty,"
            " limit_price_paise) VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    spec.group_id,
                    leg.role.value,
                    leg.symbol,
                    leg.side.value,
                    leg.qty,
                    leg.lot_size,
                    leg.tick_paise,
                    leg.freeze_qty,
                    leg.limit_price_paise,
                )
                for leg in spec.legs
            ],
        )

    async def insert_intent(self, row: IntentRow) -> None:
        batch = JournalWrites()
        batch.intents_new[row.client_order_id] = row
        await self.flush(batch)

    async def bump_counter(self, name: str, by: int = 1) -> None:
        await self.db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=counters.value+?",
            (name, by, by),
        )

    async def insert_audit(
        self,
        *,
        now_ns: int,
        wall_ms: int,
        os_user: str,
        role: str,
        command: str,
        target: str,
        detail: dict[str, Any],
        outcome: str,
    ) -> None:
        batch = JournalWrites()
        batch.audit(now_ns, wall_ms, os_user, role, command, target, detail, outcome)
        await self.flush(batch)

    async def flush(self, batch: JournalWrites) -> None:
        """Write a step's batch (inside transaction()): one executemany per table."""
        c = self.db
        if batch.inputs:
            await c.executemany(
                "INSERT INTO inputs (seq, kind, epoch, ts_local_ns, ts_wall_ms, ts_broker_ms, command_seq, body_json,"
                " ids_json) VALUES (?,?,?,?,?,?,?,?,?)",
                batch.inputs,
            )
        for group in batch.groups_new.values():
            await self.insert_group(
                group.spec, group.state, group.reason, batch.now_ns, batch.group_causes.get(group.spec.group_id)
            )
        group_rows = [*batch.groups_new.values(), *batch.groups.values()]
        if group_rows:
            await c.executemany(
                "UPDATE groups SET state=?, reason=?, close_requested=?, cancel_requested=?, margin_paise=?,"
                " ts_updated_local_ns=? WHERE group_id=?",
                [
                    (
                        g.state.value,
                        g.reason,
                        int(g.close_requested),
                        int(g.cancel_requested),
                        g.margin_paise,
                        batch.now_ns,
                        g.spec.group_id,
                    )
                    for g in group_rows
                ],
            )
        if batch.nodes_new:
            marks = ",".join("?" * len(NODE_COLUMNS))
            await c.executemany(
                f"INSERT INTO hedge_nodes ({','.join(NODE_COLUMNS)}) VALUES ({marks})",
                [node_values(n) for n in batch.nodes_new.values()],
            )
        if batch.nodes:
            await c.executemany(
                "UPDATE hedge_nodes SET filled_qty=?, status=?, reason=?, escalation_id=?, ts_updated_local_ns=?"
                " WHERE node_id=?",
                [
                    (n.filled_qty, n.status.value, n.reason, n.escalation_id, n.ts_updated_local_ns, n.node_id)
                    for n in batch.nodes.values()
                ],
            )
        if batch.intents_new:
            marks = ",".join("?" * len(INTENT_COLUMNS))
            await c.executemany(
                f"INSERT INTO intents ({','.join(INTENT_COLUMNS)}) VALUES ({marks})",
                [intent_values(r) for r in batch.intents_new.values()],
            )
        if batch.escalations:
            await c.executemany(
                "INSERT INTO escalations (escalation_id, kind, severity, status, group_id, client_order_id, symbol,"
                " unhedged_qty, reason, ts_created_local_ns, cause_seq, rule, why_json)"
                " VALUES (?,?,?,'OPEN',?,?,?,?,?,?,?,?,?)",
                batch.escalations,
            )
        if batch.acknowledgements:
            await c.executemany(
                "UPDATE escalations SET status='ACKNOWLEDGED', acknowledged_by=?, acknowledged_role=?,"
                " ts_acknowledged_local_ns=? WHERE escalation_id=? AND status='OPEN'",
                [(by, role, now, esc) for esc, by, role, now in batch.acknowledgements],
            )
        if batch.resolutions:
            await c.executemany(
                "UPDATE escalations SET status='RESOLVED', resolved_by=?, resolution=?, ts_resolved_local_ns=?"
                " WHERE escalation_id=?",
                [(by, resolution, now, esc) for esc, by, resolution, now in batch.resolutions],
            )
        if batch.audits:
            await c.executemany(
                "INSERT INTO audit_log (ts_local_ns, ts_wall_ms, os_user, role, command, target, detail_json,"
                " outcome, command_seq, input_seq) VALUES (?,?,?,?,?,?,?,?,?,?)",
                batch.audits,
            )
        for key, value in batch.settings.items():
            await self.set_setting(key, value)
        if batch.processed:
            await c.executemany(
                "INSERT INTO processed_events (event_key, client_order_id, ts_local_ns) VALUES (?,?,?)", batch.processed
            )
        if batch.fills:
            await c.executemany(
                "INSERT INTO fills (trade_id, client_order_id, symbol, side, qty, price_paise, ts_exchange_ms,"
                " ts_local_ns, cause_seq) VALUES (?,?,?,?,?,?,?,?,?)",
                batch.fills,
            )
        if batch.intents:
            cols = [col for col in INTENT_COLUMNS if col != "client_order_id"]
            rows = []
            for row in batch.intents.values():
                values = dict(zip(INTENT_COLUMNS, intent_values(row), strict=True))
                rows.append([values[col] for col in cols] + [row.client_order_id])
            await c.executemany(
                f"UPDATE intents SET {', '.join(f'{col}=?' for col in cols)} WHERE client_order_id=?", rows
            )
        if batch.transitions:
            await c.executemany(
                "INSERT INTO transitions (entity, entity_id, from_state, to_state, filled_qty, cause, ts_exchange_ms,"
                " ts_local_ns, cause_seq, rule) VALUES (?,?,?,?,?,?,?,?,?,?)",
                batch.transitions,
            )
        if batch.rejected:
            await c.executemany(
                "INSERT INTO rejected_events (client_order_id, event_key, event_json, reason, ts_exchange_ms,"
                " ts_local_ns, feed_seq, cause_seq) VALUES (?,?,?,?,?,?,?,?)",
                batch.rejected,
            )
            await self.bump_counter("rejected_events", len(batch.rejected))
        if batch.resolve_orphans:
            await c.executemany(
                "UPDATE escalations SET status='RESOLVED', resolved_by='engine', resolution='broker reported the"
                " order', ts_resolved_local_ns=? WHERE client_order_id=? AND status!='RESOLVED'",
                [(now, coid) for coid, now in batch.resolve_orphans],
            )
        if batch.duplicates:
            await self.bump_counter("duplicate_events", batch.duplicates)
        if batch.marks:
            await c.executemany(
                "INSERT INTO marks (symbol, bid_paise, ask_paise, last_paise, bid_qty, ask_qty, last_qty,"
                " ts_exchange_ms, ts_local_ns, ts_wall_ms) VALUES (?,?,?,?,?,?,?,?,?,?)",
                batch.marks,
            )
        if batch.checkpoint is not None:
            await c.execute(
                "INSERT INTO checkpoints (seq, kind, epoch, ts_wall_ms, format, state) VALUES (?,?,?,?,?,?)",
                batch.checkpoint,
            )
        if batch.commands_done:
            await c.executemany(
                "UPDATE commands SET status=?, outcome_json=?, error=?, role_needed=?, engine_epoch=?, ts_done_ms=?"
                " WHERE seq=? AND status IN ('SUBMITTED','EXECUTING')",
                batch.commands_done,
            )

    async def known_keys(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            rows = await self.fetch(
                f"SELECT event_key FROM processed_events WHERE event_key IN ({','.join('?' * len(chunk))})",
                tuple(chunk),
            )
            found.update(str(r[0]) for r in rows)
        return found

    async def load_nodes(self, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[NodeRow]:
        rows = await self.fetch(
            f"SELECT {','.join(NODE_COLUMNS)} FROM hedge_nodes WHERE {where} ORDER BY rowid", params
        )
        out = []
        for r in rows:
            d = dict(zip(NODE_COLUMNS, r, strict=True))
            out.append(
                NodeRow(
                    node_id=str(d["node_id"]),
                    group_id=str(d["group_id"]),
                    parent_id=None if d["parent_id"] is None else str(d["parent_id"]),
                    depth=int(d["depth"]),
                    kind=NodeKind(str(d["kind"])),
                    symbol=str(d["symbol"]),
                    side=Side(str(d["side"])),
                    lot_size=int(d["lot_size"]),
                    target_qty=int(d["target_qty"]),
                    filled_qty=int(d["filled_qty"]),
                    status=NodeStatus(str(d["status"])),
                    reason=str(d["reason"]),
                    escalation_id=None if d["escalation_id"] is None else int(d["escalation_id"]),
                    ts_created_local_ns=int(d["ts_created_local_ns"]),
                    ts_updated_local_ns=int(d["ts_updated_local_ns"]),
                    cause_seq=None if d["cause_seq"] is None else int(d["cause_seq"]),
                    rule=str(d["rule"]),
                    why_json=str(d["why_json"]),
                )
            )
        return out

    async def set_setting(self, key: str, value: str) -> None:
        await self.db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    async def setting(self, key: str, default: str) -> str:
        rows = await self.fetch("SELECT value FROM settings WHERE key=?", (key,))
        return str(rows[0][0]) if rows else default

    # --- reads ------------------------------------------------------------------------------

    async def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read. Outside the task that owns the open transaction it waits for that transaction
        to end: on the one shared connection it would otherwise see rows not yet committed (and
        perhaps about to be rolled back)."""
        if self._depth and self._owner is asyncio.current_task():
            return await self.db.fetch(sql, params)
        async with self._lock:
            return await self.db.fetch(sql, params)

    async def load_intents(self, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[IntentRow]:
        rows = await self.fetch(f"SELECT {','.join(INTENT_COLUMNS)} FROM intents WHERE {where} ORDER BY rowid", params)
        return [intent_from_db(r) for r in rows]

    async def group_ids(self) -> set[str]:
        return {str(r[0]) for r in await self.fetch("SELECT group_id FROM groups")}

    async def counter(self, name: str) -> int:
        rows = await self.fetch("SELECT value FROM counters WHERE name=?", (name,))
        return int(rows[0][0]) if rows else 0


def _sqlite_problem(where: str, exc: sqlite3.OperationalError, what: str) -> str:
    """A SQLite refusal in the words of the person who must fix it."""
    text = str(exc)
    if "full" in text:
        why = "the disk (or the database's size limit) is full"
        fix = "free space, then restart the engine: recovery resumes from what was committed"
    elif "readonly" in text or "read-only" in text:
        why = "the file or its directory is read-only for this user"
        fix = "make it writable for the engine's user, or read it with `trading-desk journal`"
    elif "locked" in text or "busy" in text:
        why = "another program holds a lock on it"
        fix = "close the program that has it open for writing (an sqlite3 shell, a backup), then retry"
    else:
        why, fix = text, "see the message above"
    return f"journal {where} {what}: {why} ({text}); nothing of it was written; {fix}"
