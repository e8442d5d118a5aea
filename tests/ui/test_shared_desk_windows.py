"""Three people, three desk windows, one engine, on a real PostgreSQL server.

The engine is its own process (`trading-desk engine`, as td_engine). The trader's, the risk
manager's and the operator's desks are real windows (offscreen), each logged in to PostgreSQL as
its own login (tina, rita, omar) and attached to that engine. They share this test's process and
Qt application, since the test drives their buttons; each desk has its own database sessions,
login and identity, and nothing else in common."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from app.config import GuiConfig
from app.gui import DeskSession
from engine.core.commands import ApproveRetry
from engine.core.groups import parse_group
from engine.core.model import GroupState, Role
from engine.core.trading_state import TradingState
from tests.integration.conftest import ExchangeProcess
from tests.integration.shared import EngineProcess, PgDesk, td_as
from tests.ui.conftest import until
from ui.main_window import MainWindow, open_settings

GROUP = {
    "legs": [
        {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": 150},
        {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 150},
    ]
}


async def _window(pg_desk: PgDesk, tmp_path: Path, user: str, role: Role) -> tuple[DeskSession, MainWindow]:
    config = GuiConfig(
        db=pg_desk.secret_url(user),
        broker="unused: attached",
        role=role,
        settings_file=tmp_path / f"{user}.ini",
        log_dir=tmp_path / f"{user}-logs",
    )
    session = await DeskSession.open(config)
    window = MainWindow(session.desk_context(), open_settings(config.settings_file))
    await window.start()
    window.show()
    return session, window


async def test_trader_risk_and_operator_desks_share_one_engine_on_postgres(
    pg_desk: PgDesk, tmp_path: Path, catalog: dict[str, object]
) -> None:
    ex = ExchangeProcess(tmp_path / "exchange.db")
    ex.start()
    engine_env = pg_desk.env("td_engine")
    engine = EngineProcess(pg_desk.url("td_engine"), ex.url, tmp_path / "engine1.log", engine_env).start()
    opened: list[tuple[DeskSession, MainWindow]] = []
    try:
        await asyncio.to_thread(engine.wait_running)
        for user, role in (("tina", Role.TRADER), ("rita", Role.RISK), ("omar", Role.OPERATOR)):
            opened.append(await _window(pg_desk, tmp_path, user, role))
        (_, trader), (_, risk), (_, operator) = opened
        assert trader.actor.os_user == "tina", "the person is the database login"
        assert "engine pid" in trader.status.engine.text() and trader.status.engine.text().endswith(": alive")

        # The trader launches groups; every desk shows them.
        for gid in ("W1", "W2"):
            await trader.launch(parse_group({"group_id": gid, **GROUP}, catalog))  # type: ignore[arg-type]
        for _, w in opened:
            await until(
                lambda w=w: (
                    {g: r.state for g, r in w.view.snapshot().groups.items()} == {"W1": _hedged(), "W2": _hedged()}
                ),
                15,
                "every desk shows both groups HEDGED",
            )

        # Risk halts; the trader's desk shows HALTED within a second and cannot launch.
        await risk.halt()
        loop = asyncio.get_running_loop()
        halted_at = loop.time()
        await until(lambda: "HALTED" in trader.status.trading.text(), 1.0, "the trader's desk shows HALTED in 1 s")
        shown_after = loop.time() - halted_at
        refused = trader.launch(parse_group({"group_id": "W3", **GROUP}, catalog))  # type: ignore[arg-type]
        await refused  # the window reports the refusal (it never raises into Qt)
        await until(lambda: "HALTED" in trader.status.message.text(), 2.0, "the trader is told why")
        await risk.resume()
        await until(lambda: trader.view.trading_state is TradingState.ACTIVE, 2.0, "trading ACTIVE again")

        # The engine dies mid-launch: after the hedge intent of W4 is journaled, before it is sent
        # (as kill -9 there would). Restarted, it recovers: the intent is orphaned for the operator.
        engine.stop()
        engine = EngineProcess(pg_desk.url("td_engine"), ex.url, tmp_path / "engine2.log", engine_env)
        engine.args_extra = ["--crash-at", "after_intent_commit"]
        engine.start()
        await asyncio.to_thread(engine.wait_running)
        launching = trader.launch(parse_group({"group_id": "W4", **GROUP}, catalog))  # type: ignore[arg-type]
        await asyncio.to_thread(engine.proc.wait, 20)  # type: ignore[union-attr]
        assert engine.proc.returncode == 137  # type: ignore[union-attr]
        await asyncio.gather(launching, return_exceptions=True)
        await until(lambda: "NOT RUNNING" in trader.status.engine.text(), 3.0, "the desk says the engine is down")
        engine = EngineProcess(pg_desk.url("td_engine"), ex.url, tmp_path / "engine3.log", engine_env).start()
        await asyncio.to_thread(engine.wait_running)
        orphan = await until(
            lambda: next((r for r in operator.view.snapshot().intents.values() if r.status.value == "ORPHANED"), None),
            10,
            "the operator's desk shows the orphaned intent",
        )
        await operator.execute("approve retry", _approve(orphan.client_order_id, operator))
        await until(
            lambda: (
                operator.view.snapshot().groups.get("W4") is not None
                and operator.view.snapshot().groups["W4"].state.value == "HEDGED"
            ),
            15,
            "the approved retry hedged W4",
        )
        journal = await asyncio.to_thread(td_as, pg_desk.env("rita"), "journal", "--db", pg_desk.url("rita"), "--json")
        report = await asyncio.to_thread(td_as, pg_desk.env("rita"), "exchange-report", "--broker", ex.url, "--json")
        audit = await risk.reader.fetch("SELECT os_user, role, command, target, outcome FROM audit_log ORDER BY id")
    finally:
        for session, window in opened:
            window.close()
            await window.wait_closed()
            await window.shutdown()
            await session.close()
            window.deleteLater()
        engine.stop()
        ex.stop()
    assert shown_after < 1.0
    doc, venue = json.loads(journal.stdout), json.loads(report.stdout)
    assert doc["positions"] == venue["positions"], "journal positions equal the exchange's"
    ids = [o["client_order_id"] for o in venue["orders"]]
    assert len(ids) == len(set(ids)), "no client order id reached the exchange twice"
    # Each command is audited with the PostgreSQL login that gave it.
    assert [tuple(a) for a in audit] == [
        ("tina", "trader", "launch", "W1", "OK"),
        ("tina", "trader", "launch", "W2", "OK"),
        ("rita", "risk", "set_trading_state", "HALTED", "OK"),
        ("tina", "trader", "launch", "W3", "REFUSED"),
        ("rita", "risk", "set_trading_state", "ACTIVE", "OK"),
        ("tina", "trader", "launch", "W4", "OK"),
        ("omar", "operator", "retry_approved", audit[-1][3], "OK"),
    ]


def _hedged() -> GroupState:
    return GroupState.HEDGED


def _approve(ident: str, window: MainWindow) -> ApproveRetry:
    return ApproveRetry(ident, window.actor)
