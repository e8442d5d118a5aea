"""One engine decides, on both backends: a second engine is refused or stands by; kill -9 of the
active one hands the journal to the standby through recovery; commands from shells and from
`headless` go to the live engine and each group is launched once."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, ExchangeProcess, check_consistent, groups_file, td_json
from tests.integration.shared import ENGINE_LOGIN, EngineProcess, PgDesk, td_as


def _backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str], dict[str, str]]:
    """(db, engine's environment, trader's environment) for the backend under test."""
    import os

    if request.param == "sqlite":
        db = tmp_path / "journal.db"
        return str(db), dict(os.environ), dict(os.environ)
    desk: PgDesk = request.getfixturevalue("pg_desk")
    return desk.url(ENGINE_LOGIN), desk.env(ENGINE_LOGIN), desk.env("tina")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str], dict[str, str]]:
    return _backend(request, tmp_path)


def _trader_db(db: str) -> str:
    return db.replace(f"//{ENGINE_LOGIN}@", "//tina@")


def test_one_engine_decides_and_the_standby_takes_over_after_kill_9(
    tmp_path: Path,
    exchanges: list[ExchangeProcess],
    engines: list[EngineProcess],
    backend: tuple[str, dict[str, str], dict[str, str]],
) -> None:
    db, engine_env, trader_env = backend
    ex = ExchangeProcess(tmp_path / "exchange.db")
    exchanges.append(ex)
    ex.start()
    active = EngineProcess(db, ex.url, tmp_path / "active.log", engine_env)
    engines.append(active)
    active.start()
    active.wait_running()
    standby = EngineProcess(db, ex.url, tmp_path / "standby.log", engine_env, standby=True)
    engines.append(standby)
    standby.start()
    # A third engine without --standby is refused, naming the holder.
    third = td_as(engine_env, "engine", "--db", db, "--broker", ex.url, timeout=30)
    assert third.returncode == 2, third.stderr
    assert "already has an engine (pid" in third.stderr and f"pid {active.proc.pid}" in third.stderr  # type: ignore[union-attr]
    assert not standby.running(), "the standby does not decide while the active engine lives"

    groups = groups_file(tmp_path, 20)
    trader_db = _trader_db(db)
    launching = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "command",
            "--db",
            trader_db,
            "launch",
            str(groups),
            "--json",
            "--wait",
            "40",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=trader_env,
    )
    # Kill the active engine mid-launch: once some groups are in the journal, not all.
    deadline = time.monotonic() + 30
    while True:
        doc = json.loads(td_as(trader_env, "journal", "--db", trader_db, "--json").stdout)
        if len(doc["groups"]) >= 2:
            break
        assert time.monotonic() < deadline, "no group was launched"
        time.sleep(0.05)
    active.kill9()
    killed_at = time.monotonic()
    standby.wait_running(timeout_s=20)
    took = time.monotonic() - killed_at
    assert took < 20, f"the standby took {took:.1f} s to take over"
    out, err = launching.communicate(timeout=60)
    outcomes = [json.loads(line) for line in out.splitlines()]
    assert len(outcomes) == 20, err
    # Each command ended: done, or refused because the engine died while it ran (nothing of it done).
    assert all(o["status"] in ("DONE", "REFUSED") for o in outcomes), outcomes
    for o in outcomes:
        if o["status"] == "REFUSED":
            assert "engine restarted" in o["error"], o
    launched = [o for o in outcomes if o["status"] == "DONE"]
    print(f"takeover {took:.2f} s; {len(launched)} of 20 launched, the rest refused by the restart")
    assert launched, "some groups were launched"
    # `headless` twice over the same file against the live engine: each group once, never a second engine.
    again = [
        td_as(
            trader_env,
            "headless",
            "--db",
            trader_db,
            "--broker",
            ex.url,
            "--groups",
            str(groups),
            "--json",
            "--timeout",
            "40",
            timeout=90,
        )
        for _ in range(2)
    ]
    for run in again:
        summary = json.loads(run.stdout.splitlines()[-1])
        assert summary["through_engine"] and summary["settled"], run.stdout + run.stderr
    assert json.loads(again[1].stdout.splitlines()[-1])["launched"] == 0, "the second run launched nothing again"
    deadline = time.monotonic() + 40
    while True:
        journal = json.loads(td_as(trader_env, "journal", "--db", trader_db, "--json").stdout)
        report = td_json("exchange-report", "--broker", ex.url, "--json")
        try:
            check_consistent(journal, report, 20)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert "engine running on" in standby.text() and standby.proc is not None and standby.proc.poll() is None
    assert standby.stop() == 0, standby.text()
