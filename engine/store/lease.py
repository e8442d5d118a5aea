"""Exactly one engine per journal: a lease the kernel or the server takes back when its holder
dies, and an epoch that fences a deposed holder's writes.

- SQLite: an exclusive ``flock`` on ``<journal>.lease``. The kernel drops it when the process
  dies, however it dies (a pid file would not be).
- PostgreSQL: a session advisory lock on a dedicated connection whose TCP keepalives and
  ``tcp_user_timeout`` are short on both ends, so a dead or cut-off holder is noticed in seconds,
  not after Linux's default 2 h 11 min.

On taking the lease the holder bumps ``lease.epoch``; every engine write transaction then runs
``UPDATE lease SET commit_seq = commit_seq + 1 WHERE epoch = <mine>`` first and is refused if
that changes no row (fencing: a deposed engine writes nothing). ``commit_seq`` is also the
sequence attached desks follow."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from engine.store.db import Db, redact
from engine.store.migrations import JournalError
from engine.store.users import os_user

# One advisory-lock key per database: advisory locks are scoped to the database already.
PG_LEASE_KEY = 0x7D5C_0001
# Client side (libpq) and server side (session GUCs) keepalives for the lease connection: a holder
# whose network is cut is dropped by the server after about idle + interval * count = 5 + 2*3 = 11 s,
# or tcp_user_timeout (10 s) for unacknowledged data.
PG_LEASE_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
    "application_name": "trading-desk engine lease",
}
PG_SERVER_KEEPALIVES = (
    "SET tcp_keepalives_idle = 5",
    "SET tcp_keepalives_interval = 2",
    "SET tcp_keepalives_count = 3",
    "SET tcp_user_timeout = 10000",
)


class LeaseHeld(JournalError):
    """Another engine holds this journal's lease; the message names it."""


class Fenced(JournalError):
    """This engine's epoch is no longer the journal's: another engine took over. Nothing of the
    refused transaction was written; this engine must stop."""


@dataclass(frozen=True, slots=True)
class Holder:
    host: str
    pid: int
    user: str
    since_ms: int
    epoch: int
    heartbeat_ms: int = 0

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since_ms / 1000)) if self.since_ms else "?"
        return f"pid {self.pid} of {self.user} on {self.host}, since {since}, epoch {self.epoch}"


def me() -> tuple[str, int, str]:
    return socket.gethostname(), os.getpid(), os_user()


async def read_holder(db: Db) -> Holder | None:
    rows = await db.fetch(
        "SELECT holder_host, holder_pid, holder_user, ts_since_ms, epoch, ts_heartbeat_ms FROM lease WHERE id=1"
    )
    if not rows or not rows[0][0]:
        return None
    h, pid, user, since, epoch, beat = rows[0]
    return Holder(str(h), int(pid), str(user), int(since), int(epoch), int(beat))


async def _bump_epoch(db: Db) -> int:
    host, pid, user = me()
    now_ms = time.time_ns() // 1_000_000
    await db.begin()
    try:
        rows = await db.fetch(
            "UPDATE lease SET epoch=epoch+1, holder_host=?, holder_pid=?, holder_user=?, ts_since_ms=?,"
            " ts_heartbeat_ms=?, status_json='{}' WHERE id=1 RETURNING epoch",
            (host, pid, user, now_ms, now_ms),
        )
        await db.commit()
    except BaseException:
        if db.in_transaction:
            await db.rollback()
        raise
    return int(rows[0][0])


class Lease(ABC):
    """Taken before recovery, held until release (or death)."""

    epoch: int | None = None

    @abstractmethod
    async def acquire(self, db: Db, *, wait: bool = False, poll_s: float = 0.5) -> int:
        """Take the lease (or wait for it, a standby) and bump the epoch; returns the epoch."""

    async def renew(self) -> None:
        """Prove the lease is still ours; raises when it cannot be shown (self-fencing). The OS
        lock of a file lease cannot be lost while the process lives: nothing to prove."""
        return None

    @abstractmethod
    def release(self) -> None:
        """Give the lease up (closing what holds it)."""


class FileLease(Lease):
    def __init__(self, journal_path: Path) -> None:
        self.path = journal_path.with_name(journal_path.name + ".lease")
        self._fd: int | None = None

    def _try(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    async def acquire(self, db: Db, *, wait: bool = False, poll_s: float = 0.5) -> int:
        if self._fd is not None and self.epoch is not None:
            return self.epoch
        while not self._try():
            if not wait:
                holder = await read_holder(db)
                who = holder.describe() if holder else "another process"
                raise LeaseHeld(f"journal {db.where} already has an engine ({who}); one engine per journal")
            await asyncio.sleep(poll_s)  # a standby's poll of the kernel lock, not a timing decision
        assert self._fd is not None
        host, pid, user = me()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {pid} of {user} on {host}".encode(), 0)
        self.epoch = await _bump_epoch(db)
        return self.epoch

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    @staticmethod
    def held(journal_path: Path) -> bool:
        """Is an engine alive on this journal? (The lock is the truth, not a heartbeat.)"""
        path = journal_path.with_name(journal_path.name + ".lease")
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also drops the shared lock if we got it
        return False


class PgLease(Lease):
    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None

    async def _connect(self) -> Any:
        conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, **PG_LEASE_KEEPALIVES)
        for sql in PG_SERVER_KEEPALIVES:
            await conn.execute(sql)
        return conn

    async def acquire(self, db: Db, *, wait: bool = False, poll_s: float = 1.0) -> int:
        if self._conn is not None and self.epoch is not None:
            return self.epoch
        try:
            self._conn = await self._connect()
        except Exception as exc:
            raise JournalError(f"cannot open the lease connection to {redact(self.url)}: {exc}") from None
        while True:
            cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (PG_LEASE_KEY,))
            row = await cur.fetchone()
            if row and row[0]:
                break
            if not wait:
                holder = await read_holder(db)
                who = holder.describe() if holder else "another session"
                await self._conn.close()
                self._conn = None
                raise LeaseHeld(f"journal {db.where} already has an engine ({who}); one engine per journal")
            await asyncio.sleep(poll_s)  # a standby's poll of the server's lock
        self.epoch = await _bump_epoch(db)
        return self.epoch

    async def renew(self) -> None:
        if self._conn is None:
            raise Fenced("the lease connection is closed")
        async with asyncio.timeout(3.0):
            cur = await self._conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND pid=pg_backend_pid() AND granted"
                " AND objid=%s",
                (PG_LEASE_KEY & 0xFFFFFFFF,),
            )
            row = await cur.fetchone()
        if not row or not row[0]:
            raise Fenced("the advisory lock of the lease is no longer held by this session")

    def release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            # Closing the socket ends the session; the server drops the advisory lock with it.
            conn.pgconn.finish()

    @staticmethod
    async def held(db: Db) -> bool:
        rows = await db.fetch(
            "SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND granted AND objid=? AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())",
            (PG_LEASE_KEY & 0xFFFFFFFF,),
        )
        return bool(rows and rows[0][0])
