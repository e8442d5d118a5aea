"""One engine, many desks, on a real PostgreSQL server (a throwaway cluster; engine/store/pg_cluster.py).

Each person is their own PostgreSQL login (SCRAM passwords): tina holds desk_trader, rita
desk_risk, omar desk_operator, mallory no desk role. The engine runs as td_engine."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from engine.broker.paper import PaperBroker
from engine.catalog import load_catalog
from engine.core.commands import Acknowledge, Actor, Launch, RoleError, SetTradingState
from engine.core.groups import parse_group
from engine.core.model import Role
from engine.core.trading_state import TradingState
from engine.runtime.attached import AttachedEngine
from engine.runtime.engine import Engine
from engine.store.journal import Journal
from engine.store.lease import Fenced, LeaseHeld
from tests.integration.shared import ENGINE_LOGIN, PgDesk, td_as

CATALOG = load_catalog()


def group(gid: str) -> dict[str, Any]:
    return {
        "group_id": gid,
        "legs": [
            {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": 150},
            {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 150},
        ],
    }


class As:
    """Run the block with this process logged in as ``user`` (libpq reads PGPASSWORD)."""

    def __init__(self, desk: PgDesk, user: str) -> None:
        self.password = desk.cluster.logins[user]

    def __enter__(self) -> None:
        self.saved = os.environ.get("PGPASSWORD")
        os.environ["PGPASSWORD"] = self.password

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            os.environ.pop("PGPASSWORD", None)
        else:
            os.environ["PGPASSWORD"] = self.saved


async def open_as(desk: PgDesk, user: str) -> Journal:
    """In this process several people log in, so the password rides in the URL (every later
    connection of that journal, the lease and LISTEN ones too, uses it); processes use PGPASSWORD."""
    return await Journal.open(desk.secret_url(user))


async def test_an_engine_on_postgres_runs_groups_to_hedged_and_desks_see_them(pg_desk: PgDesk, tmp_path: Path) -> None:
    journal = await open_as(pg_desk, ENGINE_LOGIN)
    broker = await PaperBroker.open(tmp_path / "x.db", CATALOG)
    engine = Engine(journal, broker, CATALOG)
    await engine.start()
    trader = risk = None
    try:
        trader = AttachedEngine(await open_as(pg_desk, "tina"), CATALOG)
        risk = AttachedEngine(await open_as(pg_desk, "rita"), CATALOG)
        await trader.start()
        await risk.start()
        state = await trader.execute(Launch(parse_group(group("P1"), CATALOG), Actor("whoever", Role.TRADER)))
        assert state == "HEDGE_SUBMITTED"
        assert await engine.wait_settled(10)

        async def both_see_hedged() -> bool:
            await asyncio.sleep(0.05)
            return all(
                v.snapshot().groups.get("P1") and v.snapshot().groups["P1"].state.value == "HEDGED"
                for v in (trader, risk)
            )

        deadline = time.monotonic() + 5
        while not await both_see_hedged():
            assert time.monotonic() < deadline, "attached desks did not show the group HEDGED"
        # Who asked is the database login, whatever name the command carried.
        audit = await journal.fetch("SELECT os_user, role, command, outcome FROM audit_log ORDER BY id")
        assert audit == [("tina", "trader", "launch", "OK")]
        assert "attached" not in trader.attached_to() and "alive" in trader.attached_to()
    finally:
        for view in (trader, risk):
            if view is not None:
                await view.stop()
                await view.journal.close()
        await engine.stop()
        await broker.close()
        await journal.close()
    report = td_as(pg_desk.env("rita"), "journal", "--db", pg_desk.url("rita"), "--json")
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    assert [g["state"] for g in doc["groups"]] == ["HEDGED"]
    assert doc["positions"] == {"NIFTY26DEC24000CE": -150, "NIFTY26DEC24200CE": 150}
    # The journaled inputs are append-only for the engine's own login too (no UPDATE grant).
    engine_again = await open_as(pg_desk, ENGINE_LOGIN)
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await engine_again.fetch("UPDATE inputs SET kind=kind")
    finally:
        await engine_again.close()
    # The time-travel audit reads a PostgreSQL journal as a desk login: the engine's run replays
    # exactly, and the risk leg's order is explained back to tina's launch.
    replayed = td_as(pg_desk.env("rita"), "replay", "--db", pg_desk.url("rita"), "--check", "full", "--json")
    assert replayed.returncode == 0, replayed.stderr
    check = json.loads(replayed.stdout)["check"]
    assert check["ok"] and check["checked_to"] > 3, check
    risk_leg = next(i["client_order_id"] for i in doc["intents"] if i["role"] == "RISK")
    why = td_as(pg_desk.env("rita"), "why", "--db", pg_desk.url("rita"), risk_leg)
    assert why.returncode == 0, why.stderr
    assert "rule   risk.sized_to_confirmed_hedge" in why.stdout and "launched by tina (trader)" in why.stdout


async def test_no_role_by_any_path(pg_desk: PgDesk, tmp_path: Path) -> None:
    """tina (desk_trader) cannot acknowledge: not through a desk, not through `command`, not by
    calling desk_submit claiming the risk role, not by writing the tables with her own login."""
    journal = await open_as(pg_desk, ENGINE_LOGIN)
    broker = await PaperBroker.open(tmp_path / "x.db", CATALOG)
    engine = Engine(journal, broker, CATALOG)
    await engine.start()
    desk = AttachedEngine(await open_as(pg_desk, "tina"), CATALOG)
    await desk.start()
    try:
        # 1. Through the desk, in her own role: refused, the role needed named.
        with pytest.raises(RoleError, match="needs the risk role") as refused:
            await desk.execute(Acknowledge(1, Actor("tina", Role.TRADER)))
        assert refused.value.role_needed is Role.RISK
        # 2. Through the desk, claiming the risk role: refused, she does not hold it.
        with pytest.raises(RoleError, match="tina does not hold the risk role"):
            await desk.execute(Acknowledge(1, Actor("rita", Role.RISK)))
        # 3. Through `trading-desk command`, as her login.
        run = await asyncio.to_thread(
            td_as, pg_desk.env("tina"), "command", "--db", pg_desk.url("tina"), "ack", "1", "--role", "risk"
        )
        assert run.returncode == 2, run.stdout + run.stderr
        assert "does not hold the risk role" in run.stderr
        # 4. By writing the tables directly with her login (what psql as tina would do).
        with As(pg_desk, "tina"), psycopg.connect(pg_desk.url("tina"), autocommit=True) as conn:
            for stmt in (
                "UPDATE escalations SET status='ACKNOWLEDGED', acknowledged_by='tina'",
                "INSERT INTO commands (command_id, action, args_json, submitted_by, role, ts_submitted_ms)"
                " VALUES ('forged-000001', 'ack', '{\"escalation_id\": 1}', 'rita', 'risk', 1)",
                "INSERT INTO audit_log (ts_local_ns, ts_wall_ms, os_user, role, command, target, detail_json, outcome)"
                " VALUES (1, 1, 'rita', 'risk', 'acknowledge', '1', '{}', 'OK')",
                "UPDATE lease SET epoch = epoch + 1",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(stmt)
        # 5. A login with no desk role cannot even submit.
        with (
            As(pg_desk, "mallory"),
            psycopg.connect(pg_desk.url("mallory"), autocommit=True) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("SELECT desk_submit('mallory-00001', 'halt', '{}', 'trader')")
        # The positive control: rita's role passes the check (the escalation does not exist).
        run = await asyncio.to_thread(td_as, pg_desk.env("rita"), "command", "--db", pg_desk.url("rita"), "ack", "1")
        assert run.returncode == 2 and "escalation 1 does not exist" in run.stderr, run.stderr
    finally:
        await desk.stop()
        await desk.journal.close()
        await engine.stop()
        await broker.close()
        await journal.close()
    check = await open_as(pg_desk, "rita")
    try:
        audit = await check.fetch("SELECT os_user, role, command, outcome FROM audit_log ORDER BY id")
        escalations = await check.fetch("SELECT count(*) FROM escalations")
    finally:
        await check.close()
    assert audit == [
        ("tina", "trader", "acknowledge", "REFUSED"),
        ("tina", "risk", "acknowledge", "REFUSED"),
        ("tina", "risk", "acknowledge", "REFUSED"),
        ("rita", "risk", "acknowledge", "REFUSED"),
    ]
    assert escalations == [(0,)]


async def test_a_deposed_engine_writes_nothing_and_a_second_engine_is_refused(pg_desk: PgDesk) -> None:
    first = await open_as(pg_desk, ENGINE_LOGIN)
    second = await open_as(pg_desk, ENGINE_LOGIN)
    try:
        epoch = await first.take_lease()
        with pytest.raises(LeaseHeld, match=rf"already has an engine \(pid {os.getpid()} of .* epoch {epoch}\)"):
            await second.take_lease()
        assert first.lease is not None
        conn = first.lease._conn  # type: ignore[attr-defined]
        shown = [
            (await (await conn.execute(f"SHOW {g}")).fetchone())[0] for g in ("tcp_keepalives_idle", "tcp_user_timeout")
        ]
        assert shown == ["5", "10000"]  # seconds, milliseconds: a dead holder is dropped in ~11 s
        # The first engine's lease session dies (its network cut, say); its main connection lives on.
        first.lease.release()
        assert await second.take_lease() == epoch + 1
        with pytest.raises(Fenced, match="another engine took the lease"):
            async with first.transaction():
                await first.db.execute("UPDATE settings SET value='HALTED' WHERE key='trading_state'")
        assert await second.setting("trading_state", "?") == "ACTIVE", "the deposed engine wrote nothing"
        async with second.transaction():
            await second.db.execute("UPDATE settings SET value='REDUCING' WHERE key='trading_state'")
        assert await first.setting("trading_state", "?") == "REDUCING"
    finally:
        await first.close()
        await second.close()


async def test_halt_from_the_risk_desk_reaches_the_trader_desk_within_a_second(pg_desk: PgDesk, tmp_path: Path) -> None:
    journal = await open_as(pg_desk, ENGINE_LOGIN)
    broker = await PaperBroker.open(tmp_path / "x.db", CATALOG)
    engine = Engine(journal, broker, CATALOG)
    await engine.start()
    trader = AttachedEngine(await open_as(pg_desk, "tina"), CATALOG)
    risk = AttachedEngine(await open_as(pg_desk, "rita"), CATALOG)
    await trader.start()
    await risk.start()
    try:
        await risk.execute(SetTradingState(TradingState.HALTED, Actor("rita", Role.RISK)))
        halted_at = time.monotonic()
        while trader.trading_state is not TradingState.HALTED:
            assert time.monotonic() - halted_at < 1.0, "the trader's desk did not show HALTED within 1 s"
            await asyncio.sleep(0.01)
        from engine.core.commands import CommandError

        with pytest.raises(CommandError, match="HALTED"):
            await trader.execute(Launch(parse_group(group("H1"), CATALOG), Actor("tina", Role.TRADER)))
    finally:
        for view in (trader, risk):
            await view.stop()
            await view.journal.close()
        await engine.stop()
        await broker.close()
        await journal.close()
