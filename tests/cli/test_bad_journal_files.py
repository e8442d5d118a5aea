"""Journal files that cannot be used as they are: read-only, locked by another program, and a
disk that fills up while the engine runs. Each gets one clear line (or error) naming the file
and what to do; nothing already journaled is lost, and nothing is half-written. (A corrupt file
and one from a newer version: tests/store/test_migrations.py and test_cli.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from engine.broker.paper import PaperBroker
from engine.core.groups import parse_groups
from engine.core.instruments import Instrument
from engine.core.model import Role
from engine.runtime.engine import Engine, EngineFailure
from engine.runtime.state import Actor
from engine.store.journal import Journal
from engine.store.migrations import JournalError
from tests.cli.test_cli import spreads, td, twenty_groups


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _filled_journal(tmp_path: Path) -> tuple[Path, Path]:
    groups = tmp_path / "g.json"
    groups.write_text(json.dumps(twenty_groups()[:3]))
    db = tmp_path / "j.db"
    run = td("headless", "--db", str(db), "--broker", f"paper:{tmp_path / 'x.db'}", "--groups", str(groups))
    assert run.returncode == 0, run.stderr
    with sqlite3.connect(db) as conn:  # fold the WAL in: the file alone holds the journal
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db, groups


def _make_read_only(path: Path) -> None:
    if os.geteuid() == 0:  # root writes through file modes; the immutable attribute stops it too
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o400)


def _make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    path.chmod(0o600)


def test_a_read_only_journal_is_refused_by_the_engine_and_still_read(tmp_path: Path) -> None:
    db, groups = _filled_journal(tmp_path)
    before = _digest(db)
    _make_read_only(db)
    try:
        run = td("headless", "--db", str(db), "--broker", f"paper:{tmp_path / 'x2.db'}", "--groups", str(groups))
        shown = td("journal", "--db", str(db), "--json")
    finally:
        _make_writable(db)
    assert run.returncode == 2
    assert f"journal {db} cannot be written: the file or its directory is read-only" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert shown.returncode == 0 and len(json.loads(shown.stdout)["groups"]) == 3, "still readable"
    assert _digest(db) == before, "not a byte changed"


def test_a_journal_another_program_has_locked_is_refused_naming_the_lock(tmp_path: Path) -> None:
    db, groups = _filled_journal(tmp_path)
    before = _digest(db)
    other = sqlite3.connect(db, isolation_level=None)  # a maintenance shell holding the write lock
    other.execute("BEGIN EXCLUSIVE")
    try:
        run = td("headless", "--db", str(db), "--broker", f"paper:{tmp_path / 'x2.db'}", "--groups", str(groups))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert run.returncode == 2
    assert "another program holds a lock on it" in run.stderr and str(db) in run.stderr
    assert _digest(db) == before
    again = td("headless", "--db", str(db), "--broker", f"paper:{tmp_path / 'x.db'}", "--groups", str(groups))
    assert again.returncode == 0, "once the lock is gone the same command works"


async def test_a_full_disk_stops_the_engine_with_the_reason_and_keeps_every_committed_row(
    tmp_path: Path, catalog: dict[str, Instrument]
) -> None:
    path = tmp_path / "j.db"
    journal = await Journal.open(path)
    broker = await PaperBroker.open(tmp_path / "x.db", catalog)
    engine = Engine(journal, broker, catalog)
    await engine.start()
    (pages,) = (await journal.fetch("PRAGMA page_count"))[0]
    await journal.db.execute(f"PRAGMA max_page_count={pages + 12}")  # a disk with room for a few groups
    launched: list[str] = []
    with pytest.raises((EngineFailure, JournalError)) as failed:
        for spec in parse_groups(spreads([("NIFTY26DEC24200CE", "NIFTY26DEC24000CE", 150)], 200, "F"), catalog):
            await engine.launch(spec, Actor("tina", Role.TRADER))
            assert await engine.wait_settled(10)
            launched.append(spec.group_id)
    assert "is full" in str(failed.value) and str(path) in str(failed.value)
    assert "nothing of it was written" in str(failed.value)
    assert launched, "some groups fitted before the disk filled"
    await engine.stop()
    await journal.abort()
    # Reopened with room again: intact, every launched group there, and recovery finishes the rest.
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        groups = {g for (g,) in conn.execute("SELECT group_id FROM groups")}
    assert set(launched) <= groups
    journal = await Journal.open(path)
    engine = Engine(journal, broker, catalog)
    await engine.start()
    assert await engine.wait_settled(10)
    positions = await broker.positions()
    venue = {o.client_order_id for o in broker.core.orders()}
    booked = dict(
        await journal.fetch(
            "SELECT symbol, SUM(CASE side WHEN 'BUY' THEN qty ELSE -qty END) FROM fills GROUP BY symbol"
        )
    )
    await engine.stop()
    await broker.close()
    await journal.close()
    assert {k: v for k, v in positions.items() if v} == {k: v for k, v in booked.items() if v}
    with sqlite3.connect(path) as conn:
        intents = {c for (c,) in conn.execute("SELECT client_order_id FROM intents")}
    assert venue <= intents, "every order at the exchange has its intent"
