"""Deterministic dedupe keys for broker events.

A resend of the same event must produce the same key, so the key is derived from the event's
content, never generated: the trade id for a fill, (broker order id, status, cumulative qty) for a
status report. Brokers such as Kite send no event id at all. An event with neither is refused.
"""

from __future__ import annotations

from engine.core.events import BrokerEvent, FillReport


class DedupeKeyError(ValueError):
    """The event carries nothing that identifies it deterministically."""


def dedupe_key(event: BrokerEvent) -> str:
    if isinstance(event, FillReport):
        if not event.trade_id:
            raise DedupeKeyError("fill without a trade id cannot be deduplicated; refused")
        return f"F:{event.trade_id}"
    if not event.broker_order_id:
        raise DedupeKeyError("status update without a broker order id cannot be deduplicated; refused")
    return f"S:{event.broker_order_id}:{event.status.value}:{event.filled_qty}"
