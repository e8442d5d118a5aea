"""Issue 9: trust nothing the broker says. Each test starts a real `trading-desk exchange
--script FILE` process that plays one bad sequence over the documented websocket protocol, runs
the engine (in this process, on the real WsBroker) against it, and checks at the end, from the
exchange's own state file and the engine's journal:

- no client order id reached the exchange twice;
- the journal's positions are the exchange's;
- at no moment of the exchange's own fill log was more risk sold than hedge confirmed;
- every unhedged unit is in an open escalation (and no order is left working silently);
- the engine kept serving a well-behaved group launched after the fault (it reached HEDGED);

plus what the issue requires of that class. The victim group buys its hedge with a LIMIT order on
a book the script makes thin (150 of 375 fill, then the book is dry), so the hedge rests partly
filled, live, until the engine cancels it at its broker-time deadline; the script refills the book
on that cancel, so a child hedge for the remaining 225 fills and the group can end HEDGED.

The first tests check the scripted-exchange facility itself (engine/paper/script.py, server.py).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.conftest import ExchangeProcess, td
from tests.integration.scripted import (
    HEDGE,
    RISK,
    Desk,
    Findings,
    ScriptedExchange,
    Truth,
    bystander,
    check_hostile,
    control,
    elapsed_ms,
    group_state,
    probe,
    refills_on_cancel,
    rests_partly,
    victim,
    wait_for,
)

GHOST = "HX00000001"  # a broker order id this exchange never issued
TIMEOUT_MS = 1500  # the engine's order deadline in these tests (EngineConfig.order_timeout_ms)
SETTLE_S = 15.0
# The venue's own reports of a place that rests partly filled: ACCEPTED, the fill, PARTIALLY_FILLED.
LOSE_ITS_REPORTS = {"drop": {"client_order_id": "{client_order_id}"}, "count": 3}


def start(tmp_path: Path, exchanges: list[ExchangeProcess], rules: list[dict[str, Any]]) -> ScriptedExchange:
    ex = ScriptedExchange(tmp_path, rules)
    exchanges.append(ex)
    ex.start()
    return ex


# --- the facility ------------------------------------------------------------------------------


async def call(ws: ClientConnection, message: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send a request; return its reply and the events that came before it."""
    await ws.send(json.dumps(message))
    events = []
    async with asyncio.timeout(5):
        while True:
            reply = json.loads(await ws.recv())
            if reply.get("type") == "event":
                events.append(reply)
            elif reply.get("req_id") == message.get("req_id"):
                return dict(reply), events


async def events_for(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every event that arrives within ``seconds`` (a bounded read, not a timing decision)."""
    out: list[dict[str, Any]] = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") == "event":
                    out.append(message)
    return out


def place(req_id: int, coid: str, qty: int = 375, symbol: str = HEDGE) -> dict[str, Any]:
    """A BUY: LIMIT 150.00 on the hedge symbol (it takes what depth there is), else MARKET."""
    limit = {"order_type": "LIMIT", "limit_price_paise": 15000} if symbol == HEDGE else {"order_type": "MARKET"}
    return {
        "type": "place",
        "req_id": req_id,
        "client_order_id": coid,
        "symbol": symbol,
        "side": "BUY",
        "qty": qty,
        **limit,
    }


async def test_script_withholds_errs_patches_answers_and_steps_the_clock(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE, {"withhold": True}),
            {"on": "cancel", "do": [{"error": "INTERNAL"}]},
            {"on": "order", "do": [{"patch_order": {"broker_order_id": GHOST}}]},
            {"on": "find", "nth": 2, "do": [{"answer": {"type": "found", "order": None}}]},
            {"on": "place", "nth": 2, "do": [{"patch": {"broker_order_id": "GHOST{n}"}}]},
            {"on": "time", "match": {"req_id": "back"}, "do": [{"clock_step_ms": -60_000}]},
        ],
    )
    async with connect(ex.url, proxy=None) as ws:
        await call(ws, {"type": "subscribe", "req_id": 0})
        await ws.send(json.dumps(place(1, "C1")))  # withheld: no reply, but the order is live
        found, _ = await call(ws, {"type": "find", "req_id": 2, "client_order_id": "C1"})
        assert (found["order"]["status"], found["order"]["filled_qty"]) == ("PARTIALLY_FILLED", 150)
        bid = found["order"]["broker_order_id"]
        refused, _ = await call(ws, {"type": "cancel", "req_id": 3, "broker_order_id": bid})
        assert (refused["type"], refused["code"]) == ("error", "INTERNAL")
        snapshot, _ = await call(ws, {"type": "order", "req_id": 4, "broker_order_id": bid})
        assert snapshot["order"]["broker_order_id"] == GHOST and snapshot["order"]["status"] == "PARTIALLY_FILLED"
        nothing, _ = await call(ws, {"type": "find", "req_id": 5, "client_order_id": "C1"})
        assert nothing == {"type": "found", "order": None, "req_id": 5}
        ghost, _ = await call(ws, place(6, "C2", 75, RISK))
        assert ghost["broker_order_id"] == "GHOST2"
        now, _ = await call(ws, {"type": "time", "req_id": 7})
        back = await control(ex.url, "back")
        assert now["ts_exchange_ms"] - back["ts_exchange_ms"] >= 59_000
        stats, _ = await call(ws, {"type": "stats", "req_id": 8})
    assert stats["stats"]["script_withheld"] == 1 and stats["stats"]["script_clock_step_ms"] == -60_000
    assert [stats["stats"][f"script_rule{i}_fired"] for i in range(1, 7)] == [1, 1, 1, 1, 1, 1]
    truth = await ex.finish()
    assert [(o.client_order_id, o.status.value, o.filled_qty) for o in truth.orders] == [
        ("C1", "PARTIALLY_FILLED", 150),  # the error reply to its cancel changed nothing
        ("C2", "FILLED", 75),
    ]


async def test_injected_events_have_real_seqs_drops_and_delays_touch_only_live_delivery(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = start(
        tmp_path,
        exchanges,
        [
            {
                "on": "place",
                "match": {"symbol": RISK},
                "do": [
                    {"drop": {"type": "fill", "client_order_id": "{client_order_id}"}},
                    {"delay": {"type": "order", "status": "ACCEPTED"}, "after": 1},
                    {"inject": {"broker_order_id": GHOST, "status": "FILLED", "filled_qty": "{qty}"}, "like": "status"},
                    {"inject": {"qty": {"$number": "NaN"}, "side": {"$repeat": "B", "times": 100_000}}, "like": "fill"},
                    {"inject": ["not", "an", "event"]},
                ],
            },
        ],
    )
    async with connect(ex.url, proxy=None, max_size=None) as ws:
        await call(ws, {"type": "subscribe", "req_id": 0, "after_seq": 0})
        _, early = await call(ws, place(1, "C1", 150, RISK))
        live = early + await events_for(ws, 0.5)
    seqs = [m["seq"] for m in live]
    kinds = [(m["event"]["type"], m["event"].get("status")) if isinstance(m["event"], dict) else "raw" for m in live]
    # The MARKET order logged ACCEPTED(1), fill(2), FILLED(3): the fill is dropped, ACCEPTED comes
    # after FILLED; then the injected events, each with the next seq of the log (the injected fill,
    # 5, is one of the order's fills: dropped live too).
    assert seqs == [3, 1, 4, 6], kinds
    assert live[2]["event"]["broker_order_id"] == GHOST and live[2]["event"]["filled_qty"] == 150
    assert live[3]["event"] == ["not", "an", "event"]
    async with connect(ex.url, proxy=None, max_size=None) as ws:  # a replay has the whole log
        subscribed, _ = await call(ws, {"type": "subscribe", "req_id": 0, "after_seq": 0})
        replayed = await events_for(ws, 0.5)
    assert subscribed["head_seq"] == 6 and [m["seq"] for m in replayed] == [1, 2, 3, 4, 5, 6]
    assert all(m["replay"] for m in replayed) and replayed[3]["event"] == live[2]["event"]
    nan_fill = replayed[4]["event"]
    assert nan_fill["qty"] != nan_fill["qty"] and len(nan_fill["side"]) == 100_000  # NaN, as a broken venue sends it
    truth = await ex.finish()
    assert truth.injected_seqs == {4, 5, 6} and truth.positions == {RISK: 150}


async def test_a_held_cancel_stays_pending_and_keeps_filling_and_event_rules_move_markets(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE),
            {"on": "cancel", "do": [{"hold_cancel": True}]},
            {"on": "time", "match": {"req_id": "refill"}, "do": [{"market": {"symbol": HEDGE, "lots_per_level": 1}}]},
            {"on": "event", "match": {"type": "order", "status": "FILLED"}, "do": [{"clock_step_ms": 5000}]},
        ],
    )
    async with connect(ex.url, proxy=None) as ws:
        await call(ws, {"type": "subscribe", "req_id": 0})
        placed, _ = await call(ws, place(1, "C1"))
        bid = placed["broker_order_id"]
        held, _ = await call(ws, {"type": "cancel", "req_id": 2, "broker_order_id": bid})
        assert held["status"] == "PENDING_CANCEL"
        again, _ = await call(ws, {"type": "cancel", "req_id": 3, "broker_order_id": bid})
        assert again["status"] == "PENDING_CANCEL"  # never confirmed
        await control(ex.url, "refill")  # one lot per step from now on: the held order keeps filling
        statuses: list[str] = []

        async def filled() -> bool:
            message = json.loads(await ws.recv())
            if message.get("type") == "event" and message["event"]["type"] == "order":
                statuses.append(message["event"]["status"])
            return "FILLED" in statuses

        assert await wait_for(filled, 10)
        stats, _ = await call(ws, {"type": "stats", "req_id": 4})
    assert "CANCELLED" not in statuses and set(statuses) <= {"PENDING_CANCEL", "FILLED"}, statuses
    assert stats["stats"]["script_rule4_fired"] == 1 and stats["stats"]["script_clock_step_ms"] == 5000
    truth = await ex.finish()
    assert truth.positions == {HEDGE: 375}


def test_a_bad_script_file_exits_2_naming_the_file_and_the_problem(tmp_path: Path) -> None:
    script = tmp_path / "bad.json"
    script.write_text(json.dumps([{"on": "place", "do": [{"inject": {"qty": "{quantity}"}}]}]))
    run = td("exchange", "--port", "0", "--state", str(tmp_path / "x.db"), "--script", str(script))
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and str(script) in run.stderr and "unknown name {quantity}" in run.stderr
    assert not (tmp_path / "x.db").exists()
    script.write_text("[{on")
    run = td("exchange", "--port", "0", "--state", str(tmp_path / "x.db"), "--script", str(script))
    assert run.returncode == 2 and "not valid JSON" in run.stderr and str(script) in run.stderr


# --- helpers of the hostile runs -----------------------------------------------------------------


async def reacted(desk: Desk, seconds: float = 5) -> None:
    """Give the engine the time to act on what it was just told: until the victim's group moves on
    from the hedge phase or its first hedge's deadline has passed (bounded)."""

    async def moved() -> bool:
        if desk.engine.failure is not None:
            return True
        if await desk.intents("V", "RISK"):
            return True
        hedge = await desk.first_hedge()
        return hedge is not None and hedge["order_status"] in ("PENDING_CANCEL", "CANCELLED", "FILLED")

    await wait_for(moved, seconds)


async def victim_then_bystander(f: Findings, desk: Desk) -> None:
    """The usual run: the victim group meets the script's first rule, the engine reacts, and a
    well-behaved bystander launched afterwards must still be served."""
    await desk.launch(victim())
    played(f, await desk.wait_fired(1), 1)
    await reacted(desk)
    await desk.launch(bystander())
    await desk.settle(["V", "B"], SETTLE_S)


def played(f: Findings, fired: bool, rule: int) -> None:
    f.check(
        fired, f"script rule {rule} never fired: the engine never sent what it answers, so the sequence was not played"
    )


def finish_checks(findings: Findings, desk: Desk, truth: Truth, *groups: dict[str, Any]) -> None:
    check_hostile(findings, desk, truth, list(groups), served="B")
    findings.report()


def victim_hedged(findings: Findings, desk: Desk) -> None:
    findings.check(
        group_state(desk, "V") == "HEDGED",
        f"the victim group did not reach HEDGED (it is {group_state(desk, 'V')}: "
        f"{next((g['reason'] for g in desk.final['groups'] if g['group_id'] == 'V'), '')})",
    )


def first_hedge(desk: Desk) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [i for i in desk.final["intents"] if i["group_id"] == "V" and i["role"] == "HEDGE"]
    assert rows, "the victim never sent its hedge"
    return rows[0]


def real_id(truth: Truth, client_order_id: str) -> str | None:
    return next((o.broker_order_id for o in truth.orders if o.client_order_id == client_order_id), None)


def tied_to_the_real_order(f: Findings, row: dict[str, Any], truth: Truth) -> None:
    real = real_id(truth, row["client_order_id"])
    f.check(
        row["broker_order_id"] == real, f"the hedge is tied to {row['broker_order_id']!r}, not to the exchange's {real}"
    )


def mentions(rows: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [r for r in rows if text in json.dumps(r, default=str)]


def carries_seq(row: dict[str, Any], seq: int) -> bool:
    """The journal kept the event's sequence number: in a column named for it, or in its JSON."""
    if any("seq" in k and v == seq for k, v in row.items()):
        return True
    for value in row.values():
        if isinstance(value, str) and value.startswith("{"):
            try:
                doc = json.loads(value)
            except ValueError:
                continue
            stack = [doc]
            while stack:
                item = stack.pop()
                if isinstance(item, dict):
                    if any("seq" in str(k) and v == seq for k, v in item.items()):
                        return True
                    stack.extend(item.values())
    return False


# --- class 1: an event that contradicts the journal ------------------------------------------------


@pytest.mark.parametrize("kind", ["status", "fill"])
async def test_class1_an_event_with_a_foreign_broker_id_moves_nothing(
    tmp_path: Path, exchanges: list[ExchangeProcess], kind: str
) -> None:
    """The hedge really has 150 of 375 filled; then a report with its client id and a broker id
    the exchange never issued says FILLED 375 (class 1), or a fill of the other 225 arrives under
    that foreign id (the neighbour). Neither may move the order or size the risk leg."""
    lie = (
        {"inject": {"broker_order_id": GHOST, "status": "FILLED", "filled_qty": "{qty}"}, "like": "status"}
        if kind == "status"
        else {"inject": {"broker_order_id": GHOST, "trade_id": "HXT1"}, "like": "fill"}
    )
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE, lie),
            refills_on_cancel(HEDGE),
            probe("order", broker_order_id=GHOST),  # 3
            probe("cancel", broker_order_id=GHOST),  # 4
            probe("order", symbol=HEDGE),  # 5
            probe("find"),  # 6
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(victim())
        played(f, await desk.wait_fired(1), 1)

        async def asked_or_cancelled() -> bool:
            stats = await desk.server_stats()
            hedge = await desk.first_hedge()
            cancelling = hedge is not None and hedge["order_status"] in ("PENDING_CANCEL", "CANCELLED")
            return cancelling or stats["script_rule5_seen"] + stats["script_rule6_seen"] >= 1

        await wait_for(asked_or_cancelled, 5)
        early = await desk.server_stats()  # before the hedge's own deadline makes the engine act
        await desk.launch(bystander())
        await desk.settle(["V", "B"], SETTLE_S)
        stats = await desk.server_stats()
    truth = await ex.finish()
    hedge = first_hedge(desk)
    tied_to_the_real_order(f, hedge, truth)
    f.check(GHOST not in json.dumps(desk.final["fills"]), f"a fill under {GHOST} was counted: {desk.final['fills']}")
    f.check(
        bool(mentions(desk.rejected, GHOST)),
        f"the event with broker id {GHOST} is not in rejected_events with a reason",
    )
    f.check(
        stats["script_rule3_seen"] + stats["script_rule4_seen"] == 0,
        f"the engine asked about the ghost order {GHOST} (order {stats['script_rule3_seen']}, cancel "
        f"{stats['script_rule4_seen']} times)",
    )
    f.check(
        early["script_rule5_seen"] + early["script_rule6_seen"] >= 1,
        "after refusing the contradicting event the engine did not ask the broker about the order it knows"
        " (by broker id or client id) before the order's deadline",
    )
    victim_hedged(f, desk)
    finish_checks(f, desk, truth, victim(), bystander())


async def test_class1_neighbour_a_status_ahead_of_its_fills_never_sizes_the_risk_leg(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    """Both ids agree, but the report says FILLED 375 while the fills say 150 (and the venue: 150,
    still working). Risk is sized only on fills; the broker is asked for the fills before anything
    is sent; the real order is not left working unseen."""
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE, {"inject": {"status": "FILLED", "filled_qty": "{qty}"}, "like": "status"}),
            refills_on_cancel(HEDGE),
            probe("order", symbol=HEDGE),  # 3
            probe("find"),  # 4
            probe("place", symbol=RISK),  # 5
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await victim_then_bystander(f, desk)
    truth = await ex.finish()
    order = [n for n in ex.firings() if n in (3, 4, 5)]
    f.check(
        not order or order[0] != 5,
        f"the risk leg was sent before the broker was asked about the hedge whose report ran ahead of its fills "
        f"(rules fired in the order {order})",
    )
    finish_checks(f, desk, truth, victim(), bystander())


# --- class 2: a broker id adopted from an unsolicited event ----------------------------------------


async def test_class2_a_broker_id_is_adopted_only_from_the_brokers_own_answer(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    """`place` goes unanswered (a lost ack); the venue's own reports of the order are lost too, and
    the first report that arrives carries the real client id and a ghost broker id."""
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(
                HEDGE,
                {"withhold": True},
                LOSE_ITS_REPORTS,
                {"inject": {"broker_order_id": GHOST}, "like": "status"},
            ),
            refills_on_cancel(HEDGE),
            probe("cancel", broker_order_id=GHOST),  # 3
            probe("order", broker_order_id=GHOST),  # 4
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(victim())
        played(f, await desk.wait_fired(1), 1)
        await reacted(desk, 8)
        await desk.launch(bystander())
        await desk.settle(["V", "B"], SETTLE_S)
        stats = await desk.server_stats()
    truth = await ex.finish()
    hedge = first_hedge(desk)
    tied_to_the_real_order(f, hedge, truth)
    f.check(
        stats["script_rule3_seen"] + stats["script_rule4_seen"] == 0,
        f"the engine cancelled or queried the ghost {GHOST} (cancel {stats['script_rule3_seen']}, order "
        f"{stats['script_rule4_seen']} times)",
    )
    victim_hedged(f, desk)
    finish_checks(f, desk, truth, victim(), bystander())


async def test_class2_neighbour_a_ghost_id_on_a_cancel_ack_is_not_adopted(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE),
            refills_on_cancel(HEDGE, {"patch": {"broker_order_id": GHOST}}),
            probe("cancel", broker_order_id=GHOST),  # 3
            probe("order", broker_order_id=GHOST),  # 4
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(victim())
        played(f, await desk.wait_fired(2), 2)
        await desk.launch(bystander())
        await desk.settle(["V", "B"], SETTLE_S)
        stats = await desk.server_stats()
    truth = await ex.finish()
    hedge = first_hedge(desk)
    f.check(
        hedge["broker_order_id"] == real_id(truth, hedge["client_order_id"]),
        f"the hedge is tied to {hedge['broker_order_id']!r} after a cancel ack named {GHOST}",
    )
    f.check(hedge["order_status"] == "CANCELLED", f"the cancelled hedge is {hedge['order_status']} in the journal")
    f.check(
        stats["script_rule3_seen"] + stats["script_rule4_seen"] == 0,
        f"the engine asked about {GHOST}, the id a cancel ack made up",
    )
    victim_hedged(f, desk)
    finish_checks(f, desk, truth, victim(), bystander())


# --- class 3: one error reply stops the engine -----------------------------------------------------


async def test_class3_an_internal_error_on_a_query_during_a_pending_cancel_does_not_stop_the_engine(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    """The cancel is acknowledged PENDING_CANCEL and its confirmation is lost, so the engine must
    ask; the first `order` query about it is answered `error INTERNAL` (nothing changed)."""
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE),
            refills_on_cancel(
                HEDGE,
                {"patch": {"status": "PENDING_CANCEL"}},
                {"drop": {"type": "order", "client_order_id": "{client_order_id}", "status": "CANCELLED"}},
            ),
            {"on": "order", "match": {"symbol": HEDGE, "order.status": "CANCELLED"}, "do": [{"error": "INTERNAL"}]},
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(victim())
        asked = await desk.wait_fired(3, timeout_s=10)
        await desk.launch(bystander())
        await desk.settle(["V", "B"], SETTLE_S)
    truth = await ex.finish()
    f.check(asked, "the engine never asked `order` about the hedge while its cancel was pending")
    hedges = [i for i in desk.final["intents"] if i["group_id"] == "V" and i["role"] == "HEDGE"]
    f.check(len(hedges) >= 2, f"no child hedge was sent for the unfilled 225 (hedge orders: {len(hedges)})")
    victim_hedged(f, desk)
    finish_checks(f, desk, truth, victim(), bystander())


async def test_class3_neighbour_errors_on_find_and_orders_after_a_lost_ack(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE, {"withhold": True}, LOSE_ITS_REPORTS),
            refills_on_cancel(HEDGE),
            {"on": "find", "nth": 1, "do": [{"error": "INTERNAL"}]},  # 3
            {"on": "find", "nth": 2, "do": [{"error": "INTERNAL"}]},  # 4
            {"on": "orders", "nth": 0, "do": [{"error": "INTERNAL"}]},  # 5
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(victim())
        asked = await desk.wait_fired(3, timeout_s=8)
        await desk.launch(bystander())
        await desk.settle(["V", "B"], SETTLE_S)
        stats = await desk.server_stats()
    truth = await ex.finish()
    f.check(asked, "the engine never asked `find` about the order whose ack was lost")
    hedge = first_hedge(desk)
    f.check(
        hedge["broker_order_id"] == real_id(truth, hedge["client_order_id"]) and hedge["status"] != "ORPHANED",
        f"after failed lookups the hedge is {hedge['status']} with broker id {hedge['broker_order_id']!r}",
    )
    orphaned = [e for e in desk.final["escalations"] if e["kind"] == "ORPHANED_INTENT"]
    f.check(not orphaned, f"a failed lookup was taken for 'no such order': {orphaned}")
    f.check(stats["script_rule4_fired"] == 1, "the engine did not ask `find` again after its first lookup failed")
    victim_hedged(f, desk)
    finish_checks(f, desk, truth, victim(), bystander())


async def test_class3_neighbour_an_error_on_find_during_recovery(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    """The engine stops while its hedge's ack is outstanding; the restarted engine's recovery
    lookup by client id is answered INTERNAL twice. It must ask again, not orphan, not stop."""
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE, {"withhold": True}, LOSE_ITS_REPORTS),
            refills_on_cancel(HEDGE),
            {"on": "find", "nth": 1, "do": [{"error": "INTERNAL"}]},  # 3
            {"on": "find", "nth": 2, "do": [{"error": "INTERNAL"}]},  # 4
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as first:
        await first.launch(victim(), wait=False)
        played(f, await first.wait_fired(1), 1)  # the place reached the exchange; no answer will come
    f.check(no_broker_id_yet(first), "test setup: the first engine learnt the hedge's broker id before it stopped")
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(bystander())
        await desk.settle(["V", "B"], SETTLE_S)
        stats = await desk.server_stats()
    truth = await ex.finish()
    f.check(
        stats["script_rule4_fired"] == 1,
        f"recovery did not ask `find` again after its first lookup failed (find asked {stats['script_rule3_seen']} "
        f"time(s) in all; the hedge is {first_hedge(desk)['status']})",
    )
    hedge = first_hedge(desk)
    f.check(
        hedge["broker_order_id"] == real_id(truth, hedge["client_order_id"]) and hedge["status"] != "ORPHANED",
        f"after recovery the hedge is {hedge['status']} with broker id {hedge['broker_order_id']!r}",
    )
    victim_hedged(f, desk)
    finish_checks(f, desk, truth, victim(), bystander())


def no_broker_id_yet(desk: Desk) -> bool:
    return not any(i["broker_order_id"] for i in desk.final["intents"])


async def test_class3_neighbour_unknown_order_on_a_cancel_is_settled_by_a_lookup_by_client_id(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE),
            {"on": "cancel", "match": {"symbol": HEDGE}, "do": [{"error": "UNKNOWN_ORDER"}]},  # 2
            refills_on_cancel(HEDGE, nth=2),  # 3
            probe("find"),  # 4
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(victim())
        played(f, await desk.wait_fired(2), 2)
        await desk.launch(bystander())
        await desk.settle(["V", "B"], SETTLE_S)
        stats = await desk.server_stats()
    truth = await ex.finish()
    f.check(
        stats["script_rule4_seen"] >= 1,
        "after UNKNOWN_ORDER on a cancel the engine never looked the order up by client id",
    )
    f.check(stats["script_rule3_fired"] == 1, "the hedge was never cancelled after the UNKNOWN_ORDER reply")
    victim_hedged(f, desk)
    finish_checks(f, desk, truth, victim(), bystander())


# --- class 4: broker time that steps --------------------------------------------------------------


def step_recorded(f: Findings, desk: Desk, step_ms: int) -> None:
    """Every exchange clock step, either way, is recorded (journal transitions, entity CLOCK)."""

    def moved(before: str, after: str) -> int | None:
        try:
            return int(after) - int(before)
        except ValueError:
            return None

    deltas = [moved(a, b) for a, b, _ in desk.steps]
    f.check(
        any(d is None or (d * step_ms > 0 and abs(d) >= abs(step_ms) * 0.8) for d in deltas),
        f"the exchange clock step of {step_ms:+d} ms is not recorded in the journal (CLOCK rows: {desk.steps})",
    )


def deadline_held(f: Findings, transitions: list[dict[str, Any]], what: str, timeout_ms: int = TIMEOUT_MS) -> None:
    """The cancel came one deadline after the ack: not early, not (much) late."""
    waited = elapsed_ms(transitions, lambda t: t["cause"] == "ack" or t["to_state"] == "ACCEPTED", "PENDING_CANCEL")
    f.check(waited is not None, f"{what}: no ack and cancel request in the journal ({transitions})")
    if waited is not None:
        f.check(
            timeout_ms - 100 <= waited <= timeout_ms + 2500,
            f"{what}: cancelled {waited:.0f} ms after its ack; the deadline is {timeout_ms} ms of broker time",
        )


async def test_class4_the_clock_steps_back_60s_before_an_order_and_its_deadline_holds(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = start(tmp_path, exchanges, [rests_partly(HEDGE, {"clock_step_ms": -60_000}), refills_on_cancel(HEDGE)])
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(victim())
        await reacted(desk, 6)
        await desk.launch(bystander())
        await desk.settle(["V", "B"], SETTLE_S)
        transitions = await desk.order_transitions((await desk.first_hedge() or {}).get("client_order_id", ""))
    truth = await ex.finish()
    deadline_held(f, transitions, "the hedge acked on a clock 60 s behind")
    step_recorded(f, desk, -60_000)
    exhausted = [e for e in desk.final["escalations"] if e["kind"] == "HEDGE_EXHAUSTED"]
    f.check(not exhausted, f"the hedge tree ran out of depth: {exhausted}")
    victim_hedged(f, desk)
    finish_checks(f, desk, truth, victim(), bystander())


@pytest.mark.parametrize("step_ms", [-60_000, 60_000])
async def test_class4_neighbour_the_clock_steps_while_an_order_rests(
    tmp_path: Path, exchanges: list[ExchangeProcess], step_ms: int
) -> None:
    """The step happens after the hedge's ack; the bystander's orders then carry the new clock."""
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE),
            refills_on_cancel(HEDGE),
            {"on": "time", "match": {"req_id": "step"}, "do": [{"clock_step_ms": step_ms}]},
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(victim())

        async def resting() -> bool:
            hedge = await desk.first_hedge()
            return hedge is not None and hedge["order_status"] == "PARTIALLY_FILLED"

        await wait_for(resting, 5)
        await control(ex.url, "step")
        await desk.launch(bystander())
        await reacted(desk, 6)
        await desk.settle(["V", "B"], SETTLE_S)
        transitions = await desk.order_transitions((await desk.first_hedge() or {}).get("client_order_id", ""))
    truth = await ex.finish()
    deadline_held(f, transitions, f"the hedge, with the clock stepped {step_ms:+d} ms while it rested")
    step_recorded(f, desk, step_ms)
    victim_hedged(f, desk)
    finish_checks(f, desk, truth, victim(), bystander())


@pytest.mark.parametrize("step_ms", [-60_000, 60_000])
async def test_class4_neighbour_the_clock_steps_during_a_stop_loss(
    tmp_path: Path, exchanges: list[ExchangeProcess], step_ms: int
) -> None:
    """A HEDGED group's stop (SL BUY, trigger 250.00) is gapped through: one lot fills, then the
    market runs away and the exchange clock steps. The MARKET fallback must come 2 s of broker time
    after the trigger, for the remainder only, after the confirmed cancel."""
    group = victim(qty=150, hedge_limit=None, stop_trigger="250.00")
    ex = start(
        tmp_path,
        exchanges,
        [
            {
                "on": "place",
                "match": {"order_type": "SL"},
                "do": [{"market": {"symbol": RISK, "lots_per_level": 1, "levels": 1, "price_paise": 25050}}],
            },
            {
                "on": "event",
                "match": {"type": "fill", "symbol": RISK, "side": "BUY"},
                "do": [
                    {"market": {"symbol": RISK, "lots_per_level": 20, "levels": 5, "price_paise": 25600}},
                    {"clock_step_ms": step_ms},
                ],
            },
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(group)

        async def triggered() -> bool:
            stops = [i for i in await desk.intents("V") if i["purpose"] == "STOP"]
            return desk.engine.failure is not None or (bool(stops) and stops[0]["filled_qty"] > 0)

        f.check(await wait_for(triggered, 10), "the stop never triggered and filled its first lot")
        await desk.launch(bystander())  # its acks and fills carry the stepped clock
        await desk.settle(["V", "B"], SETTLE_S, final={"V": {"COMPLETED"}})
        intents = await desk.intents("V")
        stops = [i for i in intents if i["purpose"] == "STOP"]
        stop_moves = await desk.order_transitions(stops[0]["client_order_id"]) if stops else []
        fallback_moves = [
            await desk.order_transitions(i["client_order_id"]) for i in intents if i["purpose"] == "FALLBACK"
        ]
    truth = await ex.finish()
    cancelled = next((t["ts_local_ns"] for t in stop_moves if t["to_state"] == "CANCELLED"), None)
    sent = min((m[0]["ts_local_ns"] for m in fallback_moves if m), default=None)
    f.check(
        sent is None or (cancelled is not None and cancelled <= sent),
        "the MARKET fallback went out before the stop's cancel was confirmed",
    )
    waited = elapsed_ms(stop_moves, lambda t: t["from_state"] == "TRIGGER_PENDING", "PENDING_CANCEL")
    f.check(
        waited is not None and 1900 <= waited <= 2000 + 2500,
        f"the stop's cancel came {waited} ms after its trigger; the fallback deadline is 2000 ms of broker time",
    )
    step_recorded(f, desk, step_ms)
    fallbacks = [i for i in desk.final["intents"] if i["group_id"] == "V" and i["purpose"] == "FALLBACK"]
    f.check(
        [(i["side"], i["qty"], i["order_type"]) for i in fallbacks] == [("BUY", 75, "MARKET")],
        f"the fallback is not one MARKET BUY of the 75 unfilled: {fallbacks}",
    )
    f.check(group_state(desk, "V") == "COMPLETED", f"the stopped group is {group_state(desk, 'V')}, not COMPLETED")
    finish_checks(f, desk, truth, group, bystander())


# --- class 5: malformed events ----------------------------------------------------------------------


def malformed_kept(f: Findings, desk: Desk, truth: Truth, count: int, bound: int | None = None) -> None:
    injected = truth.injected()
    f.check(len(injected) == count, f"the script injected {len(injected)} events, expected {count}")
    for seq, event in injected:
        rows = [r for r in desk.rejected if carries_seq(r, seq)]
        shown = json.dumps(event, default=str)[:120]
        f.check(bool(rows), f"the malformed event seq {seq} ({shown}) is not in rejected_events with its seq")
        if rows and bound is not None:
            size = max(len(json.dumps(r, default=str)) for r in rows)
            f.check(size <= bound, f"rejected_events keeps {size} characters of event {seq}: not a bounded copy")
    f.check(
        desk.final["rejected_events"] >= count,
        f"rejected_events counts {desk.final['rejected_events']}, the script sent {count} malformed events",
    )
    top = max((seq for seq, _ in injected), default=0)
    f.check(
        desk.last_seq is not None and desk.last_seq >= top,
        f"the client's resume point is {desk.last_seq}: malformed event(s) up to seq {top} do not count as seen",
    )


async def test_class5_a_negative_fill_and_a_negative_status_are_journaled_and_count_as_seen(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(
                HEDGE,
                {"inject": {"qty": -75, "trade_id": "NEG{seq}"}, "like": "fill"},
                {"inject": {"filled_qty": -75}, "like": "status"},
            ),
            refills_on_cancel(HEDGE),
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await victim_then_bystander(f, desk)
    truth = await ex.finish()
    malformed_kept(f, desk, truth, 2)
    f.check(len(mentions(desk.rejected, "-75")) >= 2, "the raw payloads with -75 are not kept in rejected_events")
    victim_hedged(f, desk)
    finish_checks(f, desk, truth, victim(), bystander())


async def test_class5_neighbour_nan_oversized_unknown_status_and_wrong_types(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(
                HEDGE,
                {"inject": {"qty": {"$number": "NaN"}}, "like": "fill"},
                {"inject": {"trade_id": {"$repeat": "T", "times": 300_000}, "price_paise": "free"}, "like": "fill"},
                {"inject": {"status": "EXPLODED"}, "like": "status"},
                {"inject": {"filled_qty": "150"}, "like": "status"},
                {"inject": {"type": "order", "broker_order_id": 7, "client_order_id": ["x"], "status": None}},
            ),
            refills_on_cancel(HEDGE),
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await victim_then_bystander(f, desk)
    truth = await ex.finish()
    malformed_kept(f, desk, truth, 5, bound=100_000)
    victim_hedged(f, desk)
    finish_checks(f, desk, truth, victim(), bystander())


# --- class 6: a cancel that is never confirmed --------------------------------------------------------


def cancel_unconfirmed(f: Findings, desk: Desk, hedge: dict[str, Any], qty: int) -> None:
    found = [
        e
        for e in desk.final["escalations"]
        if e["kind"] == "CANCEL_UNCONFIRMED" and e["status"] != "RESOLVED" and e["group_id"] == "V"
    ]
    f.check(bool(found), f"no open CANCEL_UNCONFIRMED escalation (escalations: {desk.final['escalations']})")
    for e in found:
        names = e["client_order_id"] == hedge["client_order_id"] or hedge["client_order_id"] in e["reason"]
        f.check(names, f"the CANCEL_UNCONFIRMED escalation does not name the order {hedge['client_order_id']}: {e}")
        f.check(e["unhedged_qty"] == qty, f"the escalation says {e['unhedged_qty']} may still fill, not {qty}")


async def until_cancel_escalated(f: Findings, desk: Desk) -> tuple[bool, dict[str, int]]:
    """The victim's cancel meets rule 2; a bystander is launched; wait for the escalation, then
    for both groups to settle. (settled, the exchange's counters)."""
    await desk.launch(victim())
    played(f, await desk.wait_fired(2), 2)
    await desk.launch(bystander())
    await escalated(desk, 20)
    settled = await desk.settle(["V", "B"], 5)
    return settled, await desk.server_stats()


async def escalated(desk: Desk, seconds: float) -> bool:
    async def raised() -> bool:
        doc = await desk.doc()
        return desk.engine.failure is not None or any(e["kind"] == "CANCEL_UNCONFIRMED" for e in doc["escalations"])

    return await wait_for(raised, seconds)


async def test_class6_a_cancel_never_confirmed_is_asked_again_resent_once_then_escalated(
    tmp_path: Path, exchanges: list[ExchangeProcess]
) -> None:
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE),
            {"on": "cancel", "match": {"symbol": HEDGE}, "do": [{"hold_cancel": True}]},  # 2
            probe("cancel", symbol=HEDGE),  # 3
            probe("order", symbol=HEDGE),  # 4
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        settled, stats = await until_cancel_escalated(f, desk)
    truth = await ex.finish()
    hedge = first_hedge(desk)
    cancel_unconfirmed(f, desk, hedge, 375 - 150)
    f.check(
        stats["script_rule3_seen"] == 2,
        f"the cancel was sent {stats['script_rule3_seen']} times; the rule is: once, and re-sent once "
        f"(the order was asked about {stats['script_rule4_seen']} times)",
    )
    f.check(len(truth.orders_on(HEDGE)) == 1, "a child hedge was sent while the first order might still fill")
    f.check(settled, "the engine did not settle (the group waiting on a person): `headless` would exit 3")
    finish_checks(f, desk, truth, victim(), bystander())


@pytest.mark.parametrize("how", ["acked-then-ignored", "refused"])
async def test_class6_neighbour_a_cancel_the_venue_never_carries_out_is_escalated(
    tmp_path: Path, exchanges: list[ExchangeProcess], how: str
) -> None:
    """The venue keeps the order working: it acks every cancel PENDING_CANCEL without acting on it,
    or refuses every cancel (INTERNAL: nothing changed). Re-sending it forever is no answer."""
    instead = (
        {
            "answer": {
                "type": "cancel_ack",
                "broker_order_id": "{broker_order_id}",
                "status": "PENDING_CANCEL",
                "ts_exchange_ms": "{now_ms}",
            }
        }
        if how == "acked-then-ignored"
        else {"error": "INTERNAL"}
    )
    ex = start(
        tmp_path,
        exchanges,
        [rests_partly(HEDGE), {"on": "cancel", "nth": 0, "match": {"symbol": HEDGE}, "do": [instead]}],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        settled, stats = await until_cancel_escalated(f, desk)
    truth = await ex.finish()
    hedge = first_hedge(desk)
    cancel_unconfirmed(f, desk, hedge, 375 - 150)
    if how == "acked-then-ignored":
        f.check(
            stats["script_rule2_seen"] == 2,
            f"the cancel was sent {stats['script_rule2_seen']} times, not 1 + 1 re-sent",
        )
    f.check(settled, "the engine did not settle (the group waiting on a person): `headless` would exit 3")
    finish_checks(f, desk, truth, victim(), bystander())


# --- class 7: more fill after CANCELLED -------------------------------------------------------------


@pytest.mark.parametrize("arrival", ["cancelled-first", "filled-first"])
async def test_class7_a_larger_cumulative_qty_after_cancelled_is_taken_whatever_the_order(
    tmp_path: Path, exchanges: list[ExchangeProcess], arrival: str
) -> None:
    """The cancel races the fills: the venue keeps the order (held cancel) and fills the other 225
    at its next step (FILLED 375), while a stale CANCELLED(150) is reported; the fill reports of
    the 225 are lost. Both arrival orders must end with 375 taken and the fills fetched."""
    late = (
        [{"delay": {"type": "order", "status": "CANCELLED", "client_order_id": "{client_order_id}"}, "after": 1}]
        if arrival == "filled-first"
        else []
    )
    ex = start(
        tmp_path,
        exchanges,
        [
            rests_partly(HEDGE),
            refills_on_cancel(
                HEDGE,
                *late,
                {"hold_cancel": True},
                {"drop": {"type": "fill", "client_order_id": "{client_order_id}"}},
                {"inject": {"status": "CANCELLED"}, "like": "status"},
            ),
        ],
    )
    f = Findings()
    async with Desk(tmp_path, ex.url) as desk:
        await desk.launch(victim())
        played(f, await desk.wait_fired(2), 2)

        async def venue_filled_the_hedge() -> bool:
            return any(o.symbol == HEDGE and o.filled_qty == 375 for o in await desk.broker.orders())

        # The venue fills the other 225 at its next step after the held cancel. Until it has, the
        # desk can look settled (CANCELLED 150 both sides): settling first would race the venue.
        f.check(await wait_for(venue_filled_the_hedge, 10), "test setup: the venue never filled the other 225")
        await desk.launch(bystander())
        await desk.settle(["V", "B"], SETTLE_S)
        stats = await desk.server_stats()
    truth = await ex.finish()
    late_ones = (stats["script_delayed"], stats["script_held_back"])
    f.check(late_ones == (len(late), 0), f"test setup: {late_ones} (delayed, still held) stale CANCELLED reports")
    hedge = first_hedge(desk)
    venue = next(o for o in truth.orders if o.client_order_id == hedge["client_order_id"])
    f.check((venue.status.value, venue.filled_qty) == ("FILLED", 375), f"test setup: the venue has {venue}")
    f.check(
        hedge["filled_qty"] == 375, f"the journal has {hedge['filled_qty']} filled of the hedge the venue filled 375"
    )
    fills = sum(x["qty"] for x in desk.final["fills"] if x["client_order_id"] == hedge["client_order_id"])
    f.check(fills == 375, f"the journal holds fill reports for {fills} of the hedge's 375 (missing fills not fetched)")
    finish_checks(f, desk, truth, victim(), bystander())
