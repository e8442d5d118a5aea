"""One step in progress: the state it changes and the effects it gathers.

Every helper here changes the in-memory state *and* stages the journal rows that record the
change, so the two can never drift apart: the interpreter commits the rows before it performs a
single I/O effect of the step.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.core import order_fsm
from engine.core.book import EscalationRecord, GroupRuntime, IntentRow
from engine.core.commands import Actor
from engine.core.effects import Cancel, Commit, Effect, JournalWrites, Notify, Place, Query, QueryReason, Reply
from engine.core.events import OrderRequest
from engine.core.intents import next_intent_status
from engine.core.lifecycle import group_transition_problem
from engine.core.model import (
    TERMINAL_GROUP_STATES,
    EscalationKind,
    EscalationStatus,
    GroupState,
    IntentStatus,
    LegRole,
    OrderStatus,
    OrderType,
    Purpose,
    Severity,
    Side,
)
from engine.core.notices import (
    BrokerUsability,
    ClockStepped,
    EngineEvent,
    EscalationRaised,
    GroupStateChanged,
    IntentJournaled,
)
from engine.core.slicing import slice_qty
from engine.core.state import EngineState


class StepContext:
    def __init__(self, state: EngineState, now_ns: int, seq: int | None = None, rule: str = "") -> None:
        self.state = state
        self.book = state.book
        self.config = state.config
        self.now_ns = now_ns
        self.seq = seq  # the input's sequence number in the journal (None: not journaled, a test)
        self.writes = JournalWrites(now_ns=now_ns, seq=seq, rule=rule)
        self.io: list[Effect] = []
        self.notices: list[Notify] = []
        self.replies: list[Reply] = []
        self.touched: set[str] = set()
        self.command_seq: int | None = None  # the command row being decided, for its audit rows

    # --- why (the time-travel audit) ----------------------------------------------------------

    @contextmanager
    def because(self, rule: str, **facts: Any) -> Iterator[None]:
        """Every row staged inside names ``rule`` (a short stable name) and the facts it read."""
        w = self.writes
        saved = (w.rule, w.why)
        w.rule, w.why = rule, json.dumps(facts, sort_keys=True, default=str)
        try:
            yield
        finally:
            w.rule, w.why = saved

    # --- output -------------------------------------------------------------------------------

    def notify(self, event: EngineEvent) -> None:
        self.notices.append(Notify(event))

    def touch(self, group_id: str) -> None:
        self.touched.add(group_id)

    def reply(self, command_id: int, value: Any = None, error: Exception | None = None) -> None:
        self.replies.append(Reply(command_id, value, error))

    def effects(self) -> list[Effect]:
        """The step's effects: its journal batch first, then I/O, news and answers. A reply's
        value may be a callable, read now that the step has reached its fixed point."""
        replies = [Reply(r.command_id, r.value(), r.error) if callable(r.value) else r for r in self.replies]
        out: list[Effect] = [Commit(self.writes)] if self.writes else []
        return out + self.io + self.notices + replies

    def broker_now_ms(self) -> int:
        return self.state.clock.now_ms(self.now_ns)

    def observe(self, ts_exchange_ms: int, *, fresh: bool = False) -> None:
        """Take an exchange timestamp; a clock step it reveals is recorded and shown."""
        clock = self.state.clock
        before = clock.step_offset_ms
        delta = clock.observe(ts_exchange_ms, self.now_ns, fresh=fresh)
        if delta:
            cause = f"exchange clock stepped {delta:+d} ms"
            after = f"{clock.step_offset_ms:+d}"
            self.writes.transition("CLOCK", "exchange", f"{before:+d}", after, None, cause, ts_exchange_ms, self.now_ns)
            self.notify(ClockStepped(delta, clock.step_offset_ms))

    def broker_answered(self, ok: bool, why: str = "") -> None:
        """Track whether the broker answers. Back to usable: opening orders may go again."""
        state = self.state
        if not ok:
            if state.broker_failing_since_ns is None:
                state.broker_failing_since_ns = self.now_ns
            return
        state.broker_failing_since_ns = None
        if state.broker_unusable:
            state.broker_unusable = False
            self.writes.settings["broker_state"] = "USABLE"
            self.writes.transition(
                "BROKER", "broker", "UNUSABLE", "USABLE", None, "the broker answers again", None, self.now_ns
            )
            for record in state.escalations.values():
                if record.kind is EscalationKind.BROKER_UNUSABLE and record.status is not EscalationStatus.RESOLVED:
                    self.resolve_escalation(record.escalation_id, "engine", "the broker answers again")
            self.notify(BrokerUsability(True, "the broker answers again"))
            for group_id, group in self.book.groups.items():
                if group.state not in TERMINAL_GROUP_STATES:
                    self.touch(group_id)

    # --- groups -------------------------------------------------------------------------------

    def set_group_state(self, group: GroupRuntime, state: GroupState, reason: str) -> None:
        if state == group.state and reason == group.reason:
            return
        problem = group_transition_problem(group.state, state)
        if problem:
            event = {"group_id": group.spec.group_id, "derived": state.value}
            self.writes.reject(None, None, event, problem, None, self.now_ns)
            return
        previous = group.state
        group.state, group.reason = state, reason
        self.writes.group(group)
        if previous != state:
            self.writes.transition(
                "GROUP", group.spec.group_id, previous.value, state.value, None, reason, None, self.now_ns
            )
            self.notify(GroupStateChanged(group.spec.group_id, previous, state, reason))
            if state in TERMINAL_GROUP_STATES:
                self.book.group_finished(group.spec.group_id)
                # its keys are in the journal: a late repeat is still caught by the journal's read
                self.state.seen_keys.difference_update(self.state.keys_of.pop(group.spec.group_id, ()))
        self.touch(group.spec.group_id)

    # --- orders -------------------------------------------------------------------------------

    def send_sliced(
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
        purpose: Purpose = Purpose.LEG,
        hedge_node_id: str | None = None,
        opens_exposure: bool | None = None,
    ) -> None:
        """Slice ``qty`` at the instrument's freeze qty; journal each child order, then place it.
        ``opens_exposure`` (default: the purpose's) is what the kill switch judges at send time."""
        inst = self.state.catalog[symbol]
        kind = order_type or (OrderType.LIMIT if limit else OrderType.MARKET)
        for part in slice_qty(qty, inst.lot_size, inst.freeze_qty):
            coid = self.state.new_id()
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
                ts_created_local_ns=self.now_ns,
                ts_updated_local_ns=self.now_ns,
                purpose=purpose,
                hedge_node_id=hedge_node_id,
                trigger_price_paise=trigger,
                cause_seq=self.seq,
                rule=self.writes.rule,
                why_json=self.writes.why,
            )
            self.journal_and_send(row, opens_exposure)

    def journal_and_send(self, row: IntentRow, opens_exposure: bool | None = None) -> None:
        """Stage the intent and its place. The interpreter commits the row before it sends:
        intent before action holds by construction."""
        self.writes.intents_new[row.client_order_id] = row
        self.state.attempts[row.intent_id] = max(row.attempt, self.state.attempts.get(row.intent_id, 0))
        self.book.add(row)
        self.touch(row.group_id)
        self.notify(
            IntentJournaled(row.client_order_id, row.group_id, row.role, row.symbol, row.side, row.qty, row.attempt)
        )
        opens = row.purpose.opens_exposure if opens_exposure is None else opens_exposure
        self.io.append(Place(order_request(row), opens_exposure=opens))

    def set_order_state(
        self, row: IntentRow, state: order_fsm.OrderState, cause: str, ts_exchange_ms: int | None
    ) -> None:
        """Apply a new order state to ``row`` and stage the intent status that follows, with audit rows."""
        before = (row.order_status, row.filled_qty, row.status)
        row.order_status, row.filled_qty = state.status, state.filled_qty
        row.status = next_intent_status(row.status, row.order_status)
        row.ts_updated_local_ns = self.now_ns
        clock = self.state.clock
        if (
            row.ts_triggered_exchange_ms is None
            and ts_exchange_ms is not None
            and row.order_type in (OrderType.SL, OrderType.SL_M)
            and row.order_status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)
        ):
            row.ts_triggered_exchange_ms = ts_exchange_ms  # the exchange's trigger report starts the stop's clock
            row.trigger_base_ms = clock.continuous(ts_exchange_ms)
        if row.ts_ack_exchange_ms is None and ts_exchange_ms is not None and row.status is IntentStatus.SENT:
            # adopted without an ack (lost ack, crash before the ack was recorded): the first broker
            # timestamp starts its deadline, so a resting order still times out
            row.ts_ack_exchange_ms = ts_exchange_ms
            row.deadline_base_ms = clock.continuous(ts_exchange_ms)
        if (row.order_status, row.filled_qty) != before[:2]:
            row.quiet_lookups, row.next_query_local_ns = 0, 0  # news: ask again at the normal pace
        self.writes.intent(row)
        if (row.order_status, row.filled_qty) != before[:2]:
            self.writes.transition(
                "ORDER",
                row.client_order_id,
                before[0].value,
                row.order_status.value,
                row.filled_qty,
                cause,
                ts_exchange_ms,
                self.now_ns,
            )
        if row.status is not before[2]:
            self.writes.transition(
                "INTENT",
                row.client_order_id,
                before[2].value,
                row.status.value,
                None,
                cause,
                ts_exchange_ms,
                self.now_ns,
            )
            if before[2] is IntentStatus.ORPHANED:
                self.writes.resolve_orphans.append((row.client_order_id, self.now_ns))
                self._resolve_open_for(row.client_order_id)
        self.book.refresh(row)
        self.touch(row.group_id)

    def set_intent_status(self, row: IntentRow, status: IntentStatus, cause: str) -> None:
        before = row.status
        row.status, row.reason, row.ts_updated_local_ns = status, cause, self.now_ns
        self.writes.intent(row)
        self.writes.transition(
            "INTENT", row.client_order_id, before.value, status.value, None, cause, None, self.now_ns
        )
        self.book.refresh(row)
        self.touch(row.group_id)

    def request_cancel(self, row: IntentRow, cause: str) -> None:
        """Ask for a cancel. The order stays PENDING_CANCEL until the broker confirms it."""
        outcome = order_fsm.apply(row.order_state, order_fsm.Trigger.CANCEL_REQUEST)
        if not outcome.accepted or row.broker_order_id is None:
            return
        row.ts_cancel_requested_exchange_ms = self.broker_now_ms()
        self.set_order_state(row, outcome.state, cause, None)
        self.send_cancel(row)

    def send_cancel(self, row: IntentRow) -> None:
        """(Re-)send the cancel of a PENDING_CANCEL order: cancels are idempotent at the broker."""
        assert row.broker_order_id is not None
        self.io.append(Cancel(row.client_order_id, row.broker_order_id))

    def query(
        self, row: IntentRow, reason: QueryReason, command_id: int | None = None, *, by_client_id: bool = False
    ) -> bool:
        """Ask the broker about ``row`` (by the broker id it gave, else by our client id) unless a
        question about it is already out. True: asked."""
        if row.query_in_flight:
            return False
        row.query_in_flight = True
        row.last_query_local_ns = self.now_ns
        broker_id = None if by_client_id else row.broker_order_id
        self.io.append(Query(row.client_order_id, broker_id, reason, command_id))
        return True

    # --- escalations and audit ----------------------------------------------------------------

    def escalate(
        self,
        kind: EscalationKind,
        severity: Severity,
        group_id: str | None,
        client_order_id: str | None,
        symbol: str,
        qty: int,
        reason: str,
    ) -> int:
        esc_id = self.state.next_escalation_id
        self.state.next_escalation_id += 1
        self.state.escalations[esc_id] = EscalationRecord(
            esc_id, kind, EscalationStatus.OPEN, group_id, client_order_id
        )
        self.writes.escalation(esc_id, kind, severity, group_id, client_order_id, symbol, qty, reason, self.now_ns)
        self.notify(EscalationRaised(esc_id, kind, severity, group_id, client_order_id, symbol, qty, reason))
        return esc_id

    def escalate_once(
        self, group_id: str, client_order_id: str | None, kind: EscalationKind, symbol: str, qty: int, reason: str
    ) -> None:
        """Raise a CRITICAL escalation unless the same one is already open."""
        if not self.state.open_escalation(group_id, kind, client_order_id):
            self.escalate(kind, Severity.CRITICAL, group_id, client_order_id, symbol, qty, reason)

    def resolve_escalation(self, esc_id: int, by: str, resolution: str) -> None:
        record = self.state.escalations.get(esc_id)
        if record is not None:
            record.status = EscalationStatus.RESOLVED
        self.writes.resolutions.append((esc_id, by, resolution, self.now_ns))

    def _resolve_open_for(self, client_order_id: str) -> None:
        """The broker reported an orphan after all: its escalation is resolved (by the engine)."""
        for record in self.state.escalations.values():
            if record.client_order_id == client_order_id and record.status is not EscalationStatus.RESOLVED:
                record.status = EscalationStatus.RESOLVED

    def audit(
        self, actor: Actor, command: str, target: str, detail: dict[str, Any], outcome: str, wall_ms: int
    ) -> None:
        self.writes.audit(
            self.now_ns, wall_ms, actor.os_user, actor.role.value, command, target, detail, outcome, self.command_seq
        )


def order_request(row: IntentRow) -> OrderRequest:
    """What goes on the wire for this intent row."""
    return OrderRequest(
        row.client_order_id,
        row.symbol,
        row.side,
        row.qty,
        row.order_type,
        row.limit_price_paise,
        row.trigger_price_paise,
    )
