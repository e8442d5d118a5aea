"""The paper exchange's own SQLite file: the latest full core state plus an append-only event log.

The exchange commits what it accepted before it acknowledges anything (``synchronous=FULL``), as a
real venue would: after a crash of either side the order book is what the engine last heard, or
newer, never older.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS exchange_state ( id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, json TEXT NOT NULL)",
    # One row per order, rewritten only when the order changes: a commit costs what changed, not
    # every order of the day (the exchange_state row then holds everything else).
    "CREATE TABLE IF NOT EXISTS orders (broker_order_id TEXT PRIMARY KEY, json TEXT NOT NULL)",
)


class PaperStateError(RuntimeError):
    """The state file cannot be used. The message names the file."""


class PaperStateStore:
    """One writer connection to the state file. Create it with ``open_state()``."""

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        self.path = path
        self._conn = conn
        self._closed = False
        self.needs_full_save = False

    async def load(self) -> dict[str, Any] | None:
        """The last saved core state, or None for a new file."""
        async with self._conn.execute("SELECT json FROM exchange_state WHERE id = 1") as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        try:
            state = json.loads(row[0])
        except json.JSONDecodeError as exc:
            raise PaperStateError(f"paper exchange state in {self.path} is corrupt: {exc}") from exc
        if not isinstance(state, dict):
            raise PaperStateError(f"paper exchange state in {self.path} is not a JSON object")
        if "orders" in state:  # written before per-order rows: the next save moves them over
            self.needs_full_save = True
            return state
        async with self._conn.execute("SELECT json FROM orders ORDER BY broker_order_id") as cur:
            rows = await cur.fetchall()
        try:
            state["orders"] = [json.loads(text) for (text,) in rows]
        except json.JSONDecodeError as exc:
            raise PaperStateError(f"an order in {self.path} is corrupt: {exc}") from exc
        return state

    async def save(
        self, meta: dict[str, Any], events: list[dict[str, Any]], orders: list[dict[str, Any]] | None = None
    ) -> None:
        """Replace the meta state, upsert the changed ``orders`` and append ``events``, atomically."""
        state_json = json.dumps(meta, separators=(",", ":"))
        await self._conn.execute("BEGIN IMMEDIATE")
        try:
            await self._conn.execute("INSERT OR REPLACE INTO exchange_state (id, json) VALUES (1, ?)", (state_json,))
            if orders:
                await self._conn.executemany(
                    "INSERT OR REPLACE INTO orders (broker_order_id, json) VALUES (?, ?)",
                    [(o["broker_order_id"], json.dumps(o, separators=(",", ":"))) for o in orders],
                )
            await self._conn.executemany(
                "INSERT INTO events (json) VALUES (?)",
                [(json.dumps(e, separators=(",", ":")),) for e in events],
            )
        except BaseException:
            if self._conn.in_transaction:  # SQLite rolls back by itself on some errors (a full disk)
                await self._conn.execute("ROLLBACK")
            raise
        await self._conn.execute("COMMIT")

    async def read_events(self, after_seq: int = 0) -> list[tuple[int, dict[str, Any]]]:
        """Every logged event with ``seq > after_seq``, oldest first (for reports and replays)."""
        async with self._conn.execute("SELECT seq, json FROM events WHERE seq > ? ORDER BY seq", (after_seq,)) as cur:
            rows = await cur.fetchall()
        return [(int(seq), json.loads(text)) for seq, text in rows]

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._conn.close()


async def open_state(path: Path | str) -> PaperStateStore:
    """Open (creating if needed) the state file at ``path``. Raises PaperStateError naming it."""
    target = Path(path)
    try:
        conn = await aiosqlite.connect(target, isolation_level=None)  # transactions are explicit
    except (OSError, sqlite3.Error) as exc:
        raise PaperStateError(f"cannot open paper exchange state file {target}: {exc}") from exc
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=FULL")
        for ddl in _SCHEMA:
            await conn.execute(ddl)
    except sqlite3.DatabaseError as exc:
        await conn.close()
        raise PaperStateError(f"{target} is not a usable paper exchange state database: {exc}") from exc
    except BaseException:
        await conn.close()
        raise
    return PaperStateStore(target, conn)
