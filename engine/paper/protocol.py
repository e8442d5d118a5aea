"""Wire protocol of the paper exchange server: pure decoding, validation and encoding (no I/O).

Every function here is a pure function of its arguments, so the server's input handling can be
fuzzed directly. ``decode_request`` never raises: it returns a request object or a
``ProtocolError`` carrying the error code the server replies with. ``answer_query`` answers the
read-only requests from an ``ExchangeCore`` without changing it. See docs/EXCHANGE_PROTOCOL.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from engine.core.events import (
    BrokerEvent,
    CancelAck,
    FillReport,
    OrderRequest,
    OrderSnapshot,
    PlaceAck,
    event_from_dict,
    event_to_dict,
)
from engine.core.model import OrderStatus, OrderType, Side
from engine.core.quotes import Quote
from engine.paper.exchange import ExchangeCore, UnknownOrder

PROTOCOL_VERSION: Final = 1
MAX_MESSAGE_BYTES: Final = 64 * 1024  # larger requests get a TOO_LARGE error reply
MAX_ID_CHARS: Final = 64  # client order ids, broker order ids and req_ids
MAX_QTY: Final = 1_000_000_000
MAX_PRICE_PAISE: Final = 10**12
MAX_SEQ: Final = 2**63 - 1

# Error codes (docs/EXCHANGE_PROTOCOL.md). Every error reply means: nothing was changed.
BAD_JSON: Final = "BAD_JSON"
TOO_LARGE: Final = "TOO_LARGE"
UNKNOWN_TYPE: Final = "UNKNOWN_TYPE"
BAD_FIELD: Final = "BAD_FIELD"
UNKNOWN_SYMBOL: Final = "UNKNOWN_SYMBOL"
UNKNOWN_ORDER: Final = "UNKNOWN_ORDER"
INTERNAL: Final = "INTERNAL"  # the exchange failed; for a place, the order's fate is unknown
ERROR_CODES: Final = frozenset({BAD_JSON, TOO_LARGE, UNKNOWN_TYPE, BAD_FIELD, UNKNOWN_SYMBOL, UNKNOWN_ORDER, INTERNAL})

ReqId = str | int | None


@dataclass(frozen=True, slots=True)
class ProtocolError:
    code: str
    message: str
    req_id: ReqId = None

    def to_reply(self) -> dict[str, Any]:
        return {"type": "error", "req_id": self.req_id, "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class Place:
    req_id: ReqId
    order: OrderRequest


@dataclass(frozen=True, slots=True)
class Cancel:
    req_id: ReqId
    broker_order_id: str


@dataclass(frozen=True, slots=True)
class GetOrder:
    req_id: ReqId
    broker_order_id: str


@dataclass(frozen=True, slots=True)
class Find:
    req_id: ReqId
    client_order_id: str


@dataclass(frozen=True, slots=True)
class ListOrders:
    req_id: ReqId


@dataclass(frozen=True, slots=True)
class Positions:
    req_id: ReqId


@dataclass(frozen=True, slots=True)
class ServerTime:
    req_id: ReqId


@dataclass(frozen=True, slots=True)
class Stats:
    req_id: ReqId


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``after_seq`` None: live events only, from the current head on."""

    req_id: ReqId
    after_seq: int | None


@dataclass(frozen=True, slots=True)
class SubscribeQuotes:
    """Stream quotes of these symbols (replacing the connection's previous quote subscription;
    an empty list ends it)."""

    req_id: ReqId
    symbols: tuple[str, ...]


MAX_QUOTE_SYMBOLS: Final = 1_000

Request = Place | Cancel | GetOrder | Find | ListOrders | Positions | ServerTime | Stats | Subscribe | SubscribeQuotes
Query = GetOrder | Find | ListOrders | Positions

REQUEST_TYPES: Final = (
    "place",
    "cancel",
    "order",
    "find",
    "orders",
    "positions",
    "time",
    "stats",
    "subscribe",
    "subscribe_quotes",
)


class _Bad(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- decoding ----------------------------------------------------------------------------------


def decode_request(raw: str | bytes, symbols: Mapping[str, object]) -> Request | ProtocolError:
    """Decode and validate one client message. Never raises; ``symbols`` is the catalog."""
    size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    if size > MAX_MESSAGE_BYTES:
        return ProtocolError(TOO_LARGE, f"message of {size} bytes exceeds the {MAX_MESSAGE_BYTES} byte limit")
    try:
        obj = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8 are ValueErrors
        return ProtocolError(BAD_JSON, f"not valid JSON: {str(exc)[:200]}")
    if not isinstance(obj, dict):
        return ProtocolError(BAD_JSON, "a message must be a JSON object")
    req_id = obj.get("req_id")
    if not _valid_req_id(req_id):
        return ProtocolError(BAD_FIELD, "field 'req_id' must be a string of at most 64 characters or an integer")
    try:
        return _decode(obj, req_id, symbols)
    except _Bad as bad:
        return ProtocolError(bad.code, bad.message, req_id)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _valid_req_id(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) <= MAX_SEQ
    return isinstance(value, str) and len(value) <= MAX_ID_CHARS


def _decode(obj: dict[str, Any], req_id: ReqId, symbols: Mapping[str, object]) -> Request:
    kind = obj.get("type")
    if kind == "place":
        symbol = _text(obj, "symbol")
        if symbol not in symbols:
            raise _Bad(UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}")
        order_type = _choice(obj, "order_type", OrderType, default=OrderType.MARKET)
        return Place(
            req_id,
            OrderRequest(
                client_order_id=_text(obj, "client_order_id"),
                symbol=symbol,
                side=_choice(obj, "side", Side),
                qty=_integer(obj, "qty", 1, MAX_QTY),
                order_type=order_type,
                limit_price_paise=_optional_integer(obj, "limit_price_paise", 1, MAX_PRICE_PAISE),
                trigger_price_paise=_optional_integer(obj, "trigger_price_paise", 1, MAX_PRICE_PAISE),
            ),
        )
    if kind == "cancel":
        return Cancel(req_id, _text(obj, "broker_order_id"))
    if kind == "order":
        return GetOrder(req_id, _text(obj, "broker_order_id"))
    if kind == "find":
        return Find(req_id, _text(obj, "client_order_id"))
    if kind == "orders":
        return ListOrders(req_id)
    if kind == "positions":
        return Positions(req_id)
    if kind == "time":
        return ServerTime(req_id)
    if kind == "stats":
        return Stats(req_id)
    if kind == "subscribe":
        return Subscribe(req_id, _optional_integer(obj, "after_seq", 0, MAX_SEQ))
    if kind == "subscribe_quotes":
        wanted = obj.get("symbols")
        if not isinstance(wanted, list) or len(wanted) > MAX_QUOTE_SYMBOLS:
            raise _Bad(BAD_FIELD, f"field 'symbols' must be a list of at most {MAX_QUOTE_SYMBOLS} symbols")
        for symbol in wanted:
            # not checked against the catalog: the venue quotes what it can (spots too) and names the rest
            if not isinstance(symbol, str) or not symbol or len(symbol) > MAX_ID_CHARS:
                shown = symbol if isinstance(symbol, str) and len(symbol) <= MAX_ID_CHARS else type(symbol).__name__
                raise _Bad(BAD_FIELD, f"field 'symbols' holds {shown!r}, not a symbol")
        return SubscribeQuotes(req_id, tuple(dict.fromkeys(wanted)))
    if kind is None:
        raise _Bad(UNKNOWN_TYPE, f"message has no 'type'; expected one of {', '.join(REQUEST_TYPES)}")
    shown = kind if isinstance(kind, str) and len(kind) <= MAX_ID_CHARS else type(kind).__name__
    raise _Bad(UNKNOWN_TYPE, f"unknown message type {shown!r}; expected one of {', '.join(REQUEST_TYPES)}")


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS or not value.isprintable():
        raise _Bad(BAD_FIELD, f"field {key!r} must be a non-empty printable string of at most {MAX_ID_CHARS} chars")
    return value


def _integer(obj: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Bad(BAD_FIELD, f"field {key!r} must be an integer in [{low}, {high}], got {_short(value)}")
    return value


def _optional_integer(obj: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    return None if obj.get(key) is None else _integer(obj, key, low, high)


def _choice(obj: Mapping[str, Any], key: str, enum: Any, default: Any = None) -> Any:
    value = obj.get(key)
    if value is None and default is not None:
        return default
    names = [m.value for m in enum]
    if not isinstance(value, str) or value not in names:
        raise _Bad(BAD_FIELD, f"field {key!r} must be one of {', '.join(names)}, got {_short(value)}")
    return enum(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- encoding ----------------------------------------------------------------------------------


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def snapshot_to_dict(s: OrderSnapshot) -> dict[str, Any]:
    return {
        "broker_order_id": s.broker_order_id,
        "client_order_id": s.client_order_id,
        "symbol": s.symbol,
        "side": s.side.value,
        "qty": s.qty,
        "order_type": s.order_type.value,
        "status": s.status.value,
        "filled_qty": s.filled_qty,
        "ts_exchange_ms": s.ts_exchange_ms,
        "fills": [event_to_dict(f) for f in s.fills],
        "reason": s.reason,
        "limit_price_paise": s.limit_price_paise,
        "trigger_price_paise": s.trigger_price_paise,
    }


def snapshot_from_dict(raw: Any) -> OrderSnapshot:
    """Raises ValueError (a BrokerEventError or a _Bad) naming the bad field."""
    if not isinstance(raw, Mapping):
        raise ValueError("an order snapshot must be a JSON object")
    fills = raw.get("fills")
    if not isinstance(fills, list):
        raise ValueError("field 'fills' must be a list")
    decoded = [event_from_dict(f) for f in fills]
    if not all(isinstance(f, FillReport) for f in decoded):
        raise ValueError("field 'fills' must hold fill events only")
    try:
        return OrderSnapshot(
            broker_order_id=_text(raw, "broker_order_id"),
            client_order_id=_text(raw, "client_order_id"),
            symbol=_text(raw, "symbol"),
            side=_choice(raw, "side", Side),
            qty=_integer(raw, "qty", 1, MAX_QTY),
            order_type=_choice(raw, "order_type", OrderType),
            status=_choice(raw, "status", OrderStatus),
            filled_qty=_integer(raw, "filled_qty", 0, MAX_QTY),
            ts_exchange_ms=_integer(raw, "ts_exchange_ms", 0, MAX_SEQ),
            fills=tuple(f for f in decoded if isinstance(f, FillReport)),
            reason=str(raw.get("reason") or ""),
            limit_price_paise=_optional_integer(raw, "limit_price_paise", 1, MAX_PRICE_PAISE),
            trigger_price_paise=_optional_integer(raw, "trigger_price_paise", 1, MAX_PRICE_PAISE),
        )
    except _Bad as bad:
        raise ValueError(bad.message) from None


def placed_reply(req_id: ReqId, ack: PlaceAck) -> dict[str, Any]:
    return {
        "type": "placed",
        "req_id": req_id,
        "broker_order_id": ack.broker_order_id,
        "client_order_id": ack.client_order_id,
        "ts_exchange_ms": ack.ts_exchange_ms,
    }


def rejected_reply(req_id: ReqId, client_order_id: str, reason: str, ts_exchange_ms: int) -> dict[str, Any]:
    return {
        "type": "rejected",
        "req_id": req_id,
        "client_order_id": client_order_id,
        "reason": reason,
        "ts_exchange_ms": ts_exchange_ms,
    }


def cancel_reply(req_id: ReqId, ack: CancelAck) -> dict[str, Any]:
    return {
        "type": "cancel_ack",
        "req_id": req_id,
        "broker_order_id": ack.broker_order_id,
        "status": ack.status.value,
        "ts_exchange_ms": ack.ts_exchange_ms,
    }


def event_message(seq: int, event: BrokerEvent | Mapping[str, Any], *, replay: bool = False) -> dict[str, Any]:
    body = dict(event) if isinstance(event, Mapping) else event_to_dict(event)
    return {"type": "event", "seq": seq, "replay": replay, "event": body}


def answer_query(core: ExchangeCore, request: Query) -> dict[str, Any]:
    """Answer a read-only request from the core; the core is not changed."""
    if isinstance(request, GetOrder):
        try:
            snapshot = core.order(request.broker_order_id)
        except UnknownOrder:
            return ProtocolError(
                UNKNOWN_ORDER, f"no order {request.broker_order_id!r} at this exchange", request.req_id
            ).to_reply()
        return {"type": "order", "req_id": request.req_id, "order": snapshot_to_dict(snapshot)}
    if isinstance(request, Find):
        found = core.find(request.client_order_id)
        return {"type": "found", "req_id": request.req_id, "order": None if found is None else snapshot_to_dict(found)}
    if isinstance(request, ListOrders):
        return {"type": "orders", "req_id": request.req_id, "orders": [snapshot_to_dict(o) for o in core.orders()]}
    return {"type": "positions", "req_id": request.req_id, "positions": core.positions()}


def quote_to_dict(q: Quote) -> dict[str, Any]:
    return {
        "type": "quote",
        "symbol": q.symbol,
        "bid_paise": q.bid_paise,
        "ask_paise": q.ask_paise,
        "bid_qty": q.bid_qty,
        "ask_qty": q.ask_qty,
        "last_paise": q.last_paise,
        "last_qty": q.last_qty,
        "ts_exchange_ms": q.ts_exchange_ms,
        "open_paise": q.open_paise,
    }


def quote_from_dict(obj: Mapping[str, Any]) -> Quote:
    """A ``quote`` message; ValueError (naming the field) when it is not a valid quote."""
    fields = ("symbol", "bid_paise", "ask_paise", "bid_qty", "ask_qty", "last_paise", "last_qty", "ts_exchange_ms")
    missing = [f for f in fields if f not in obj]
    if missing:
        raise ValueError(f"quote without {', '.join(missing)}")
    symbol = obj["symbol"]
    if not isinstance(symbol, str) or not symbol or len(symbol) > MAX_ID_CHARS:
        raise ValueError("quote with a bad symbol")
    for name in fields[1:]:
        value = obj[name]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or abs(value) > MAX_SEQ):
            raise ValueError(f"quote for {symbol}: {name} {value!r} is not an integer")
    open_paise = obj.get("open_paise")  # optional: older servers do not send it
    if open_paise is not None and (
        not isinstance(open_paise, int) or isinstance(open_paise, bool) or abs(open_paise) > MAX_SEQ
    ):
        raise ValueError(f"quote for {symbol}: open_paise {open_paise!r} is not an integer")
    bid, ask, bid_qty, ask_qty, last, last_qty, ts = (obj[name] for name in fields[1:])
    return Quote(symbol, bid, ask, bid_qty, ask_qty, last, last_qty, ts, open_paise)
