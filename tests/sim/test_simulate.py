"""The deterministic simulator (`trading-desk simulate`): hundreds of seeded sessions of the real
engine hold every invariant; a seed replays to the same trace hash on another wall clock; and the
simulator catches each planted bug within a bounded number of seeds, with a replay line that
reproduces the failure exactly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.sim.run import PROFILES, determinism, run_seed, schedule

REPO = Path(__file__).resolve().parents[2]
CHAOS = PROFILES["chaos"]


def simulate(*args: str, timeout: float = 600) -> tuple[int, dict]:
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "simulate", "--json", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert run.returncode in (0, 1), run.stderr
    return run.returncode, json.loads(run.stdout)


def test_500_seeded_sessions_under_chaos_hold_every_invariant() -> None:
    code, doc = simulate("--seeds", "500", "--faults", "chaos", "--jobs", "2", "--no-shrink")
    assert doc["failures"] == [] and doc["failed"] == 0 and code == 0, doc["failures"]
    assert doc["seeds_run"] == 500 and doc["unsettled"] == 0
    t = doc["totals"]
    # The faults really happened (a simulator that injects nothing passes everything).
    for key in ("duplicates", "reordered", "lost_acks", "rejects", "errors", "crashes", "disconnects", "replayed"):
        assert t[key] > 50, f"{key}: {t[key]}"
    for kind in ("ghost_ids", "unsolicited_id", "foreign_fill", "wrong_symbol", "malformed", "stale_replay"):
        assert t[f"hostile_{kind}"] > 20, kind
    assert t["orphans_raised"] > 10 and t["orphans_resolved"] == t["orphans_raised"]
    assert t["clock_steps"] > 100 and t["sends"] > 5_000
    hashes = {s["trace_hash"] for s in doc["seeds"]}
    assert len(hashes) == 500, "every seed is its own session"


def test_the_same_seed_gives_the_same_trace_on_wall_clocks_twenty_years_apart() -> None:
    async def twenty() -> list[tuple[str, str]]:
        return [await determinism(seed, CHAOS) for seed in range(1000, 1020)]

    pairs = asyncio.run(twenty())
    assert all(a == b for a, b in pairs), [p for p in pairs if p[0] != p[1]]
    assert len({a for a, _ in pairs}) == 20


EXPECTED = {"skip_dedupe": 3, "market_before_confirm": 7, "risk_on_status": 9, "resend_orphan": 2}
BOUND = 60  # seeds within which each planted bug must be caught


@pytest.mark.parametrize("plant", sorted(EXPECTED))
def test_a_planted_bug_is_caught_within_a_bounded_number_of_seeds_and_replays_exactly(plant: str) -> None:
    async def first_failure() -> tuple[int, str, int | None]:
        for seed in range(BOUND):
            result = await run_seed(seed, CHAOS, plant=plant)
            if not result.ok:
                return seed, result.trace_hash, result.invariant
        raise AssertionError(f"{plant} not caught within {BOUND} seeds")

    seed, trace_hash, invariant = asyncio.run(first_failure())
    assert invariant == EXPECTED[plant]
    code, doc = simulate("--seeds", "1", "--start", str(seed), "--faults", "chaos", "--plant", plant)
    assert code == 1 and doc["seeds"][0]["trace_hash"] == trace_hash, "the replay line replays it exactly"
    (failure,) = doc["failures"]
    assert failure["invariant"] == EXPECTED[plant] and f"--start {seed}" in failure["replay"]
    assert failure["trace"] and failure["trace"][-1].split(None, 1)[1].startswith("VIOLATION")
    # The shrunk schedule (the minimal trace) fails the same way when replayed with its --drop.
    dropped = [a for a in failure["replay"].split() if "," in a or a.isdigit()]
    assert len(dropped) >= 1
    replay = failure["replay"].split()[1:]  # without "trading-desk"
    again = subprocess.run(
        [sys.executable, "-m", "app.cli", *replay, "--json", "--no-shrink"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert again.returncode == 1
    assert json.loads(again.stdout)["seeds"][0]["invariant"] == EXPECTED[plant]
    assert len(failure["trace"]) <= 40


def test_a_bad_profile_or_plant_is_refused_with_the_choices() -> None:
    for args, needle in (
        (["--faults", "wild"], "choose one of: none, flaky, chaos"),
        (["--plant", "x"], "skip_dedupe"),
    ):
        run = subprocess.run(
            [sys.executable, "-m", "app.cli", "simulate", "--seeds", "1", *args],
            cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert run.returncode == 2 and needle in run.stderr


def test_the_schedule_is_a_function_of_the_seed() -> None:
    assert schedule(7, CHAOS) == schedule(7, CHAOS)
    assert schedule(7, CHAOS) != schedule(8, CHAOS)


# Seeds of the 20,000-seed run (start 100000) that found bugs, each fixed: 100202 and 107640, a
# cancelled group later closed re-entered the cancel branch once COMPLETED and spun until the
# step gave up (StepError: the engine stopped); the other six, a close held up by a stop whose
# cancel was never confirmed (escalated SL_UNCONFIRMED) never counted as waiting on a person.
# They hold for this schedule (engine.sim.run.schedule); a change to it re-draws every seed.
FOUND = (100202, 107640, 106107, 107844, 113320, 115182, 117656, 118293)


def test_the_seeds_that_found_bugs_now_hold_and_settle() -> None:
    async def found() -> list[tuple[int, bool, bool, str]]:
        out = []
        for seed in FOUND:
            r = await run_seed(seed, CHAOS)
            out.append((seed, r.ok, r.settled, r.violation))
        return out

    results = asyncio.run(found())
    assert all(ok and settled for _, ok, settled, _ in results), results
