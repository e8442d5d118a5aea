"""Migrations runner: ``migrations/NNN_name.sql`` applied in order, each exactly once, each in its
own transaction. A database newer than this code, or one whose applied migration differs from the
file we ship, is refused with a message that says why; it is never rewritten."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from engine.store.db import Db, SqliteConn

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
_NAME_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


class JournalError(RuntimeError):
    """The journal database cannot be used. The message says why and names the file."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME_RE.match(path.name)
        if not m:
            raise JournalError(f"migration file {path.name} is not named NNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise JournalError(f"migrations in {directory} must be numbered 001, 002, ... without gaps")
    return found


_LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,
    ts_applied_ms INTEGER NOT NULL)"""


async def migrate(conn: SqliteConn, where: str, directory: Path = MIGRATIONS_DIR) -> int:
    """Bring the schema up to date; returns the resulting version. ``conn`` is in autocommit mode."""
    known = discover(directory)
    tables = {row[0] for row in await conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
    if tables and "schema_migrations" not in tables:
        raise JournalError(f"{where} has tables but no schema_migrations: it is not a Trading Desk journal")
    await conn.execute(_LEDGER)
    applied = {
        int(r[0]): (str(r[1]), str(r[2]))
        for r in await conn.execute_fetchall("SELECT version, name, checksum FROM schema_migrations")
    }
    newest_known = known[-1].version if known else 0
    for mig in _pending(known, applied, where):
        await _apply(conn, mig, where)
    return newest_known


def _pending(known: list[Migration], applied: dict[int, tuple[str, str]], where: str) -> list[Migration]:
    """The migrations still to apply. A database newer than this code, or one whose applied
    migration differs from the file we ship, is refused."""
    newest_known = known[-1].version if known else 0
    if applied and max(applied) > newest_known:
        raise JournalError(
            f"{where} is at schema version {max(applied)}, newer than this Trading Desk knows "
            f"({newest_known}); upgrade the application instead of opening it with this one"
        )
    for mig in known:
        if mig.version in applied and applied[mig.version][1] != mig.checksum:
            raise JournalError(
                f"{where}: migration {mig.version:03d}_{applied[mig.version][0]} was applied from a "
                "different file than the one shipped; refusing to guess"
            )
    return [mig for mig in known if mig.version not in applied]


async def _apply(conn: SqliteConn, mig: Migration, where: str) -> None:
    # executescript() would commit after each statement group; an explicit BEGIN/COMMIT inside
    # the script keeps the whole migration and its ledger row in one transaction.
    ledger = (
        "INSERT INTO schema_migrations (version, name, checksum, ts_applied_ms) VALUES "
        f"({mig.version}, '{mig.name}', '{mig.checksum}', {time.time_ns() // 1_000_000});"
    )
    # SQLite's procedure for rebuilding a table: foreign keys off (outside the transaction), apply,
    # prove with foreign_key_check that nothing dangles, commit, keys back on.
    await conn.execute("PRAGMA foreign_keys=OFF")
    try:
        await conn.executescript(f"BEGIN IMMEDIATE;\n{mig.sql}\n;{ledger}")
        dangling = list(await conn.execute_fetchall("PRAGMA foreign_key_check"))
        if dangling:
            raise JournalError(f"foreign keys left dangling: {dangling[:3]}")
        await conn.execute("COMMIT")
    except Exception as exc:
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise JournalError(
            f"{where}: migration {mig.version:03d}_{mig.name} failed and was rolled back: {exc}"
        ) from exc
    finally:
        await conn.execute("PRAGMA foreign_keys=ON")


PG_DIR = "postgresql"


def discover_pg(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The same versions as SQLite's, each from ``postgresql/NNN_name.sql`` where the dialects
    differ and from the shared file where they don't."""
    out = []
    for mig in discover(directory):
        own = directory / PG_DIR / f"{mig.version:03d}_{mig.name}.sql"
        out.append(Migration(mig.version, mig.name, own.read_text(encoding="utf-8")) if own.exists() else mig)
    return out


async def migrate_pg(db: Db, directory: Path = MIGRATIONS_DIR, *, apply: bool) -> int:
    """PostgreSQL: check the schema is the one this code knows; with ``apply`` (``db init``, an
    administrator's login) create or upgrade it, each migration in its own transaction."""
    known = discover_pg(directory)
    newest_known = known[-1].version if known else 0
    has_ledger = await db.fetch("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not has_ledger[0][0]:
        tables = await db.fetch("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
        if int(tables[0][0]) and apply:
            raise JournalError(f"{db.where} has tables but no schema_migrations: it is not a Trading Desk journal")
        if not apply:
            raise JournalError(
                f"{db.where} has no Trading Desk journal yet: an administrator creates it with"
                f" `trading-desk db init --db {db.where}`"
            )
        await db.execute(_LEDGER.replace("INTEGER", "BIGINT"))
    applied = {
        int(r[0]): (str(r[1]), str(r[2]))
        for r in await db.fetch("SELECT version, name, checksum FROM schema_migrations")
    }
    for mig in _pending(known, applied, db.where):
        if not apply:
            raise JournalError(
                f"{db.where} is at schema version {max(applied, default=0)}, older than this Trading Desk"
                f" ({newest_known}): an administrator upgrades it with `trading-desk db init --db {db.where}`"
            )
        await db.begin()
        try:
            await db.execute_script(mig.sql)
            await db.execute(
                "INSERT INTO schema_migrations (version, name, checksum, ts_applied_ms) VALUES (?,?,?,?)",
                (mig.version, mig.name, mig.checksum, time.time_ns() // 1_000_000),
            )
            await db.commit()
        except Exception as exc:
            if db.in_transaction:
                await db.rollback()
            raise JournalError(
                f"{db.where}: migration {mig.version:03d}_{mig.name} failed and was rolled back: {exc}"
            ) from exc
    return newest_known
