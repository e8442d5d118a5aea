"""Three people at three desks, one engine, on a real PostgreSQL server: every one a process.

The engine is `trading-desk engine`, logged in as td_engine. The trader's, the risk manager's and
the operator's desks are real windows (offscreen), each in its own process and logged in to
PostgreSQL as its own login (tina, rita, omar); this test works them through their widgets
(tests/ui/desk_process.py) and reads back what each window shows."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg

from tests.integration.conftest import ExchangeProcess
from tests.integration.shared import DeskProcess, EngineProcess, PgDesk, td_as

HEDGED = {"W1": "HEDGED", "W2": "HEDGED"}


def test_trader_risk_and_operator_desks_in_their_own_processes_share_one_engine(
    pg_desk: PgDesk, tmp_path: Path
) -> None:
    ex = ExchangeProcess(tmp_path / "exchange.db")
    ex.start()
    engine_env = pg_desk.env("td_engine")
    engine = EngineProcess(pg_desk.url("td_engine"), ex.url, tmp_path / "engine1.log", engine_env).start()
    desks: list[DeskProcess] = []
    try:
        engine.wait_running()
        for user, role in (("tina", "trader"), ("rita", "risk"), ("omar", "operator")):
            desks.append(DeskProcess(pg_desk.url(user), role, tmp_path / user, pg_desk.env(user)))
        trader, risk, operator = desks
        for desk, user in zip(desks, ("tina", "rita", "omar"), strict=True):
            assert desk.opened["actor"][0] == user, "the person is the database login"
            assert "engine pid" in desk.opened["engine"] and desk.opened["engine"].endswith(": alive")

        # The trader launches groups from the launch dialog; every desk shows them HEDGED.
        for gid in ("W1", "W2"):
            trader.ask("launch", group_id=gid, lots=2)
        for desk in desks:
            desk.until(lambda s: s["groups"] == HEDGED, 15, "both groups HEDGED")

        # Risk clicks HALT while the trader's desk watches its status bar.
        watching = trader.send("wait", what="trading", contains="HALTED", within_s=5)
        clicked = risk.ask("halt")["clicked_at"]
        halt_shown_s = trader.reply(watching)["seen_at"] - clicked
        trader.ask("launch", group_id="W3", lots=2)
        refused = trader.ask("wait", what="message", contains="HALTED", within_s=5)["text"]
        watching = trader.send("wait", what="trading", contains="ACTIVE", within_s=5)
        risk.ask("resume")
        trader.reply(watching)

        # The engine dies mid-launch: after W4's hedge intent is journaled, before it is sent (as
        # kill -9 there would). Restarted, it recovers, and the intent is orphaned for the operator.
        engine.stop()
        engine = EngineProcess(pg_desk.url("td_engine"), ex.url, tmp_path / "engine2.log", engine_env)
        engine.args_extra = ["--crash-at", "after_intent_commit"]
        engine.start()
        engine.wait_running()
        trader.ask("launch", group_id="W4", lots=2)
        assert engine.proc is not None and engine.proc.wait(20) == 137
        trader.ask("wait", what="engine", contains="NOT RUNNING", within_s=5)
        engine = EngineProcess(pg_desk.url("td_engine"), ex.url, tmp_path / "engine3.log", engine_env).start()
        engine.wait_running()
        shown = operator.until(
            lambda s: any(status == "ORPHANED" for _, status in s["intents"]), 10, "the orphaned intent"
        )
        orphan = next(cid for cid, status in shown["intents"] if status == "ORPHANED")
        operator.ask("approve", client_order_id=orphan)
        for desk in desks:
            desk.until(lambda s: s["groups"].get("W4") == "HEDGED", 15, "the approved retry hedged W4")
            desk.ask("screenshot", path=str(tmp_path / f"{desk.home.name}.png"))
        journal = td_as(pg_desk.env("rita"), "journal", "--db", pg_desk.url("rita"), "--json")
        report = td_as(pg_desk.env("rita"), "exchange-report", "--broker", ex.url, "--json")
        with psycopg.connect(pg_desk.cluster.conninfo("rita", pg_desk.database)) as conn:
            audit = conn.execute("SELECT os_user, role, command, target, outcome FROM audit_log ORDER BY id").fetchall()
    finally:
        codes = [desk.close() for desk in desks]
        engine.stop()
        ex.stop()
    assert codes == [0, 0, 0], "each desk closed cleanly"
    print(f"\nthe trader's desk showed HALTED {halt_shown_s * 1000:.0f} ms after risk clicked HALT")
    assert halt_shown_s < 1.0, f"the trader's desk showed HALTED {halt_shown_s:.3f}s after risk clicked"
    assert "HALTED" in refused
    doc, venue = json.loads(journal.stdout), json.loads(report.stdout)
    assert doc["positions"] == venue["positions"], "journal positions equal the exchange's"
    ids = [o["client_order_id"] for o in venue["orders"]]
    assert len(ids) == len(set(ids)), "no client order id reached the exchange twice"
    assert [tuple(a) for a in audit] == [
        ("tina", "trader", "launch", "W1", "OK"),
        ("tina", "trader", "launch", "W2", "OK"),
        ("rita", "risk", "set_trading_state", "HALTED", "OK"),
        ("tina", "trader", "launch", "W3", "REFUSED"),
        ("rita", "risk", "set_trading_state", "ACTIVE", "OK"),
        ("tina", "trader", "launch", "W4", "OK"),
        ("omar", "operator", "retry_approved", audit[-1][3], "OK"),
    ], "each command is audited with the PostgreSQL login that gave it"
