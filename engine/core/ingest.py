"""Idempotent event application: every broker event is applied at most once, and its dedupe key
is staged in the same journal batch as its effect (seed defect 4). Refused events are kept."""

from __future__ import annotations

from engine.core import order_fsm
from engine.core.book import IntentRow
from engine.core.context import StepContext
from engine.core.dedupe import DedupeKeyError, dedupe_key
from engine.core.effects import QueryReason
from engine.core.events import (
    BrokerEvent,
    FeedItem,
    FillReport,
    MalformedEvent,
    OrderSnapshot,
    OrderUpdate,
    event_to_dict,
)
from engine.core.notices import DuplicatesAbsorbed, EventRefused


def apply_events(ctx: StepContext, events: tuple[FeedItem, ...], known_keys: frozenset[str]) -> None:
    """Apply a batch. ``known_keys``: keys the journal already holds (a restart's memory)."""
    duplicates = 0
    for event in events:
        duplicates += _apply_one(ctx, event, known_keys)
    stats = ctx.state.stats
    stats.events += len(events)
    stats.duplicates += duplicates
    stats.batches += 1
    ctx.writes.duplicates += duplicates
    if duplicates:
        ctx.notify(DuplicatesAbsorbed(duplicates))


def _apply_one(ctx: StepContext, event: FeedItem, known_keys: frozenset[str]) -> int:
    """Apply one event; 1 if it was a duplicate."""
    if isinstance(event, MalformedEvent):
        ctx.writes.reject(None, None, {"raw": event.raw}, event.reason, None, ctx.now_ns, event.feed_seq)
        ctx.state.stats.rejected += 1
        ctx.notify(EventRefused(None, event.reason, {"raw": event.raw, "feed_seq": event.feed_seq}))
        return 0
    raw = event_to_dict(event)
    try:
        key = dedupe_key(event)
    except DedupeKeyError as exc:
        _refuse(ctx, None, None, raw, str(exc), event)
        return 0
    book = ctx.book
    row = book.lookup(event.client_order_id, event.broker_order_id)
    if row is None:
        why = f"event for an order this journal does not know (client id {event.client_order_id!r})"
        _refuse(ctx, None, key, raw, why, event)
        return 0
    seen = ctx.state.seen_keys
    if key in seen or key in known_keys:
        return 1
    contradiction = _contradicts(row, event, book.by_broker.get(event.broker_order_id))
    if contradiction and row.broker_order_id is None:
        row.seen_at_broker = True
    if contradiction:
        # Never about the order the event claims: ask the broker about the one we know.
        _refuse(ctx, row, key, raw, contradiction, event)
        ctx.query(row, QueryReason.RECONCILE)
        return 0
    if isinstance(event, FillReport):
        outcome, fills_qty = order_fsm.apply_fill(row.order_state, row.fills_qty, event.qty)
        if outcome.accepted:
            ctx.writes.fill(event, row.client_order_id, ctx.now_ns)
            row.fills_qty = fills_qty
    else:
        outcome = order_fsm.apply(row.order_state, order_fsm.broker_trigger(event.status), event.filled_qty)
        if outcome.accepted and event.reason:
            row.reason = event.reason
    if not outcome.accepted:
        # The key is not consumed: the same report may be valid later (the table is idempotent),
        # and refusing it again costs only another rejected_events row.
        _refuse(ctx, row, key, raw, outcome.reason, event)
        return 0
    seen.add(key)
    ctx.state.keys_of.setdefault(row.group_id, []).append(key)
    ctx.writes.processed.append((key, row.client_order_id, ctx.now_ns))
    # Only accepted events on known orders move broker time: a refused event's stamp is not trusted.
    ctx.observe(event.ts_exchange_ms)
    ctx.set_order_state(row, outcome.state, key, event.ts_exchange_ms)
    return 0


def _contradicts(row: IntentRow, event: BrokerEvent, owner: str | None) -> str:
    """Why ``event`` may not move ``row`` ('' when it may): its client id and broker id must both
    agree with the journal, and a broker id is known only from the broker's own answer to place,
    find or order, never adopted from an unsolicited event."""
    if owner is not None and owner != row.client_order_id:
        return f"broker id {event.broker_order_id} belongs to {owner}, not to {row.client_order_id}"
    if event.client_order_id and event.client_order_id != row.client_order_id:
        # found by its broker id, but naming another client id (one this book does not hold)
        return (
            f"client id {event.client_order_id} does not match {row.client_order_id}, whose broker id "
            f"{event.broker_order_id} the event carries; asking the broker"
        )
    if row.broker_order_id is None:
        return (
            f"broker id {event.broker_order_id} for {row.client_order_id} is not confirmed by the broker's answer"
            " to place, find or order; asking the broker"
        )
    if event.broker_order_id != row.broker_order_id:
        return (
            f"broker id {event.broker_order_id} contradicts the journal's {row.broker_order_id} for "
            f"{row.client_order_id}; asking the broker"
        )
    if isinstance(event, FillReport) and (event.symbol, event.side) != (row.symbol, row.side):
        return (
            f"fill {event.trade_id} is {event.side.value} {event.symbol}, but {row.client_order_id} is "
            f"{row.side.value} {row.symbol}"
        )
    return ""


def adopt_broker_id(ctx: StepContext, row: IntentRow, broker_order_id: str, source: str) -> bool:
    """Tie ``row`` to the broker id the broker itself answered with. False (and recorded) when it
    contradicts the id already known."""
    if row.broker_order_id == broker_order_id:
        return True
    if row.broker_order_id is not None or ctx.book.by_broker.get(broker_order_id, row.client_order_id) != (
        row.client_order_id
    ):
        why = (
            f"{source} answered broker id {broker_order_id} for {row.client_order_id}, which has {row.broker_order_id}"
        )
        ctx.writes.reject(row.client_order_id, None, {"broker_order_id": broker_order_id}, why, None, ctx.now_ns)
        ctx.state.stats.rejected += 1
        ctx.notify(EventRefused(row.client_order_id, why, {"broker_order_id": broker_order_id}))
        return False
    row.broker_order_id = broker_order_id
    ctx.book.refresh(row)
    ctx.writes.intent(row)
    return True


def _refuse(
    ctx: StepContext, row: IntentRow | None, key: str | None, raw: dict[str, object], reason: str, event: BrokerEvent
) -> None:
    coid = row.client_order_id if row else None
    ctx.writes.reject(coid, key, raw, reason, event.ts_exchange_ms, ctx.now_ns)
    ctx.state.stats.rejected += 1
    ctx.notify(EventRefused(coid, reason, raw))


def snapshot_events(snapshot: OrderSnapshot) -> tuple[BrokerEvent, ...]:
    """Turn a broker snapshot into the events that would have produced it, for the dedupe path."""
    update = OrderUpdate(
        broker_order_id=snapshot.broker_order_id,
        client_order_id=snapshot.client_order_id,
        status=snapshot.status,
        filled_qty=snapshot.filled_qty,
        ts_exchange_ms=snapshot.ts_exchange_ms,
        reason=snapshot.reason,
    )
    return (*snapshot.fills, update)
