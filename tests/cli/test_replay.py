"""A seeded run replays: the same `headless` run on the paper exchange, done twice on fresh files,
writes the same journal, row for row (timestamps aside) — the same intents, the same escalations,
the same positions. It holds because every id, clock and random draw is injected and the engine
and the exchange run in lockstep on one virtual clock."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import spreads, td, twenty_groups

THIN = [("NIFTY26DEC25000CE", "NIFTY26DEC24100CE", 750), ("NIFTY26DEC23000PE", "NIFTY26DEC23900PE", 600)]


# The journaled inputs and checkpoints hold broker and local timestamps inside their bodies
# (compared by kind, order and the ids each drew; the audit's own replay checks them exactly).
_NOT_REPLAYED = {"holder_pid", "command_id", "body_json", "state"}


def journal_rows(path: Path) -> dict[str, list[list[Any]]]:
    """Every table, every row, in insertion order; ``ts_*`` columns (and ``ts_*`` keys of stored
    JSON) dropped: timestamps are the only thing allowed to differ, with who ran it (the lease
    holder's pid) and the submitter-chosen command ids (random, so that two submitters never
    collide)."""
    out: dict[str, list[list[Any]]] = {}
    with sqlite3.connect(path) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for table in tables:
            if table.startswith("sqlite_"):
                continue
            info = conn.execute(f"PRAGMA table_info({table})")
            cols = [c[1] for c in info if not c[1].startswith("ts_") and c[1] not in _NOT_REPLAYED]
            rows = []
            for row in conn.execute(f"SELECT {','.join(cols)} FROM {table} ORDER BY rowid"):
                rows.append([_untimed(v) for v in row])
            out[table] = rows
    return out


def _untimed(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("{"):
        decoded = json.loads(value)
        return {k: v for k, v in decoded.items() if not k.startswith("ts_")}
    return value


def _run(tmp: Path, groups: Path, seed: int) -> dict[str, list[list[Any]]]:
    tmp.mkdir()
    db, ex = tmp / "j.db", tmp / "x.db"
    run = td(
        "headless",
        "--db",
        str(db),
        "--broker",
        f"paper:{ex}",
        "--groups",
        str(groups),
        "--faults",
        "flaky",
        "--seed",
        str(seed),
        "--available-margin",
        "100000000",
    )
    assert run.returncode == 0, run.stderr
    return journal_rows(db)


@pytest.mark.parametrize("shape", ["thin", "mixed"])
def test_the_same_seeded_headless_run_twice_writes_identical_journals(tmp_path: Path, shape: str) -> None:
    groups = spreads(THIN, 20, "T") if shape == "thin" else twenty_groups()
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(groups))
    first, second = _run(tmp_path / "a", path, 3), _run(tmp_path / "b", path, 3)
    assert len(first["intents"]) >= 40 and first["fills"], "the run really traded"
    if shape == "thin":
        assert first["escalations"], "thin depth really escalated"
    for table in first:
        assert first[table] == second[table], f"table {table} differs between two runs of the same seed"


def test_a_different_seed_gives_a_different_run(tmp_path: Path) -> None:
    """The comparison above can fail: another seed changes faults and ids."""
    path = tmp_path / "groups.json"
    path.write_text(json.dumps(spreads(THIN, 6, "T")))
    assert _run(tmp_path / "a", path, 3)["intents"] != _run(tmp_path / "b", path, 4)["intents"]
