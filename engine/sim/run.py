"""Deterministic simulation of the whole engine (`trading-desk simulate`).

One seed is one simulated trading session. The real runtime (``Engine`` in lockstep), the real
core, the real journal (a SQLite file, the production schema and migrations) and the real
recovery path run against the paper exchange's core (``SimVenue``) on one virtual clock. The
seed decides everything: the groups and when they are launched, the people's commands, the
venue's faults, the hostile events, and when the engine crashes. A crash drops everything the
journal has not committed (the connection is abandoned mid-transaction) and starts a new
engine on the same file through recovery, exactly as a restart after kill -9 does.

After every step the invariant checker looks (engine.sim.invariants); at quiescence it checks
positions, fills and exposure against the venue's books. A run's trace (every send, cancel,
command and its answer, fault and crash, with virtual times) hashes to one value: the same seed
gives the same hash, on any wall clock. A failing seed is shrunk by dropping scheduled actions
while the same invariant still fails, and prints a command that replays it exactly."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.audit.replay import replay
from engine.catalog import load_catalog
from engine.core.book import IntentRow
from engine.core.commands import (
    Abandon,
    Acknowledge,
    Actor,
    ApproveRetry,
    CancelGroup,
    CloseGroup,
    Command,
    CommandError,
    Launch,
    ManualHedge,
    RoleError,
    SetTradingState,
)
from engine.core.events import OrderRequest
from engine.core.exposure import group_fills, hedge_needed_qty
from engine.core.groups import GroupSpecError, parse_group
from engine.core.inputs import BrokerEvents
from engine.core.instruments import Instrument
from engine.core.model import EscalationStatus, IntentStatus, Role, Side
from engine.core.state import EngineConfig
from engine.core.trading_state import TradingState
from engine.runtime.engine import Engine
from engine.runtime.ids import seeded_ids
from engine.runtime.lockstep import VirtualClock
from engine.sim.invariants import Checker, Violation
from engine.sim.planted import planted
from engine.sim.venue import HOSTILE_KINDS, SimVenue, VenueFaults
from engine.store.journal import Journal
from engine.store.users import os_user

TICK_MS = 50
SESSION_MS = 90_000  # launches and people's commands fall in the first 60 s; faults all session
SETTLE_LIMIT_MS = 180_000
IDLE_STEP_MS = 500  # the longest step while nothing is in flight but orders rest at the venue

# (hedge, risk, qty, stop-loss trigger in rupees or None): spreads of every kind the desk
# trades, including legs above the freeze quantity (sliced) and thin wings (partial hedges).
SHAPES: tuple[tuple[str, str, int, str | None], ...] = (
    ("NIFTY26DEC24200CE", "NIFTY26DEC24000CE", 150, None),
    ("NIFTY26DEC24200CE", "NIFTY26DEC24000CE", 300, "230.00"),
    ("NIFTY26DEC23800PE", "NIFTY26DEC24000PE", 2250, None),
    ("BANKNIFTY26DEC52500CE", "BANKNIFTY26DEC52000CE", 1050, None),
    ("NIFTY26DEC25000CE", "NIFTY26DEC24100CE", 750, None),
    ("NIFTY26DEC23000PE", "NIFTY26DEC23900PE", 600, "215.00"),
    ("FINNIFTY26DEC24000CE", "FINNIFTY26DEC24000PE", 65, None),  # refused: not a spread
)


@dataclass(frozen=True, slots=True)
class Profile:
    """A fault mix: the venue's rates, and how many of each scheduled fault a session gets."""

    name: str
    venue: VenueFaults
    crashes: int = 0  # engine crashes between steps
    armed_crashes: int = 0  # engine crashes at the next crash point (mid-cycle, mid-send)
    disconnects: int = 0
    clock_steps: int = 0
    hostile: int = 0
    thin_books: int = 0


PROFILES: dict[str, Profile] = {
    "none": Profile("none", VenueFaults()),
    "flaky": Profile(
        "flaky",
        VenueFaults(
            duplicate_rate=0.1,
            reorder_window=3,
            max_delay_ms=20,
            lost_ack_rate=0.05,
            clock_skew_ms=150,
            replay_overlap=1,
            fill_lag_rate=0.05,
        ),
        crashes=1,
        armed_crashes=1,
        disconnects=1,
    ),
    "chaos": Profile(
        "chaos",
        VenueFaults(
            duplicate_rate=0.2,
            reorder_window=5,
            max_delay_ms=50,
            lost_ack_rate=0.1,
            reject_rate=0.02,
            error_rate=0.03,
            cancel_latency_steps=2,
            replay_overlap=3,
            clock_skew_ms=-1500,
            fill_lag_rate=0.15,
        ),
        crashes=2,
        armed_crashes=2,
        disconnects=2,
        clock_steps=2,
        hostile=6,
        thin_books=2,
    ),
}


@dataclass(frozen=True, slots=True)
class Action:
    at_ms: int
    kind: str
    args: tuple[Any, ...] = ()

    def describe(self) -> str:
        return f"{self.kind}{'(' + ', '.join(map(str, self.args)) + ')' if self.args else ''}"


def schedule(seed: int, profile: Profile) -> list[Action]:
    """The session's plan, from the seed alone."""
    rng = random.Random(f"schedule:{seed}")
    plan: list[Action] = []
    for i in range(rng.randint(3, 8)):
        shape = rng.randrange(len(SHAPES)) if rng.random() < 0.95 else len(SHAPES) - 1
        at = rng.randrange(0, 60_000)
        plan.append(Action(at, "launch", (f"S{seed}G{i}", shape)))
        if SHAPES[shape][3] and rng.random() < 0.6:
            # the short leg's market gaps up through the stop, often into a thin book: the stop
            # triggers, its limit may not fill, and the broker-time fallback rules run
            risk_symbol = SHAPES[shape][1]
            gap_at = at + rng.randrange(3_000, 20_000)
            if rng.random() < 0.5:
                plan.append(Action(gap_at - TICK_MS, "thin", (risk_symbol, rng.randint(0, 1))))
            plan.append(Action(gap_at, "price", (risk_symbol, rng.choice((12, 25, 40)))))
    people = [
        ("halt", 0.4), ("reduce", 0.2), ("close", 0.6), ("cancel", 0.3), ("manual_hedge", 0.5),
        ("acknowledge", 0.5), ("approve", 0.6), ("abandon", 0.3),
    ]  # fmt: skip
    for kind, chance in people:
        while rng.random() < chance:
            at = rng.randrange(1_000, 60_000)
            plan.append(Action(at, kind, (rng.randrange(1_000_000),)))
            if kind in ("halt", "reduce"):
                plan.append(Action(at + rng.randrange(500, 8_000), "resume"))
            chance /= 2
    symbols = sorted({s for h, r, _, _ in SHAPES for s in (h, r)})
    for _ in range(rng.randint(0, 2)):
        plan.append(Action(rng.randrange(2_000, 80_000), "price", (rng.choice(symbols), rng.choice((-8, 6, 12, 25)))))
    for _ in range(profile.thin_books):
        plan.append(Action(rng.randrange(0, 60_000), "thin", (rng.choice(symbols), rng.randint(0, 2))))
    for _ in range(rng.randint(0, profile.crashes)):
        plan.append(Action(rng.randrange(500, SESSION_MS), "crash"))
    for _ in range(rng.randint(0, profile.armed_crashes)):
        plan.append(Action(rng.randrange(0, SESSION_MS), "arm_crash", (rng.randrange(1, 6),)))
    for _ in range(rng.randint(0, profile.disconnects)):
        at = rng.randrange(500, SESSION_MS - 10_000)
        plan.append(Action(at, "disconnect"))
        plan.append(Action(at + rng.randrange(50, 6_000), "reconnect"))
    for _ in range(profile.clock_steps):
        plan.append(
            Action(rng.randrange(1_000, SESSION_MS), "clock_step", (rng.choice((-1, 1)) * rng.randint(1_500, 20_000),))
        )
    for _ in range(rng.randint(profile.hostile // 2, profile.hostile)):
        plan.append(
            Action(rng.randrange(500, SESSION_MS), "hostile", (rng.choice(HOSTILE_KINDS), rng.randrange(1_000_000)))
        )
    plan.sort(key=lambda a: a.at_ms)  # stable: equal times keep the order they were drawn in
    return plan


class SimCrash(BaseException):
    """The simulated kill -9 (a BaseException: nothing in the engine may swallow it)."""


@dataclass
class SeedResult:
    seed: int
    profile: str
    ok: bool
    trace_hash: str
    violation: str = ""
    invariant: int | None = None
    trace: list[str] = field(default_factory=list)
    settled: bool = True
    sim_ms: int = 0
    wall_s: float = 0.0
    stats: dict[str, int] = field(default_factory=dict)
    dropped: tuple[int, ...] = ()
    planted: str = ""
    audit: str = ""  # with run_seed(audit=True): "" when replaying the journal reproduced it, else the defect

    def to_json(self) -> dict[str, Any]:
        out = {
            "seed": self.seed,
            "profile": self.profile,
            "ok": self.ok,
            "trace_hash": self.trace_hash,
            "settled": self.settled,
            "sim_ms": self.sim_ms,
            "wall_s": round(self.wall_s, 4),
            "stats": self.stats,
        }
        if not self.ok:
            out.update(violation=self.violation, invariant=self.invariant, dropped=list(self.dropped))
        if self.audit:
            out["audit"] = self.audit
        return out


class Session:
    def __init__(
        self,
        seed: int,
        profile: Profile,
        workdir: Path,
        *,
        wall_base_ms: int,
        drop: frozenset[int] = frozenset(),
        catalog: dict[str, Instrument] | None = None,
    ) -> None:
        self.seed, self.profile = seed, profile
        self.catalog = catalog if catalog is not None else load_catalog()
        self.path = workdir / f"sim-{seed}.db"
        self.clock = VirtualClock()
        self.wall_base_ms = wall_base_ms
        self.plan = [a for i, a in enumerate(schedule(seed, profile)) if i not in drop]
        self.rng = random.Random(f"people:{seed}")
        self.trace: list[str] = []
        self.venue = SimVenue(
            self.catalog, seed, profile.venue, self.clock.now_ms, 1_780_000_000_000, self._on_send, self._say
        )
        self.downtime = random.Random(f"downtime:{seed}")
        self.checker = Checker(self.path, self.venue, self.catalog)
        # frequent checkpoints, so a replay of the journal (run_seed(audit=True)) compares the whole
        # replayed state with the engine's own several times a seed
        self.config = EngineConfig(checkpoint_every_inputs=25)
        self.person = os_user()
        self.journal: Journal | None = None
        self.engine: Engine | None = None
        self._decided: dict[str, int] = {}  # orphan -> operator decisions given at the close
        self.armed = 0  # crash at the armed-th crash point from now (0: disarmed)
        self.stats = {"crashes": 0, "commands": 0, "refused": 0}

    # --- engine lifecycle ------------------------------------------------------------------

    def _say(self, line: str) -> None:
        self.trace.append(f"{self.clock.now_ms():>7} {line}")

    def _on_send(self, order: OrderRequest) -> None:
        self._say(
            f"send {order.client_order_id} {order.side.value} {order.qty} {order.symbol} {order.order_type.value}"
        )
        self.checker.at_send(order)

    def _crash_point(self, point: str) -> None:
        if self.armed:
            self.armed -= 1
            if not self.armed:
                self._say(f"crash at {point}")
                raise SimCrash(point)

    async def _start(self) -> None:
        while True:
            self.journal = await Journal.open(self.path, synchronous="NORMAL", inline=True)
            used = await self.journal.fetch(
                "SELECT (SELECT COUNT(*) FROM intents) + (SELECT COUNT(*) FROM hedge_nodes)"
            )
            self.engine = Engine(
                self.journal,
                self.venue,
                self.catalog,
                self.config,
                monotonic_ns=self.clock.now_ns,
                wall_ms=lambda: self.wall_base_ms + self.clock.now_ms(),
                id_factory=seeded_ids(self.seed, int(used[0][0])),
                crash_hook=self._crash_point,
                lockstep=True,
            )
            self.checker.engine = self.engine
            try:
                await self.engine.start()
            except SimCrash:
                await self._drop_engine()
                continue
            summary = self.engine.state.recovery_summary
            self._say(f"engine started: recovery {dict(sorted(summary.items()))}")
            self.checker.after_step()
            return

    async def _drop_engine(self) -> None:
        """kill -9: nothing uncommitted survives; the lease goes with the process."""
        self.stats["crashes"] += 1
        assert self.engine is not None and self.journal is not None
        await self.engine.stop()
        await self.journal.abort()
        self.engine = self.journal = None

    async def _crash_restart(self) -> None:
        """kill -9, a while down (the market goes on), and a new engine process: it subscribes at
        the feed's head, so nothing in flight or published meanwhile reaches it."""
        await self._drop_engine()
        down_ms = self.downtime.randrange(100, 3_000)
        self._say(f"engine down {down_ms} ms")
        for _ in range(down_ms // TICK_MS):
            self.clock.advance_ms(TICK_MS)
            self.venue.step()
        self.venue.restart_feed()
        await self._start()

    async def _guard(self, work: Callable[[], Any]) -> Any:
        """Run one engine call; a simulated crash restarts the engine through recovery."""
        assert self.engine is not None
        try:
            result = await work()
        except SimCrash:
            await self._crash_restart()
            return None
        except (Violation, asyncio.CancelledError):
            raise
        except sqlite3.IntegrityError as exc:
            # the journal's constraints stopped the engine: a fill or event key booked twice
            twice = "fills.trade_id" in str(exc) or "processed_events" in str(exc)
            raise Violation(3 if twice else 0, f"the journal refused the engine's write: {exc}") from exc
        except Exception as exc:
            raise Violation(0, f"the engine stopped: {exc!r}") from exc
        if self.engine.failure is not None:
            raise Violation(0, f"the engine stopped: {self.engine.failure!r}")
        self.checker.after_step()
        return result

    # --- the session -------------------------------------------------------------------------

    async def run(self) -> bool:
        await self._start()
        pending = list(self.plan)
        limit = SESSION_MS + SETTLE_LIMIT_MS
        drained = False
        while True:
            now = self.clock.now_ms()
            while pending and pending[0].at_ms <= now:
                await self._act(pending.pop(0))
            if now >= SESSION_MS and not drained:
                await self._drain()
                drained = True
            if drained and not self.venue.pending() and self.engine is not None and self.engine.book.orphans():
                await self._resolve_orphans()
            if drained and self._quiet():
                break
            if now >= limit:
                break
            self._advance()
            self.venue.step()
            events = self.venue.deliver_due()
            if events:
                self._say(f"deliver {len(events)}")
                batch = BrokerEvents(self.clock.now_ns(), tuple(events))
                await self._guard(lambda b=batch: self.engine.run_until_quiet([b]))  # type: ignore[union-attr,misc]
            await self._guard(lambda: self.engine.tick())  # type: ignore[union-attr]
        settled = self._quiet()
        self._say(f"end: settled={settled}")
        if not settled:
            self._explain_unsettled()
            unsettled = sorted(self.engine.book.unsettled) if self.engine is not None else []
            raise Violation(10, f"{SETTLE_LIMIT_MS // 1000} s after the faults stopped, {unsettled} still work")
        self.checker.at_quiescence()
        return settled

    def _explain_unsettled(self) -> None:
        assert self.engine is not None
        book = self.engine.book
        for gid in sorted(book.unsettled):
            g = book.groups[gid]
            self._say(f"unsettled {gid} {g.state.value} close={g.close_requested} reason={g.reason!r}")
            for r in book.of_group(gid):
                venue = self.venue.core.find(r.client_order_id)
                self._say(
                    f"  {r.client_order_id} {r.purpose.value} {r.side.value} {r.qty} {r.status.value}/"
                    f"{r.order_status.value} filled {r.filled_qty}/{r.fills_qty}; at the venue "
                    f"{venue.status.value + ' ' + str(venue.filled_qty) if venue else 'unknown'}"
                )
            for e in self.engine.state.escalations.values():
                if e.group_id == gid:
                    self._say(f"  escalation {e.escalation_id} {e.kind.value} {e.status.value} {e.client_order_id}")
        if self.venue.pending():
            self._say(f"venue still delivering {self.venue.pending()}")

    def _advance(self) -> None:
        """One tick; over a stretch with nothing in flight and nothing live, straight to the
        next thing that happens (the tick grid is kept, so the schedule lands the same)."""
        assert self.engine is not None
        step = TICK_MS
        if self.engine.settled() and not self.venue.pending():
            now = self.clock.now_ms()
            upcoming = min((a.at_ms for a in self.plan if a.at_ms > now), default=now + IDLE_STEP_MS)
            gap = upcoming - now
            if self.venue.core.live_order_ids():
                gap = min(gap, IDLE_STEP_MS)  # resting orders (stops) may trigger: the market keeps moving
            step = max(TICK_MS, gap - gap % TICK_MS)
        self.clock.advance_ms(step)

    def _quiet(self) -> bool:
        assert self.engine is not None
        return self.engine.settled() and not self.venue.pending() and self.venue.connected

    async def _drain(self) -> None:
        """Close of the session: the venue reconnects, trading resumes, no more faults land."""
        self.venue.reconnect()
        self.armed = 0
        self._say("drain")
        assert self.engine is not None
        if self.engine.trading_state is not TradingState.ACTIVE:
            await self._command(SetTradingState(TradingState.ACTIVE, Actor(self.person, Role.RISK)))

    async def _resolve_orphans(self) -> None:
        """An operator decides every orphan left at the close: approve a first attempt's retry;
        abandon it when the engine refuses that (the reason says why), or for a later attempt."""
        operator = Actor(self.person, Role.OPERATOR)
        for coid in sorted(r.client_order_id for r in self._orphans()):
            if self._decided.get(coid):
                continue
            self._decided[coid] = 1
            row = self._row(coid)
            if row is not None and row.attempt == 1:
                await self._command(ApproveRetry(coid, operator))
            row = self._row(coid)
            if row is not None and row.status is IntentStatus.ORPHANED:
                await self._command(Abandon(coid, operator))

    def _orphans(self) -> list[IntentRow]:
        return self.engine.book.orphans() if self.engine is not None else []

    def _row(self, coid: str) -> IntentRow | None:
        return self.engine.book.intents.get(coid) if self.engine is not None else None

    async def _command(self, command: Command) -> None:
        self.stats["commands"] += 1
        name = type(command).__name__

        async def give() -> Any:
            assert self.engine is not None
            try:
                return await self.engine.execute(command)
            except (CommandError, RoleError, GroupSpecError) as exc:
                self.stats["refused"] += 1
                return f"refused: {exc}"

        outcome = await self._guard(give)
        self._say(f"{name} -> {outcome}")

    async def _act(self, action: Action) -> None:
        assert self.engine is not None
        kind, args = action.kind, action.args
        trader, risk, operator = (Actor(self.person, r) for r in (Role.TRADER, Role.RISK, Role.OPERATOR))
        book = self.engine.book
        if kind == "launch":
            gid, shape = args
            hedge, risk_sym, qty, stop = SHAPES[shape]
            raw: dict[str, Any] = {
                "group_id": gid,
                "legs": [
                    {"role": "HEDGE", "symbol": hedge, "side": "BUY", "qty": qty},
                    {"role": "RISK", "symbol": risk_sym, "side": "SELL", "qty": qty},
                ],
            }
            if stop:
                raw["stop_loss"] = {"trigger_price": stop}
            try:
                spec = parse_group(raw, self.catalog)
            except GroupSpecError as exc:
                self._say(f"launch {gid} refused at parse: {exc}")
                return
            await self._command(Launch(spec, trader))
        elif kind in ("halt", "reduce", "resume"):
            target = {"halt": TradingState.HALTED, "reduce": TradingState.REDUCING, "resume": TradingState.ACTIVE}[kind]
            await self._command(SetTradingState(target, risk))
        elif kind in ("close", "cancel"):
            groups = sorted(book.groups)
            if groups:
                gid = groups[args[0] % len(groups)]
                await self._command((CloseGroup if kind == "close" else CancelGroup)(gid, trader))
        elif kind == "manual_hedge":
            short = self._uncovered()
            if short:
                gid, symbol, qty = short[args[0] % len(short)]
                await self._command(ManualHedge(gid, symbol, Side.BUY, qty, trader))
        elif kind == "acknowledge":
            open_ = sorted(
                e.escalation_id for e in self.engine.state.escalations.values() if e.status is EscalationStatus.OPEN
            )
            if open_:
                await self._command(Acknowledge(open_[args[0] % len(open_)], risk))
        elif kind in ("approve", "abandon"):
            orphans = sorted(r.client_order_id for r in book.orphans())
            if orphans:
                coid = orphans[args[0] % len(orphans)]
                await self._command((ApproveRetry if kind == "approve" else Abandon)(coid, operator))
        elif kind == "price":
            symbol, pct = args
            core = self.venue.core
            tick = self.catalog[symbol].tick_paise
            price = max(tick, core.last_price(symbol) * (100 + pct) // 100 // tick * tick)
            core.set_price(symbol, price)
            self._say(f"price {symbol} {pct:+d}% -> {price}")
        elif kind == "thin":
            symbol, lots = args
            self.venue.core.set_depth(symbol, lots, 1)
            self._say(f"thin book {symbol}: {lots} lot(s)")
        elif kind == "crash":
            self._say("crash between steps")
            await self._crash_restart()
        elif kind == "arm_crash":
            self.armed = args[0]
        elif kind == "disconnect":
            self.venue.disconnect()
            self._say("disconnect")
        elif kind == "reconnect":
            self.venue.reconnect()
            self._say("reconnect")
        elif kind == "clock_step":
            self.venue.step_clock(args[0])
            self._say(f"exchange clock steps {args[0]:+d} ms")
        elif kind == "hostile":
            hit = self.venue.inject(args[0], random.Random(args[1]))
            self._say(f"hostile {args[0]}{'' if hit else ' (no target)'}")

    def _uncovered(self) -> list[tuple[str, str, int]]:
        """Groups whose confirmed short exposure exceeds their confirmed hedge: (group, hedge
        symbol, qty rounded up to whole lots)."""
        assert self.engine is not None
        book = self.engine.book
        out = []
        for gid, g in sorted(book.groups.items()):
            fills = group_fills(book.of_group(gid))
            need = hedge_needed_qty(fills.short_open_qty, g.spec.hedge.qty, g.spec.risk.qty) - fills.hedge_held_qty
            if need > 0:
                lot = self.catalog[g.spec.hedge.symbol].lot_size
                out.append((gid, g.spec.hedge.symbol, -(-need // lot) * lot))
        return out

    async def close(self) -> None:
        self.checker.close()
        if self.engine is not None:
            await self.engine.stop()
        if self.journal is not None:
            await self.journal.close()

    def trace_hash(self) -> str:
        digest = hashlib.sha256()
        for line in self.trace:
            digest.update(line.encode())
            digest.update(b"\n")
        if self.engine is not None:
            for gid, g in sorted(self.engine.book.groups.items()):
                digest.update(f"{gid}={g.state.value};".encode())
            for coid, r in sorted(self.engine.book.intents.items()):
                digest.update(f"{coid}={r.status.value}/{r.order_status.value}/{r.fills_qty};".encode())
        digest.update(repr(sorted(self.venue.core.positions().items())).encode())
        return digest.hexdigest()[:16]


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="td-sim-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


WALL_BASE_MS = 1_780_000_000_000  # 2026-05-28: what the engine's audit rows show as wall time


async def run_seed(
    seed: int,
    profile: Profile,
    *,
    wall_base_ms: int = WALL_BASE_MS,
    drop: frozenset[int] = frozenset(),
    plant: str = "",
    catalog: dict[str, Instrument] | None = None,
    audit: bool = False,
    keep_journal: Path | None = None,
) -> SeedResult:
    """One seed. With ``audit``, the journal is then replayed from its first checkpoint through
    every input (engine.audit.replay); a replay that does not reproduce it fails the seed."""
    started = time.perf_counter()
    audited, audit_stats = "", dict[str, int]()
    with _workdir() as work, planted(plant):
        session = Session(seed, profile, work, wall_base_ms=wall_base_ms, drop=drop, catalog=catalog)
        violation: Violation | None = None
        settled = False
        try:
            settled = await session.run()
        except Violation as exc:
            violation = exc
            session._say(f"VIOLATION {exc}")
        finally:
            await session.close()
        if audit:
            audited, audit_stats = await audit_journal(session.path)
        if keep_journal is not None:
            shutil.copyfile(session.path, keep_journal)
    checker = session.checker
    stats = {
        **session.stats,
        **session.venue.stats_dict(),
        "sends": checker.sends,
        "actions": len(session.plan),
        "orphans_raised": len(checker.orphaned),
        "orphans_resolved": len(checker.resolved),
        **audit_stats,
    }
    return SeedResult(
        seed=seed,
        profile=profile.name,
        ok=violation is None and not audited,
        trace_hash=session.trace_hash(),
        violation=str(violation or ""),
        invariant=violation.invariant if violation else None,
        trace=session.trace,
        settled=settled,
        sim_ms=session.clock.now_ms(),
        wall_s=time.perf_counter() - started,
        stats=stats,
        dropped=tuple(sorted(drop)),
        planted=plant,
        audit=audited,
    )


async def audit_journal(path: Path) -> tuple[str, dict[str, int]]:
    """Replay a journal from its first checkpoint to its end: "" when it reproduces every
    effect, else what differs (and where); with how much was checked."""
    journal = await Journal.open(path, inline=True)
    try:
        result = await replay(journal, full=True)
    finally:
        await journal.close()
    stats = {
        "audit_inputs": result.stepped,
        "audit_restarts": result.restarts,
        "audit_checkpoints": result.checkpoints_checked,
    }
    if result.mismatch is not None:
        return result.mismatch.describe(), stats
    if result.checked_to != result.last_seq:
        return f"replay stopped at input #{result.checked_to} of #{result.last_seq}", stats
    return "", stats


async def shrink(result: SeedResult, profile: Profile, *, budget: int = 60) -> SeedResult:
    """Drop scheduled actions one at a time while the same invariant still fails: the smallest
    schedule found (greedy, at most ``budget`` reruns) is the minimal trace."""
    best = result
    drop = set(result.dropped)
    count = len(schedule(result.seed, profile))
    runs = 0
    for index in reversed(range(count)):
        if runs >= budget:
            break
        if index in drop:
            continue
        runs += 1
        trial = await run_seed(result.seed, profile, drop=frozenset(drop | {index}), plant=result.planted)
        if not trial.ok and trial.invariant == result.invariant:
            drop.add(index)
            best = trial
    return best


def replay_command(result: SeedResult) -> str:
    parts = ["trading-desk simulate", f"--seeds 1 --start {result.seed} --faults {result.profile}"]
    if result.dropped:
        parts.append("--drop " + ",".join(map(str, result.dropped)))
    if result.planted:
        parts.append(f"--plant {result.planted}")
    return " ".join(parts)


async def determinism(seed: int, profile: Profile) -> tuple[str, str]:
    """The same seed twice, on wall clocks 20 years apart: (hash, hash)."""
    a = await run_seed(seed, profile, wall_base_ms=WALL_BASE_MS)
    b = await run_seed(seed, profile, wall_base_ms=WALL_BASE_MS - 20 * 365 * 86_400_000)
    return a.trace_hash, b.trace_hash


def profile_named(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown fault profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return PROFILES[name]


__all__ = ["PROFILES", "Profile", "SeedResult", "determinism", "run_seed", "schedule", "shrink"]
