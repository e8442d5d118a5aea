"""`trading-desk bench`, the time-travel audit's figures (engine.audit):

- what journaling every input costs ingest: the bench's ingest (step + group commit, batches of
  100 events) with and without the input rows, interleaved, best of three each;
- what a checkpoint of the state costs, taken every ``checkpoint_every_inputs`` inputs;
- ``replay --at`` on a journal of 100,000 inputs written by the real interpreter (one event per
  input, a checkpoint every 5,000): the worst case steps 4,999 inputs from a checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from app.bench_data import _events, _rows
from engine.audit.checkpoint import dump_state
from engine.audit.codec import input_row
from engine.audit.replay import replay
from engine.broker.paper import PaperBroker
from engine.catalog import load_catalog, load_margin_model
from engine.core.effects import Commit, JournalWrites
from engine.core.events import FillReport
from engine.core.groups import GroupSpec
from engine.core.inputs import BrokerEvents
from engine.core.model import GroupState
from engine.core.state import EngineConfig, EngineState
from engine.core.step import step
from engine.runtime.engine import Engine
from engine.runtime.ids import seeded_ids
from engine.store.journal import Journal
from engine.store.rows import IntentRow


async def _groups_of(path: Path, spec: GroupSpec, groups: int, prefix: str, synchronous: str) -> list[IntentRow]:
    """A journal of ``groups`` groups of 200 live orders each (the ingest bench's shape, repeated)."""
    journal = await Journal.open(path, synchronous=synchronous)
    rows: list[IntentRow] = []
    async with journal.transaction():
        for g in range(groups):
            group_id = f"B{prefix}{g:05d}"
            await journal.insert_group(dataclasses.replace(spec, group_id=group_id), GroupState.HEDGE_SUBMITTED, "", 1)
            for r in _rows(f"{prefix}{g}x"):
                row = dataclasses.replace(r, group_id=group_id)
                await journal.insert_intent(row)
                rows.append(row)
    await journal.close()
    return rows


async def _ingest(tmp: Path, spec: GroupSpec, name: str, journal_inputs: bool) -> float:
    path = tmp / f"audit-ingest-{name}.db"
    rows = await _groups_of(path, spec, 5, f"A{name}", "FULL")  # 1,000 orders, 11,000 events
    journal = await Journal.open(path)
    state = EngineState(load_catalog(), EngineConfig(), load_margin_model(), seeded_ids(0))
    for r in rows:
        state.book.add(r)
    events = _events(rows)
    seq = 1
    # CPU time of the process (every thread: aiosqlite's included): what journaling inputs costs
    # is CPU, and wall time here is mostly the noise of thread hand-offs
    started = time.process_time()
    for i in range(0, len(events), 100):
        chunk = tuple(events[i : i + 100])
        known = frozenset(await journal.known_keys([f"F:{e.trade_id}" for e in chunk if isinstance(e, FillReport)]))
        inp = BrokerEvents(time.monotonic_ns(), chunk, known)
        writes = JournalWrites()
        for effect in step(state, inp, seq):
            if isinstance(effect, Commit):
                writes.merge(effect.writes)
        if journal_inputs:
            writes.inputs.append(input_row(inp, seq, None, 0, None, []))
        seq += 1
        async with journal.transaction(durable=writes.durable):  # as the engine commits events
            await journal.flush(writes)
    elapsed = time.process_time() - started
    await journal.close()
    return len(events) / elapsed


async def _journal_of(tmp: Path, spec: GroupSpec, inputs: int) -> Path:
    """A journal of ``inputs`` inputs, one broker event each, written by the interpreter's own
    cycle (input rows, ids, periodic checkpoints) on a book of enough live orders."""
    per_order = 11  # an ack, five fills, five status reports (app.bench._events)
    path = tmp / "audit-100k.db"
    rows = await _groups_of(path, spec, -(-inputs // (200 * per_order)), "R", "NORMAL")
    catalog = load_catalog()
    journal = await Journal.open(path, synchronous="NORMAL", inline=True)
    broker = await PaperBroker.open(tmp / "audit-exchange.db", catalog)
    clock = [1_000_000_000]
    engine = Engine(journal, broker, catalog, monotonic_ns=lambda: clock[0], lockstep=True)
    try:
        await journal.take_lease()
        state = EngineState(catalog, engine.config, engine.margin_model, engine._draw_id)
        for r in rows:
            state.book.add(r)
        engine.state = state
        await engine._start_checkpoint()
        for event in _events(rows)[:inputs]:
            clock[0] += 1_000_000
            await engine._cycle([(BrokerEvents(clock[0], (event,)), None)], perform_io=False)
    finally:
        await engine.stop()
        await broker.close()
        await journal.close()
    return path


async def _journaling_us_per_event(tmp: Path) -> tuple[float, float]:
    """The work journaling inputs adds, per event, measured on its own (best of five): encoding
    the batches (100 events each) and inserting their rows inside a transaction."""
    events = _events([row for p in range(5) for row in _rows(f"J{p}x")])
    batches = [BrokerEvents(i, tuple(events[i : i + 100])) for i in range(0, len(events), 100)]
    encode = []
    for _ in range(5):
        started = time.process_time()
        rows = [input_row(b, n + 1, None, 0, None, []) for n, b in enumerate(batches)]
        encode.append(time.process_time() - started)
    journal = await Journal.open(tmp / "audit-insert.db", synchronous="NORMAL")
    insert = []
    try:
        for k in range(5):
            started = time.process_time()
            async with journal.transaction(durable=False):
                await journal.db.executemany(
                    "INSERT INTO inputs (seq, kind, epoch, ts_local_ns, ts_wall_ms, ts_broker_ms, command_seq,"
                    " body_json, ids_json) VALUES (?,?,?,?,?,?,?,?,?)",
                    [(r[0] + k * len(rows), *r[1:]) for r in rows],
                )
            insert.append(time.process_time() - started)
    finally:
        await journal.close()
    return min(encode) / len(events) * 1e6, min(insert) / len(events) * 1e6


async def audit_figures(tmp: Path, spec: GroupSpec, inputs: int = 100_000, repeats: int = 7) -> dict[str, Any]:
    runs: dict[str, list[float]] = {"off": [], "on": [], "again": []}
    for i in range(repeats):  # interleaved, best of each; "again" repeats "off" to show the noise
        for name in ("off", "on", "again") if i % 2 else ("on", "again", "off"):
            runs[name].append(await _ingest(tmp, spec, f"{name}{i}", name == "on"))
    off, on, again = max(runs["off"]), max(runs["on"]), max(runs["again"])
    encode_us, insert_us = await _journaling_us_per_event(tmp)
    base_us = 1e6 / max(off, again)
    out: dict[str, Any] = {
        "audit_ingest_events_per_s_without_inputs": round(max(off, again)),
        "audit_ingest_events_per_s_with_inputs": round(on),
        "audit_ingest_with_over_without_inputs": round(on / max(off, again), 3),
        "audit_ingest_noise_same_run_twice": round(min(off, again) / max(off, again), 3),
        "audit_input_encode_us_per_event": round(encode_us, 2),
        "audit_input_insert_us_per_event": round(insert_us, 2),
        "audit_ingest_us_per_event": round(base_us, 1),
        "audit_ingest_cost_of_journaling_inputs_pct": round((encode_us + insert_us) / base_us * 100, 1),
    }
    state = EngineState(load_catalog(), EngineConfig(), load_margin_model(), seeded_ids(0))
    for r in [row for p in range(10) for row in _rows(f"K{p}x")]:
        state.book.add(r)
    started = time.perf_counter()
    blob = dump_state(state)
    checkpoint_ms = (time.perf_counter() - started) * 1000
    out["audit_checkpoint_ms_2000_orders"] = round(checkpoint_ms, 2)
    out.update(await marks_cost(tmp, base_us, max(off, again)))
    out["audit_checkpoint_kb_2000_orders"] = round(len(blob) / 1024, 1)
    built = time.perf_counter()
    path = await _journal_of(tmp, spec, inputs)
    out["audit_journal_inputs"] = inputs
    out["audit_journal_build_s"] = round(time.perf_counter() - built, 1)
    journal = await Journal.open(path)
    try:
        worst = 0.0
        for at in (4_999, inputs // 2 + 4_998, inputs - 1):  # each 4,999 inputs past a checkpoint
            started = time.perf_counter()
            result = await replay(journal, at)
            elapsed = time.perf_counter() - started
            if result.mismatch is not None:
                raise RuntimeError(f"bench journal does not replay: {result.mismatch.describe()}")
            worst = max(worst, elapsed)
        out["audit_replay_at_worst_s"] = round(worst, 3)
        started = time.perf_counter()
        result = await replay(journal, full=True)
        out["audit_replay_full_check_s"] = round(time.perf_counter() - started, 2)
        if result.mismatch is not None or result.checked_to != inputs:
            raise RuntimeError("bench journal does not replay in full")
        out["audit_replay_full_checkpoints_compared"] = result.checkpoints_checked
    finally:
        await journal.close()
    return out


async def marks_cost(tmp: Path, ingest_us_per_event: float, events_per_s: float, symbols: int = 200) -> dict[str, Any]:
    """What journaling marks adds to ingest: one look a second over every symbol open groups
    trade (here ``symbols`` of them, every quote changed: the worst case), its rows inserted in
    the cycle's commit; against the CPU ingesting ``events_per_s`` events a second takes."""
    journal = await Journal.open(tmp / "audit-marks.db", synchronous="NORMAL")
    try:
        rows = [
            (f"SYM{i:04d}", 10_000 + i, 10_005 + i, 10_000 + i, 750, 750, 75, 1_800_000_000_000, 5, 5)
            for i in range(symbols)
        ]
        best = float("inf")
        for k in range(5):
            writes = JournalWrites()
            started = time.process_time()
            writes.marks = [(*r[:1], r[1] + k, *r[2:]) for r in rows]
            async with journal.transaction(durable=False):
                await journal.flush(writes)
            best = min(best, time.process_time() - started)
    finally:
        await journal.close()
    per_second_us = best * 1e6  # one look a second
    ingest_cpu_us_per_s = ingest_us_per_event * events_per_s
    return {
        "marks_look_us_200_symbols": round(per_second_us, 1),
        "marks_cost_of_ingest_pct_at_bench_rate": round(per_second_us / ingest_cpu_us_per_s * 100, 3),
    }
