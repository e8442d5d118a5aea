"""The Broker port over the paper exchange server's websocket protocol (docs/EXCHANGE_PROTOCOL.md).

One connection carries requests, replies and the event stream. A supervisor task keeps it up:
it reconnects with exponential backoff and jitter, and on every (re)connect subscribes with the
highest sequence number below which it has seen *every* event, so the server's replay overlaps
what was already seen and nothing is skipped; the engine dedupes the overlap. The connection
state is a property and is also pushed to listeners (for a status bar).

Outcomes of ``place``: a reply ``placed`` is a PlaceAck; ``rejected`` or any error code other than
INTERNAL is Rejected (the exchange guarantees nothing was accepted); no reply within
``request_timeout_s``, a disconnect after the request was written, or INTERNAL is Ambiguous (the
order may be live: the engine asks ``find()``). While disconnected, requests wait for the
connection (at most ``unavailable_timeout_s``) before anything is written; an order that could
never be written is Rejected, since it is certainly not live. Read-only requests and cancels are
idempotent and are retried across reconnects within the same bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.protocol import State

from engine.broker.fanout import EventFanout
from engine.core.events import (
    Ambiguous,
    BrokerEventError,
    CancelAck,
    FeedItem,
    MalformedEvent,
    OrderRequest,
    OrderSnapshot,
    PlaceAck,
    Rejected,
    event_from_dict,
)
from engine.core.model import OrderStatus
from engine.core.quotes import Quote
from engine.paper import protocol as proto
from engine.paper.exchange import UnknownOrder
from engine.paper.protocol import quote_from_dict

__all__ = ["BrokerUnavailable", "ConnectionState", "WsBroker", "parse_ws_url"]

log = logging.getLogger(__name__)
_T = TypeVar("_T", str, int)

# A gap in the sequence that never fills (a server that lost part of its log) must not grow the
# "seen ahead" set without bound: past this many, the watermark skips to the lowest seen.
_MAX_AHEAD = 50_000
# A frame above this closes the connection (websockets: 1009) and the client reconnects: a
# hostile or broken venue cannot make the desk buffer without bound. A day's `orders` reply of
# 50,000 orders is about 15 MB.
MAX_FRAME_BYTES = 64 * 1024 * 1024


class ConnectionState(enum.StrEnum):
    CONNECTING = "CONNECTING"  # first connection attempt
    CONNECTED = "CONNECTED"
    RECONNECTING = "RECONNECTING"  # the connection dropped; retrying with backoff
    CLOSED = "CLOSED"  # close() was called


class BrokerUnavailable(ConnectionError):
    """The exchange could not be reached within the allowed time; nothing was changed by us."""


class _Lost(Exception):
    """The connection dropped while a request was outstanding."""


def parse_ws_url(url: str) -> tuple[str, dict[str, float]]:
    """Split ``ws://host:port?request_timeout_ms=..`` into the bare URL and WsBroker options.

    Raises ValueError naming the problem."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname or parts.port is None:
        raise ValueError(f"broker URL {url!r} must look like ws://HOST:PORT")
    options: dict[str, float] = {}
    known = {"request_timeout_ms": "request_timeout_s", "unavailable_timeout_ms": "unavailable_timeout_s"}
    for key, values in parse_qs(parts.query, strict_parsing=False, keep_blank_values=True).items():
        if key not in known:
            raise ValueError(f"broker URL {url!r}: unknown option {key!r}; known: {', '.join(known)}")
        try:
            ms = int(values[-1])
        except ValueError:
            raise ValueError(f"broker URL {url!r}: {key} must be an integer number of ms") from None
        if ms <= 0:
            raise ValueError(f"broker URL {url!r}: {key} must be positive")
        options[known[key]] = ms / 1000
    return f"ws://{parts.hostname}:{parts.port}", options


class WsBroker:
    """The Broker port over a websocket. Create it with ``await WsBroker.open(url)``."""

    def __init__(
        self,
        url: str,
        *,
        request_timeout_s: float = 3.0,
        unavailable_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 1.0,
        on_state: Callable[[ConnectionState], None] | None = None,
    ) -> None:
        self.url = url
        self.request_timeout_s = request_timeout_s
        self.unavailable_timeout_s = unavailable_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._state = ConnectionState.CONNECTING
        self._state_listeners: list[Callable[[ConnectionState], None]] = [on_state] if on_state else []
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._fanout = EventFanout()
        self._watermark: int | None = None  # every seq <= this has been seen
        self._ahead: set[int] = set()  # seqs above the watermark already seen
        self._jitter = random.Random()
        self._closed = False
        self._last_error = ""
        self._stats = {"reconnects": 0, "events": 0, "duplicates": 0, "replayed": 0, "acks_lost": 0, "bad_events": 0}
        self._supervisor: asyncio.Task[None] | None = None
        # quote streams: each subscriber's symbols and queue; the union is (re)subscribed on
        # every connection, and each quote goes to the subscribers that asked for its symbol
        self._quote_subscribers: list[tuple[frozenset[str], asyncio.Queue[Quote | None]]] = []

    @classmethod
    async def open(cls, url: str, *, connect_timeout_s: float = 5.0, **options: Any) -> WsBroker:
        """Connect (raises BrokerUnavailable naming the URL if that takes over ``connect_timeout_s``)."""
        broker = cls(url, **options)
        broker._supervisor = asyncio.create_task(broker._run(), name="ws-broker")
        try:
            async with asyncio.timeout(connect_timeout_s):
                await broker._connected.wait()
        except TimeoutError:
            reason = broker._last_error or "no answer"
            await broker.close()
            raise BrokerUnavailable(f"cannot reach the paper exchange at {url}: {reason}") from None
        return broker

    # --- connection state -----------------------------------------------------------------------

    @property
    def connection_state(self) -> ConnectionState:
        return self._state

    def add_state_listener(self, listener: Callable[[ConnectionState], None]) -> None:
        self._state_listeners.append(listener)

    def _set_state(self, state: ConnectionState) -> None:
        if state is self._state:
            return
        self._state = state
        for listener in list(self._state_listeners):
            try:
                listener(state)
            except Exception:  # a broken status bar must never stop trading
                log.exception("connection state listener failed")

    def stats(self) -> dict[str, int]:
        """Client-side counters: reconnects, events received, duplicate seqs seen, replayed events,
        places that got no reply (acks_lost) and undecodable events."""
        return dict(self._stats)

    @property
    def last_seq(self) -> int | None:
        """Every event up to this sequence number has been received."""
        return self._watermark

    # --- the Broker port ------------------------------------------------------------------------

    async def place(self, order: OrderRequest) -> PlaceAck:
        message: dict[str, Any] = {
            "type": "place",
            "client_order_id": order.client_order_id,
            "symbol": order.symbol,
            "side": order.side.value,
            "qty": order.qty,
            "order_type": order.order_type.value,
            "limit_price_paise": order.limit_price_paise,
            "trigger_price_paise": order.trigger_price_paise,
        }
        try:
            reply = await self._request(message, retry=False)
        except BrokerUnavailable as exc:
            raise Rejected(f"not sent: {exc}") from exc
        except (_Lost, TimeoutError) as exc:
            self._stats["acks_lost"] += 1
            raise Ambiguous(f"no reply to place {order.client_order_id}: {exc or 'timeout'}") from exc
        kind = reply.get("type")
        if kind == "placed":
            try:
                return PlaceAck(
                    _field(reply, "broker_order_id", str),
                    _field(reply, "client_order_id", str),
                    _field(reply, "ts_exchange_ms", int),
                )
            except ValueError as exc:
                raise Ambiguous(f"unreadable reply to place {order.client_order_id}: {exc}") from exc
        if kind == "rejected":
            raise Rejected(str(reply.get("reason") or "rejected by the exchange"))
        if kind == "error" and reply.get("code") != proto.INTERNAL:
            raise Rejected(f"{reply.get('code')}: {reply.get('message')}")
        raise Ambiguous(f"place {order.client_order_id}: {reply.get('code')}: {reply.get('message')}")

    async def cancel(self, broker_order_id: str) -> CancelAck:
        """Raises UnknownOrder (a KeyError) when the exchange never issued ``broker_order_id``."""
        reply = await self._query({"type": "cancel", "broker_order_id": broker_order_id}, "cancel_ack")
        try:
            return CancelAck(
                _field(reply, "broker_order_id", str),
                OrderStatus(_field(reply, "status", str)),
                _field(reply, "ts_exchange_ms", int),
            )
        except ValueError as exc:
            raise BrokerUnavailable(f"unreadable cancel reply: {exc}") from exc

    async def order(self, broker_order_id: str) -> OrderSnapshot:
        """Raises UnknownOrder (a KeyError) when the exchange never issued ``broker_order_id``."""
        reply = await self._query({"type": "order", "broker_order_id": broker_order_id}, "order")
        return _snapshot(reply.get("order"))

    async def find(self, client_order_id: str) -> OrderSnapshot | None:
        reply = await self._query({"type": "find", "client_order_id": client_order_id}, "found")
        raw = reply.get("order")
        return None if raw is None else _snapshot(raw)

    async def orders(self) -> list[OrderSnapshot]:
        reply = await self._query({"type": "orders"}, "orders")
        raw = reply.get("orders")
        if not isinstance(raw, list):
            raise BrokerUnavailable("unreadable orders reply")
        return [_snapshot(o) for o in raw]

    async def positions(self) -> dict[str, int]:
        """Net signed qty per symbol at the exchange (for the exchange report; not in the port)."""
        reply = await self._query({"type": "positions"}, "positions")
        raw = reply.get("positions")
        if not isinstance(raw, dict) or not all(isinstance(v, int) for v in raw.values()):
            raise BrokerUnavailable("unreadable positions reply")
        return {str(k): int(v) for k, v in raw.items()}

    async def server_time_ms(self) -> int:
        reply = await self._query({"type": "time"}, "time")
        try:
            return _field(reply, "ts_exchange_ms", int)
        except ValueError as exc:
            raise BrokerUnavailable(f"unreadable time reply: {exc}") from exc

    async def server_stats(self) -> dict[str, int]:
        """The exchange's own fault and traffic counters."""
        reply = await self._query({"type": "stats"}, "stats")
        raw = reply.get("stats")
        if not isinstance(raw, dict):
            raise BrokerUnavailable("unreadable stats reply")
        return {str(k): int(v) for k, v in raw.items() if isinstance(v, int)}

    def events(self) -> AsyncIterator[FeedItem]:
        """Events received from this call on, until close(). Reconnects are invisible here: the
        stream pauses, then resumes with the replay (which may repeat events already yielded)."""
        return self._fanout.subscribe()

    def quotes(self, symbols: Sequence[str]) -> AsyncIterator[Quote]:
        """Quotes of ``symbols`` from the exchange server (``subscribe_quotes``), resubscribed
        after every reconnect (each starts with the current quote of every symbol)."""
        return self._quotes(frozenset(symbols))

    async def _quotes(self, symbols: frozenset[str]) -> AsyncIterator[Quote]:
        queue: asyncio.Queue[Quote | None] = asyncio.Queue(maxsize=10_000)
        entry = (symbols, queue)
        self._quote_subscribers.append(entry)
        try:
            await self._send_quote_subscription()
            while (quote := await queue.get()) is not None:
                yield quote
        finally:
            self._quote_subscribers.remove(entry)
            with contextlib.suppress(Exception):
                await self._send_quote_subscription()

    async def _send_quote_subscription(self) -> None:
        ws = self._ws
        if ws is None:
            return  # the next session subscribes
        wanted = sorted({s for subscribed, _ in self._quote_subscribers for s in subscribed})
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"type": "subscribe_quotes", "req_id": None, "symbols": wanted}))

    def _on_quote(self, message: dict[str, Any]) -> None:
        try:
            quote = quote_from_dict(message)
        except ValueError as exc:
            log.warning("bad quote from the paper exchange: %s", exc)
            self._stats["bad_events"] += 1
            return
        for symbols, queue in self._quote_subscribers:
            if quote.symbol in symbols:
                if queue.full():
                    queue.get_nowait()  # a slow reader loses the oldest quote, never the newest
                queue.put_nowait(quote)

    async def close(self) -> None:
        """Close the connection and end every event stream. Idempotent."""
        if self._closed:
            return
        self._closed = True
        ws = self._ws
        if ws is not None:  # a clean close handshake; the supervisor then sees _closed and ends
            with contextlib.suppress(Exception):
                await ws.close()
        if self._supervisor is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await asyncio.shield(self._supervisor)
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._fail_pending(_Lost("broker closed"))
        self._set_state(ConnectionState.CLOSED)
        self._fanout.end()
        for _, queue in list(self._quote_subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)  # quote streams end too

    # --- requests -------------------------------------------------------------------------------

    async def _query(self, message: dict[str, Any], expected: str) -> dict[str, Any]:
        """An idempotent request: retried across disconnects until ``unavailable_timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.unavailable_timeout_s
        while True:
            try:
                reply = await self._request(message, retry=True, deadline=deadline)
            except (_Lost, TimeoutError) as exc:
                if loop.time() >= deadline:
                    raise BrokerUnavailable(f"{message['type']}: no answer from {self.url}: {exc}") from exc
                continue
            kind = reply.get("type")
            if kind == expected:
                return reply
            if kind == "error" and reply.get("code") == proto.UNKNOWN_ORDER:
                raise UnknownOrder(str(message.get("broker_order_id")))
            raise BrokerUnavailable(f"{message['type']}: {reply.get('code')}: {reply.get('message')}")

    async def _request(self, message: dict[str, Any], *, retry: bool, deadline: float | None = None) -> dict[str, Any]:
        """Write ``message`` once a connection is up and wait for its reply.

        Raises BrokerUnavailable if no connection came up before the deadline (nothing written),
        _Lost if the connection dropped after the write, TimeoutError if no reply came in time."""
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self.unavailable_timeout_s
        while True:
            if self._closed:
                raise BrokerUnavailable("the websocket broker is closed")
            ws = self._ws
            if ws is not None and ws.state is State.OPEN:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BrokerUnavailable(f"no connection to {self.url} ({self._last_error or 'not connected'})")
            if self._connected.is_set():  # closing: the supervisor is about to notice the drop
                await asyncio.sleep(min(0.02, remaining))
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._connected.wait()
        req_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[req_id] = future
        try:
            try:
                await ws.send(json.dumps({**message, "req_id": req_id}, separators=(",", ":")))
            except ConnectionClosed as exc:
                raise _Lost(f"connection closed while sending: {exc}") from exc
            async with asyncio.timeout(self.request_timeout_s):
                return await future
        finally:
            self._pending.pop(req_id, None)

    def _fail_pending(self, exc: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()

    # --- the connection supervisor --------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self._backoff_initial_s
        while not self._closed:
            try:
                async with connect(
                    self.url,
                    open_timeout=max(1.0, self.request_timeout_s),
                    max_size=MAX_FRAME_BYTES,
                    compression=None,
                    proxy=None,
                    ping_interval=5,
                    ping_timeout=10,
                    close_timeout=1,
                ) as ws:
                    await self._session(ws)
                    backoff = self._backoff_initial_s
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, WebSocketException) as exc:
                self._last_error = str(exc) or type(exc).__name__
                log.info("paper exchange connection: %s", self._last_error)
            finally:
                self._connected.clear()
                self._ws = None
                self._fail_pending(_Lost("connection lost"))
            if self._closed:
                return
            self._set_state(ConnectionState.RECONNECTING)
            await asyncio.sleep(backoff * (0.5 + self._jitter.random()))
            backoff = min(backoff * 2, self._backoff_max_s)

    async def _session(self, ws: ClientConnection) -> None:
        """Subscribe from the watermark, then route every incoming message until the drop."""
        if self._state is not ConnectionState.CONNECTING:
            self._stats["reconnects"] += 1
        await ws.send(json.dumps({"type": "subscribe", "req_id": 0, "after_seq": self._watermark}))
        self._ws = ws
        if self._quote_subscribers:
            await self._send_quote_subscription()
        self._connected.set()
        self._set_state(ConnectionState.CONNECTED)
        try:
            async for raw in ws:
                self._route(raw)
        except ConnectionClosed as exc:
            self._last_error = f"connection closed: {exc}"
            log.info("paper exchange %s", self._last_error)
        else:
            self._last_error = f"connection closed: {ws.close_code} {ws.close_reason}"

    def _route(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("unreadable message from the paper exchange: %.200r", raw)
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "event":
            self._on_event(message)
        elif kind == "quote":
            self._on_quote(message)
        elif kind == "subscribed":
            self._on_subscribed(message)
        else:
            req_id = message.get("req_id")
            future = self._pending.get(req_id) if isinstance(req_id, int) else None
            if future is not None and not future.done():
                future.set_result(message)

    def _on_subscribed(self, message: dict[str, Any]) -> None:
        head = message.get("head_seq")
        if not isinstance(head, int) or isinstance(head, bool):
            return
        if self._watermark is None or self._watermark > head:
            if self._watermark is not None:
                log.warning("the exchange's log ends at %d, before our %d: it lost events", head, self._watermark)
            self._watermark = head
            self._ahead = {s for s in self._ahead if s > head}

    def _on_event(self, message: dict[str, Any]) -> None:
        seq = message.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            self._stats["bad_events"] += 1
            self._fanout.publish(MalformedEvent.of(message, f"event with a bad sequence number {seq!r}", None))
            return
        try:
            event = event_from_dict(message.get("event"))
        except BrokerEventError as exc:
            # Journaled by the engine, and it still counts as seen: resuming never replays it again.
            self._stats["bad_events"] += 1
            log.warning("bad event %s from the paper exchange: %s", seq, exc)
            self._track(seq)
            self._fanout.publish(MalformedEvent.of(message.get("event"), f"undecodable event: {exc}", seq))
            return
        self._stats["events"] += 1
        if message.get("replay"):
            self._stats["replayed"] += 1
        self._track(seq)
        self._fanout.publish(event)

    def _track(self, seq: int) -> None:
        if self._watermark is None:
            return
        if seq <= self._watermark or seq in self._ahead:
            self._stats["duplicates"] += 1
            return
        self._ahead.add(seq)
        while self._watermark + 1 in self._ahead:
            self._watermark += 1
            self._ahead.remove(self._watermark)
        if len(self._ahead) > _MAX_AHEAD:
            self._watermark = min(self._ahead)
            self._ahead = {s for s in self._ahead if s > self._watermark}


def _field(reply: dict[str, Any], key: str, kind: type[_T]) -> _T:
    value = reply.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"field {key!r} missing or not {kind.__name__}")
    return value


def _snapshot(raw: Any) -> OrderSnapshot:
    try:
        return proto.snapshot_from_dict(raw)
    except ValueError as exc:
        raise BrokerUnavailable(f"unreadable order snapshot from the exchange: {exc}") from exc
