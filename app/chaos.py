"""`trading-desk chaos`: real processes on loopback, killed with SIGKILL, checked after every round.

A real `trading-desk exchange` (on its state file, with a fault profile) and a real
`trading-desk engine` (on a SQLite journal) run as child processes. Each round submits a few
groups to the live engine as command rows (as a desk would) and SIGKILLs the engine at a random
moment; in some rounds the exchange is SIGKILLed too and restarted on its state file. The engine
is restarted (recovery), an operator approves or abandons whatever it orphaned through
`trading-desk recover`, and once the desk is quiet the invariants are checked from what
`trading-desk journal --json` and `trading-desk exchange-report --json` print:

  1. every order the exchange holds has an intent in the journal;
  2. no client order id reached the exchange twice;
  3. per order, the journal's filled quantity equals the exchange's (no fill booked twice);
  4. no intent, order or group state moved backwards since the previous round;
  5. journal positions equal exchange positions;
  6. every group's short exposure at the exchange is hedged or has an unresolved escalation;
  7. a MARKET fallback exists only for a confirmed-cancelled stop, and only for its remainder.

The kill moments come from ``--seed`` (a random delay after submitting); what the processes do
in between depends on the machine's timing, so a chaos run is not replayable the way a
simulation seed is: it checks the real processes, the simulator checks every interleaving."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import UsageError
from engine.catalog import load_catalog
from engine.core.commands import Actor, CloseGroup, Launch
from engine.core.groups import parse_group
from engine.core.lifecycle import PATH
from engine.core.model import Role
from engine.paper.faults import PRESETS
from engine.runtime import command_rows
from engine.store.journal import Journal
from engine.store.users import os_user

REPO = Path(__file__).resolve().parents[1]
SHAPES = (
    ("NIFTY26DEC24200CE", "NIFTY26DEC24000CE", 150),
    ("NIFTY26DEC23800PE", "NIFTY26DEC24000PE", 2250),
    ("BANKNIFTY26DEC52500CE", "BANKNIFTY26DEC52000CE", 1050),
    ("NIFTY26DEC25000CE", "NIFTY26DEC24100CE", 750),
)
WORKING = {"SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "PENDING_CANCEL", "UNKNOWN", "INTENT"}
DECIDED = {"ABANDONED", "RETRY_APPROVED"}  # an operator closed the intent: nothing of it is in flight
TERMINAL_GROUPS = {"COMPLETED", "REJECTED", "FAILED", "CANCELLED"}
TERMINAL_ORDERS = {"FILLED", "CANCELLED", "REJECTED"}
_RANK = {state.value: i for i, state in enumerate(PATH)}


def add_parser(sub: Any) -> None:
    c = sub.add_parser("chaos", help="SIGKILL the engine (and at times the exchange) in real processes; check")
    c.add_argument("--kills", type=int, default=10, help="engine kills (rounds), default 10")
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--faults", default="flaky", choices=sorted(PRESETS), help="the exchange's fault profile")
    c.add_argument("--exchange-kill-rate", type=float, default=0.2, help="share of rounds that kill the exchange")
    c.add_argument("--keep", help="keep the run's files in this directory (default: a temporary one, removed)")
    c.add_argument("--json", action="store_true")


class ChaosFailure(AssertionError):
    pass


class Child:
    """A `trading-desk` subcommand as a child process; stderr to a log file."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name, self.args, self.log = name, args, log
        self.proc: subprocess.Popen[str] | None = None

    def start(self, ready: str, timeout_s: float = 30) -> float:
        started = time.monotonic()
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *self.args],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=err,
                text=True,
            )
        while time.monotonic() - started < timeout_s:
            text = self.log.read_text(errors="replace")[offset:]
            if ready in text:
                return time.monotonic() - started
            if self.proc.poll() is not None and ready not in self.log.read_text(errors="replace")[offset:]:
                raise ChaosFailure(f"{self.name} exited {self.proc.returncode}:\n{self._tail()}")
            time.sleep(0.02)  # polling a child's log for its ready line, not a timing decision
        self.kill9()  # never leave a half-started child behind
        raise ChaosFailure(f"{self.name} not ready within {timeout_s}s:\n{self._tail()}")

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()

    def _tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])


def _td(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Totals:
    rounds: int = 0
    engine_kills: int = 0
    exchange_kills: int = 0
    groups_submitted: int = 0
    closes_submitted: int = 0
    orphans_seen: int = 0
    orphans_approved: int = 0
    orphans_abandoned: int = 0
    exchange_orders: int = 0
    recovery_s: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


class Chaos:
    def __init__(self, work: Path, seed: int, faults: str, exchange_kill_rate: float) -> None:
        self.work, self.rng = work, random.Random(f"chaos:{seed}")
        self.journal = work / "journal.db"
        self.port = _free_port()
        self.broker = f"ws://127.0.0.1:{self.port}"
        state = work / "exchange.db"
        self.exchange = Child(
            "exchange",
            ["exchange", "--port", str(self.port), "--state", str(state), "--faults", faults, "--seed", str(seed)],
            work / "exchange.log",
        )
        self.engine = Child(
            "engine", ["engine", "--db", str(self.journal), "--broker", self.broker], work / "engine.log"
        )
        self.exchange_kill_rate = exchange_kill_rate
        self.catalog = load_catalog()
        self.totals = Totals()
        self.seen_orphans: set[str] = set()
        self.previous: dict[str, Any] | None = None
        self.states: dict[str, int] = {}
        self.next_group = 0

    def run(self, kills: int) -> Totals:
        try:
            self.exchange.start("server listening on")
            self.totals.recovery_s.append(self.engine.start("engine running on"))
            for _ in range(kills):
                self._round()
            self._quiesce()
            self._check()
        finally:
            self.engine.stop()
            self.exchange.stop()
        return self.totals

    def _round(self) -> None:
        t = self.totals
        t.rounds += 1
        asyncio.run(self._submit(self.rng.randint(1, 4)))
        time.sleep(self.rng.uniform(0.0, 1.2))  # the kill lands at a random moment of the work
        self.engine.kill9()
        t.engine_kills += 1
        if self.rng.random() < self.exchange_kill_rate:
            self.exchange.kill9()
            t.exchange_kills += 1
            self.exchange.start("server listening on")
        t.recovery_s.append(self.engine.start("engine running on"))
        self._quiesce()
        self._check()

    async def _submit(self, count: int) -> None:
        journal = await Journal.open(self.journal)
        try:
            actor = Actor(os_user(), Role.TRADER)
            # A trader closes some positions each round, so margin frees up (and exits get killed too).
            hedged = [g for (g,) in await journal.fetch("SELECT group_id FROM groups WHERE state='HEDGED'")]
            for gid in self.rng.sample(hedged, min(len(hedged), self.rng.randint(0, 3))):
                action, args = command_rows.encode(CloseGroup(gid, actor))
                await command_rows.submit(
                    journal.db, command_rows.new_command_id(), action, args, Role.TRADER, os_user()
                )
                self.totals.closes_submitted += 1
            for _ in range(count):
                hedge, risk, qty = SHAPES[self.rng.randrange(len(SHAPES))]
                gid = f"C{self.next_group:04d}"
                self.next_group += 1
                raw = {
                    "group_id": gid,
                    "legs": [
                        {"role": "HEDGE", "symbol": hedge, "side": "BUY", "qty": qty},
                        {"role": "RISK", "symbol": risk, "side": "SELL", "qty": qty},
                    ],
                }
                action, args = command_rows.encode(Launch(parse_group(raw, self.catalog), actor))
                cid = command_rows.new_command_id()
                await command_rows.submit(journal.db, cid, action, args, Role.TRADER, os_user())
                self.totals.groups_submitted += 1
        finally:
            await journal.close()

    def _doc(self) -> dict[str, Any]:
        run = _td("journal", "--db", str(self.journal), "--json")
        if run.returncode:
            raise ChaosFailure(f"journal --json failed: {run.stderr}")
        return dict(json.loads(run.stdout))

    def _quiesce(self, timeout_s: float = 60) -> None:
        """Until the desk is quiet: nothing working, no orphan left undecided, nothing moving."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            doc = self._doc()
            orphans = [i for i in doc["intents"] if i["status"] == "ORPHANED"]
            if orphans:
                self._operator(orphans)
                last = None
                continue
            working = [
                i
                for i in doc["intents"]
                if i["status"] not in DECIDED
                and (i["order_status"] in WORKING or i["status"] in ("PENDING", "UNKNOWN"))
            ]
            fills: dict[str, int] = {}
            for f in doc.get("fills", []):
                fills[f["client_order_id"]] = fills.get(f["client_order_id"], 0) + f["qty"]
            unreported = [i for i in doc["intents"] if fills.get(i["client_order_id"], 0) != i["filled_qty"]]
            waiting = _commands_waiting(self.journal)
            # prices go on moving on a quiet desk: the marks and P&L they drive are left out
            settled = {k: v for k, v in doc.items() if k not in ("marks", "pnl")}
            if not working and not unreported and not waiting and settled == last:
                return
            last = settled
            time.sleep(0.3)  # the engine works on its own clock; look again
        raise ChaosFailure(f"not quiet within {timeout_s}s:\n{self.engine._tail()}")

    def _operator(self, orphans: list[dict[str, Any]]) -> None:
        """An operator decides each orphan through `recover`: retry a first attempt, else abandon."""
        for o in orphans:
            coid = o["client_order_id"]
            if coid not in self.seen_orphans:
                self.seen_orphans.add(coid)
                self.totals.orphans_seen += 1
            approve = o.get("attempt", 1) == 1 and self.rng.random() < 0.7
            flag = "--approve" if approve else "--abandon"
            run = _td("recover", "--db", str(self.journal), "--broker", self.broker, "--role", "operator", flag, coid)
            if run.returncode == 0:
                if approve:
                    self.totals.orphans_approved += 1
                else:
                    self.totals.orphans_abandoned += 1
            elif approve:  # refused (e.g. its group was cancelled meanwhile): abandon it instead
                again = _td("recover", "--db", str(self.journal), "--broker", self.broker, "--role", "operator",
                            "--abandon", coid)  # fmt: skip
                if again.returncode:
                    raise ChaosFailure(f"operator could neither approve nor abandon {coid}: {again.stderr}")
                self.totals.orphans_abandoned += 1

    def _check(self) -> None:
        doc = self._doc()
        run = _td("exchange-report", "--broker", self.broker, "--json")
        if run.returncode:
            raise ChaosFailure(f"exchange-report failed: {run.stderr}")
        venue = json.loads(run.stdout)
        problems = check_invariants(doc, venue, self.previous)
        self.totals.exchange_orders = len(venue["orders"])
        self.states = {}
        for g in doc["groups"]:
            self.states[g["state"]] = self.states.get(g["state"], 0) + 1
        self.previous = doc
        if problems:
            self.totals.violations.extend(problems)
            raise ChaosFailure(f"round {self.totals.rounds}: " + "; ".join(problems))


def _commands_waiting(journal: Path) -> int:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as conn:
        (n,) = conn.execute("SELECT COUNT(*) FROM commands WHERE status IN ('SUBMITTED','EXECUTING')").fetchone()
    return int(n)


def check_invariants(doc: dict[str, Any], venue: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    """Every invariant a quiet desk must show, from the two reports (and the previous round's)."""
    problems: list[str] = []
    intents = {i["client_order_id"]: i for i in doc["intents"]}
    orders = venue["orders"]
    ids = [o["client_order_id"] for o in orders]
    for o in orders:
        if o["client_order_id"] not in intents:
            problems.append(f"1: exchange order {o['client_order_id']} has no intent in the journal")
    if len(ids) != len(set(ids)):
        problems.append(f"2: client ids sent twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    at_venue = {o["client_order_id"]: o for o in orders}
    for coid, i in intents.items():
        o = at_venue.get(coid)
        if o is not None and i["filled_qty"] != o["filled_qty"]:
            problems.append(f"3: {coid} filled {i['filled_qty']} in the journal, {o['filled_qty']} at the exchange")
    if previous is not None:
        before = {i["client_order_id"]: i for i in previous["intents"]}
        for coid, i in intents.items():
            b = before.get(coid)
            if b and b["order_status"] in TERMINAL_ORDERS and i["order_status"] != b["order_status"]:
                problems.append(f"4: {coid} went from {b['order_status']} to {i['order_status']}")
            if b and i["filled_qty"] < b["filled_qty"]:
                problems.append(f"4: {coid} filled went from {b['filled_qty']} to {i['filled_qty']}")
        groups_before = {g["group_id"]: g["state"] for g in previous["groups"]}
        for g in doc["groups"]:
            was = groups_before.get(g["group_id"])
            if was in TERMINAL_GROUPS and g["state"] != was:
                problems.append(f"4: group {g['group_id']} left {was} for {g['state']}")
            elif was in _RANK and g["state"] in _RANK and _RANK[g["state"]] < _RANK[was]:
                problems.append(f"4: group {g['group_id']} went back from {was} to {g['state']}")
    positions = {k: v for k, v in doc["positions"].items() if v}
    venue_positions = {k: v for k, v in venue["positions"].items() if v}
    if positions != venue_positions:
        problems.append(f"5: journal positions {positions} != exchange positions {venue_positions}")
    problems += _exposure(doc, at_venue)
    problems += _fallbacks(doc, at_venue)
    return problems


def _exposure(doc: dict[str, Any], at_venue: dict[str, Any]) -> list[str]:
    unresolved = {e.get("group_id") for e in doc["escalations"] if e["status"] != "RESOLVED"}
    out = []
    for g in doc["groups"]:
        gid = g["group_id"]
        mine = [i for i in doc["intents"] if i["group_id"] == gid]
        filled = {i["client_order_id"]: at_venue.get(i["client_order_id"], {}).get("filled_qty", 0) for i in mine}
        short = sum(filled[i["client_order_id"]] for i in mine if i["role"] == "RISK" and i["purpose"] == "LEG")
        short -= sum(filled[i["client_order_id"]] for i in mine if i["role"] == "RISK" and i["purpose"] != "LEG")
        held = sum(
            filled[i["client_order_id"]] * (1 if i["side"] == "BUY" else -1) for i in mine if i["role"] == "HEDGE"
        )
        hedge_qty, risk_qty = g.get("hedge_qty") or 1, g.get("risk_qty") or 1
        need = -(-max(0, short) * hedge_qty // risk_qty)
        if held < need and gid not in unresolved:
            out.append(f"6: group {gid} ({g['state']}) is short {short} with hedge {held} and no open escalation")
    return out


def _fallbacks(doc: dict[str, Any], at_venue: dict[str, Any]) -> list[str]:
    out = []
    for f in (i for i in doc["intents"] if i["purpose"] == "FALLBACK"):
        stops = [i for i in doc["intents"] if i["group_id"] == f["group_id"] and i["purpose"] == "STOP"]
        if any(s["order_status"] != "CANCELLED" for s in stops):
            out.append(f"7: fallback {f['client_order_id']} while a stop of {f['group_id']} is not cancelled")
        remainder = sum(s["qty"] - at_venue.get(s["client_order_id"], {}).get("filled_qty", 0) for s in stops)
        if f["qty"] > remainder:
            out.append(f"7: fallback {f['client_order_id']} for {f['qty']} > stops' remainder {remainder}")
    return out


async def run_chaos(args: argparse.Namespace) -> int:
    if args.kills < 1 or not 0 <= args.exchange_kill_rate <= 1:
        raise UsageError("--kills must be at least 1 and --exchange-kill-rate within [0, 1]")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="td-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    chaos = Chaos(work, args.seed, args.faults, args.exchange_kill_rate)
    failure = ""
    try:
        totals = await asyncio.to_thread(chaos.run, args.kills)
    except ChaosFailure as exc:
        failure, totals = str(exc), chaos.totals
    finally:
        if not args.keep and not failure:
            shutil.rmtree(work, ignore_errors=True)
    rec = sorted(totals.recovery_s)
    doc = {
        "ok": not failure,
        "failure": failure,
        "seed": args.seed,
        "faults": args.faults,
        "rounds": totals.rounds,
        "engine_kills": totals.engine_kills,
        "exchange_kills": totals.exchange_kills,
        "groups_submitted": totals.groups_submitted,
        "closes_submitted": totals.closes_submitted,
        "groups_by_state": chaos.states,
        "exchange_orders": totals.exchange_orders,
        "orphans_seen": totals.orphans_seen,
        "orphans_approved": totals.orphans_approved,
        "orphans_abandoned": totals.orphans_abandoned,
        "engine_restart_s_p50": round(rec[len(rec) // 2], 3) if rec else None,
        "engine_restart_s_max": round(rec[-1], 3) if rec else None,
        "wall_s": round(time.monotonic() - started, 1),
        "files": str(work) if (args.keep or failure) else "",
    }
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        verdict = "OK" if doc["ok"] else f"FAILED: {failure}"
        print(
            f"chaos {verdict}: {doc['engine_kills']} engine kills, {doc['exchange_kills']} exchange kills, "
            f"{doc['groups_submitted']} groups, {doc['exchange_orders']} orders at the exchange, "
            f"{doc['orphans_seen']} orphans ({doc['orphans_approved']} approved, {doc['orphans_abandoned']} "
            f"abandoned); restart p50 {doc['engine_restart_s_p50']} s; {doc['wall_s']} s"
        )
    return 0 if doc["ok"] else 1
