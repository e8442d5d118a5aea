"""The shared desk from a shell: ``engine`` (the one engine of a journal, or its standby),
``command`` (submit one command and wait for its outcome), ``users`` (who holds which desk role)
and ``db init`` (create or upgrade a PostgreSQL journal, its roles and the engine's login)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.brokers import open_broker
from app.errors import UsageError
from engine.catalog import load_catalog
from engine.core.groups import parse_groups
from engine.core.model import Role
from engine.runtime import command_rows
from engine.runtime.engine import Engine
from engine.store import users
from engine.store.db import is_postgres
from engine.store.journal import Journal
from engine.store.lease import read_holder

log = logging.getLogger("trading-desk")

# The role each action needs; ``--role`` picks another of the roles you hold.
ACTION_ROLE = {
    "launch": Role.TRADER,
    "cancel": Role.TRADER,
    "close": Role.TRADER,
    "manual_hedge": Role.TRADER,
    "halt": Role.TRADER,
    "reduce": Role.TRADER,
    "resume": Role.RISK,
    "ack": Role.RISK,
    "resolve": Role.RISK,
    "approve": Role.OPERATOR,
    "abandon": Role.OPERATOR,
}
EXIT_DONE, EXIT_REFUSED, EXIT_NO_ANSWER = 0, 2, 3


def journal_target(db: str) -> Path | str:
    """``--db``: a PostgreSQL URL as it is, or an existing journal file."""
    if is_postgres(db):
        return db
    p = Path(db)
    if not p.is_file():
        raise UsageError(f"no journal at {p}")
    return p


# --- submitting -------------------------------------------------------------------------------


class _CrashAt:
    def __init__(self, point: str | None) -> None:
        self.point = point

    def __call__(self, point: str) -> None:
        if point == self.point:
            os._exit(137)  # as SIGKILL at this instant: nothing after it happens


@dataclass(frozen=True, slots=True)
class Outcome:
    command_id: str
    action: str
    status: str  # DONE, REFUSED, or WAITING (no answer in time)
    value: Any = None
    error: str | None = None
    role_needed: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "command_id": self.command_id,
            "action": self.action,
            "status": self.status,
            "value": self.value,
            "error": self.error,
            "role_needed": self.role_needed,
        }


async def submit_and_wait(
    journal: Journal,
    action: str,
    args: Mapping[str, Any],
    role: Role,
    wait_s: float,
    *,
    command_id: str | None = None,
    poll_s: float = 0.02,
) -> Outcome:
    """Submit a command row (as this process's authenticated identity) and wait for the engine's
    outcome. The id is chosen here, so a retried submit is applied once."""
    cid = command_id or command_rows.new_command_id()
    await command_rows.submit(journal.db, cid, action, args, role, users.os_user())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        row = await command_rows.by_id(journal.db, cid)
        if row is not None and row.status in ("DONE", "REFUSED"):
            value = json.loads(row.outcome_json).get("value") if row.outcome_json else None
            return Outcome(cid, action, row.status, value, row.error, row.role_needed)
        if loop.time() >= deadline:
            return Outcome(cid, action, "WAITING")
        await asyncio.sleep(poll_s)  # polling the outcome row; the deadline is the caller's --wait


def _command_args(action: str, rest: list[str], note: str | None) -> list[dict[str, Any]]:
    def one(name: str) -> str:
        if len(rest) != 1:
            raise UsageError(f"command {action} takes one argument: {name}")
        return rest[0]

    if action in ("halt", "reduce", "resume"):
        if rest:
            raise UsageError(f"command {action} takes no arguments")
        return [{}]
    if action in ("ack", "resolve"):
        raw = one("ESCALATION_ID")
        if not raw.isdigit():
            raise UsageError(f"escalation id must be a number, got {raw!r}")
        if action == "resolve":
            if not note or not note.strip():
                raise UsageError("resolve needs --note saying how the escalation's cause was dealt with")
            return [{"escalation_id": int(raw), "note": note}]
        return [{"escalation_id": int(raw)}]
    if action in ("approve", "abandon"):
        return [{"ident": one("INTENT_OR_CLIENT_ORDER_ID")}]
    if action in ("close", "cancel"):
        return [{"group_id": one("GROUP_ID")}]
    if action == "launch":
        path = Path(one("FILE.json"))
        try:
            raw_groups = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise UsageError(f"{path} is not JSON: {exc}") from None
        items = raw_groups if isinstance(raw_groups, list) else [raw_groups]
        parse_groups(items, load_catalog())  # every group valid before anything is submitted
        return [{"group": item} for item in items]
    raise UsageError(f"unknown action {action!r}; one of {', '.join(ACTION_ROLE)}")


async def _default_role(journal: Journal, action: str) -> Role:
    """The role the action needs; for HALT and REDUCE (anyone may tighten), one the person holds."""
    if action not in ("halt", "reduce"):
        return ACTION_ROLE[action]
    me = users.os_user()
    if journal.dialect == "postgresql":  # the person is the database login
        me = str((await journal.fetch("SELECT session_user"))[0][0])
    held = await users.roles_held(journal.db, me, journal.path)
    return next((r for r in (Role.TRADER, Role.RISK, Role.OPERATOR) if r in held), Role.TRADER)


async def run_command(args: argparse.Namespace) -> int:
    action = args.action
    if action not in ACTION_ROLE:
        raise UsageError(f"unknown action {action!r}; one of {', '.join(ACTION_ROLE)}")
    payloads = _command_args(action, list(args.args), args.note)
    if args.wait < 0:
        raise UsageError("--wait must be 0 or more seconds")
    journal = await Journal.open(journal_target(args.db))
    try:
        role = Role(args.role) if args.role else await _default_role(journal, action)
        outcomes = [await submit_and_wait(journal, action, p, role, args.wait) for p in payloads]
    finally:
        await journal.close()
    for o in outcomes:
        if args.json:
            print(json.dumps(o.to_json(), sort_keys=True))
        elif o.status == "DONE":
            print(f"{action}: done" + (f" ({o.value})" if o.value not in (None, "") else ""))
        elif o.status == "REFUSED":
            needed = f" (needs the {o.role_needed} role)" if o.role_needed else ""
            print(f"{action}: refused: {o.error}{needed}", file=sys.stderr)
        else:
            print(
                f"{action}: no answer within {args.wait:g} s (command {o.command_id} stays submitted)", file=sys.stderr
            )
    if any(o.status == "WAITING" for o in outcomes):
        return EXIT_NO_ANSWER
    return EXIT_REFUSED if any(o.status == "REFUSED" for o in outcomes) else EXIT_DONE


# --- the engine as a service ------------------------------------------------------------------


async def run_engine(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    catalog = load_catalog()
    journal = await Journal.open(args.db if is_postgres(args.db) else Path(args.db))  # a new file is created
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = None
    engine: Engine | None = None
    try:
        if args.standby:
            holder = await read_holder(journal.db)
            log.info(
                "standby on %s: waiting for the lease (%s)", journal.where, holder.describe() if holder else "free"
            )
        broker = await open_broker(args.broker, catalog)
        engine = Engine(journal, broker, catalog, crash_hook=_CrashAt(args.crash_at))
        starting = asyncio.create_task(engine.start(standby=args.standby))
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting not in done:
            starting.cancel()
            log.info("stopped while standing by")
            return 0
        starting.result()
        stopping.cancel()
        summary = engine.state.recovery_summary
        log.info(
            "engine running on %s (epoch %s, pid %d): recovery %s", journal.where, journal.epoch, os.getpid(), summary
        )
        while not stop.is_set() and engine.failure is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await stop.wait()
        if engine.failure is not None:
            log.error("engine stopped: %s", engine.failure)
            return 1
        log.info("SIGTERM: stopping cleanly")
        return 0
    finally:
        if engine is not None:
            await engine.stop()
        if broker is not None:
            await broker.close()
        await journal.close()


# --- users and db init ------------------------------------------------------------------------


async def run_users(args: argparse.Namespace) -> int:
    journal = await Journal.open(journal_target(args.db))
    try:
        if args.users_action == "list":
            rows = await users.list_users(journal.db, journal.path)
            if args.json:
                print(json.dumps([{"user": u, "role": r, "granted_by": g} for u, r, g in rows], indent=1))
            else:
                for u, r, g in rows:
                    print(f"{u:<20} {r:<9} granted by {g}")
            return 0
        if len(args.rest) != 2:
            raise UsageError(f"users {args.users_action} takes USER ROLE")
        user, role_raw = args.rest
        try:
            role = Role(role_raw)
        except ValueError:
            raise UsageError(f"role must be one of {', '.join(r.value for r in Role)}, got {role_raw!r}") from None
        if journal.dialect == "postgresql":
            await _pg_grant(journal, user, role, grant=args.users_action == "grant")
        else:
            me = users.os_user()
            assert journal.path is not None
            if users.file_owner(journal.path) != me:
                raise UsageError(
                    f"only the journal's owner ({users.file_owner(journal.path)}) grants or revokes roles, not {me}"
                )
            if args.users_action == "grant":
                changed = await users.grant(journal.db, user, role, me)
            else:
                changed = await users.revoke(journal.db, user, role)
            print(
                f"{args.users_action} {role.value} {'to' if args.users_action == 'grant' else 'from'} {user}: "
                + ("done" if changed else "nothing to change")
            )
        return 0
    finally:
        await journal.close()


async def _pg_grant(journal: Journal, user: str, role: Role, *, grant: bool) -> None:
    from psycopg import errors, sql

    conn = journal.db.conn  # type: ignore[attr-defined]
    pg_role = users.PG_ROLE[role]
    try:
        if grant:
            cur = await conn.execute("SELECT 1 FROM pg_roles WHERE rolname=%s", (user,))
            if await cur.fetchone() is None:
                await conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(user)))
                print(f"created login {user} (no password: set one with ALTER ROLE, or use peer/cert auth)")
            await conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(pg_role), sql.Identifier(user)))
        else:
            await conn.execute(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(pg_role), sql.Identifier(user)))
    except errors.InsufficientPrivilege as exc:
        raise UsageError(f"{journal.where}: this login may not manage desk roles: {exc}") from None
    print(f"{'grant' if grant else 'revoke'} {pg_role} {'to' if grant else 'from'} {user}: done")


async def run_db_init(args: argparse.Namespace) -> int:
    if not is_postgres(args.db):
        raise UsageError("db init is for a postgresql:// journal; a SQLite journal file is created on first use")
    from engine.store.pg_init import init_database

    report = await init_database(args.db, engine_login=args.engine_login)
    print(json.dumps(report, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))
    return 0


__all__ = ["run_command", "run_db_init", "run_engine", "run_users"]
