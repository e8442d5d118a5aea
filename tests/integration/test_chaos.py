"""`trading-desk chaos`: real exchange and engine processes, the engine SIGKILLed ten times (and
the exchange at times), every invariant checked from `journal --json` and `exchange-report --json`
after each round. And the checker itself: each invariant, broken on purpose, is reported."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from app.chaos import check_invariants

REPO = Path(__file__).resolve().parents[2]


def test_ten_sigkills_of_the_engine_and_some_of_the_exchange_leave_every_invariant_holding(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "chaos", "--kills", "10", "--seed", "3", "--json", "--keep", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    doc = json.loads(run.stdout)
    assert run.returncode == 0 and doc["ok"], doc["failure"]
    assert doc["engine_kills"] == 10 and doc["rounds"] == 10
    assert doc["exchange_kills"] >= 1, "seed 3 kills the exchange in some rounds"
    assert doc["groups_submitted"] >= 10 and doc["exchange_orders"] >= 10
    log = (tmp_path / "engine.log").read_text()
    assert log.count("engine running on") == 11, "started once, restarted after each kill"
    # The time-travel audit on a live (wall-clock, multi-process) run: replaying the journal
    # through step from its first checkpoint, across all eleven starts, reproduces every effect.
    audit = subprocess.run(
        [sys.executable, "-m", "app.cli", "replay", "--db", str(tmp_path / "journal.db"), "--check", "full", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    replayed = json.loads(audit.stdout)
    assert audit.returncode == 0 and replayed["check"]["ok"], replayed["check"]["defect"]
    assert replayed["check"]["restarts_crossed"] >= 10, "every SIGKILL's restart was crossed"
    assert replayed["check"]["checked_to"] == replayed["journal_inputs"][1] and replayed["stepped"] > 50


def _quiet_desk() -> tuple[dict[str, Any], dict[str, Any]]:
    intents = [
        {"client_order_id": "TDH", "group_id": "G", "role": "HEDGE", "purpose": "LEG", "side": "BUY", "qty": 150,
         "filled_qty": 150, "order_status": "FILLED", "status": "FILLED"},
        {"client_order_id": "TDR", "group_id": "G", "role": "RISK", "purpose": "LEG", "side": "SELL", "qty": 150,
         "filled_qty": 150, "order_status": "FILLED", "status": "FILLED"},
    ]  # fmt: skip
    doc = {
        "groups": [{"group_id": "G", "state": "HEDGED"}],
        "intents": intents,
        "escalations": [],
        "positions": {"H": 150, "R": -150},
    }
    venue = {
        "orders": [{"client_order_id": i["client_order_id"], "filled_qty": i["filled_qty"]} for i in intents],
        "positions": {"H": 150, "R": -150},
    }
    return doc, venue


def test_the_round_checker_reports_each_broken_invariant() -> None:
    doc, venue = _quiet_desk()
    assert check_invariants(doc, venue, copy.deepcopy(doc)) == []
    cases = []
    d, v = _quiet_desk()
    v["orders"].append({"client_order_id": "TDX", "filled_qty": 0})
    cases.append(("1:", d, v, None))
    d, v = _quiet_desk()
    v["orders"].append(dict(v["orders"][0]))
    cases.append(("2:", d, v, None))
    d, v = _quiet_desk()
    d["intents"][0]["filled_qty"] = 75
    cases.append(("3:", d, v, None))
    d, v = _quiet_desk()
    before = copy.deepcopy(d)
    d["groups"][0]["state"] = "HEDGE_SUBMITTED"
    cases.append(("4:", d, v, before))
    d, v = _quiet_desk()
    v["positions"]["R"] = -300
    cases.append(("5:", d, v, None))
    d, v = _quiet_desk()
    v["orders"][0]["filled_qty"] = 0  # the hedge never filled at the exchange
    d["intents"][0]["filled_qty"] = 0
    d["positions"] = v["positions"] = {"R": -150}
    cases.append(("6:", d, v, None))
    d, v = _quiet_desk()
    d["intents"].append({"client_order_id": "TDS", "group_id": "G", "role": "RISK", "purpose": "STOP", "side": "BUY",
                         "qty": 150, "filled_qty": 0, "order_status": "ACCEPTED", "status": "SENT"})  # fmt: skip
    d["intents"].append({"client_order_id": "TDF", "group_id": "G", "role": "RISK", "purpose": "FALLBACK",
                         "side": "BUY", "qty": 150, "filled_qty": 0, "order_status": "CANCELLED",
                         "status": "CANCELLED"})  # fmt: skip
    cases.append(("7:", d, v, None))
    for prefix, d, v, before in cases:
        problems = check_invariants(d, v, before)
        assert any(p.startswith(prefix) for p in problems), (prefix, problems)
