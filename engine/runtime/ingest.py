"""Idempotent event ingestion: every broker event is applied at most once, and its dedupe key
commits in the same transaction as its effect (seed defect 4). Rejected events are kept."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core import order_fsm
from engine.core.clock import BrokerClock
from engine.core.dedupe import DedupeKeyError, dedupe_key
from engine.core.events import BrokerEvent, FillReport, OrderSnapshot, OrderUpdate, event_to_dict
from engine.core.model import IntentStatus, OrderStatus, OrderType
from engine.runtime.state import Book, intent_status_for
from engine.store.batch import WriteBatch
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
        """Apply ``events`` in one transaction (group commit): keys, effects and rejections together."""
        result = BatchResult()
        keyed: list[tuple[BrokerEvent, str | None]] = []
        for event in events:
            try:
                keyed.append((event, dedupe_key(event)))
            except DedupeKeyError:
                keyed.append((event, None))
        seen = await self._journal.known_keys([k for _, k in keyed if k])
        writes = WriteBatch()
        for event, key in keyed:
            self._apply_one(event, key, seen, now_ns, result, writes)
        writes.duplicates = result.duplicates
        async with self._journal.transaction():
            await self._journal.flush(writes)
        return result

    def _apply_one(
        self,
        event: BrokerEvent,
        key: str | None,
        seen: set[str],
        now_ns: int,
        result: BatchResult,
        writes: WriteBatch,
    ) -> None:
        raw = event_to_dict(event)
        if key is None:
            try:
                dedupe_key(event)
            except DedupeKeyError as exc:
                self._reject(None, None, raw, str(exc), event, now_ns, result, writes)
            return
        row = self._book.lookup(event.client_order_id, event.broker_order_id)
        if row is None:
            why = f"event for an order this journal does not know (client id {event.client_order_id!r})"
            self._reject(None, key, raw, why, event, now_ns, result, writes)
            return
        if key in seen:
            result.duplicates += 1
            return
        seen.add(key)
        if not row.broker_order_id and event.broker_order_id:
            row.broker_order_id = event.broker_order_id
            self._book.by_broker[event.broker_order_id] = row.client_order_id
        if isinstance(event, FillReport):
            outcome, fills_qty = order_fsm.apply_fill(row.order_state, row.fills_qty, event.qty)
            if outcome.accepted:
                writes.fill(event, row.client_order_id, now_ns)
                row.fills_qty = fills_qty
        else:
            outcome = order_fsm.apply(row.order_state, order_fsm.broker_trigger(event.status), event.filled_qty)
            if outcome.accepted and event.reason:
                row.reason = event.reason
        if not outcome.accepted:
            # The key is not consumed: the same report may be valid later (the table is idempotent),
            # and refusing it again costs only another rejected_events row.
            self._reject(row, key, raw, outcome.reason, event, now_ns, result, writes)
            return
        writes.processed.append((key, row.client_order_id, now_ns))
        # Only accepted events on known orders move broker time: a refused event's stamp is not trusted.
        self._clock.observe(event.ts_exchange_ms, now_ns)
        self.stage_order_state(row, outcome.state, key, event.ts_exchange_ms, now_ns, writes)
        result.applied += 1
        result.touched_groups.add(row.group_id)

    async def set_order_state(
        self, row: IntentRow, state: order_fsm.OrderState, *, cause: str, ts_exchange_ms: int | None, now_ns: int
    ) -> None:
        """Persist a new order state on its own (caller holds a transaction)."""
        writes = WriteBatch()
        self.stage_order_state(row, state, cause, ts_exchange_ms, now_ns, writes)
        await self._journal.flush(writes)

    def stage_order_state(
        self,
        row: IntentRow,
        state: order_fsm.OrderState,
        cause: str,
        ts_exchange_ms: int | None,
        now_ns: int,
        writes: WriteBatch,
    ) -> None:
        """Apply a new order state to ``row`` and stage the intent status that follows, with audit rows."""
        before = (row.order_status, row.filled_qty, row.status)
        row.order_status, row.filled_qty = state.status, state.filled_qty
        row.status = self._next_intent_status(row)
        row.ts_updated_local_ns = now_ns
        if (
            row.ts_triggered_exchange_ms is None
            and ts_exchange_ms is not None
            and row.order_type in (OrderType.SL, OrderType.SL_M)
            and row.order_status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)
        ):
            row.ts_triggered_exchange_ms = ts_exchange_ms  # the exchange's trigger report starts the stop's clock
        if row.ts_ack_exchange_ms is None and ts_exchange_ms is not None and row.status is IntentStatus.SENT:
            # adopted without an ack (lost ack, crash before the ack was recorded): the first broker
            # timestamp starts its deadline, so a resting order still times out
            row.ts_ack_exchange_ms = ts_exchange_ms
        writes.intents[row.client_order_id] = row
        if (row.order_status, row.filled_qty) != before[:2]:
            writes.transition(
                "ORDER",
                row.client_order_id,
                before[0].value,
                row.order_status.value,
                row.filled_qty,
                cause,
                ts_exchange_ms,
                now_ns,
            )
        if row.status is not before[2]:
            writes.transition(
                "INTENT", row.client_order_id, before[2].value, row.status.value, None, cause, ts_exchange_ms, now_ns
            )
            if before[2] is IntentStatus.ORPHANED:
                writes.resolve_orphans.append((row.client_order_id, now_ns))

    @staticmethod
    def _next_intent_status(row: IntentRow) -> IntentStatus:
        if row.status is IntentStatus.ORPHANED and row.order_status.value in ("INTENT", "SUBMITTED", "UNKNOWN"):
            return row.status
        current = IntentStatus.SENT if row.status is IntentStatus.ORPHANED else row.status
        return intent_status_for(row.order_status, current)

    @staticmethod
    def _reject(
        row: IntentRow | None,
        key: str | None,
        raw: dict[str, object],
        reason: str,
        event: BrokerEvent,
        now_ns: int,
        result: BatchResult,
        writes: WriteBatch,
    ) -> None:
        coid = row.client_order_id if row else None
        writes.reject(coid, key, raw, reason, event.ts_exchange_ms, now_ns)
        result.rejected += 1
        result.notes.append({"type": "rejected_event", "client_order_id": coid, "reason": reason, "event": raw})


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
