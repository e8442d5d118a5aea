"""The shared desk on one machine (SQLite): a second desk attaches to the engine a first desk
hosts; a command from either is executed once and audited with the OS user; roles come from the
users table (the journal file's owner holds all three); the journal file is the owner's only."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from engine.broker.paper import PaperBroker
from engine.core.commands import Actor, CommandError, Launch, RoleError, SetTradingState
from engine.core.groups import parse_group
from engine.core.instruments import Instrument
from engine.core.model import Role
from engine.core.trading_state import TradingState
from engine.runtime import command_rows
from engine.runtime.attached import AttachedEngine
from engine.runtime.engine import Engine
from engine.store import users
from engine.store.journal import Journal
from engine.store.lease import LeaseHeld

REPO = Path(__file__).resolve().parents[2]
ME = users.os_user()


def spread(gid: str, catalog: dict[str, Instrument]) -> Launch:
    item = {
        "group_id": gid,
        "legs": [
            {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": 150},
            {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 150},
        ],
    }
    return Launch(parse_group(item, catalog), Actor(ME, Role.TRADER))


def td(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


async def test_a_second_desk_attaches_and_a_command_from_either_runs_once(
    tmp_path: Path, catalog: dict[str, Instrument]
) -> None:
    path = tmp_path / "journal.db"
    journal = await Journal.open(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "a new journal is its owner's only"
    broker = await PaperBroker.open(tmp_path / "x.db", catalog)
    engine = Engine(journal, broker, catalog)
    await engine.start()
    desk = AttachedEngine(await Journal.open(path), catalog)
    await desk.start()
    try:
        # A second engine on the journal is refused, naming the holder.
        other = await Journal.open(path)
        with pytest.raises(LeaseHeld, match="already has an engine"):
            await Engine(other, broker, catalog).start()
        await other.close()
        await engine.launch(spread("S1", catalog).spec, Actor(ME, Role.TRADER))
        assert await desk.execute(spread("S2", catalog)) == "HEDGE_SUBMITTED"
        assert await engine.wait_settled(10)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while {g: r.state.value for g, r in desk.snapshot().groups.items()} != {"S1": "HEDGED", "S2": "HEDGED"}:
            assert loop.time() < deadline, f"the attached desk shows {desk.snapshot().groups}"
            await asyncio.sleep(0.02)
        assert {g: r.state for g, r in desk.snapshot().groups.items()} == {
            g: r.state for g, r in engine.snapshot().groups.items()
        }
        # A retried submit (same command id) is applied once.
        cid = command_rows.new_command_id()
        first = await command_rows.submit(desk.journal.db, cid, "halt", {}, Role.TRADER, ME)
        again = await command_rows.submit(desk.journal.db, cid, "halt", {}, Role.TRADER, ME)
        assert first == again
        with pytest.raises(CommandError, match="already used for a different command"):
            await command_rows.submit(desk.journal.db, cid, "reduce", {}, Role.TRADER, ME)
        deadline = loop.time() + 2
        while desk.trading_state is not TradingState.HALTED:
            assert loop.time() < deadline, "the halt reached the attached desk"
            await asyncio.sleep(0.02)
        rows = await journal.fetch("SELECT action, submitted_by, status FROM commands ORDER BY seq")
        audit = await journal.fetch("SELECT os_user, role, command, target, outcome, command_seq FROM audit_log")
    finally:
        await desk.stop()
        await desk.journal.close()
        await engine.stop()
        await broker.close()
        await journal.close()
    assert rows == [("launch", ME, "DONE"), ("launch", ME, "DONE"), ("halt", ME, "DONE")]
    assert [a[:5] for a in audit] == [
        (ME, "trader", "launch", "S1", "OK"),
        (ME, "trader", "launch", "S2", "OK"),
        (ME, "trader", "set_trading_state", "HALTED", "OK"),
    ]
    assert [a[5] for a in audit] == [1, 2, 3], "each audit row names its command row"


async def test_a_user_not_in_the_users_table_is_refused_and_audited(
    tmp_path: Path, catalog: dict[str, Instrument]
) -> None:
    path = tmp_path / "journal.db"
    journal = await Journal.open(path)
    broker = await PaperBroker.open(tmp_path / "x.db", catalog)
    engine = Engine(journal, broker, catalog)
    await engine.start()
    try:
        stranger = Actor("stranger", Role.RISK)
        with pytest.raises(RoleError, match="stranger does not hold the risk role on this journal"):
            await engine.execute(SetTradingState(TradingState.HALTED, stranger))
        # Someone with write access to the file forges a row for another person: the engine
        # checks the person named in it, who holds no role, and refuses (audited).
        await command_rows.submit(journal.db, command_rows.new_command_id(), "halt", {}, Role.TRADER, "stranger")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while (await journal.fetch("SELECT status FROM commands ORDER BY seq DESC LIMIT 1"))[0][0] == "SUBMITTED":
            assert loop.time() < deadline
            await asyncio.sleep(0.02)
        assert engine.trading_state is TradingState.ACTIVE
        await users.grant(journal.db, "stranger", Role.RISK, ME)
        await engine.execute(SetTradingState(TradingState.HALTED, stranger))
        assert engine.trading_state is TradingState.HALTED
        audit = await journal.fetch("SELECT os_user, role, command, outcome FROM audit_log ORDER BY id")
    finally:
        await engine.stop()
        await broker.close()
        await journal.close()
    assert audit == [
        ("stranger", "risk", "set_trading_state", "REFUSED"),
        ("stranger", "trader", "set_trading_state", "REFUSED"),
        ("stranger", "risk", "set_trading_state", "OK"),
    ]


def test_users_and_command_from_a_shell(tmp_path: Path) -> None:
    db = str(tmp_path / "journal.db")
    groups = tmp_path / "g.json"
    groups.write_text("[]")
    assert td("headless", "--db", db, "--broker", f"paper:{tmp_path / 'x.db'}", "--groups", str(groups)).returncode == 0
    listed = td("users", "--db", db, "list", "--json")
    assert {(u["user"], u["role"]) for u in json.loads(listed.stdout)} == {(ME, r.value) for r in Role}
    assert td("users", "--db", db, "grant", "rita", "risk").returncode == 0
    assert ("rita", "risk") in {
        (u["user"], u["role"]) for u in json.loads(td("users", "--db", db, "list", "--json").stdout)
    }
    assert td("users", "--db", db, "revoke", "rita", "risk").returncode == 0
    bad = td("users", "--db", db, "grant", "rita", "boss")
    assert bad.returncode == 2 and "role must be one of" in bad.stderr
    # No engine runs on the journal: the command waits, then says so (exit 3); it stays queued.
    waiting = td("command", "--db", db, "halt", "--wait", "0.3")
    assert waiting.returncode == 3 and "no answer within 0.3 s" in waiting.stderr
    assert td("command", "--db", db, "fly", "--wait", "0").returncode == 2


async def test_an_attached_desk_publishes_the_sequence_with_the_state_it_read_in_one_snapshot(
    tmp_path: Path, catalog: dict[str, Instrument], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit landing while the desk reloads must neither half-appear in the state it loads
    (one snapshot) nor be hidden behind a sequence published before the state (the desk's window
    re-reads rows only when the sequence moves, so it would stay on the older state)."""
    from engine.runtime import attached

    path = tmp_path / "journal.db"
    journal = await Journal.open(path)
    broker = await PaperBroker.open(tmp_path / "x.db", catalog)
    engine = Engine(journal, broker, catalog)
    await engine.start()
    desk = AttachedEngine(await Journal.open(path), catalog, poll_ms=60_000)
    await desk.start()
    real_load = attached.load_state
    seen_during_load: list[int] = []

    async def load_while_the_engine_commits(*args: object, **kwargs: object) -> object:
        seen_during_load.append(desk.event_count())
        await engine.launch(spread("MID", catalog).spec, Actor(ME, Role.TRADER))  # commits meanwhile
        return await real_load(*args, **kwargs)  # type: ignore[arg-type]

    try:
        await engine.launch(spread("S1", catalog).spec, Actor(ME, Role.TRADER))
        before = desk.event_count()
        monkeypatch.setattr(attached, "load_state", load_while_the_engine_commits)
        assert await desk.refresh()
        monkeypatch.setattr(attached, "load_state", real_load)
        assert seen_during_load == [before], "the new sequence was published before its state was read"
        assert "MID" not in desk.snapshot().groups, "a commit after the snapshot leaked into the state"
        assert "S1" in desk.snapshot().groups
        assert await desk.refresh(), "the commit that landed meanwhile moves the sequence again"
        assert "MID" in desk.snapshot().groups
    finally:
        await desk.stop()
        await desk.journal.close()
        await engine.stop()
        await broker.close()
        await journal.close()
