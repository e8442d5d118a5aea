"""The exchange server process over a real socket: protocol, bad input, replay by sequence number."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from engine.broker.ws import ConnectionState, WsBroker
from engine.core.events import Ambiguous, FillReport, OrderRequest, OrderUpdate, Rejected
from engine.core.model import OrderStatus, Side
from engine.paper.protocol import MAX_MESSAGE_BYTES
from tests.integration.conftest import ExchangeProcess, eventually, td_json

SYM = "NIFTY26DEC24000CE"


async def call(ws: ClientConnection, message: dict[str, Any] | str | bytes) -> dict[str, Any]:
    """Send one message and return the next reply that is not an event."""
    await ws.send(message if isinstance(message, str | bytes) else json.dumps(message))
    async with asyncio.timeout(5):
        while True:
            reply = json.loads(await ws.recv())
            if reply["type"] != "event":
                return dict(reply)


@pytest.fixture
def exchange(tmp_path: Path, exchanges: list[ExchangeProcess]) -> ExchangeProcess:
    ex = ExchangeProcess(tmp_path / "x.db")
    exchanges.append(ex)
    ex.start()
    return ex


async def test_bad_input_gets_error_replies_and_loses_nothing(exchange: ExchangeProcess) -> None:
    async with connect(exchange.url, proxy=None) as good, connect(exchange.url, proxy=None) as bad:
        placed = await call(
            good, {"type": "place", "req_id": "p1", "client_order_id": "C1", "symbol": SYM, "side": "BUY", "qty": 75}
        )
        assert placed["type"] == "placed" and placed["req_id"] == "p1"
        before = await call(good, {"type": "orders", "req_id": 1})
        positions = await call(good, {"type": "positions", "req_id": 2})
        assert positions["positions"] == {SYM: 75}

        place = {"type": "place", "req_id": 9, "client_order_id": "C2", "symbol": SYM, "side": "BUY"}
        cases: list[tuple[dict[str, Any] | str | bytes, str]] = [
            ("{not json", "BAD_JSON"),
            (b"\xff\xfe\x00garbage", "BAD_JSON"),
            ("[1, 2, 3]", "BAD_JSON"),
            ('{"type": "place", "qty": NaN}', "BAD_JSON"),
            ({"type": "teleport", "req_id": 3}, "UNKNOWN_TYPE"),
            ({"req_id": 4}, "UNKNOWN_TYPE"),
            ({**place, "qty": -75}, "BAD_FIELD"),
            ({**place, "qty": 75.5}, "BAD_FIELD"),
            ({**place, "qty": "75"}, "BAD_FIELD"),
            ({**place, "qty": True}, "BAD_FIELD"),
            ({**place, "qty": 75, "side": "HOLD"}, "BAD_FIELD"),
            ({**place, "qty": 75, "symbol": "NOPE"}, "UNKNOWN_SYMBOL"),
            ({"type": "cancel", "req_id": 5, "broker_order_id": "PX9999"}, "UNKNOWN_ORDER"),
            ({"type": "order", "req_id": 6, "broker_order_id": "PX9999"}, "UNKNOWN_ORDER"),
            ({"type": "subscribe", "req_id": 7, "after_seq": -1}, "BAD_FIELD"),
            (json.dumps({"type": "orders", "pad": "x" * (MAX_MESSAGE_BYTES + 10)}), "TOO_LARGE"),
        ]
        for message, code in cases:
            reply = await call(bad, message)
            assert (reply["type"], reply["code"]) == ("error", code), message if len(str(message)) < 200 else code
            assert reply["message"]
        # The connection that sent all that is still served, and so is everyone else.
        assert (await call(bad, {"type": "time", "req_id": 8}))["ts_exchange_ms"] > 0
        assert await call(good, {"type": "orders", "req_id": 1}) == before
        assert (await call(good, {"type": "positions", "req_id": 2}))["positions"] == {SYM: 75}

    # Above the transport limit the connection is closed (1009); the server keeps serving.
    async with connect(exchange.url, proxy=None, max_size=None) as huge:
        await huge.send("x" * (2 * 1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                await huge.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    report = td_json("exchange-report", "--broker", exchange.url, "--json")
    assert [o["client_order_id"] for o in report["orders"]] == ["C1"] and report["positions"] == {SYM: 75}
    log = exchange.log.read_text()
    assert "BAD_JSON" in log and "UNKNOWN_SYMBOL" in log and "TOO_LARGE" in log and "1009" in log


async def test_subscribe_replays_the_log_by_sequence_then_streams_live(exchange: ExchangeProcess) -> None:
    async with connect(exchange.url, proxy=None) as ws:
        for i in range(3):
            reply = await call(
                ws, {"type": "place", "req_id": i, "client_order_id": f"R{i}", "symbol": SYM, "side": "BUY", "qty": 75}
            )
            assert reply["type"] == "placed"
    async with connect(exchange.url, proxy=None) as ws:
        subscribed = await call(ws, {"type": "subscribe", "req_id": "s", "after_seq": 0})
        head = subscribed["head_seq"]
        assert head >= 9  # ACCEPTED, a fill and FILLED per order
        replayed = [json.loads(await ws.recv()) for _ in range(head)]
        assert [m["seq"] for m in replayed] == list(range(1, head + 1))
        assert all(m["replay"] for m in replayed)
        assert {m["event"]["client_order_id"] for m in replayed} == {"R0", "R1", "R2"}
        await ws.send(
            json.dumps(
                {"type": "place", "req_id": "live", "client_order_id": "L1", "symbol": SYM, "side": "SELL", "qty": 75}
            )
        )
        async with asyncio.timeout(5):
            live = [json.loads(await ws.recv()) for _ in range(4)]
        events = [m for m in live if m["type"] == "event"]
        assert events and all(not m["replay"] and m["seq"] > head for m in events)
    async with connect(exchange.url, proxy=None) as ws:
        middle = await call(ws, {"type": "subscribe", "req_id": "m", "after_seq": head - 2})
        assert middle["replay_after"] == head - 2
        async with asyncio.timeout(5):
            first = json.loads(await ws.recv())
        assert (first["seq"], first["replay"]) == (head - 1, True)


async def test_ws_broker_implements_the_port_against_the_process(exchange: ExchangeProcess) -> None:
    states: list[ConnectionState] = []
    broker = await WsBroker.open(exchange.url, request_timeout_s=2, on_state=states.append)
    try:
        assert broker.connection_state is ConnectionState.CONNECTED and states == [ConnectionState.CONNECTED]
        feed = broker.events()
        ack = await broker.place(OrderRequest("W1", SYM, Side.BUY, 150))
        assert ack.client_order_id == "W1" and ack.broker_order_id.startswith("PX")
        async with asyncio.timeout(5):
            got = [await anext(feed) for _ in range(2)]
        assert isinstance(got[0], OrderUpdate) and got[0].status is OrderStatus.ACCEPTED
        assert any(isinstance(e, FillReport) for e in got)
        snapshot = await broker.order(ack.broker_order_id)
        assert snapshot.client_order_id == "W1" and snapshot.filled_qty == 150 and snapshot.fills
        assert await broker.find("W1") == snapshot
        assert await broker.find("NEVER") is None
        assert [o.client_order_id for o in await broker.orders()] == ["W1"]
        assert (await broker.cancel(ack.broker_order_id)).status is OrderStatus.FILLED
        with pytest.raises(KeyError):
            await broker.order("PX404")
        with pytest.raises(KeyError):
            await broker.cancel("PX404")
        with pytest.raises(Rejected, match="not a multiple of lot size"):
            await broker.place(OrderRequest("W2", SYM, Side.BUY, 100))  # recorded as REJECTED
        with pytest.raises(Rejected, match="UNKNOWN_SYMBOL"):
            await broker.place(OrderRequest("W3", "NOPE", Side.BUY, 75))  # refused, not recorded
        assert [o.status for o in await broker.orders()] == [OrderStatus.FILLED, OrderStatus.REJECTED]
        assert await broker.positions() == {SYM: 150}
        assert await broker.server_time_ms() > 0
        assert broker.last_seq is not None and broker.last_seq >= 4
    finally:
        await broker.close()
    assert broker.connection_state is ConnectionState.CLOSED


async def test_ws_broker_rides_out_an_exchange_restart(exchange: ExchangeProcess) -> None:
    states: list[ConnectionState] = []
    broker = await WsBroker.open(exchange.url, request_timeout_s=1, on_state=states.append)
    try:
        await broker.place(OrderRequest("K1", SYM, Side.BUY, 75))
        exchange.kill()

        async def dropped() -> bool:
            return broker.connection_state is ConnectionState.RECONNECTING

        await eventually(dropped, 5, "the broker notices the exchange is gone")
        # A place while the exchange is down waits for it; a query is retried across the restart.
        pending = asyncio.create_task(broker.place(OrderRequest("K2", SYM, Side.BUY, 75)))
        await asyncio.sleep(0.3)
        assert not pending.done()
        exchange.start()
        async with asyncio.timeout(15):
            ack = await pending
        assert ack.client_order_id == "K2"
        assert [o.client_order_id for o in await broker.orders()] == ["K1", "K2"]
        assert broker.stats()["reconnects"] >= 1
        assert states[-1] is ConnectionState.CONNECTED and ConnectionState.RECONNECTING in states
    finally:
        await broker.close()


async def test_place_without_a_reply_is_ambiguous(exchange: ExchangeProcess) -> None:
    broker = await WsBroker.open(exchange.url, request_timeout_s=1)
    try:
        assert exchange.proc is not None
        exchange.proc.send_signal(signal.SIGSTOP)  # SIGSTOP: the request is written but nobody answers
        try:
            with pytest.raises(Ambiguous):
                await broker.place(OrderRequest("A1", SYM, Side.BUY, 75))
        finally:
            exchange.proc.send_signal(signal.SIGCONT)

        # The exchange processes it after all: find() tells the engine the truth.
        async def processed() -> bool:
            return await broker.find("A1") is not None

        await eventually(processed, 10, "the exchange processes the unanswered order")
        found = await broker.find("A1")
        assert found is not None
        assert found.filled_qty == 75
    finally:
        await broker.close()


async def test_quotes_stream_over_the_server_and_resume_after_a_restart(exchange: ExchangeProcess) -> None:
    async with connect(exchange.url) as ws:
        bad = await call(ws, {"type": "subscribe_quotes", "req_id": 1, "symbols": [SYM, 7]})
        assert bad["type"] == "error" and bad["code"] == "BAD_FIELD"
        # one symbol it cannot quote does not stop the others: it is named and left out
        partly = await call(ws, {"type": "subscribe_quotes", "req_id": 2, "symbols": [SYM, "NOPE", "NIFTY"]})
        assert partly == {"type": "quotes_subscribed", "req_id": 2, "symbols": [SYM, "NIFTY"], "unknown": ["NOPE"]}
        ok = await call(ws, {"type": "subscribe_quotes", "req_id": 3, "symbols": [SYM]})
        while ok["type"] == "quote":  # quotes of the previous subscription may come first
            ok = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert ok == {"type": "quotes_subscribed", "req_id": 3, "symbols": [SYM], "unknown": []}
        quote = await call(ws, {"type": "time", "req_id": 4})  # the next non-event message: a quote or time
        while quote["type"] != "quote":
            quote = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert quote["symbol"] == SYM and quote["bid_paise"] < quote["ask_paise"] and quote["last_paise"] > 0
    broker = await WsBroker.open(exchange.url, request_timeout_s=1)
    try:
        stream = broker.quotes([SYM])
        first = await asyncio.wait_for(anext(stream), 5)
        assert first.symbol == SYM and first.bid_paise is not None and first.ask_paise is not None
        moved = await asyncio.wait_for(anext(stream), 10)  # the server's exchange ticks: prices walk
        assert moved.symbol == SYM and moved.ts_exchange_ms >= first.ts_exchange_ms
        exchange.kill()
        exchange.start()
        again = await asyncio.wait_for(anext(stream), 20)  # resubscribed on the new connection
        assert again.symbol == SYM and broker.stats()["reconnects"] >= 1
    finally:
        await broker.close()
