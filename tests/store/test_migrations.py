"""Seed defects 1, 13, 14 and the journal's refusal rules, on real SQLite files."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from engine.store.journal import Journal
from engine.store.migrations import MIGRATIONS_DIR, JournalError, discover


def test_defect1_schema_uses_sqlite_index_syntax_and_applies(tmp_path: Path) -> None:
    for mig in discover():
        assert not re.search(r",\s*INDEX\s+\w+\s*\(", mig.sql, re.IGNORECASE), mig.name
    conn = sqlite3.connect(tmp_path / "plain.db")
    conn.executescript(discover()[0].sql)  # plain sqlite3 accepts every statement
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"idx_intents_group", "idx_fills_order"} <= indexes
    conn.close()


async def test_defect14_every_foreign_key_points_at_a_table_that_exists(journal: Journal) -> None:
    tables = {r[0] for r in await journal.fetch("SELECT name FROM sqlite_master WHERE type='table'")}
    targets = set()
    for table in tables:
        for fk in await journal.fetch(f"PRAGMA foreign_key_list({table})"):
            targets.add(fk[2])
    assert targets, "the schema declares foreign keys"
    assert targets <= tables
    assert "execution_states" not in tables | targets


async def test_defect13_journal_is_a_real_file_that_keeps_data_across_connections(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    first = await Journal.open(path)
    async with first.transaction():
        await first.bump_counter("duplicate_events", 3)
    await first.close()
    second = await Journal.open(path)
    try:
        assert await second.counter("duplicate_events") == 3
        assert (await second.fetch("PRAGMA journal_mode"))[0][0] == "wal"
    finally:
        await second.close()


async def test_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    for _ in range(2):
        j = await Journal.open(path)
        rows = await j.fetch("SELECT version FROM schema_migrations")
        await j.close()
        assert [r[0] for r in rows] == [m.version for m in discover()]


async def test_a_database_newer_than_the_code_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = await Journal.open(path)
    await j.close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x', 0)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(JournalError, match="schema version 999, newer than this Trading Desk knows"):
        await Journal.open(path)
    assert path.read_bytes() == before


async def test_a_corrupt_file_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match=r"garbage\.db is not a Trading Desk journal or is corrupt"):
        await Journal.open(path)


async def test_a_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="not a Trading Desk journal"):
        await Journal.open(path)


async def test_an_edited_migration_is_detected(tmp_path: Path) -> None:
    migs = tmp_path / "migrations"
    migs.mkdir()
    (migs / "001_journal.sql").write_text((MIGRATIONS_DIR / "001_journal.sql").read_text())
    path = tmp_path / "j.db"
    await (await Journal.open(path, migrations_dir=migs)).close()
    (migs / "001_journal.sql").write_text((MIGRATIONS_DIR / "001_journal.sql").read_text() + "\n-- edited\n")
    with pytest.raises(JournalError, match="different file"):
        await Journal.open(path, migrations_dir=migs)


async def test_audit_log_is_append_only(journal: Journal) -> None:
    async with journal.transaction():
        await journal.insert_audit(
            now_ns=1, wall_ms=1, os_user="u", role="operator", command="c", target="t", detail={}, outcome="OK"
        )
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        async with journal.transaction():
            await journal.fetch("UPDATE audit_log SET os_user='x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        async with journal.transaction():
            await journal.fetch("DELETE FROM audit_log")
    assert (await journal.fetch("SELECT os_user FROM audit_log")) == [("u",)]


async def test_journaled_inputs_and_checkpoints_are_append_only(journal: Journal) -> None:
    async with journal.transaction():
        await journal.fetch(
            "INSERT INTO inputs (seq, kind, ts_local_ns, ts_wall_ms, body_json)"
            " VALUES (1, 'tick', 5, 5, '[\"Tick\",5]')"
        )
        await journal.fetch(
            "INSERT INTO checkpoints (seq, kind, ts_wall_ms, format, state) VALUES (1, 'START', 5, 1, x'00')"
        )
    for sql in ("UPDATE inputs SET body_json='[]'", "DELETE FROM inputs", "UPDATE checkpoints SET seq=2"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            async with journal.transaction():
                await journal.fetch(sql)
    assert await journal.fetch("SELECT body_json FROM inputs") == [('["Tick",5]',)]


async def test_quantity_checks_refuse_impossible_rows(journal: Journal) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        async with journal.transaction():
            await journal.fetch("INSERT INTO fills VALUES ('T1', 'nobody', 'S', 'BUY', -75, 100, 1, 1, NULL)")
