"""The engine against a real `trading-desk exchange` process over websockets, with faults and kills."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from engine.broker.ws import WsBroker
from engine.catalog import load_catalog
from engine.core.groups import parse_groups
from engine.core.model import Role
from engine.core.notices import EngineEvent
from engine.runtime.engine import Engine
from engine.runtime.state import Actor
from engine.store.journal import Journal
from engine.store.report import journal_document
from tests.cli.test_cli import twenty_groups
from tests.integration.conftest import (
    REPO,
    SETTLED,
    ExchangeProcess,
    check_consistent,
    eventually,
    groups_file,
    td,
    td_json,
)

TRADER = Actor("tina", Role.TRADER)
FINAL = {"FILLED", "CANCELLED", "REJECTED"}
FAST = "?request_timeout_ms=1000&unavailable_timeout_ms=20000"


class InProcessDesk:
    """An engine in this process, on its own journal, talking to the exchange over websockets."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.tmp_path = tmp_path
        self.url = url
        self.catalog = load_catalog()
        self.messages: list[EngineEvent] = []

    async def __aenter__(self) -> InProcessDesk:
        self.journal = await Journal.open(self.tmp_path / "j.db")
        self.broker = await WsBroker.open(self.url, request_timeout_s=1.0, unavailable_timeout_s=20)
        self.engine = Engine(self.journal, self.broker, self.catalog)
        self.engine.subscribe(self.messages.append)
        await self.engine.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.stop()
        await self.broker.close()
        await self.journal.close()

    async def launch(self, raw_groups: list[dict[str, Any]]) -> None:
        for spec in parse_groups(raw_groups, self.catalog):
            await self.engine.launch(spec, TRADER)

    def count(self, kind: str) -> int:
        return sum(1 for m in self.messages if m.type == kind)

    async def wait_done(self, timeout_s: float) -> None:
        """Until every group is HEDGED, terminal or escalated and no order is still in doubt.

        Polls the journal instead of ``Engine.wait_settled``: an intent orphaned by the engine's
        timer (not by recovery) does not mark its group as waiting on a person (see the report)."""

        async def done() -> bool:
            doc = await journal_document(self.journal)
            escalated = {e["group_id"] for e in doc["escalations"] if e["status"] != "RESOLVED"}
            filled: Counter[str] = Counter()
            for fill in doc["fills"]:
                filled[fill["client_order_id"]] += fill["qty"]
            return all(g["state"] in SETTLED or g["group_id"] in escalated for g in doc["groups"]) and all(
                (i["order_status"] in FINAL or i["status"] == "ORPHANED")
                and filled[i["client_order_id"]] == i["filled_qty"]
                for i in doc["intents"]
            )

        await eventually(done, timeout_s, f"groups settle (unsettled: {self.engine.unsettled_groups()})")

    async def check(self, expected_groups: int) -> dict[str, Any]:
        journal = await journal_document(self.journal)
        report = {
            "orders": [{"client_order_id": o.client_order_id} for o in await self.broker.orders()],
            "positions": await self.broker.positions(),
        }
        check_consistent(journal, report, expected_groups)
        return journal


def test_headless_groups_complete_under_flaky(tmp_path: Path, exchanges: list[ExchangeProcess]) -> None:
    ex = ExchangeProcess(tmp_path / "x.db", "flaky", seed=3)
    exchanges.append(ex)
    ex.start()
    db, groups = tmp_path / "j.db", groups_file(tmp_path, 10)
    started = time.monotonic()
    run = td(
        "headless", "--db", str(db), "--broker", ex.url + FAST, "--groups", str(groups), "--json", "--timeout", "40"
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    journal = td_json("journal", "--db", str(db), "--json")
    report = td_json("exchange-report", "--broker", ex.url, "--json")
    check_consistent(journal, report, 10)
    # Complete: every group reaches a final state by itself (the engine's margin check may refuse
    # some before anything is sent), and no person is needed.
    assert all(g["state"] in SETTLED for g in journal["groups"]) and not journal["escalations"]
    assert sum(g["state"] == "HEDGED" for g in journal["groups"]) >= 5
    assert summary["settled"] and summary["duplicates_absorbed"] > 0
    print(f"\n10 groups over ws under flaky: {time.monotonic() - started:.2f}s, client {summary['exchange_faults']}")


async def test_chaos_every_group_ends_hedged_terminal_or_escalated(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = ExchangeProcess(tmp_path / "x.db", "chaos", seed=5)
    exchanges.append(ex)
    ex.start()
    groups = twenty_groups()[:12]
    async with InProcessDesk(tmp_path, ex.url) as desk:
        await desk.launch(groups[:6])

        async def reconnected() -> bool:
            return desk.broker.stats()["reconnects"] >= 1

        await eventually(reconnected, 10, "the chaos profile drops the connection within a few seconds")
        await desk.launch(groups[6:])  # launched across a disconnect and its replay
        await desk.wait_done(40)
        journal = await desk.check(len(groups))
        server = await desk.broker.server_stats()
        client = desk.broker.stats()
    assert server["injected_disconnects"] >= 1 and client["reconnects"] >= 1
    assert server["duplicates"] > 0 and client["duplicates"] > 0, "duplicates were delivered"
    assert client["replayed"] > 0, "the resubscription replayed from the log"
    assert desk.engine.stats["duplicates"] > 0, "the engine absorbed the duplicates and the overlap"
    states = Counter(g["state"] for g in journal["groups"])
    print(f"\nchaos: server {server}, client {client}, groups {dict(states)}")
    report = td_json("exchange-report", "--broker", ex.url, "--json")
    assert report["positions"] == journal["positions"]


async def test_exchange_killed_mid_run_restarts_on_its_state_and_the_engine_catches_up(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = ExchangeProcess(tmp_path / "x.db", "flaky", seed=9)
    exchanges.append(ex)
    ex.start()
    async with InProcessDesk(tmp_path, ex.url) as desk:
        launching = asyncio.create_task(desk.launch(twenty_groups()[:8]))

        async def some_orders_sent() -> bool:
            return desk.count("intent") >= 5

        await eventually(some_orders_sent, 15, "the engine sends orders")
        ex.kill()
        await asyncio.sleep(0.2)
        ex.start()  # same port, same state file
        async with asyncio.timeout(30):
            await launching
        await desk.wait_done(40)
        await desk.check(8)
        client = desk.broker.stats()
    assert client["reconnects"] >= 1 and client["replayed"] >= 1, client
    report = td_json("exchange-report", "--broker", ex.url, "--json")
    journal = td_json("journal", "--db", str(tmp_path / "j.db"), "--json")
    check_consistent(journal, report, 8)


def test_engine_killed_mid_run_recovers_from_its_journal(tmp_path: Path, exchanges: list[ExchangeProcess]) -> None:
    ex = ExchangeProcess(tmp_path / "x.db", "flaky", seed=4)
    exchanges.append(ex)
    ex.start()
    db, groups, out = tmp_path / "j.db", groups_file(tmp_path, 10), tmp_path / "headless.jsonl"
    args = ["headless", "--db", str(db), "--broker", ex.url + FAST, "--groups", str(groups), "--json"]
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args], cwd=REPO, stdout=sink, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 20
            while out.read_text().count('"type": "intent"') < 6 and proc.poll() is None:
                assert time.monotonic() < deadline, "the first engine never sent six orders"
                time.sleep(0.01)
            assert proc.poll() is None, "the engine finished before it could be killed"
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    first = td_json("journal", "--db", str(db), "--json")
    assert len(first["groups"]) < 10 or any(g["state"] not in {"HEDGED", "COMPLETED"} for g in first["groups"])

    again = td(
        "headless", "--db", str(db), "--broker", ex.url + FAST, "--groups", str(groups), "--json", "--timeout", "40"
    )
    assert again.returncode == 0, again.stderr
    lines = [json.loads(line) for line in again.stdout.splitlines()]
    recovery = next(m for m in lines if m["type"] == "recovery")
    assert recovery["checked"] >= 1, "the restarted engine reconciled what the first one left open"
    journal = td_json("journal", "--db", str(db), "--json")
    report = td_json("exchange-report", "--broker", ex.url, "--json")
    check_consistent(journal, report, 10)
