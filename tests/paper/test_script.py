"""The pure part of exchange scripts: parsing, occurrence counting, phases, templates, filters."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from engine.catalog import load_catalog
from engine.paper.script import (
    Answer,
    ClockStep,
    Delay,
    Drop,
    ErrorReply,
    HoldCancel,
    Inject,
    LiveFilters,
    Market,
    Patch,
    PatchOrder,
    ScriptError,
    TemplateError,
    Withhold,
    context,
    fill_like,
    matches,
    parse_script,
    plan,
    render,
    same,
    status_like,
)

CATALOG = load_catalog()
SYM = "NIFTY26DEC24200CE"


def one(rule: dict[str, Any]) -> Any:
    return parse_script([rule], CATALOG).rules[0]


# --- parsing -----------------------------------------------------------------------------------


def test_every_action_parses_to_its_type() -> None:
    script = parse_script(
        [
            {"on": "place", "match": {"symbol": SYM}, "do": [{"withhold": True}]},
            {"on": "find", "nth": 2, "do": [{"error": "INTERNAL", "message": "disk on fire"}]},
            {"on": "cancel", "nth": 0, "do": [{"answer": {"type": "cancel_ack", "status": "PENDING_CANCEL"}}]},
            {"on": "cancel", "do": [{"patch": {"broker_order_id": "GHOST{n}"}}, {"hold_cancel": True}]},
            {"on": "orders", "do": [{"patch_order": {"status": "FILLED"}, "where": {"symbol": SYM}}]},
            {"on": "place", "do": [{"inject": {"status": "FILLED"}, "like": "status"}, {"inject": "garbage"}]},
            {"on": "time", "do": [{"clock_step_ms": -60_000}]},
            {"on": "place", "do": [{"drop": {"type": "fill"}, "count": 2}, {"delay": {"type": "order"}, "after": 3}]},
            {"on": "event", "match": {"type": "fill"}, "do": [{"market": {"symbol": SYM, "price_paise": 25050}}]},
            {"on": "orders", "do": []},
        ],
        CATALOG,
    )
    kinds = [[type(a) for a in r.actions] for r in script.rules]
    assert kinds == [
        [Withhold],
        [ErrorReply],
        [Answer],
        [Patch, HoldCancel],
        [PatchOrder],
        [Inject, Inject],
        [ClockStep],
        [Drop, Delay],
        [Market],
        [],
    ]
    assert [r.nth for r in script.rules][:3] == [1, 2, 0]
    assert script.rules[1].actions[0] == ErrorReply("INTERNAL", "disk on fire")
    assert script.rules[7].actions == (Drop({"type": "fill"}, 2), Delay({"type": "order"}, 3, None))
    assert script.rules[8].actions[0] == Market(SYM, 25050, None, None, "after")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"rules": []}, "must be a JSON list of rules"),
        ([[]], "rule 1: a rule must be a JSON object"),
        ([{"on": "placed", "do": []}], "'on' must be one of"),
        ([{"on": "place", "nth": -1, "do": []}], "'nth' must be an integer >= 0"),
        ([{"on": "place", "nth": True, "do": []}], "'nth' must be an integer >= 0"),
        ([{"on": "place", "do": {}}], "'do' must be a list"),
        ([{"on": "place", "do": [], "when": 1}], "unknown key(s) when"),
        ([{"on": "place", "match": {"colour": "red"}, "do": []}], "unknown name {colour}"),
        ([{"on": "place", "do": [{"withold": True}]}], "rule 1, action 1: an action has exactly one of"),
        ([{"on": "place", "do": [{"withhold": True, "error": "INTERNAL"}]}], "exactly one of"),
        ([{"on": "place", "do": [{"withhold": 1}]}], "'withhold' must be true"),
        ([{"on": "place", "do": [{"error": "OOPS"}]}], "'error' must be one of"),
        ([{"on": "place", "do": [{"hold_cancel": True}]}], "'hold_cancel' is not possible in a rule on 'place'"),
        ([{"on": "event", "do": [{"withhold": True}]}], "not possible in a rule on 'event'"),
        ([{"on": "place", "do": [{"error": "INTERNAL"}, {"answer": {"type": "placed"}}]}], "at most one of"),
        ([{"on": "place", "do": [{"error": "INTERNAL"}, {"patch": {"qty": 1}}]}], "cannot be patched or withheld"),
        ([{"on": "place", "do": [{"patch": {}}]}], "'patch' must be a non-empty JSON object"),
        ([{"on": "place", "do": [{"patch": {"x": "{nope}"}}]}], "unknown name {nope}"),
        ([{"on": "place", "do": [{"inject": "x", "like": "status"}]}], "with 'like', 'inject' must be an object"),
        ([{"on": "place", "do": [{"inject": {}, "like": "trade"}]}], "'like' must be 'status' or 'fill'"),
        ([{"on": "place", "do": [{"inject": {"x": {"$repeat": "x"}}}]}], "$repeat"),
        ([{"on": "place", "do": [{"inject": {"x": {"$repeat": "x", "times": 10**9}}}]}], "$repeat"),
        ([{"on": "place", "do": [{"inject": {"x": {"$number": "1e400"}}}]}], "$number"),
        ([{"on": "place", "do": [{"clock_step_ms": 1.5}]}], "'clock_step_ms' must be an integer"),
        ([{"on": "place", "do": [{"drop": {}, "count": 0}]}], "'count' must be an integer >= 1"),
        ([{"on": "place", "do": [{"delay": {"type": "fill"}}]}], "'delay' needs 'after'"),
        ([{"on": "place", "do": [{"market": {"symbol": "NOPE", "price_paise": 5}}]}], "unknown symbol 'NOPE'"),
        ([{"on": "place", "do": [{"market": {"symbol": SYM}}]}], "'market' changes nothing"),
        ([{"on": "place", "do": [{"market": {"symbol": SYM, "price_paise": 25051}}]}], "not on the 5 paise tick"),
        ([{"on": "place", "do": [{"market": {"symbol": SYM, "levels": 2}}]}], "needs 'lots_per_level' too"),
        ([{"on": "place", "do": [{"market": {"symbol": SYM, "lots_per_level": -1}}]}], "must be an integer >= 0"),
        ([{"on": "place", "do": [{"market": {"symbol": SYM, "price_paise": 5}, "when": "later"}]}], "'when'"),
    ],
)
def test_a_bad_script_is_refused_naming_the_rule_and_the_problem(raw: Any, problem: str) -> None:
    with pytest.raises(ScriptError) as err:
        parse_script(raw, CATALOG)
    assert problem in str(err.value)
    assert "\n" not in str(err.value)


# --- occurrences -------------------------------------------------------------------------------


def test_nth_counts_only_requests_of_its_kind_that_match() -> None:
    script = parse_script(
        [
            {"on": "place", "nth": 2, "match": {"symbol": SYM}, "do": [{"withhold": True}]},
            {"on": "place", "nth": 0, "do": []},
            {"on": "cancel", "do": [{"error": "INTERNAL"}]},
        ],
        CATALOG,
    )
    mine, other = context({"symbol": SYM, "qty": 75}), context({"symbol": "X", "qty": 75})
    assert [f.rule.number for f in script.fire("place", other)] == [2]
    assert [f.rule.number for f in script.fire("place", mine)] == [2]  # first match of rule 1
    assert [(f.rule.number, f.occurrence) for f in script.fire("place", mine)] == [(1, 2), (2, 3)]
    assert [f.rule.number for f in script.fire("place", mine)] == [2]  # nth=2 fires once
    assert [f.rule.number for f in script.fire("cancel", context({"broker_order_id": "PX1"}))] == [3]
    assert script.fire("cancel", context({"broker_order_id": "PX1"})) == []
    assert script.stats() == {
        "script_rules_fired": 6,
        "script_rule1_seen": 3,
        "script_rule1_fired": 1,
        "script_rule2_seen": 4,
        "script_rule2_fired": 4,
        "script_rule3_seen": 2,
        "script_rule3_fired": 1,
    }


def test_match_sees_the_named_order_and_prefixed_names() -> None:
    rule = {"on": "cancel", "nth": 0, "match": {"symbol": SYM, "order.status": "PARTIALLY_FILLED"}, "do": []}
    script = parse_script([rule], CATALOG)
    order = {"broker_order_id": "PX1", "symbol": SYM, "status": "PARTIALLY_FILLED", "qty": 375, "filled_qty": 150}
    assert script.fire("cancel", context({"broker_order_id": "PX1"}, order))
    assert not script.fire("cancel", context({"broker_order_id": "PX1"}, {**order, "status": "ACCEPTED"}))
    assert not script.fire("cancel", context({"broker_order_id": "GHOST"}, None))


def test_match_values_are_json_values() -> None:
    assert matches({"qty": 75}, {"qty": 75}) and matches({"qty": 75}, {"qty": 75.0})
    assert not matches({"qty": 75}, {"qty": "75"})
    assert not matches({"flag": True}, {"flag": 1}) and not matches({"qty": 1}, {"qty": True})
    assert matches({"x": None}, {"x": None}) and not matches({"x": None}, {})
    assert not matches({"type": "fill"}, "not a dict") and matches({}, {"anything": 1})
    assert same(math.nan, math.nan)


# --- phases ------------------------------------------------------------------------------------


def test_plan_orders_actions_into_phases_and_the_first_replacement_wins() -> None:
    script = parse_script(
        [
            {
                "on": "cancel",
                "do": [
                    {"inject": {"status": "CANCELLED"}, "like": "status"},
                    {"patch": {"broker_order_id": "GHOST"}},
                    {"market": {"symbol": SYM, "lots_per_level": 0}},
                    {"market": {"symbol": SYM, "lots_per_level": 2, "levels": 1}, "when": "before"},
                    {"hold_cancel": True},
                    {"clock_step_ms": 5},
                    {"withhold": True},
                ],
            },
            {"on": "cancel", "do": [{"error": "INTERNAL"}, {"drop": {"type": "fill"}}]},
        ],
        CATALOG,
    )
    p = plan(script.fire("cancel", context({"broker_order_id": "PX1"})))
    assert [type(a) for a, _ in p.before] == [Market, ClockStep, Drop]
    assert p.instead is not None and isinstance(p.instead[0], HoldCancel)
    assert [type(a) for a, _ in p.after] == [Market] and [type(a) for a, _ in p.patches] == [Patch]
    assert p.withhold and [type(a) for a, _ in p.injects] == [Inject]


# --- templates ---------------------------------------------------------------------------------


def test_render_keeps_types_of_whole_names_and_formats_the_rest() -> None:
    names = context(
        {"client_order_id": "C1", "qty": 375, "symbol": SYM},
        {"broker_order_id": "PX7", "qty": 375, "filled_qty": 150, "status": "PARTIALLY_FILLED"},
        {"type": "placed", "broker_order_id": "PX7", "ts_exchange_ms": 1000},
        n=2,
        seq=41,
    )
    template = {
        "broker_order_id": "GHOST{n}",
        "client_order_id": "{client_order_id}",
        "filled_qty": "{qty}",
        "left": "{remaining_qty}",
        "note": "{order.status} at {ts_exchange_ms}, seq {seq}, limit {limit_price_paise}",
        "list": ["{n}", 3, None, True],
    }
    assert render(template, names | {"limit_price_paise": None}) == {
        "broker_order_id": "GHOST2",
        "client_order_id": "C1",
        "filled_qty": 375,
        "left": 225,
        "note": "PARTIALLY_FILLED at 1000, seq 41, limit null",
        "list": [2, 3, None, True],
    }
    with pytest.raises(TemplateError):
        render({"x": "{limit_price_paise}"}, names)


def test_render_special_forms_make_oversized_and_non_finite_values() -> None:
    out = render(
        {"big": {"$repeat": "ab{n}", "times": 3}, "nan": {"$number": "NaN"}, "inf": {"$number": "-Infinity"}}, {"n": 1}
    )
    assert out["big"] == "ab1ab1ab1" and math.isnan(out["nan"]) and out["inf"] == -math.inf
    assert "NaN" in json.dumps(out)  # as a broken venue would send it: not strict JSON


def test_precedence_of_flat_names_reply_then_request_then_event_then_order() -> None:
    names = context(
        {"broker_order_id": "REQ"}, {"broker_order_id": "ORD", "status": "ACCEPTED"}, {"status": "PENDING_CANCEL"}
    )
    assert names["broker_order_id"] == "REQ" and names["order.broker_order_id"] == "ORD"
    assert names["status"] == "PENDING_CANCEL" and names["order.status"] == "ACCEPTED"
    assert context(event={"type": "fill", "qty": 75}, order={"qty": 375})["qty"] == 75


def test_like_status_and_like_fill_start_from_the_real_order() -> None:
    order = {
        "broker_order_id": "PX1",
        "client_order_id": "C1",
        "symbol": SYM,
        "side": "BUY",
        "qty": 375,
        "filled_qty": 150,
        "status": "PARTIALLY_FILLED",
    }
    assert status_like(order, 99) == {
        "type": "order",
        "broker_order_id": "PX1",
        "client_order_id": "C1",
        "status": "PARTIALLY_FILLED",
        "filled_qty": 150,
        "ts_exchange_ms": 99,
        "reason": "",
    }
    fill = fill_like(order, 99, "S5", 11890)
    assert (fill["type"], fill["trade_id"], fill["qty"], fill["side"], fill["price_paise"]) == (
        "fill",
        "S5",
        225,
        "BUY",
        11890,
    )
    assert fill_like({**order, "filled_qty": 375}, 99, "S6", 1)["qty"] == 375


# --- live delivery filters ---------------------------------------------------------------------


def events(*kinds: str) -> list[tuple[int, dict[str, Any]]]:
    return [(i, {"type": k, "client_order_id": "C1" if k != "other" else "C2"}) for i, k in enumerate(kinds, start=1)]


def delivered(filters: LiveFilters[tuple[int, dict[str, Any]]], items: list[tuple[int, dict[str, Any]]]) -> list[int]:
    out: list[int] = []
    for item in items:
        out += [seq for seq, _ in filters.offer(item)]
    return out


def test_drop_counts_down_and_leaves_the_rest() -> None:
    filters: LiveFilters[tuple[int, dict[str, Any]]] = LiveFilters(lambda item: item[1])
    assert not filters.active
    filters.drop({"type": "fill", "client_order_id": "C1"}, count=2)
    assert delivered(filters, events("fill", "order", "fill", "fill", "other")) == [2, 4, 5]
    assert filters.stats.dropped == 2 and not filters.active


def test_delay_releases_after_n_further_deliveries_and_reorders() -> None:
    filters: LiveFilters[tuple[int, dict[str, Any]]] = LiveFilters(lambda item: item[1])
    filters.delay({"type": "order"}, after=2, count=1)
    assert delivered(filters, events("order", "fill", "fill", "fill")) == [2, 3, 1, 4]
    assert filters.stats.delayed == 1 and filters.held() == 0


def test_a_dropped_event_does_not_count_as_a_further_delivery() -> None:
    filters: LiveFilters[tuple[int, dict[str, Any]]] = LiveFilters(lambda item: item[1])
    filters.delay({"type": "order"}, after=1)
    filters.drop({"type": "fill"})
    assert delivered(filters, events("order", "fill", "fill", "other")) == [4, 1]
    assert filters.held() == 0


def test_filters_ignore_events_that_are_not_objects() -> None:
    filters: LiveFilters[tuple[int, Any]] = LiveFilters(lambda item: item[1])
    filters.drop({"type": "fill"})
    assert [s for s, _ in filters.offer((1, "garbage"))] == [1]
    assert [s for s, _ in filters.offer((2, [1, 2]))] == [2]
