"""The exchange server's message decoding and query answering: pure, fuzzed, deterministic."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.catalog import load_catalog
from engine.core.events import OrderRequest, PlaceAck
from engine.core.model import OrderType, Side
from engine.paper import protocol as proto
from engine.paper.exchange import ExchangeCore, UnknownOrder

CATALOG = load_catalog()
SYM = "NIFTY26DEC24000CE"

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from([SYM, "BUY", "SELL", "MARKET", "LIMIT", "SL", "SL-M", "PX0000000001", "C1"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_messages = st.fixed_dictionaries(
    {"type": st.sampled_from([*proto.REQUEST_TYPES, "bogus", ""])},
    optional={
        "req_id": _values,
        "client_order_id": _values,
        "broker_order_id": _values,
        "symbol": _values,
        "side": _values,
        "qty": st.one_of(st.integers(-100, 10_000), _values),
        "order_type": _values,
        "limit_price_paise": _values,
        "trigger_price_paise": _values,
        "after_seq": _values,
    },
)
_raw = st.one_of(st.text(max_size=200), st.binary(max_size=200), _messages.map(json.dumps))


def seeded_core() -> ExchangeCore:
    core = ExchangeCore(CATALOG, seed=3)
    core.place(OrderRequest("C1", SYM, Side.BUY, 75), 1000)
    core.place(OrderRequest("C2", SYM, Side.SELL, 75, OrderType.LIMIT, 10**7), 1000)
    return core


def apply(core: ExchangeCore, raw: str | bytes, now_ms: int) -> dict[str, Any]:
    """What the server does with one message, minus persistence and sockets."""
    request = proto.decode_request(raw, CATALOG)
    if isinstance(request, proto.ProtocolError):
        return request.to_reply()
    if isinstance(request, proto.Place):
        outcome, _ = core.place(request.order, now_ms)
        if isinstance(outcome, PlaceAck):
            return proto.placed_reply(request.req_id, outcome)
        return proto.rejected_reply(request.req_id, request.order.client_order_id, str(outcome), now_ms)
    if isinstance(request, proto.Cancel):
        try:
            return proto.cancel_reply(request.req_id, core.cancel(request.broker_order_id, now_ms)[0])
        except UnknownOrder:
            return proto.ProtocolError(proto.UNKNOWN_ORDER, "unknown", request.req_id).to_reply()
    if isinstance(request, proto.Subscribe | proto.ServerTime | proto.Stats):
        return {"type": "ok", "req_id": request.req_id}
    return proto.answer_query(core, request)


@settings(max_examples=400, deadline=None)
@given(raw=_raw)
def test_no_input_crashes_decoding_and_errors_change_nothing(raw: str | bytes) -> None:
    core = seeded_core()
    before = core.to_state()
    result = proto.decode_request(raw, CATALOG)
    reply = apply(core, raw, 2000)
    json.loads(proto.encode(reply))  # every reply is valid JSON
    if isinstance(result, proto.ProtocolError):
        assert result.code in proto.ERROR_CODES and reply["type"] == "error"
        assert core.to_state() == before, "an error reply never changes the exchange"
    elif not isinstance(result, proto.Place | proto.Cancel):
        assert core.to_state() == before, "queries never change the exchange"
    # Whatever happened, the state is still whole: it round-trips and positions add up.
    restored = ExchangeCore.from_state(CATALOG, json.loads(json.dumps(core.to_state())))
    assert restored.orders() == core.orders() and restored.positions() == core.positions()


@given(
    qty=st.one_of(st.integers(max_value=0), st.floats(allow_nan=False, allow_infinity=False), st.text(), st.booleans())
)
def test_non_positive_or_non_integer_qty_is_a_bad_field(qty: Any) -> None:
    raw = json.dumps({"type": "place", "req_id": 1, "client_order_id": "X", "symbol": SYM, "side": "BUY", "qty": qty})
    result = proto.decode_request(raw, CATALOG)
    assert isinstance(result, proto.ProtocolError) and result.code == proto.BAD_FIELD and result.req_id == 1


def test_error_codes_for_each_kind_of_bad_input() -> None:
    def code(raw: str | bytes) -> str:
        result = proto.decode_request(raw, CATALOG)
        assert isinstance(result, proto.ProtocolError)
        return result.code

    assert code("{") == proto.BAD_JSON
    assert code("[" * 100_000) in (proto.BAD_JSON, proto.TOO_LARGE)
    assert code("[" * 10_000) == proto.BAD_JSON  # nesting that would recurse deeply
    assert code('{"type": "x"}') == proto.UNKNOWN_TYPE
    assert code(json.dumps({"type": "place", "client_order_id": "A", "symbol": "NOPE", "side": "BUY", "qty": 1})) == (
        proto.UNKNOWN_SYMBOL
    )
    assert code(json.dumps({"type": "orders", "pad": "x" * proto.MAX_MESSAGE_BYTES})) == proto.TOO_LARGE
    assert code(json.dumps({"type": "orders", "req_id": [1]})) == proto.BAD_FIELD


def test_snapshots_round_trip_through_the_wire_form() -> None:
    core = seeded_core()
    for snapshot in core.orders():
        assert proto.snapshot_from_dict(json.loads(proto.encode(proto.snapshot_to_dict(snapshot)))) == snapshot


SCRIPT = [
    *(
        json.dumps(
            {
                "type": "place",
                "req_id": i,
                "client_order_id": f"D{i}",
                "symbol": SYM,
                "side": s,
                "qty": 75 * (i % 4 + 1),
            }
        )
        for i, s in enumerate(["BUY", "SELL"] * 10)
    ),
    json.dumps({"type": "cancel", "req_id": "c", "broker_order_id": "PX0000000004"}),
    json.dumps({"type": "orders", "req_id": "o"}),
    json.dumps({"type": "positions", "req_id": "p"}),
    "{garbage",
]


def test_same_seed_same_messages_give_identical_replies_and_events() -> None:
    """Determinism through the wire layer (the core-level test is
    tests/paper/test_exchange_core.py::test_same_seed_same_calls_give_identical_outputs)."""

    def run(seed: int) -> list[object]:
        core = ExchangeCore(CATALOG, seed=seed)
        out: list[object] = []
        for i, raw in enumerate(SCRIPT):
            out.append(core.step(1000 + i))
            out.append(apply(core, raw, 1000 + i))
        return out

    assert run(42) == run(42)
    assert run(42) != run(43)
