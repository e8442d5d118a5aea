"""Hostile exchanges for integration tests (issue 9): a real `trading-desk exchange --script FILE`
process, an in-process engine on the real websocket client against it, and the invariants every
such test checks at the end, read from the exchange's own state file and the engine's journal.

Typical use::

    ex = ScriptedExchange(tmp_path, [rests_partly(HEDGE), ...])
    exchanges.append(ex)   # the conftest fixture stops it after the test
    ex.start()
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(victim("V"))
        ...                                   # play the sequence, launch the bystander
        await desk.settle(["V", "B"], 15)
    truth = await ex.finish()
    findings = Findings()
    check_hostile(findings, desk, truth, [victim("V"), bystander("B")], served="B")
    findings.report()
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from engine.broker.ws import WsBroker
from engine.catalog import load_catalog
from engine.core.commands import Launch
from engine.core.events import OrderSnapshot
from engine.core.groups import parse_groups
from engine.core.model import Role
from engine.paper.exchange import ExchangeCore
from engine.paper.state import open_state
from engine.runtime.engine import Engine
from engine.runtime.state import Actor, EngineConfig
from engine.store.journal import Journal
from engine.store.report import journal_document
from tests.integration.conftest import REPO, SETTLED, ExchangeProcess

TRADER = Actor("tina", Role.TRADER)
CATALOG = load_catalog()

# The victim group trades these; the well-behaved bystander trades the others (deep books).
HEDGE, RISK = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"
BY_HEDGE, BY_RISK = "NIFTY26DEC23800PE", "NIFTY26DEC24000PE"
HEDGE_LIMIT = "150.00"  # far above the hedge's ~118.90: a LIMIT BUY there takes whatever depth there is
LIVE_AT_EXCHANGE = {"TRIGGER_PENDING", "ACCEPTED", "PARTIALLY_FILLED", "PENDING_CANCEL"}
WORKING = {"ACCEPTED", "PARTIALLY_FILLED", "PENDING_CANCEL"}  # a resting stop is not "working"


# --- groups ------------------------------------------------------------------------------------


def spread(
    group_id: str,
    hedge: str,
    risk: str,
    qty: int,
    *,
    hedge_limit: str | None = None,
    stop_trigger: str | None = None,
) -> dict[str, Any]:
    hedge_leg: dict[str, Any] = {"role": "HEDGE", "symbol": hedge, "side": "BUY", "qty": qty}
    if hedge_limit is not None:
        hedge_leg["limit_price"] = hedge_limit
    group: dict[str, Any] = {
        "group_id": group_id,
        "legs": [hedge_leg, {"role": "RISK", "symbol": risk, "side": "SELL", "qty": qty}],
    }
    if stop_trigger is not None:
        group["stop_loss"] = {"trigger_price": stop_trigger}
    return group


def victim(group_id: str = "V", qty: int = 375, **kw: Any) -> dict[str, Any]:
    """The group the script goes after: a LIMIT hedge (so it can rest partly filled)."""
    kw.setdefault("hedge_limit", HEDGE_LIMIT)
    return spread(group_id, HEDGE, RISK, qty, **kw)


def bystander(group_id: str = "B", qty: int = 150) -> dict[str, Any]:
    """A well-behaved group on other symbols: the engine must keep serving it."""
    return spread(group_id, BY_HEDGE, BY_RISK, qty)


# --- rule builders -----------------------------------------------------------------------------


def rests_partly(symbol: str = HEDGE, *then: dict[str, Any], lots: int = 2, nth: int = 1) -> dict[str, Any]:
    """The nth order placed on ``symbol`` finds exactly ``lots`` lots of depth, then the book goes
    dry: a LIMIT order fills that much and rests, live, with the rest unfilled. ``then``: more
    actions of the same rule (a lost ack, an injected event, ...)."""
    return {
        "on": "place",
        "nth": nth,
        "match": {"symbol": symbol},
        "do": [
            {"market": {"symbol": symbol, "lots_per_level": lots, "levels": 1}, "when": "before"},
            {"market": {"symbol": symbol, "lots_per_level": 0}, "when": "after"},
            *then,
        ],
    }


def refills_on_cancel(symbol: str = HEDGE, *then: dict[str, Any], nth: int = 1) -> dict[str, Any]:
    """After the nth cancel of an order on ``symbol`` the book is deep again (a child order fills).
    ``then``: more actions of the same rule."""
    return {
        "on": "cancel",
        "nth": nth,
        "match": {"symbol": symbol},
        "do": [*then, {"market": {"symbol": symbol, "lots_per_level": 20, "levels": 5}, "when": "after"}],
    }


def probe(on: str, **match: Any) -> dict[str, Any]:
    """A rule that only counts the matching requests (``script_ruleN_seen`` in the stats)."""
    return {"on": on, "nth": 0, "match": match, "do": []}


# --- the exchange ------------------------------------------------------------------------------


@dataclass
class Truth:
    """The exchange's own record, read from its state file once it has stopped."""

    orders: list[OrderSnapshot]
    positions: dict[str, int]
    log: list[tuple[int, Any]]  # every logged event, injected ones included, in seq order
    injected_seqs: frozenset[int] = frozenset()  # the seqs a script injected (from the server's log)

    def orders_on(self, symbol: str) -> list[OrderSnapshot]:
        return [o for o in self.orders if o.symbol == symbol]

    def injected(self) -> list[tuple[int, Any]]:
        """Logged events that are not the venue's own: a script injected them."""
        return [(seq, event) for seq, event in self.log if seq in self.injected_seqs]


class ScriptedExchange(ExchangeProcess):
    """`trading-desk exchange --port 0 --script FILE` as a child process (stderr in a log file)."""

    def __init__(
        self, tmp_path: Path, rules: list[dict[str, Any]], *, name: str = "x", faults: str = "none", seed: int = 1
    ) -> None:
        super().__init__(tmp_path / f"{name}.db", faults, seed, port=0)
        self.rules = rules
        self.script = tmp_path / f"{name}.script.json"
        self.script.write_text(json.dumps(rules, indent=1))

    def start(self, timeout_s: float = 20) -> None:
        assert self.proc is None or self.proc.poll() is not None
        args = ["exchange", "--port", "0", "--state", str(self.state), "--faults", self.faults]
        # the scripts move prices themselves: the independent walk they were written against, no spot model
        args += ["--seed", str(self.seed), "--script", str(self.script), "--market", "none"]
        with self.log.open("a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *args], cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True
            )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                found = re.match(r"exchange listening on ws://127\.0\.0\.1:(\d+) ", line)
                assert found, f"{line!r}\n{self.log.read_text()}"
                self.port = int(found.group(1))
                return
            if self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"exchange did not start within {timeout_s}s:\n{self.log.read_text()}")

    def firings(self) -> list[int]:
        """The script's rules in the order they fired (from the exchange's log)."""
        return [int(n) for n in re.findall(r"script rule (\d+) fired", self.log.read_text())]

    async def finish(self) -> Truth:
        """Stop the exchange (it saves) and read its own record of the day."""
        code = await asyncio.to_thread(self.stop)
        text = self.log.read_text()
        assert code in (0, None), f"the exchange exited {code}:\n{text[-3000:]}"
        truth = await read_truth(self.state)
        truth.injected_seqs = frozenset(int(s) for s in re.findall(r"injected event (\d+):", text))
        return truth


async def read_truth(state: Path) -> Truth:
    store = await open_state(state)
    try:
        saved = await store.load()
        logged = await store.read_events()
    finally:
        await store.close()
    assert saved is not None, f"{state} holds no exchange state"
    core = ExchangeCore.from_state(CATALOG, saved)
    return Truth(core.orders(), core.positions(), logged)


async def control(url: str, req_id: str) -> dict[str, Any]:
    """Send a `time` request with this string req_id on a connection of our own: the engine's
    client uses integer ids, so a rule matching {"req_id": ...} fires only for the test."""
    async with connect(url, proxy=None) as ws:
        await ws.send(json.dumps({"type": "time", "req_id": req_id}))
        async with asyncio.timeout(5):
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("req_id") == req_id:
                    return dict(reply)


# --- the engine --------------------------------------------------------------------------------


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float) -> bool:
    """Poll every 20 ms until ``predicate`` holds (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if await predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)


class Desk:
    """An engine in this process on its own journal, on the websocket client, against ``url``."""

    def __init__(
        self, tmp_path: Path, url: str, config: EngineConfig | None = None, db: str = "j.db", **broker: Any
    ) -> None:
        self.path = tmp_path / db
        self.url = url
        self.config = config or EngineConfig(order_timeout_ms=1500)
        self.broker_options = {"request_timeout_s": 1.0, "unavailable_timeout_s": 20.0, **broker}
        self.problems: list[str] = []  # what went wrong while playing (launches that failed, ...)

    async def __aenter__(self) -> Desk:
        self.journal = await Journal.open(self.path)
        self.broker = await WsBroker.open(self.url, **self.broker_options)
        self.engine = Engine(self.journal, self.broker, CATALOG, self.config)
        await self.engine.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.final = await self.doc()  # what the journal says at the end, for the checks
        self.failure = self.engine.failure
        self.last_seq = self.broker.last_seq
        self.rejected = await self.rejected_events()
        try:
            self.steps = await self.clock_steps()
        except Exception:  # a journal without CLOCK rows (before schema 5) recorded none
            self.steps = []
        await self.engine.stop()
        await self.broker.close()
        await self.journal.close()

    async def launch(self, *groups: dict[str, Any], wait: bool = True) -> bool:
        """Launch (``wait``: until the engine is quiet again); False (and a problem noted) if the
        engine refused or had stopped."""
        try:
            async with asyncio.timeout(15):
                for spec in parse_groups(list(groups), CATALOG):
                    if wait:
                        await self.engine.launch(spec, TRADER)
                    else:
                        await self.engine.execute(Launch(spec, TRADER))
        except Exception as exc:
            self.problems.append(f"launching {[g['group_id'] for g in groups]} failed: {exc!r}")
            return False
        return True

    async def doc(self) -> dict[str, Any]:
        return await journal_document(self.journal)

    async def group_state(self, group_id: str) -> str | None:
        rows = await self.journal.fetch("SELECT state FROM groups WHERE group_id = ?", (group_id,))
        return str(rows[0][0]) if rows else None

    async def intents(self, group_id: str, role: str | None = None) -> list[dict[str, Any]]:
        doc = await self.doc()
        return [i for i in doc["intents"] if i["group_id"] == group_id and role in (None, i["role"])]

    async def first_hedge(self, group_id: str = "V") -> dict[str, Any] | None:
        rows = await self.intents(group_id, "HEDGE")
        return rows[0] if rows else None

    async def order_transitions(self, client_order_id: str) -> list[dict[str, Any]]:
        rows = await self.journal.fetch(
            "SELECT from_state, to_state, filled_qty, cause, ts_exchange_ms, ts_local_ns FROM transitions"
            " WHERE entity = 'ORDER' AND entity_id = ? ORDER BY id",
            (client_order_id,),
        )
        keys = ("from_state", "to_state", "filled_qty", "cause", "ts_exchange_ms", "ts_local_ns")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def clock_steps(self) -> list[tuple[str, str, str]]:
        """The exchange clock steps the journal recorded: (offset before, after, cause)."""
        rows = await self.journal.fetch(
            "SELECT from_state, to_state, cause FROM transitions WHERE entity = 'CLOCK' ORDER BY id"
        )
        return [(str(a), str(b), str(c)) for a, b, c in rows]

    async def rejected_events(self) -> list[dict[str, Any]]:
        cols = [str(r[1]) for r in await self.journal.fetch("PRAGMA table_info(rejected_events)")]
        rows = await self.journal.fetch(f"SELECT {', '.join(cols)} FROM rejected_events ORDER BY id")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    async def server_stats(self) -> dict[str, int]:
        return await self.broker.server_stats()

    async def rule_seen(self, number: int) -> int:
        return (await self.server_stats()).get(f"script_rule{number}_seen", 0)

    async def rule_fired(self, number: int) -> int:
        return (await self.server_stats()).get(f"script_rule{number}_fired", 0)

    async def wait_fired(self, number: int, timeout_s: float = 10, times: int = 1) -> bool:
        async def fired() -> bool:
            return self.engine.failure is not None or await self.rule_fired(number) >= times

        return await wait_for(fired, timeout_s) and self.engine.failure is None

    async def settle(self, group_ids: list[str], timeout_s: float, *, final: dict[str, set[str]] | None = None) -> bool:
        """Until every group is HEDGED, terminal or in an open escalation (a group in ``final``:
        in one of those states, or escalated), the engine is quiet, and the journal's positions
        are the exchange's; False after ``timeout_s`` or if the engine stopped."""
        wanted = {g: (final or {}).get(g, SETTLED) for g in group_ids}

        async def done() -> bool:
            if self.engine.failure is not None:
                return True
            doc = await self.doc()
            escalated = {e["group_id"] for e in doc["escalations"] if e["status"] != "RESOLVED"}
            states = {g["group_id"]: g["state"] for g in doc["groups"]}
            if not all(states.get(g) in ok or g in escalated for g, ok in wanted.items()):
                return False
            return self.engine.settled() and doc["positions"] == await self.broker.positions()

        return await wait_for(done, timeout_s) and self.engine.failure is None


# --- the checks --------------------------------------------------------------------------------


class Findings:
    """Every broken requirement of a run, reported together (one failure shows them all)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []  # context shown with the problems, if there are any

    def check(self, ok: bool, problem: str) -> bool:
        if not ok:
            self.problems.append(problem)
        return ok

    def report(self) -> None:
        assert not self.problems, "\n- " + "\n- ".join(self.problems) + "".join(f"\n  ({n})" for n in self.notes)


@dataclass(frozen=True)
class _Legs:
    group_id: str
    hedge: str
    risk: str
    hedge_qty: int
    risk_qty: int


def _legs(group: dict[str, Any]) -> _Legs:
    roles = {leg["role"]: leg for leg in group["legs"]}
    return _Legs(
        group["group_id"],
        roles["HEDGE"]["symbol"],
        roles["RISK"]["symbol"],
        int(roles["HEDGE"]["qty"]),
        int(roles["RISK"]["qty"]),
    )


def _trade_seq(trade_id: str) -> int:
    assert re.fullmatch(r"T\d+", trade_id), f"not a trade id of the venue: {trade_id!r}"
    return int(trade_id[1:])


def exposure_path(truth: Truth, group: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(trade id, hedge long, risk short) after each of the venue's fills on the group's symbols,
    in execution order: the exchange's own order log."""
    legs = _legs(group)
    fills = sorted((f for o in truth.orders for f in o.fills), key=lambda f: _trade_seq(f.trade_id))
    long = short = 0
    path = []
    for f in fills:
        if f.symbol == legs.hedge:
            long += f.side.sign * f.qty
        elif f.symbol == legs.risk:
            short -= f.side.sign * f.qty
        else:
            continue
        path.append((f.trade_id, long, short))
    return path


def check_hostile(
    findings: Findings, desk: Desk, truth: Truth, groups: list[dict[str, Any]], *, served: str | None
) -> None:
    """The five invariants of issue 9, plus: the engine did not stop, no order is left working at
    the exchange and no group is left unfinished without a person knowing (an open escalation).
    ``served``: the bystander, which must be HEDGED."""
    doc = desk.final
    findings.notes.append(
        "groups at the end: " + "; ".join(f"{g['group_id']} {g['state']} {g['reason']}".strip() for g in doc["groups"])
    )
    findings.check(desk.failure is None, f"the engine stopped: {desk.failure!r}")
    for problem in desk.problems:
        findings.check(False, problem)
    symbols = [s for g in groups for s in (_legs(g).hedge, _legs(g).risk)]
    assert len(symbols) == len(set(symbols)), "test setup: the groups must trade distinct symbols"

    ids = Counter(o.client_order_id for o in truth.orders)
    twice = sorted(c for c, n in ids.items() if n > 1)
    findings.check(not twice, f"client order id(s) sent twice to the exchange: {twice}")

    findings.check(
        doc["positions"] == truth.positions,
        f"journal positions {doc['positions']} != exchange positions {truth.positions}",
    )

    open_escalations = [e for e in doc["escalations"] if e["status"] != "RESOLVED"]
    for group in groups:
        legs = _legs(group)
        for trade_id, long, short in exposure_path(truth, group):
            if short * legs.hedge_qty > long * legs.risk_qty:
                findings.check(
                    False,
                    f"{legs.group_id}: after exchange fill {trade_id} risk sold {short} > hedge confirmed {long} "
                    f"(ratio {legs.risk_qty}:{legs.hedge_qty})",
                )
                break
        net_long = truth.positions.get(legs.hedge, 0)
        net_short = -truth.positions.get(legs.risk, 0)
        uncovered = net_short - max(0, net_long) * legs.risk_qty // legs.hedge_qty
        escalated = sum(e["unhedged_qty"] for e in open_escalations if e["group_id"] == legs.group_id)
        findings.check(
            uncovered <= 0 or escalated >= uncovered,
            f"{legs.group_id}: {uncovered} short unhedged at the exchange, open escalations cover {escalated}",
        )
    named = " ".join(f"{e.get('client_order_id') or ''} {e.get('reason') or ''}" for e in open_escalations)
    journaled = {i["client_order_id"]: i for i in doc["intents"]}
    for o in truth.orders:
        if o.status.value in WORKING and o.client_order_id not in named:
            mine = journaled.get(o.client_order_id, {})
            findings.check(
                False,
                f"order {o.broker_order_id} ({o.client_order_id}, {o.side.value} {o.qty} {o.symbol}) is left "
                f"{o.status.value} at the exchange with {o.filled_qty} filled and no open escalation names it "
                f"(the journal has it {mine.get('order_status')} {mine.get('filled_qty')})",
            )
    escalated_groups = {e["group_id"] for e in open_escalations}
    silent = [
        f"{g['group_id']} {g['state']}"
        for g in doc["groups"]
        if g["state"] not in SETTLED and g["group_id"] not in escalated_groups
    ]
    findings.check(not silent, f"group(s) stuck in silence (neither HEDGED, terminal nor escalated): {silent}")
    if served is not None:
        state = next((g["state"] for g in doc["groups"] if g["group_id"] == served), None)
        findings.check(state == "HEDGED", f"the well-behaved group {served} did not reach HEDGED (it is {state})")


def group_state(desk: Desk, group_id: str) -> str | None:
    return next((g["state"] for g in desk.final["groups"] if g["group_id"] == group_id), None)


def elapsed_ms(transitions: list[dict[str, Any]], start: Callable[[dict[str, Any]], bool], end: str) -> float | None:
    """Local (monotonic) ms from the first transition that ``start`` picks to the first one into
    ``end``; None if either is missing."""
    first = next((t for t in transitions if start(t)), None)
    last = next((t for t in transitions if t["to_state"] == end), None)
    if first is None or last is None:
        return None
    return (int(last["ts_local_ns"]) - int(first["ts_local_ns"])) / 1e6
