"""Who a person is, and which desk roles they hold, from the system that authenticated them.

- SQLite (one machine): the person is the OS user of the process, by its effective uid (not
  $USER, which anyone may set). The journal file's owner created it and holds every role; others
  hold what the ``users`` table grants them.
- PostgreSQL: the person is the database login (``session_user``); the desk roles are the database
  roles ``desk_trader``, ``desk_risk`` and ``desk_operator`` that an administrator grants."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path

from engine.core.model import Role
from engine.store.db import Db

PG_ROLE = {Role.TRADER: "desk_trader", Role.RISK: "desk_risk", Role.OPERATOR: "desk_operator"}


def os_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid with no passwd entry (containers): the number is still who it is
        return f"uid{os.geteuid()}"


def file_owner(path: Path) -> str | None:
    try:
        uid = path.stat().st_uid
    except FileNotFoundError:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid{uid}"


async def roles_held(db: Db, user: str, journal_path: Path | None = None) -> frozenset[Role]:
    if db.dialect == "postgresql":
        held: set[Role] = set()
        if not await db.fetch("SELECT 1 FROM pg_roles WHERE rolname=?", (user,)):
            return frozenset()  # no such login: it holds nothing
        for role, pg_role in PG_ROLE.items():
            rows = await db.fetch(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname=?) AND pg_has_role(?, ?, 'MEMBER')",
                (pg_role, user, pg_role),
            )
            if rows and rows[0][0]:
                held.add(role)
        return frozenset(held)
    if journal_path is not None and file_owner(journal_path) == user:
        return frozenset(Role)
    rows = await db.fetch("SELECT role FROM users WHERE os_user=?", (user,))
    return frozenset(Role(str(r[0])) for r in rows)


async def grant(db: Db, user: str, role: Role, by: str) -> bool:
    """SQLite: give ``user`` a role (True if it is new)."""
    before = await db.fetch("SELECT 1 FROM users WHERE os_user=? AND role=?", (user, role.value))
    await db.execute(
        "INSERT INTO users (os_user, role, granted_by, ts_granted_ms) VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
        (user, role.value, by, time.time_ns() // 1_000_000),
    )
    return not before


async def revoke(db: Db, user: str, role: Role) -> bool:
    before = await db.fetch("SELECT 1 FROM users WHERE os_user=? AND role=?", (user, role.value))
    await db.execute("DELETE FROM users WHERE os_user=? AND role=?", (user, role.value))
    return bool(before)


async def list_users(db: Db, journal_path: Path | None = None) -> list[tuple[str, str, str]]:
    """(user, role, granted by) rows; on SQLite the file's owner first, with every role."""
    if db.dialect == "postgresql":
        rows = await db.fetch(
            "SELECT m.rolname, r.rolname, g.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid=a.roleid"
            " JOIN pg_roles m ON m.oid=a.member JOIN pg_roles g ON g.oid=a.grantor"
            " WHERE r.rolname IN ('desk_trader','desk_risk','desk_operator') ORDER BY 1, 2"
        )
        back = {v: k.value for k, v in PG_ROLE.items()}
        return [(str(m), back[str(r)], str(g)) for m, r, g in rows]
    out: list[tuple[str, str, str]] = []
    owner = file_owner(journal_path) if journal_path is not None else None
    if owner is not None:
        out += [(owner, role.value, "owner of the journal file") for role in Role]
    rows = await db.fetch("SELECT os_user, role, granted_by FROM users ORDER BY os_user, role")
    return out + [(str(u), str(r), str(g)) for u, r, g in rows]
