"""Broker events and the values exchanged over the Broker port. All frozen; all integers.

Prices are integer paise (1/100 rupee); timestamps are exchange milliseconds (``ts_exchange_ms``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.core.model import BROKER_REPORTED_STATUSES, OrderStatus, OrderType, Side

_E = TypeVar("_E", Side, OrderStatus)


class BrokerEventError(ValueError):
    """A broker message is malformed. The message names the field at fault."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType = OrderType.MARKET
    limit_price_paise: int | None = None
    trigger_price_paise: int | None = None


@dataclass(frozen=True, slots=True)
class PlaceAck:
    broker_order_id: str
    client_order_id: str
    ts_exchange_ms: int


@dataclass(frozen=True, slots=True)
class CancelAck:
    broker_order_id: str
    status: OrderStatus  # PENDING_CANCEL, CANCELLED, or the terminal state that won the race
    ts_exchange_ms: int


@dataclass(frozen=True, slots=True)
class FillReport:
    """One execution. ``trade_id`` is unique per fill at the exchange: it is the dedupe key."""

    trade_id: str
    broker_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: int
    price_paise: int
    ts_exchange_ms: int


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """A status report. Carries the *cumulative* filled qty, never a per-fill qty."""

    broker_order_id: str
    client_order_id: str
    status: OrderStatus
    filled_qty: int
    ts_exchange_ms: int
    reason: str = ""


BrokerEvent = OrderUpdate | FillReport

RAW_KEEP_CHARS = 2048  # a refused payload is kept, but only this much of it


@dataclass(frozen=True, slots=True)
class MalformedEvent:
    """A message from the feed that could not be decoded. It is journaled as a refused event
    (``raw`` cut to RAW_KEEP_CHARS), and its feed sequence number still counts as seen."""

    raw: str
    reason: str
    feed_seq: int | None = None

    @classmethod
    def of(cls, payload: object, reason: str, feed_seq: int | None) -> MalformedEvent:
        text = payload if isinstance(payload, str) else repr(payload)
        return cls(text[:RAW_KEEP_CHARS], reason, feed_seq)


FeedItem = BrokerEvent | MalformedEvent


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    broker_order_id: str
    client_order_id: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType
    status: OrderStatus
    filled_qty: int
    ts_exchange_ms: int
    fills: tuple[FillReport, ...] = ()
    reason: str = ""
    limit_price_paise: int | None = None
    trigger_price_paise: int | None = None


class Rejected(Exception):
    """The broker definitely refused the order; it is not live."""


class Ambiguous(Exception):
    """The outcome is unknown (timeout, disconnect, lost ack). The order may be live."""


# --- wire form ---------------------------------------------------------------------------------


def event_to_dict(event: BrokerEvent) -> dict[str, Any]:
    if isinstance(event, FillReport):
        return {
            "type": "fill",
            "trade_id": event.trade_id,
            "broker_order_id": event.broker_order_id,
            "client_order_id": event.client_order_id,
            "symbol": event.symbol,
            "side": event.side.value,
            "qty": event.qty,
            "price_paise": event.price_paise,
            "ts_exchange_ms": event.ts_exchange_ms,
        }
    return {
        "type": "order",
        "broker_order_id": event.broker_order_id,
        "client_order_id": event.client_order_id,
        "status": event.status.value,
        "filled_qty": event.filled_qty,
        "ts_exchange_ms": event.ts_exchange_ms,
        "reason": event.reason,
    }


def event_from_dict(raw: Any) -> BrokerEvent:
    """Validate and decode one broker message. Raises BrokerEventError naming the bad field."""
    if not isinstance(raw, Mapping):
        raise BrokerEventError("event must be a JSON object")
    kind = raw.get("type")
    if kind == "fill":
        qty = _int(raw, "qty", minimum=1)
        return FillReport(
            trade_id=_str(raw, "trade_id"),
            broker_order_id=_str(raw, "broker_order_id"),
            client_order_id=_str(raw, "client_order_id", allow_empty=True),
            symbol=_str(raw, "symbol"),
            side=_enum(raw, "side", Side),
            qty=qty,
            price_paise=_int(raw, "price_paise", minimum=0),
            ts_exchange_ms=_int(raw, "ts_exchange_ms", minimum=0),
        )
    if kind == "order":
        status = _enum(raw, "status", OrderStatus)
        if status not in BROKER_REPORTED_STATUSES:
            raise BrokerEventError(f"status {status.value} is not a broker-reported status")
        return OrderUpdate(
            broker_order_id=_str(raw, "broker_order_id"),
            client_order_id=_str(raw, "client_order_id", allow_empty=True),
            status=status,
            filled_qty=_int(raw, "filled_qty", minimum=0),
            ts_exchange_ms=_int(raw, "ts_exchange_ms", minimum=0),
            reason=str(raw.get("reason") or "")[:MAX_REASON_CHARS],
        )
    raise BrokerEventError(f"unknown event type {kind!r}")


MAX_ID_CHARS = 64  # ids and symbols longer than this are no broker's (Kite: 20; FIX: 64 is generous)
MAX_REASON_CHARS = 512  # a reason is kept, cut to this
MAX_EVENT_INT = 2**53 - 1  # JSON's exact integers; a SQLite INTEGER column holds it


def _str(raw: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise BrokerEventError(f"field {key!r} must be a non-empty string, got {_short(value)}")
    if len(value) > MAX_ID_CHARS:
        raise BrokerEventError(f"field {key!r} is {len(value)} characters, more than {MAX_ID_CHARS}")
    return value


def _int(raw: Mapping[str, Any], key: str, *, minimum: int) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_EVENT_INT:
        raise BrokerEventError(f"field {key!r} must be an integer in [{minimum}, 2**53), got {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _enum(raw: Mapping[str, Any], key: str, enum: type[_E]) -> _E:
    value = raw.get(key)
    try:
        return enum(str(value))
    except ValueError as exc:
        raise BrokerEventError(f"field {key!r} has unknown value {_short(value)}") from exc
