"""Idempotent event ingestion: every broker event is applied at most once, and its dedupe key
commits in the same transaction as its effect (seed defect 4). Rejected events are kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core import order_fsm
from engine.core.clock import BrokerClock
from engine.core.dedupe import DedupeKeyError, dedupe_key
from engine.core.events import BrokerEvent, FillReport, OrderSnapshot, OrderUpdate, event_to_dict
from engine.core.model import IntentStatus
from engine.runtime.state import Book, intent_status_for
from engine.store.journal import Journal
from engine.store.rows import IntentRow


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    touched_groups: set[str] = field(default_factory=set)
    notes: list[dict[str, object]] = field(default_factory=list)


class Ingestor:
    def __init__(self, journal: Journal, book: Book, clock: BrokerClock) -> None:
        self._journal = journal
        self._book = book
        self._clock = clock

    async def apply_batch(self, events: list[BrokerEvent], now_ns: int) -> BatchResult:
        """Apply ``events`` in one transaction (group commit)."""
        result = BatchResult()
        async with self._journal.transaction():
            for event in events:
                await self._apply_one(event, now_ns, result)
            if result.duplicates:
                await self._journal.bump_counter("duplicate_events", result.duplicates)
        return result

    async def _apply_one(self, event: BrokerEvent, now_ns: int, result: BatchResult) -> None:
        self._clock.observe(event.ts_exchange_ms, now_ns)
        raw = event_to_dict(event)
        try:
            key = dedupe_key(event)
        except DedupeKeyError as exc:
            await self._reject(None, None, raw, str(exc), event, now_ns, result)
            return
        row = self._book.lookup(event.client_order_id, event.broker_order_id)
        if row is None:
            why = f"event for an order this journal does not know (client id {event.client_order_id!r})"
            await self._reject(None, key, raw, why, event, now_ns, result)
            return
        if not await self._journal.mark_processed(key, row.client_order_id, now_ns):
            result.duplicates += 1
            return
        if not row.broker_order_id and event.broker_order_id:
            row.broker_order_id = event.broker_order_id
            self._book.by_broker[event.broker_order_id] = row.client_order_id
        if isinstance(event, FillReport):
            outcome, fills_qty = order_fsm.apply_fill(row.order_state, row.fills_qty, event.qty)
            if outcome.accepted:
                await self._journal.insert_fill(event, row.client_order_id, now_ns)
                row.fills_qty = fills_qty
        else:
            outcome = order_fsm.apply(row.order_state, order_fsm.broker_trigger(event.status), event.filled_qty)
            if outcome.accepted and event.reason:
                row.reason = event.reason
        if not outcome.accepted:
            await self._reject(row, key, raw, outcome.reason, event, now_ns, result)
            return
        await self.set_order_state(row, outcome.state, cause=key, ts_exchange_ms=event.ts_exchange_ms, now_ns=now_ns)
        result.applied += 1
        result.touched_groups.add(row.group_id)

    async def set_order_state(
        self, row: IntentRow, state: order_fsm.OrderState, *, cause: str, ts_exchange_ms: int | None, now_ns: int
    ) -> None:
        """Persist a new order state and the intent status that follows from it, with audit rows."""
        before = (row.order_status, row.filled_qty, row.status)
        row.order_status, row.filled_qty = state.status, state.filled_qty
        row.status = self._next_intent_status(row)
        row.ts_updated_local_ns = now_ns
        await self._journal.update_intent(row)
        if (row.order_status, row.filled_qty) != before[:2]:
            await self._journal.record_transition(
                "ORDER",
                row.client_order_id,
                before[0].value,
                row.order_status.value,
                filled_qty=row.filled_qty,
                cause=cause,
                ts_exchange_ms=ts_exchange_ms,
                now_ns=now_ns,
            )
        if row.status is not before[2]:
            await self._journal.record_transition(
                "INTENT",
                row.client_order_id,
                before[2].value,
                row.status.value,
                filled_qty=None,
                cause=cause,
                ts_exchange_ms=ts_exchange_ms,
                now_ns=now_ns,
            )
            if before[2] is IntentStatus.ORPHANED:
                for esc in await self._journal.open_escalations_for(row.client_order_id):
                    await self._journal.resolve_escalation(esc, "engine", "broker reported the order", now_ns)

    @staticmethod
    def _next_intent_status(row: IntentRow) -> IntentStatus:
        if row.status is IntentStatus.ORPHANED and row.order_status.value in ("INTENT", "SUBMITTED", "UNKNOWN"):
            return row.status
        current = IntentStatus.SENT if row.status is IntentStatus.ORPHANED else row.status
        return intent_status_for(row.order_status, current)

    async def _reject(
        self,
        row: IntentRow | None,
        key: str | None,
        raw: dict[str, object],
        reason: str,
        event: BrokerEvent,
        now_ns: int,
        result: BatchResult,
    ) -> None:
        await self._journal.record_rejected(
            row.client_order_id if row else None, key, raw, reason, event.ts_exchange_ms, now_ns
        )
        result.rejected += 1
        result.notes.append(
            {
                "type": "rejected_event",
                "client_order_id": row.client_order_id if row else None,
                "reason": reason,
                "event": raw,
            }
        )


def snapshot_events(snapshot: OrderSnapshot) -> list[BrokerEvent]:
    """Turn a broker snapshot into the events that would have produced it, for the dedupe path."""
    events: list[BrokerEvent] = list(snapshot.fills)
    events.append(
        OrderUpdate(
            broker_order_id=snapshot.broker_order_id,
            client_order_id=snapshot.client_order_id,
            status=snapshot.status,
            filled_qty=snapshot.filled_qty,
            ts_exchange_ms=snapshot.ts_exchange_ms,
            reason=snapshot.reason,
        )
    )
    return events
