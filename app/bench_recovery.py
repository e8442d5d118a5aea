"""`trading-desk bench`: recovery and ``journal --json`` on a long journal.

A journal of N finished intents (groups opened and closed: a filled hedge, a filled risk leg and
the two exits, COMPLETED) and 1,000 live groups (each: a hedge leg resting at the paper
exchange, which knows it). Measured as a person meets it: the wall time of ``trading-desk
recover --list --json`` from process start to its answer (the engine started and reconciled with
the exchange), and ``trading-desk journal --json`` (wall time, bytes printed, peak RSS).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from engine.broker.paper import PaperBroker
from engine.catalog import load_catalog
from engine.core.book import GroupRuntime, IntentRow, NodeRow
from engine.core.effects import JournalWrites
from engine.core.events import OrderRequest
from engine.core.groups import parse_groups
from engine.core.model import (
    GroupState,
    IntentStatus,
    LegRole,
    NodeKind,
    NodeStatus,
    OrderStatus,
    OrderType,
    Purpose,
    Side,
)
from engine.store.journal import Journal

HEDGE, RISK = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"
LOT = 75
REST_PAISE = 5  # a bid at one tick: it rests, untouched by the walk


async def build(
    tmp: Path, finished_intents: int, open_orders: int, target: str | None = None
) -> tuple[Path | str, str]:
    """``target``: a postgresql:// URL of an empty, initialised journal (default: a SQLite file)."""
    catalog = load_catalog()
    db: Path | str = target or tmp / f"recovery-{finished_intents}.db"
    exchange = tmp / f"recovery-{finished_intents}-{'pg' if target else 'sqlite'}-exchange.db"
    broker = await PaperBroker.open(exchange, catalog, auto_tick=False)
    template = parse_groups(
        [{"group_id": "X", "legs": [{"role": "HEDGE", "symbol": HEDGE, "side": "BUY", "qty": LOT},
                                    {"role": "RISK", "symbol": RISK, "side": "SELL", "qty": LOT}]}],
        catalog,
    )[0]  # fmt: skip
    writes = JournalWrites()
    try:
        for g in range(finished_intents // 4):
            gid = f"F{g:07d}"
            writes.groups_new[gid] = GroupRuntime(dataclasses.replace(template, group_id=gid), GroupState.COMPLETED)
            node = NodeRow(f"N{gid}", gid, None, 0, NodeKind.LEG, HEDGE, Side.BUY, LOT, LOT)
            node.status, node.filled_qty = NodeStatus.FILLED, LOT
            writes.nodes_new[node.node_id] = node
            legs = (
                ("H", LegRole.HEDGE, Side.BUY, HEDGE, Purpose.HEDGE),
                ("R", LegRole.RISK, Side.SELL, RISK, Purpose.LEG),
                ("X", LegRole.RISK, Side.BUY, RISK, Purpose.EXIT),  # closed: the short bought back
                ("Y", LegRole.HEDGE, Side.SELL, HEDGE, Purpose.EXIT),  # then the hedge sold
            )
            for tag, role, side, symbol, purpose in legs:
                coid = f"{gid}{tag}"
                row = IntentRow(coid, coid, 1, gid, role, 1, symbol, side, LOT, OrderType.MARKET, None)
                row.broker_order_id, row.purpose = f"B{coid}", purpose
                row.hedge_node_id = node.node_id if purpose is Purpose.HEDGE else None
                row.status, row.order_status = IntentStatus.FILLED, OrderStatus.FILLED
                row.filled_qty = row.fills_qty = LOT
                row.ts_ack_exchange_ms = 1
                writes.intents_new[coid] = row
        for g in range(open_orders):
            gid = f"L{g:07d}"
            coid = f"{gid}H"
            ack = await broker.place(OrderRequest(coid, HEDGE, Side.BUY, LOT, OrderType.LIMIT, REST_PAISE))
            spec = dataclasses.replace(template, group_id=gid)
            writes.groups_new[gid] = GroupRuntime(spec, GroupState.HEDGE_SUBMITTED)
            node = NodeRow(f"N{gid}", gid, None, 0, NodeKind.LEG, HEDGE, Side.BUY, LOT, LOT)
            node.status = NodeStatus.WORKING
            writes.nodes_new[node.node_id] = node
            row = IntentRow(coid, coid, 1, gid, LegRole.HEDGE, 1, HEDGE, Side.BUY, LOT, OrderType.LIMIT, REST_PAISE)
            row.broker_order_id, row.hedge_node_id, row.purpose = ack.broker_order_id, node.node_id, Purpose.HEDGE
            row.status, row.order_status = IntentStatus.SENT, OrderStatus.ACCEPTED
            row.ts_ack_exchange_ms = ack.ts_exchange_ms
            writes.intents_new[coid] = row
    finally:
        await broker.close()
    journal = await Journal.open(db, synchronous="NORMAL")
    try:
        async with journal.transaction():
            await journal.flush(writes)
    finally:
        await journal.close()
    return db, f"paper:{exchange}"


PEAK_PREFIX = "td-bench-peak-kb"
# ``trading-desk ARGS`` that, as it exits, writes its own peak RSS (VmHWM, kB) as the last line of
# stderr. wait4's ru_maxrss cannot be used: Linux carries the forking parent's RSS across exec.
_REPORT_PEAK = f"""
import atexit, runpy, sys
def _peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print("{PEAK_PREFIX}", line.split()[1], file=sys.stderr, flush=True)
atexit.register(_peak)
sys.argv = ["trading-desk", *sys.argv[1:]]
runpy.run_module("app.cli", run_name="__main__")
"""


def _child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float, bytes]:
    """Wall seconds, exit code, peak RSS (MB) and output of a ``trading-desk`` process."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _REPORT_PEAK, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    out = bytearray()
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read(1 << 16), b""):  # type: ignore[union-attr]
        out += chunk
    _, status, _usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode:
        raise RuntimeError(f"trading-desk {' '.join(args[:1])} failed: {err.strip().splitlines()[-1:]}")
    peak = [line for line in err.splitlines() if line.startswith(PEAK_PREFIX)]
    return elapsed, proc.returncode, int(peak[-1].split()[-1]) / 1024, bytes(out)


async def figures(
    tmp: Path,
    label: str,
    finished: int,
    open_orders: int,
    journal_json: bool = False,
    target: str | None = None,
    child: tuple[str, dict[str, str]] | None = None,
) -> dict[str, Any]:
    """``target``: a PostgreSQL journal's URL for this process; ``child``: the same journal's URL
    without its password, and the environment that carries it (PGPASSWORD) to the child process,
    never its command line."""
    db, broker = await build(tmp, finished, open_orders, target)
    env: dict[str, str] | None = None
    if child is not None:
        db, env = child
    wall, _, rss, out = await asyncio.to_thread(
        _child, ["recover", "--db", str(db), "--broker", broker, "--role", "operator", "--list", "--json"], env
    )
    summary = json.loads(out)
    orphans = len(summary.get("orphaned", []))
    if orphans:
        raise RuntimeError(f"recovery bench: {orphans} of the {open_orders} live orders came back orphaned")
    result: dict[str, Any] = {
        f"recovery_{label}_finished_intents": finished,
        f"recovery_{label}_open_orders": open_orders,
        f"recovery_{label}_s": round(wall, 3),
        f"recovery_{label}_peak_rss_mb": round(rss, 1),
    }
    if journal_json:
        wall, _, rss, out = await asyncio.to_thread(_child, ["journal", "--db", str(db), "--json"], env)
        result |= {
            "journal_json_s": round(wall, 3),
            "journal_json_mb_printed": round(len(out) / 1e6, 1),
            "journal_json_peak_rss_mb": round(rss, 1),
        }
    return result
