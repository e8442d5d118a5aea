"""The engine: one asyncio task owns every decision; I/O happens at its edges.

Every mutation of the book happens under ``self._lock``: the main loop (event batches and timer
ticks) and person-given commands take turns, so no decision sees half-applied state.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from engine.broker.port import Broker
from engine.catalog import load_margin_model
from engine.core import order_fsm
from engine.core.clock import BrokerClock
from engine.core.events import Ambiguous, BrokerEvent, OrderRequest, Rejected
from engine.core.groups import GroupSpec
from engine.core.hedge_tree import NodeKind
from engine.core.instruments import Instrument, paise_to_str
from engine.core.lifecycle import Wave, decide, decide_cancelled, group_transition_problem
from engine.core.margin import MarginModel, group_margin_paise
from engine.core.model import GroupState, IntentStatus, LegRole, OrderStatus, OrderType, Role, Side
from engine.core.slicing import slice_qty
from engine.core.trading_state import TradingState, order_refusal
from engine.runtime.ingest import Ingestor
from engine.runtime.state import (
    Actor,
    Book,
    CommandError,
    EngineConfig,
    GroupRuntime,
    Listener,
    RoleError,
    new_client_order_id,
)
from engine.store.journal import Journal
from engine.store.rows import IntentRow

log = logging.getLogger(__name__)

CrashHook = Callable[[str], None]


def _no_crash(point: str) -> None:
    return None


class EngineFailure(RuntimeError):
    """The engine stopped because of an error; the journal holds everything committed before it."""


class Engine:
    def __init__(
        self,
        journal: Journal,
        broker: Broker,
        catalog: dict[str, Instrument],
        config: EngineConfig | None = None,
        *,
        monotonic_ns: Callable[[], int] = time.monotonic_ns,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        id_factory: Callable[[], str] = new_client_order_id,
        crash_hook: CrashHook = _no_crash,
        margin_model: MarginModel | None = None,
    ) -> None:
        self.journal = journal
        self.broker = broker
        self.catalog = catalog
        self.config = config or EngineConfig()
        self.now_ns = monotonic_ns
        self.wall_ms = wall_ms  # audit display only; never used in a decision
        self.new_id = id_factory
        self.crash = crash_hook
        self.book = Book()
        self.clock = BrokerClock()
        self.ingestor = Ingestor(journal, self.book, self.clock)
        self._lock = asyncio.Lock()
        self._inbox: asyncio.Queue[BrokerEvent] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[Listener] = []
        self._settled = asyncio.Event()
        self.failure: BaseException | None = None
        self.margin_model = margin_model or load_margin_model()
        self.trading_state = TradingState.ACTIVE
        journal.on_rollback = self._journal_rolled_back
        self.stats = {"events": 0, "duplicates": 0, "rejected": 0, "batches": 0}
        self._commit_us: collections.deque[int] = collections.deque(maxlen=256)

    # --- lifecycle ---------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, message: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(message)
            except Exception:  # a broken view must never stop trading
                log.exception("listener failed on %s", message.get("type"))

    async def start(self) -> None:
        """Recover (the same path for a clean start and after a crash), then run."""
        from engine.runtime.recovery import recover

        # Subscribe before asking the broker anything, so nothing falls between lookup and feed.
        feed = self.broker.events()
        self._tasks.append(asyncio.create_task(self._pump_events(feed), name="engine-events"))
        async with self._lock:
            await recover(self)
        self._tasks.append(asyncio.create_task(self._main_loop(), name="engine-main"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def wait_settled(self, timeout_s: float) -> bool:
        """Wait until every group is HEDGED, terminal or waiting on a person; False on timeout."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._settled.wait()
        except TimeoutError:
            return False
        if self.failure:
            raise EngineFailure(str(self.failure)) from self.failure
        return True

    async def _pump_events(self, feed: AsyncIterator[BrokerEvent]) -> None:
        backoff_s = 0.05
        while True:
            try:
                async for event in feed:
                    self._inbox.put_nowait(event)
                    backoff_s = 0.05
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken feed is re-subscribed; the journal reconciles gaps
                self.emit({"type": "feed_error", "error": str(exc)})
            await asyncio.sleep(backoff_s)  # reconnect backoff, not a timing decision
            backoff_s = min(backoff_s * 2, 2.0)
            feed = self.broker.events()

    async def _main_loop(self) -> None:
        tick_s = self.config.tick_interval_ms / 1000
        try:
            while True:
                batch: list[BrokerEvent] = []
                # asyncio.timeout, not wait_for: on 3.11 a cancelled wait_for around Queue.get()
                # can hang forever in "cancelling" (seen here at shutdown).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(tick_s):
                        batch.append(await self._inbox.get())
                while batch and len(batch) < self.config.batch_max and not self._inbox.empty():
                    batch.append(self._inbox.get_nowait())
                async with self._lock:
                    if batch:
                        await self.ingest_locked(batch)
                    from engine.runtime.recovery import on_tick

                    await on_tick(self)
                    self.refresh_settled()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # crash-only: stop deciding, keep what is committed
            self.failure = exc
            log.exception("engine stopped")
            self.emit({"type": "engine_failure", "error": repr(exc)})
            self._settled.set()

    def refresh_settled(self) -> None:
        if self.book.settled():
            self._settled.set()
        else:
            self._settled.clear()

    # --- events -----------------------------------------------------------------------------

    async def ingest(self, batch: list[BrokerEvent]) -> None:
        """Apply a batch of events from outside the main loop (tests, tools)."""
        async with self._lock:
            self.check_running()
            await self.ingest_locked(batch)

    async def ingest_locked(self, batch: list[BrokerEvent]) -> None:
        """Apply a batch of events (one transaction), then move the groups they touched. The
        caller holds ``exclusive()``."""
        started = time.perf_counter_ns()  # a performance reading for the desk's chart, never a decision
        result = await self.ingestor.apply_batch(batch, self.now_ns())
        self._commit_us.append((time.perf_counter_ns() - started) // 1_000)
        self.stats["events"] += len(batch)
        self.stats["duplicates"] += result.duplicates
        self.stats["rejected"] += result.rejected
        self.stats["batches"] += 1
        for note in result.notes:
            self.emit(note)
        if result.duplicates:
            self.emit({"type": "duplicates_absorbed", "count": result.duplicates})
        for group_id in sorted(result.touched_groups):
            await self.advance_group(group_id)

    # --- groups -----------------------------------------------------------------------------

    async def launch(self, spec: GroupSpec, actor: Actor) -> GroupState:
        async with self._lock:
            self.check_running()
            if actor.role is not Role.TRADER:
                await self.audit(actor, "launch", spec.group_id, {}, "REFUSED")
                raise RoleError(f"launching a group needs the trader role; {actor.os_user} has role {actor.role}")
            if spec.group_id in self.book.groups or spec.group_id in await self.journal.group_ids():
                raise CommandError(f"group {spec.group_id} already exists; a group is launched once")
            if self.trading_state is not TradingState.ACTIVE:
                why = f"trading is {self.trading_state.value}: no new groups (cancels and hedges still pass)"
                await self.audit(actor, "launch", spec.group_id, {"refused": why}, "REFUSED")
                raise CommandError(why)
            margin = group_margin_paise(spec, self.catalog, self.margin_model)
            available = self.margin_model.available_paise - await self.margin_in_use()
            now = self.now_ns()
            async with self.journal.transaction():
                await self.journal.insert_group(spec, GroupState.CREATED, "", now)
                await self.journal.set_group_margin(spec.group_id, margin)
                await self.audit_in_tx(actor, "launch", spec.group_id, spec.to_json(), "OK")
            self.book.groups[spec.group_id] = GroupRuntime(spec, GroupState.CREATED)
            self.emit({"type": "group_launched", "group_id": spec.group_id, "margin_paise": margin})
            if margin > available:
                why = (
                    f"worst-case margin {paise_to_str(margin)} exceeds available margin "
                    f"{paise_to_str(max(0, available))}; nothing was sent"
                )
                await self.set_group_state(self.book.groups[spec.group_id], GroupState.REJECTED, why)
                self.refresh_settled()
                return GroupState.REJECTED
            await self.advance_group(spec.group_id)
            self.refresh_settled()
            return self.book.groups[spec.group_id].state

    async def advance_group(self, group_id: str) -> None:
        from engine.runtime import hedging, stops

        group = self.book.groups.get(group_id)
        if group is None:
            return
        for _ in range(100):  # each pass settles or sends one batch of orders; bounded by depth and waves
            await hedging.service_nodes(self, group)
            if group.state not in (GroupState.CREATED, GroupState.REJECTED):
                gap = hedging.uncovered_exposure(self, group)
                if gap > 0:  # interim exposure: hedge it now, from confirmed fills
                    await hedging.start_node(
                        self, group_id, NodeKind.INTERIM, group.spec.hedge.symbol, group.spec.hedge.side, gap
                    )
                    continue
            if group.state is GroupState.HEDGED:
                if await stops.advance_exit(self, group):
                    continue
                return
            rows = self.book.of_group(group_id)
            progress = hedging.tree_progress(self, group_id)
            if group.cancel_requested:
                await stops.cancel_working(self, group_id, "group cancelled by trader")
                views = [r.view() for r in rows]
                group.waiting_on_person = progress.orphaned or any(
                    v.intent_status is IntentStatus.ORPHANED for v in views
                )
                ended = decide_cancelled(group.spec, views, progress)
                if ended is not None:
                    await self.set_group_state(group, ended.state, ended.reason)
                    if ended.state is GroupState.HEDGED:
                        continue
                return
            decision = decide(group.spec, group.state, [r.view() for r in rows], self.config.max_waves, progress)
            group.waiting_on_person = decision.waiting_on_person
            await self.set_group_state(group, decision.state, decision.reason)
            if decision.state is GroupState.HEDGED:
                continue  # the exit side (stop-loss, close) takes over
            if decision.start_hedge:
                await hedging.start_node(
                    self,
                    group_id,
                    NodeKind.LEG,
                    group.spec.hedge.symbol,
                    group.spec.hedge.side,
                    group.spec.hedge.qty,
                    reduces_exposure=False,
                    limit_price_paise=group.spec.hedge.limit_price_paise,
                )
                continue
            if decision.place is None or not await self._send_wave(group, decision.place):
                return
        raise EngineFailure(f"group {group_id} did not settle after 100 planning passes")

    async def escalate_once(
        self, group_id: str, client_order_id: str | None, kind: str, symbol: str, qty: int, reason: str
    ) -> None:
        """Raise a CRITICAL escalation unless the same one is already open."""
        open_rows = await self.journal.fetch(
            "SELECT 1 FROM escalations WHERE group_id=? AND kind=? AND status!='RESOLVED'"
            " AND COALESCE(client_order_id, '')=?",
            (group_id, kind, client_order_id or ""),
        )
        if open_rows:
            return
        now = self.now_ns()
        async with self.journal.transaction():
            esc = await self.journal.insert_escalation(
                kind=kind,
                severity="CRITICAL",
                group_id=group_id,
                client_order_id=client_order_id,
                symbol=symbol,
                unhedged_qty=qty,
                reason=reason,
                now_ns=now,
            )
        self.emit(
            {
                "type": "escalation",
                "escalation_id": esc,
                "kind": kind,
                "group_id": group_id,
                "unhedged_qty": qty,
                "reason": reason,
            }
        )

    async def margin_in_use(self) -> int:
        rows = await self.journal.fetch(
            "SELECT COALESCE(SUM(margin_paise), 0) FROM groups WHERE state NOT IN ('COMPLETED','REJECTED','FAILED',"
            "'CANCELLED')"
        )
        return int(rows[0][0])

    async def set_group_state(self, group: GroupRuntime, state: GroupState, reason: str) -> None:
        if state == group.state and reason == group.reason:
            return
        problem = group_transition_problem(group.state, state)
        now = self.now_ns()
        async with self.journal.transaction():
            if problem:
                await self.journal.record_rejected(
                    None, None, {"group_id": group.spec.group_id, "derived": state.value}, problem, None, now
                )
                return
            await self.journal.set_group_state(group.spec.group_id, state, reason, now)
            if state != group.state:
                await self.journal.record_transition(
                    "GROUP",
                    group.spec.group_id,
                    group.state.value,
                    state.value,
                    filled_qty=None,
                    cause=reason,
                    ts_exchange_ms=None,
                    now_ns=now,
                )
        previous, group.state, group.reason = group.state, state, reason
        if previous != state:
            self.emit(
                {
                    "type": "group_state",
                    "group_id": group.spec.group_id,
                    "from": previous.value,
                    "state": state.value,
                    "reason": reason,
                }
            )

    # --- the place path: intent before action ------------------------------------------------

    def commit_latency_us(self) -> tuple[int, int] | None:
        """p50 and p99 of the last 256 event-batch journal commits, in microseconds."""
        if not self._commit_us:
            return None
        ordered = sorted(self._commit_us)
        return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]

    def refusal_for(self, purpose: str) -> str:
        """The kill switch's word on a new order of this purpose ('' = may send). Only LEG orders
        open exposure; hedges, stops, fallbacks and exits reduce it."""
        return order_refusal(self.trading_state, reduces_exposure=purpose != "LEG")

    async def _send_wave(self, group: GroupRuntime, wave: Wave) -> bool:
        """Send one wave of a leg; False (and the group waits on a person) when the kill switch says no."""
        refusal = self.refusal_for("LEG")
        if refusal:
            group.waiting_on_person = True
            await self.set_group_state(group, group.state, f"{wave.role.value} wave not sent: {refusal}")
            return False
        leg = group.spec.hedge if wave.role is group.spec.hedge.role else group.spec.risk
        await self.send_sliced(
            group.spec.group_id, leg.role, wave.wave, leg.symbol, leg.side, wave.qty, limit=leg.limit_price_paise
        )
        return True

    async def send_sliced(
        self,
        group_id: str,
        role: LegRole,
        wave: int,
        symbol: str,
        side: Side,
        qty: int,
        *,
        limit: int | None = None,
        order_type: OrderType | None = None,
        trigger: int | None = None,
        purpose: str = "LEG",
        hedge_node_id: str | None = None,
    ) -> None:
        """Slice ``qty`` at the instrument's freeze qty and journal-then-send each child order."""
        inst = self.catalog[symbol]
        kind = order_type or (OrderType.LIMIT if limit else OrderType.MARKET)
        for part in slice_qty(qty, inst.lot_size, inst.freeze_qty):
            coid, now = self.new_id(), self.now_ns()
            row = IntentRow(
                client_order_id=coid,
                intent_id=coid,
                attempt=1,
                group_id=group_id,
                role=role,
                wave=wave,
                symbol=symbol,
                side=side,
                qty=part,
                order_type=kind,
                limit_price_paise=limit,
                ts_created_local_ns=now,
                ts_updated_local_ns=now,
                purpose=purpose,
                hedge_node_id=hedge_node_id,
                trigger_price_paise=trigger,
            )
            await self.journal_and_send(row)

    async def journal_and_send(self, row: IntentRow, *, journaled: bool = False) -> None:
        """Commit the intent (synchronous=FULL), then call the broker. Never the other way round.
        ``journaled``: the caller already committed the intent row in its own transaction."""
        if not journaled:
            async with self.journal.transaction():
                await self.journal.insert_intent(row)
                self.crash("before_intent_commit")
        self.crash("after_intent_commit")
        self.book.add(row)
        self.emit(
            {
                "type": "intent",
                "client_order_id": row.client_order_id,
                "group_id": row.group_id,
                "role": row.role.value,
                "symbol": row.symbol,
                "side": row.side.value,
                "qty": row.qty,
                "attempt": row.attempt,
            }
        )
        row.order_status = order_fsm.apply(row.order_state, order_fsm.Trigger.SEND).state.status
        request = OrderRequest(
            row.client_order_id,
            row.symbol,
            row.side,
            row.qty,
            row.order_type,
            row.limit_price_paise,
            row.trigger_price_paise,
        )
        try:
            ack = await self.broker.place(request)
        except Rejected as exc:
            await self._close_unsent(row, order_fsm.Trigger.REJECTED, f"broker rejected: {exc}")
            return
        except Ambiguous as exc:
            row.last_query_local_ns = self.now_ns()
            await self._close_unsent(row, order_fsm.Trigger.AMBIGUOUS, f"outcome unknown: {exc}")
            return
        self.crash("after_broker_accept")
        now = self.now_ns()
        self.clock.observe(ack.ts_exchange_ms, now)
        row.broker_order_id = ack.broker_order_id
        row.ts_ack_exchange_ms = ack.ts_exchange_ms
        self.book.add(row)
        # A stop is acknowledged as resting untriggered; only the exchange's trigger report makes it
        # a working order (and starts its broker-time deadline).
        ack_trigger = (
            order_fsm.Trigger.TRIGGER_PENDING
            if row.order_type in (OrderType.SL, OrderType.SL_M)
            else (order_fsm.Trigger.ACK)
        )
        outcome = order_fsm.apply(row.order_state, ack_trigger)
        async with self.journal.transaction():
            await self.ingestor.set_order_state(
                row, outcome.state, cause="ack", ts_exchange_ms=ack.ts_exchange_ms, now_ns=now
            )
        self.crash("after_ack_recorded")

    async def _close_unsent(self, row: IntentRow, trigger: order_fsm.Trigger, reason: str) -> None:
        outcome = order_fsm.apply(row.order_state, trigger)
        row.reason = reason
        async with self.journal.transaction():
            await self.ingestor.set_order_state(
                row, outcome.state, cause=reason, ts_exchange_ms=None, now_ns=self.now_ns()
            )
        self.emit(
            {
                "type": "order_outcome",
                "client_order_id": row.client_order_id,
                "status": row.order_status.value,
                "reason": reason,
            }
        )

    # --- commands and audit -----------------------------------------------------------------

    async def audit(self, actor: Actor, command: str, target: str, detail: dict[str, Any], outcome: str) -> None:
        async with self.journal.transaction():
            await self.audit_in_tx(actor, command, target, detail, outcome)

    async def audit_in_tx(self, actor: Actor, command: str, target: str, detail: dict[str, Any], outcome: str) -> None:
        await self.journal.insert_audit(
            now_ns=self.now_ns(),
            wall_ms=self.wall_ms(),
            os_user=actor.os_user,
            role=actor.role.value,
            command=command,
            target=target,
            detail=detail,
            outcome=outcome,
        )

    def exclusive(self) -> asyncio.Lock:
        """The lock that serialises every decision; commands from outside take it."""
        return self._lock

    def _journal_rolled_back(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
            self.emit({"type": "engine_failure", "error": f"journal transaction rolled back: {exc!r}"})
            self._settled.set()

    def check_running(self) -> None:
        """Crash-only: after a failed transaction the in-memory book may be ahead of the journal, so
        no further command is taken; restart the engine (recovery rebuilds the book)."""
        if self.failure is not None:
            raise EngineFailure(f"engine stopped after an error ({self.failure!r}); restart it to recover")

    def require(self, actor: Actor, role: Role, command: str) -> None:
        if actor.role is not role:
            raise RoleError(f"{command} needs the {role.value} role; {actor.os_user} has role {actor.role.value}")

    def waiting_rows(self) -> list[IntentRow]:
        return [r for r in self.book.intents.values() if r.status is IntentStatus.ORPHANED]

    def unsettled_groups(self) -> list[str]:
        return sorted(g for g, rt in self.book.groups.items() if not rt.settled)

    def orders_in(self, *statuses: OrderStatus) -> list[IntentRow]:
        return [r for r in self.book.intents.values() if r.order_status in statuses]
