"""`trading-desk bench`, case 7: cases 1–3 and the shared-desk figures on PostgreSQL.

Every measurement runs in a scratch database of its own (``td_bench_<pid>_<n>``), created through
an admin connection and dropped afterwards, so a run never writes the database it was pointed at:

- ``--db postgresql://…``: the user's server. The login needs CREATEDB; ``db init`` runs in each
  scratch database with that login as the engine's (it creates the desk's group roles where the
  server lacks them, as ``db init`` does). The password comes from the URL or PGPASSWORD and
  reaches a child process through its environment, never its command line.
- without it, where PostgreSQL 15 is installed: a throwaway cluster on loopback, fsync on (a
  latency figure must include the WAL flush a durable commit waits for).

The references are measured in the same run on the same server: the floor (psycopg
``executemany`` of the minimum rows, one transaction per batch) and a bare one-row commit.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from engine.store import pg_cluster
from engine.store.db import is_postgres, redact
from engine.store.migrations import JournalError
from engine.store.pg_init import init_database
from engine.store.users import PG_ROLE

_counter = itertools.count(1)


@dataclass
class Server:
    base: str  # a postgresql:// URL without its password
    password: str | None

    def url(self, dbname: str, with_password: bool = True) -> str:
        parts = urlsplit(self.base)
        user = quote(parts.username or "", safe="")
        if with_password and self.password:
            auth = f"{user}:{quote(self.password, safe='')}@"
        else:
            auth = f"{user}@" if user else ""
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        port = f":{parts.port}" if parts.port else ""
        return urlunsplit((parts.scheme, auth + host + port, "/" + dbname, parts.query, ""))

    def env(self) -> dict[str, str]:
        """A child process's environment: the password travels here, not in its arguments."""
        out = dict(os.environ)
        if self.password:
            out["PGPASSWORD"] = self.password
        return out

    def admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.url(urlsplit(self.base).path.lstrip("/") or "postgres"), autocommit=True)

    def create(self) -> str:
        from psycopg import sql

        name = f"td_bench_{os.getpid()}_{next(_counter)}"
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop(self, name: str) -> None:
        from psycopg import sql

        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def login(self) -> str:
        with self.admin() as conn:
            row = conn.execute("SELECT current_user").fetchone()
        return str(row[0])


def server_of(url: str) -> Server:
    """A user's ``--db`` URL, its password split off (from the URL, else PGPASSWORD)."""
    if not is_postgres(url):
        raise JournalError(f"bench --db takes a postgresql:// URL, not {redact(url)!r}")
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password is not None else os.environ.get("PGPASSWORD")
    bare = Server(url, None)
    return Server(bare.url(parts.path.lstrip("/") or "postgres", with_password=False), password)


@asynccontextmanager
async def pg_server(db_url: str | None) -> AsyncIterator[Server | None]:
    """The user's server, else a throwaway cluster, else None (PostgreSQL is not installed)."""
    if db_url:
        server = server_of(db_url)
        try:
            await asyncio.to_thread(server.login)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise JournalError(f"bench: cannot connect to {redact(db_url)}: {first}") from None
        yield server
        return
    if not pg_cluster.installed():
        yield None
        return
    cluster = await asyncio.to_thread(pg_cluster.start_cluster, fsync=True)
    try:
        yield Server(cluster.url(pg_cluster.ADMIN, "postgres"), pg_cluster.ADMIN_PASSWORD)
    finally:
        await asyncio.to_thread(cluster.stop)


@asynccontextmanager
async def scratch(server: Server, journal: bool = True) -> AsyncIterator[str]:
    """A scratch database (its name), initialised as a journal, dropped on the way out."""
    name = await asyncio.to_thread(server.create)
    try:
        if journal:
            # the engine's login is the bench's own: never touch its password (TD_ENGINE_PASSWORD)
            login = await asyncio.to_thread(server.login)
            await init_database(server.url(name), engine_login=login, set_password=False)
        yield name
    finally:
        await asyncio.to_thread(server.drop, name)


@asynccontextmanager
async def desk_roles(server: Server) -> AsyncIterator[list[str]]:
    """The bench acts as its login in every desk role (launch, HALT, ``recover --role operator``),
    and the server decides roles by group membership. A superuser holds them all; another login is
    granted the ones it lacks for the run and they are revoked on the way out (the list)."""
    from psycopg import sql

    def grant() -> list[str]:
        granted = []
        with server.admin() as conn:
            for role in PG_ROLE.values():
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", (role,)).fetchone() is None:
                    conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))  # as db init does
                member = conn.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", (role,)).fetchone()
                if not (member and member[0]):
                    conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))
                    granted.append(role)
        return granted

    def revoke(roles: list[str]) -> None:
        with server.admin() as conn:
            for role in roles:
                conn.execute(sql.SQL("REVOKE {} FROM CURRENT_USER").format(sql.Identifier(role)))

    try:
        roles = await asyncio.to_thread(grant)
    except Exception as exc:
        raise JournalError(
            f"bench: the login cannot hold the desk roles {sorted(PG_ROLE.values())} for the run "
            f"(it needs CREATEROLE, or membership granted by an administrator): {str(exc).strip()}"
        ) from None
    try:
        yield roles
    finally:
        await asyncio.to_thread(revoke, roles)


async def pg_figures(tmp: Path, quick: bool, db_url: str | None, seed_events_per_s: float) -> dict[str, Any]:
    """Cases 1–3 and the shared desk on PostgreSQL, every key prefixed ``postgresql_``."""
    async with pg_server(db_url) as server:
        if server is None:
            return {"postgresql": "not measured: PostgreSQL 15 is not installed (bash .ci/setup installs it)"}
        out: dict[str, Any] = {"postgresql_server": "--db" if db_url else "throwaway cluster (fsync on)"}
        async with desk_roles(server):
            out |= await _cases(server, tmp, quick, seed_events_per_s)
    return out


async def _cases(server: Server, tmp: Path, quick: bool, seed_events_per_s: float) -> dict[str, Any]:
    from app import bench_ingest, bench_recovery, bench_wire
    from app.bench_shared import _shared_desk

    orders = 500 if quick else 2_000  # 11 offered events per order: 5.5k and 22k events
    async with scratch(server) as name:
        ours = await bench_ingest.ours(tmp, orders, target=server.url(name))
    async with scratch(server, journal=False) as name:
        floor = await asyncio.to_thread(bench_ingest.floor_pg, server.url(name), orders)
    rate = ours["events_per_s"]
    out: dict[str, Any] = {
        "postgresql_ingest_offered_events": ours["events"],
        "postgresql_ingest_events_per_s": round(rate),
        "postgresql_ingest_floor_executemany_events_per_s": round(floor["events_per_s"]),
        "postgresql_ingest_over_floor": round(rate / floor["events_per_s"], 3),
        "postgresql_ingest_over_seed_pattern": round(rate / seed_events_per_s, 1),
    }
    async with scratch(server) as name:
        wire = await bench_wire.wire_figures(tmp, 10 if quick else 40, target=server.url(name))
    out |= {f"postgresql_{k}": v for k, v in wire.items()}
    sizes = [("large", 4_000, 100), ("small", 1_000, 100)] if quick else [("large", 100_000, 1000),
                                                                          ("small", 10_000, 1000)]  # fmt: skip
    for label, finished, open_orders in sizes:
        async with scratch(server) as name:
            rec = await bench_recovery.figures(
                tmp, label, finished, open_orders, journal_json=label == "large",
                target=server.url(name), child=(server.url(name, with_password=False), server.env()),
            )  # fmt: skip
        out |= {f"postgresql_{k}": v for k, v in rec.items()}
    async with scratch(server) as name:
        shared = await _shared_desk(server.url(name), server.url(name), tmp)
    return out | {f"postgresql_{k}": round(v, 3) for k, v in shared.items()}
