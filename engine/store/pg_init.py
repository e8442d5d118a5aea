"""``trading-desk db init`` on PostgreSQL: the schema (through the shared migrations), the desk
roles, the engine's own login, and who may do what.

- ``desk_trader``, ``desk_risk``, ``desk_operator``: NOLOGIN roles an administrator grants to
  people's logins (``trading-desk users grant``). They may read every journal table and call
  ``desk_submit``, which records ``session_user``; they hold no INSERT, UPDATE or DELETE on any
  table, so a desk cannot forge who it is or go around the engine.
- the engine's login (``td_engine`` by default): reads and writes the journal, never DELETEs,
  and may only INSERT into ``audit_log`` (which a trigger also keeps append-only).
Run it as an administrator (the database owner or a superuser). It is idempotent: run it again
after an upgrade to apply new migrations."""

from __future__ import annotations

import os
from typing import Any

from engine.store.db import PgDb, redact
from engine.store.migrations import MIGRATIONS_DIR, JournalError, migrate_pg
from engine.store.users import PG_ROLE

DESK_ROLES = tuple(PG_ROLE.values())
ENGINE_PASSWORD_ENV = "TD_ENGINE_PASSWORD"


async def init_database(url: str, *, engine_login: str = "td_engine", set_password: bool = True) -> dict[str, Any]:
    from psycopg import errors, sql

    try:
        db = await PgDb.connect(url)
    except Exception as exc:
        raise JournalError(f"cannot connect to {redact(url)}: {str(exc).strip().splitlines()[0]}") from None
    conn = db.conn
    created: list[str] = []
    try:
        for role in DESK_ROLES:
            cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", (role,))
            if await cur.fetchone() is None:
                await conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                created.append(role)
        cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", (engine_login,))
        password = os.environ.get(ENGINE_PASSWORD_ENV) if set_password else None
        if await cur.fetchone() is None:
            await conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(engine_login)))
            created.append(engine_login)
        if password:  # from the environment, never from an argument (it would show in ps)
            await conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(engine_login), sql.Literal(password))
            )
        version = await migrate_pg(db, MIGRATIONS_DIR, apply=True)
        engine = sql.Identifier(engine_login)
        statements = [
            "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC",
            sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(engine),
            sql.SQL("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {}").format(engine),
            sql.SQL("REVOKE UPDATE ON audit_log, inputs, checkpoints, marks, schema_migrations FROM {}").format(engine),
            sql.SQL("REVOKE INSERT ON schema_migrations FROM {}").format(engine),
            sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(engine),
        ]
        for role in DESK_ROLES:
            r = sql.Identifier(role)
            statements += [
                sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(r),
                sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(r),
                sql.SQL("GRANT EXECUTE ON FUNCTION desk_submit(text, text, text, text) TO {}").format(r),
            ]
        for stmt in statements:
            await conn.execute(stmt)
    except errors.InsufficientPrivilege as exc:
        raise JournalError(f"{db.where}: db init needs an administrator login: {exc}") from None
    finally:
        await db.close()
    return {
        "database": redact(url),
        "schema_version": version,
        "created_roles": created,
        "engine_login": engine_login,
        "desk_roles": list(DESK_ROLES),
    }
