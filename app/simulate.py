"""`trading-desk simulate`: many seeded sessions of the whole engine (engine.sim.run), each
checked against every invariant, with a per-seed trace hash and a replay line for a failure."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from app.errors import UsageError
from engine.sim.invariants import INVARIANTS
from engine.sim.planted import PLANTS
from engine.sim.run import PROFILES, SeedResult, profile_named, replay_command, run_seed, shrink

TRACE_LINES = 40  # of the shrunk failing run, printed


def add_parser(sub: Any) -> None:
    s = sub.add_parser("simulate", help="deterministic simulation of the whole engine: seeds, faults, crashes")
    s.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    s.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    s.add_argument("--faults", default="chaos", help=f"fault mix: {', '.join(PROFILES)} (default chaos)")
    s.add_argument("--jobs", type=int, default=1, help="worker processes (seeds are independent)")
    s.add_argument("--json", action="store_true", help="one JSON document: per-seed results and totals")
    s.add_argument("--drop", default="", help="replay with these scheduled actions left out (printed by a failure)")
    s.add_argument("--plant", default="", help=f"test the simulator: plant a known bug ({', '.join(PLANTS)})")
    s.add_argument("--no-shrink", dest="shrink", action="store_false", help="report a failure without shrinking it")
    s.add_argument(
        "--audit",
        action="store_true",
        help="then replay each seed's journal through step from its first checkpoint and check it reproduces",
    )


def _chunk(job: tuple[list[int], str, tuple[int, ...], str, bool]) -> list[SeedResult]:
    seeds, profile_name, drop, plant, audit = job
    profile = profile_named(profile_name)

    async def run_all() -> list[SeedResult]:
        out = []
        for seed in seeds:
            result = await run_seed(seed, profile, drop=frozenset(drop), plant=plant, audit=audit)
            if result.ok:
                result.trace = []  # keep only what a failure needs to be read
            out.append(result)
        return out

    return asyncio.run(run_all())


def _validate(args: argparse.Namespace) -> tuple[int, ...]:
    if args.seeds < 1 or args.start < 0 or args.jobs < 1:
        raise UsageError("--seeds and --jobs must be at least 1, --start at least 0")
    try:
        profile_named(args.faults)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.plant and args.plant not in PLANTS:
        raise UsageError(f"unknown planted bug {args.plant!r}; one of: {', '.join(PLANTS)}")
    try:
        return tuple(sorted(int(x) for x in args.drop.split(",") if x.strip()))
    except ValueError as exc:
        raise UsageError(f"--drop takes action numbers separated by commas, got {args.drop!r}") from exc


async def run_simulate(args: argparse.Namespace) -> int:
    drop = _validate(args)
    seeds = list(range(args.start, args.start + args.seeds))
    started = time.perf_counter()
    jobs = min(args.jobs, len(seeds))
    chunks = [seeds[i::jobs] for i in range(jobs)]
    work = [(chunk, args.faults, drop, args.plant, args.audit) for chunk in chunks]
    # Each chunk runs in a worker process of its own, with its own event loop (never a thread of
    # this one: the workers' journals then do not share this process's GIL with it).
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        parts = await asyncio.gather(*(loop.run_in_executor(pool, _chunk, w) for w in work))
    results = sorted((r for part in parts for r in part), key=lambda r: r.seed)
    wall_s = time.perf_counter() - started
    failures = [r for r in results if not r.ok]
    shrunk = []
    for failure in failures[:3]:
        shrunk.append(await shrink(failure, profile_named(args.faults)) if args.shrink else failure)
    doc = _totals(results, wall_s, args.faults)
    if args.json:
        doc["seeds"] = [r.to_json() for r in results]
        doc["failures"] = [_failure_json(f) for f in shrunk]
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        for r in results:
            mark = "ok  " if r.ok else "FAIL"
            print(
                f"seed {r.seed:>6} {mark} trace {r.trace_hash}  sim {r.sim_ms / 1000:6.1f} s  {r.wall_s * 1000:6.0f} ms"
            )
        for f in shrunk:
            _print_failure(f)
        print(_summary_line(doc))
    return 1 if failures else 0


def _totals(results: list[SeedResult], wall_s: float, profile: str) -> dict[str, Any]:
    sim_s = sum(r.sim_ms for r in results) / 1000
    total: dict[str, int] = {}
    for r in results:
        for key, value in r.stats.items():
            total[key] = total.get(key, 0) + value
    return {
        "profile": profile,
        "fault_mix": _mix(profile),
        "seeds_run": len(results),
        "failed": sum(not r.ok for r in results),
        "unsettled": sum(not r.settled for r in results),
        "simulated_hours": round(sim_s / 3600, 2),
        "wall_s": round(wall_s, 2),
        "speed_x": round(sim_s / wall_s, 1) if wall_s else None,
        "totals": total,
    }


def _mix(name: str) -> dict[str, Any]:
    p = PROFILES[name]
    return {
        "venue": {k: v for k, v in dataclasses.asdict(p.venue).items() if v},
        "per_session": {
            "crashes_between_steps": f"0-{p.crashes}",
            "crashes_at_crash_points": f"0-{p.armed_crashes}",
            "disconnects": f"0-{p.disconnects}",
            "clock_steps": p.clock_steps,
            "hostile_events": f"{p.hostile // 2}-{p.hostile}",
            "thin_books": p.thin_books,
        },
    }


def _failure_json(f: SeedResult) -> dict[str, Any]:
    return {
        "seed": f.seed,
        "invariant": f.invariant,
        "violation": f.violation,
        "audit": f.audit,
        "replay": replay_command(f),
        "trace": f.trace[-TRACE_LINES:],
    }


def _print_failure(f: SeedResult) -> None:
    out = sys.stdout
    print(f"\nseed {f.seed} FAILED: {f.violation or f.audit}", file=out)
    if f.invariant is not None:
        print(f"  invariant {f.invariant}: {INVARIANTS[f.invariant]}", file=out)
    print(f"  minimal trace ({len(f.trace)} lines, last {min(TRACE_LINES, len(f.trace))}):", file=out)
    for line in f.trace[-TRACE_LINES:]:
        print(f"    {line}", file=out)
    print(f"  replay: {replay_command(f)}", file=out)


def _summary_line(doc: dict[str, Any]) -> str:
    t = doc["totals"]
    return (
        f"{doc['seeds_run']} seeds ({doc['profile']}): {doc['failed']} failed; "
        f"{doc['simulated_hours']} simulated hours in {doc['wall_s']} s ({doc['speed_x']}x real time); "
        f"{t.get('delivered', 0)} events delivered, {t.get('duplicates', 0)} duplicates and "
        f"{t.get('reordered', 0)} reorders absorbed, {t.get('crashes', 0)} crashes survived, "
        f"{t.get('orphans_raised', 0)} orphans raised, {t.get('orphans_resolved', 0)} resolved"
        + (
            f"; replay reproduced {t['audit_inputs']} inputs across {t['audit_restarts']} restarts and"
            f" {t['audit_checkpoints']} checkpoints"
            if "audit_inputs" in t
            else ""
        )
    )
