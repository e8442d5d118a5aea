"""The journal's connection, for either backend: a SQLite file (aiosqlite, WAL) or a PostgreSQL
database (psycopg 3, async). Application SQL is written once, in SQLite's spelling with ``?``
placeholders; ``PgDb`` translates the few places where PostgreSQL spells it differently
(placeholders, ``rowid``), and the schema is the same through per-dialect migrations.

``--db`` takes either a file path or a ``postgresql://`` URL (a libpq URL: passwords come from
PGPASSWORD, ~/.pgpass or a client certificate, never from the command line or a log line)."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.pq import TransactionStatus

log = logging.getLogger(__name__)

PG_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(PG_SCHEMES)


def redact(url: str) -> str:
    """A URL fit for a log line or an error message: any password replaced by ***."""
    if not is_postgres(url):
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    user = parts.username or ""
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:***@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class Db(ABC):
    """One connection. ``execute``/``executemany``/``fetch`` take SQLite-spelled SQL."""

    dialect = "sqlite"
    where = ""

    @abstractmethod
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """(each backend)"""

    @abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """(each backend)"""

    @abstractmethod
    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """(each backend)"""

    @abstractmethod
    async def begin(self) -> None:
        """(each backend)"""

    @abstractmethod
    async def begin_snapshot(self) -> None:
        """Start a read-only transaction whose reads all see one committed state."""

    @abstractmethod
    async def execute_script(self, sql: str) -> None:
        """(each backend)"""

    async def commit(self) -> None:
        await self.execute("COMMIT")

    async def rollback(self) -> None:
        await self.execute("ROLLBACK")

    @property
    @abstractmethod
    def in_transaction(self) -> bool:
        """(each backend)"""

    @abstractmethod
    async def close(self) -> None:
        """(each backend)"""


class SqliteConn(Protocol):
    """What SqliteDb and the migration runner use of a SQLite connection: aiosqlite's API."""

    async def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...
    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...
    async def execute_fetchall(self, sql: str, parameters: Sequence[Any] = ..., /) -> Iterable[Any]: ...
    async def executescript(self, sql_script: str, /) -> Any: ...
    @property
    def in_transaction(self) -> bool: ...
    async def close(self) -> None: ...


class InlineSqlite:
    """aiosqlite's API over a plain ``sqlite3`` connection, run on the caller's thread.

    For the simulator (engine.sim): a decision then never waits on another thread, so a run is a
    function of its seed alone and thousands of steps take a second. Every statement blocks the
    event loop while it runs, which a desk or an engine serving a broker must not do; only
    single-purpose lockstep runs use it (``Journal.open(..., inline=True)``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> sqlite3.Cursor:
        return self._conn.execute(sql, tuple(parameters))

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> sqlite3.Cursor:
        return self._conn.executemany(sql, parameters)

    async def execute_fetchall(self, sql: str, parameters: Sequence[Any] = (), /) -> list[Any]:
        return self._conn.execute(sql, tuple(parameters)).fetchall()

    async def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        return self._conn.executescript(sql_script)

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    async def close(self) -> None:
        self._conn.close()


class SqliteDb(Db):
    dialect = "sqlite"

    def __init__(self, conn: SqliteConn, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.where = str(path)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.conn.execute(sql, tuple(params))

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self.conn.executemany(sql, [tuple(r) for r in rows])

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.conn.execute_fetchall(sql, tuple(params))]

    async def execute_script(self, sql: str) -> None:
        await self.conn.executescript(sql)

    async def begin(self) -> None:
        await self.conn.execute("BEGIN IMMEDIATE")
        # A step's batch holds rows that refer to each other both ways (a node and its
        # escalation); foreign keys are checked at COMMIT, still all or nothing.
        await self.conn.execute("PRAGMA defer_foreign_keys=ON")

    async def begin_snapshot(self) -> None:
        # Deferred: in WAL mode the first read fixes the snapshot until COMMIT/ROLLBACK.
        await self.conn.execute("BEGIN DEFERRED")

    @property
    def in_transaction(self) -> bool:
        return bool(self.conn.in_transaction)

    async def close(self) -> None:
        await self.conn.close()


_PLACEHOLDER = re.compile(r"\?")
_ROWID = re.compile(r"\browid\b")
_WHERE_FALSE = re.compile(r"\bWHERE 0\b")


def pg_sql(sql: str) -> str:
    """SQLite spelling to PostgreSQL: ``?`` to ``%s``, ``rowid`` to the ``seq`` column that
    every table without an integer key has on PostgreSQL, ``WHERE 0`` to ``WHERE false``."""
    sql = sql.replace("%", "%%")
    sql = _PLACEHOLDER.sub("%s", sql)
    sql = _ROWID.sub("seq", sql)
    return _WHERE_FALSE.sub("WHERE false", sql)


class PgDb(Db):
    dialect = "postgresql"

    def __init__(self, conn: Any, url: str) -> None:
        self.conn = conn  # psycopg.AsyncConnection in autocommit mode; transactions are explicit
        self.url = url
        self.where = redact(url)
        self._sql: dict[str, str] = {}

    @classmethod
    async def connect(cls, url: str, **options: Any) -> PgDb:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True, **options)
        return cls(conn, url)

    def _t(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = pg_sql(sql)
        return out

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.conn.execute(self._t(sql), tuple(params) or None)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = [tuple(r) for r in rows]
        if batch:
            async with self.conn.cursor() as cur:
                await cur.executemany(self._t(sql), batch)

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.conn.cursor() as cur:
            await cur.execute(self._t(sql), tuple(params) or None)
            return [tuple(r) for r in await cur.fetchall()] if cur.description else []

    async def begin(self) -> None:
        await self.conn.execute("BEGIN")

    async def begin_snapshot(self) -> None:
        await self.conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    async def execute_script(self, sql: str) -> None:
        """Several statements, unparameterised and untranslated (migrations)."""
        await self.conn.execute(sql.encode())

    @property
    def in_transaction(self) -> bool:
        return bool(self.conn.info.transaction_status != TransactionStatus.IDLE)

    async def close(self) -> None:
        await self.conn.close()


async def listen(url: str, channel: str, wake: asyncio.Event) -> None:
    """LISTEN on ``channel`` over a dedicated connection (psycopg's ``notifies()`` holds it) and
    set ``wake`` on every notification, and once after each (re)connect: notifications sent while
    disconnected are lost, so the reader re-reads from its last seen sequence then. Runs until
    cancelled; reconnects with backoff."""
    backoff = 0.2
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            async with conn:
                await conn.execute(f"LISTEN {channel}")
                wake.set()
                backoff = 0.2
                async for _ in conn.notifies():
                    wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("LISTEN %s on %s lost (%s); polling meanwhile", channel, redact(url), exc)
        await asyncio.sleep(backoff)  # reconnect backoff, not a timing decision
        backoff = min(backoff * 2, 5.0)
