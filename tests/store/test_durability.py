"""What survives a process crash and what survives a power loss, per `--synchronous` setting, on
SQLite and on PostgreSQL (README, "Durability").

A process crash is real here (SIGKILL right after commits returned; a PostgreSQL server stopped
the way a crash stops it). A power loss cannot be had on this machine, so it is measured by what
a power loss keeps: only what was flushed to stable storage. strace counts the flushes
(fsync/fdatasync) each commit makes."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from engine.store.journal import Journal
from engine.store.pg_cluster import start_cluster

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import asyncio, os, sys
    from engine.store.journal import Journal

    async def main(path, mode, count):
        journal = await Journal.open(path, synchronous=mode)
        for n in range(count):
            async with journal.transaction(durable=True):
                await journal.bump_counter("durability")
            os.write(1, f"committed {n + 1}\\n".encode())
        os.write(1, b"done\\n")
        await asyncio.sleep(3600)  # killed here

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


@pytest.mark.parametrize("mode", ["FULL", "NORMAL"])
def test_sqlite_a_process_killed_right_after_its_commits_keeps_every_one(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "j.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), mode, "50"], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    lines = []
    for line in child.stdout:
        lines.append(line.strip())
        if line.strip() == "done":
            break
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    assert lines[-2] == "committed 50"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM counters WHERE name='durability'").fetchone() == (50,)


def _flushes_per_commit(tmp_path: Path, mode: str, commits: int = 20) -> float:
    script = textwrap.dedent(
        """
        import asyncio, os, sys
        from engine.store.journal import Journal

        async def main(path, mode, count):
            journal = await Journal.open(path, synchronous=mode)
            await journal.bump_counter("warm")
            os.write(1, b"BEGIN-COMMITS\\n")
            for _ in range(count):
                async with journal.transaction(durable=True):
                    await journal.bump_counter("durability")
            os.write(1, b"END-COMMITS\\n")
            await journal.close()

        asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
        """
    )
    trace = tmp_path / f"strace-{mode}.txt"
    subprocess.run(
        ["strace", "-f", "-e", "trace=fsync,fdatasync,write", "-o", str(trace),
         sys.executable, "-c", script, str(tmp_path / f"{mode}.db"), mode, str(commits)],
        cwd=REPO, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    text = trace.read_text()
    between = text[text.index("BEGIN-COMMITS") : text.index("END-COMMITS")]
    return len(re.findall(r"\b(?:fsync|fdatasync)\(", between)) / commits


def test_sqlite_full_flushes_every_commit_and_normal_flushes_none(tmp_path: Path) -> None:
    """Power loss keeps only what was flushed: every FULL commit is (at least one flush each); a
    NORMAL commit is not (in WAL mode it is flushed at the next FULL commit or checkpoint), so a
    power cut can lose the NORMAL commits since then. The engine commits acks, fills and status
    reports NORMAL (recovery re-derives them from the broker) and intents, commands and
    escalations FULL."""
    full = _flushes_per_commit(tmp_path, "FULL")
    normal = _flushes_per_commit(tmp_path, "NORMAL")
    assert full >= 1.0, full
    assert normal == 0.0, normal


async def test_postgres_a_server_crash_keeps_every_synchronous_commit_and_what_one_flushed() -> None:
    """synchronous_commit=on (FULL): a commit returns after its WAL is flushed, so a server crash
    (an immediate stop writes nothing it had not) keeps every one. off (NORMAL): a commit returns
    before the flush, and a crash soon after loses it (measured below: the last NORMAL commits
    before the crash) unless a later FULL commit flushed the WAL up to and past it, which is what
    the engine relies on: NORMAL only for what recovery re-derives from the broker."""
    cluster = start_cluster(fsync=True)
    try:
        db = cluster.new_database()
        url = f"postgresql://td_admin:admin-secret-1@127.0.0.1:{cluster.port}/{db}"

        async def commits(*plan: tuple[str, bool, int]) -> None:
            journal = await Journal.open(url, apply_migrations=True)
            try:
                for name, durable, count in plan:
                    for _ in range(count):
                        async with journal.transaction(durable=durable):
                            await journal.bump_counter(name)
            finally:
                await journal.abort()  # the client goes away without a goodbye

        def counters() -> dict[str, int]:
            with psycopg.connect(cluster.conninfo(db=db)) as conn:
                return {str(k): int(v) for k, v in conn.execute("SELECT name, value FROM counters").fetchall()}

        # NORMAL commits, then one FULL commit: the FULL flush carries the NORMAL ones with it.
        await commits(("normal_then_full", False, 30), ("full_after", True, 1))
        await asyncio.to_thread(cluster.crash_and_restart)
        seen = counters()
        assert (seen["normal_then_full"], seen["full_after"]) == (30, 1)
        # FULL commits, then NORMAL commits and a crash right away: every FULL one survives.
        await commits(("full", True, 30), ("normal_last", False, 30))
        await asyncio.to_thread(cluster.crash_and_restart)
        seen = counters()
        assert seen["full"] == 30, "every FULL commit survived the server crash"
        assert seen.get("normal_last", 0) <= 30
        print(f"\nNORMAL commits surviving a server crash right after them: {seen.get('normal_last', 0)} of 30")
    finally:
        cluster.stop()
