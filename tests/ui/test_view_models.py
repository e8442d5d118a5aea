"""The pure view model and the Qt adapters stay in sync, and updates are batched."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiosqlite
import numpy as np
import pytest
from PySide6.QtCore import Qt

from app.config import GuiConfig, load
from app.errors import UsageError
from engine.core.book import Book, GroupRuntime, IntentRow
from engine.core.exposure import group_fills, net_cover_qty
from engine.core.groups import GroupSpec, LegSpec
from engine.core.model import (
    EscalationKind,
    GroupState,
    IntentStatus,
    LegRole,
    OrderStatus,
    OrderType,
    Purpose,
    Role,
    Severity,
    Side,
)
from engine.core.notices import (
    BrokerUsability,
    ClockStepped,
    EngineStopped,
    EscalationAcknowledged,
    EscalationRaised,
    EventRefused,
    FeedError,
    IntentClosed,
    IntentJournaled,
    OrderOutcome,
    RecoveryDone,
    TradingStateChanged,
)
from engine.store.db import SqliteDb
from ui.models.columns import group_columns
from ui.models.hedge_tree import HedgeTreeModel
from ui.models.table import KeyedTableModel
from ui.reader import JournalReader
from ui.viewmodels.confirm import manual_hedge_plan
from ui.viewmodels.desk import DeskViewModel, notice_for
from ui.viewmodels.metrics import RingBuffer
from ui.viewmodels.rows import EscalationRow, GroupRow, IntentView, NodeView


def _row(gid: str, state: str = "CREATED", hedge: int = 0) -> GroupRow:
    return GroupRow(gid, "t", state, "", "H", "R", 150, 150, hedge, 0, hedge)


def test_a_batch_of_changes_is_one_insert_and_one_data_changed_per_run_of_adjacent_rows(qtbot) -> None:
    model: KeyedTableModel[GroupRow] = KeyedTableModel(group_columns({}), lambda r: r.group_id)
    model.apply([_row("A"), _row("B"), _row("C")])
    with qtbot.waitSignals([model.dataChanged, model.rowsInserted], timeout=1000):
        inserted: list[tuple[int, int]] = []
        changed: list[tuple[int, int]] = []
        model.rowsInserted.connect(lambda _p, a, b: inserted.append((a, b)))
        model.dataChanged.connect(lambda tl, br: changed.append((tl.row(), br.row())))
        model.apply([_row("C", "HEDGED", 150), _row("A", "HEDGED", 150), _row("D"), _row("E")])
    assert inserted == [(3, 4)] and changed == [(0, 0), (2, 2)]  # B, between them, is not re-examined
    changed.clear()
    model.apply([_row("B", "HEDGED", 150), _row("A", "HEDGED", 150), _row("C", "HEDGED", 150)])
    assert changed == [(0, 2)]
    assert [r.state for r in model.rows()] == ["HEDGED", "HEDGED", "HEDGED", "CREATED", "CREATED"]
    hedge_fill = [c.title for c in model.columns].index("Hedge fill")
    assert model.index(0, hedge_fill).data() == "100%"


def test_a_parent_and_its_child_arriving_in_one_batch_nest_correctly(qtbot) -> None:
    model = HedgeTreeModel()
    parent = NodeView("N1", "G1", "", 0, "LEG", "H", "BUY", 375, 150, "CHILDED", "")
    child = NodeView("N2", "G1", "N1", 1, "LEG", "H", "BUY", 225, 0, "WORKING", "")
    model.apply([child, parent])
    assert model.rowCount() == 1 and model.index(0, 0).data() == "G1"
    g = model.index(0, 0)
    n1 = model.index(0, 0, g)
    assert n1.data() == "Hedge leg" and model.rowCount(n1) == 1
    assert model.index(0, 5, g).data() == "re-hedged below"
    n2 = model.index(0, 0, n1)
    assert n2.data() == "Re-hedge 1" and model.parent(n2) == n1 and model.index(0, 5, n1).data() == "working"
    model.apply([NodeView("N2", "G1", "N1", 1, "LEG", "H", "BUY", 225, 225, "FILLED", "")])
    assert model.index(0, 5, n1).data() == "filled" and model.node_count() == 2
    assert "N2 (LEG, depth 1)" in model.index(0, 0, n1).data(Qt.ItemDataRole.ToolTipRole)


def test_a_trader_cancelled_node_is_not_an_amber_shortfall(qtbot) -> None:
    model = HedgeTreeModel()
    cancelled = NodeView("N1", "G1", "", 0, "LEG", "H", "BUY", 150, 75, "EXHAUSTED", "group cancelled by trader")
    short = NodeView("N2", "G2", "", 0, "LEG", "H", "BUY", 150, 75, "EXHAUSTED", "max depth reached")
    manual = NodeView("N3", "G2", "", 0, "MANUAL", "H", "BUY", 75, 0, "HALTED", "trading is HALTED")
    model.apply([cancelled, short, manual])
    g1, g2 = model.index(0, 0), model.index(1, 0)
    status = model.index(0, 5, g1)
    assert status.data() == "cancelled by trader" and status.data(Qt.ItemDataRole.BackgroundRole) is None
    amber = model.index(0, 5, g2)
    assert amber.data() == "short: escalated" and amber.data(Qt.ItemDataRole.BackgroundRole).color().name() == "#ffbf47"
    assert model.index(1, 0, g2).data() == "Manual hedge" and model.index(1, 5, g2).data() == "held by HALT: escalated"


def test_only_rows_that_changed_are_returned_and_notices_name_what_a_person_must_see() -> None:
    vm = DeskViewModel()
    vm.seed([_row("A")], [], [], [])
    assert vm.seed([_row("A")], [], [], []).groups == []
    reject = notice_for(OrderOutcome("X", OrderStatus.REJECTED, "freeze"))
    assert reject is not None and (reject.level, reject.text) == ("error", "order X rejected: freeze")
    intent = IntentJournaled("X", "A", LegRole.RISK, "R", Side.SELL, 75, 1)
    assert notice_for(intent) is None
    vm.escalations_dirty = vm.book_dirty = False
    assert vm.absorb([intent]) == [] and vm.book_dirty and not vm.escalations_dirty
    escalation = EscalationRaised(3, EscalationKind.HEDGE_EXHAUSTED, Severity.WARNING, "A", None, "H", 75, "thin")
    notices = vm.absorb([intent, EngineStopped("disk full"), escalation])
    assert [(n.level, n.text.split(":")[0]) for n in notices] == [
        ("error", "engine stopped"),
        ("warning", "escalation #3 HEDGE_EXHAUSTED in A"),
    ]
    assert vm.escalations_dirty and vm.book_dirty


def test_every_notice_is_matched_on_the_event_class_and_escalation_news_rereads_escalations() -> None:
    events_and_notices = [
        (OrderOutcome("X", OrderStatus.UNKNOWN, "outcome unknown: timeout"), "warning", "order X: outcome unknown"),
        (EventRefused("X", "unknown order", {"status": "FILLED"}), "warning", "broker event refused for X"),
        (FeedError("connection reset"), "warning", "broker feed error (re-subscribing): connection reset"),
        (TradingStateChanged("HALTED", "rita"), "info", "trading is now HALTED (by rita)"),
        (RecoveryDone(4, 1, 2), "info", "recovery: 4 checked, 1 adopted, 2 orphaned"),
        (ClockStepped(-60_000, -60_000), "warning", "the exchange clock stepped -60000 ms"),
        (BrokerUsability(False, "no answer for 10000 ms"), "error", "broker UNUSABLE: no answer"),
        (BrokerUsability(True, "answers again"), "info", "broker usable again"),
        (
            EscalationRaised(7, EscalationKind.ORPHANED_INTENT, Severity.CRITICAL, "G", "C1", "R", 75, ""),
            "warning",
            "escalation #7 ORPHANED_INTENT in G: C1",
        ),
    ]
    for event, level, text in events_and_notices:
        notice = notice_for(event)
        assert notice is not None and notice.level == level and notice.text.startswith(text), event
    for news in (EscalationAcknowledged(7, "rita"), IntentClosed("C1", IntentStatus.ABANDONED)):
        vm = DeskViewModel()
        vm.escalations_dirty = False
        assert vm.absorb([news]) == [] and vm.escalations_dirty, news


def _spec(gid: str, hedge_qty: int, risk_qty: int) -> GroupSpec:
    return GroupSpec(
        gid,
        LegSpec(LegRole.HEDGE, "H", Side.BUY, hedge_qty, 75, 5, 1800),
        LegSpec(LegRole.RISK, "R", Side.SELL, risk_qty, 75, 5, 1800),
    )


def _order(gid: str, n: int, role: LegRole, side: Side, filled: int, purpose: Purpose = Purpose.LEG) -> IntentRow:
    return IntentRow(
        f"{gid}-{n}",
        f"{gid}-{n}",
        1,
        gid,
        role,
        1,
        "H" if role is LegRole.HEDGE else "R",
        side,
        filled,
        OrderType.MARKET,
        None,
        status=IntentStatus.FILLED,
        order_status=OrderStatus.FILLED,
        filled_qty=filled,
        fills_qty=filled,
        purpose=purpose,
    )


# group -> (hedge qty, risk qty), its orders (role, side, filled, purpose), net cover the engine computes
EXPOSURE_CASES: dict[str, tuple[tuple[int, int], list[tuple[LegRole, Side, int, Purpose]], int]] = {
    # 2:1 hedge, fully filled: covered. The old formula (hedge filled - risk filled) said +150.
    "RATIO2": (
        (300, 150),
        [(LegRole.HEDGE, Side.BUY, 300, Purpose.LEG), (LegRole.RISK, Side.SELL, 150, Purpose.LEG)],
        0,
    ),
    # 2:1 hedge, risk half sold: the 75 short needs 150 of hedge, 150 spare (old: +225).
    "PARTIAL": (
        (300, 150),
        [(LegRole.HEDGE, Side.BUY, 300, Purpose.LEG), (LegRole.RISK, Side.SELL, 75, Purpose.LEG)],
        150,
    ),
    # 1:2 hedge, fully filled: covered (old: -150, shown as 150 uncovered).
    "HALF": ((150, 300), [(LegRole.HEDGE, Side.BUY, 150, Purpose.LEG), (LegRole.RISK, Side.SELL, 300, Purpose.LEG)], 0),
    # 1:1, hedge 75 short of a full short, topped up by a hedge node: covered (the node counts).
    "NODE": (
        (150, 150),
        [
            (LegRole.HEDGE, Side.BUY, 75, Purpose.LEG),
            (LegRole.HEDGE, Side.BUY, 75, Purpose.HEDGE),
            (LegRole.RISK, Side.SELL, 150, Purpose.LEG),
        ],
        0,
    ),
    # 1:1 closing, the short bought back and the hedge not yet sold: 150 held, none needed (old: 0).
    "EXITING": (
        (150, 150),
        [
            (LegRole.HEDGE, Side.BUY, 150, Purpose.LEG),
            (LegRole.RISK, Side.SELL, 150, Purpose.LEG),
            (LegRole.RISK, Side.BUY, 150, Purpose.EXIT),
        ],
        150,
    ),
    # 1:1, risk sold beyond a thin hedge: 75 uncovered.
    "SHORT": (
        (150, 150),
        [(LegRole.HEDGE, Side.BUY, 75, Purpose.LEG), (LegRole.RISK, Side.SELL, 150, Purpose.LEG)],
        -75,
    ),
}


def _book() -> Book:
    book = Book()
    for gid, ((hedge_qty, risk_qty), orders, _) in EXPOSURE_CASES.items():
        book.groups[gid] = GroupRuntime(_spec(gid, hedge_qty, risk_qty), GroupState.HEDGED)
        for n, (role, side, filled, purpose) in enumerate(orders):
            book.add(_order(gid, n, role, side, filled, purpose))
    return book


def test_the_desk_net_exposure_is_the_engines_formula_in_the_groups_own_ratio() -> None:
    book = _book()
    vm = DeskViewModel()
    rows = {r.group_id: r for r in vm.refresh(book).groups}
    for gid, (_, _, expected) in EXPOSURE_CASES.items():
        spec = book.groups[gid].spec
        engine_says = net_cover_qty(group_fills(book.of_group(gid)), spec.hedge.qty, spec.risk.qty)
        assert rows[gid].net_cover_qty == engine_says == expected, gid
    assert (rows["RATIO2"].hedge_filled_qty, rows["RATIO2"].risk_filled_qty) == (300, 150)
    assert (rows["PARTIAL"].hedge_fill_pct, rows["PARTIAL"].risk_fill_pct) == (100.0, 50.0)
    assert vm.uncovered_short_qty() == 75, "only SHORT is uncovered"
    net = next(c for c in group_columns({}) if c.title == "Net exposure")
    assert net.value(rows["HALF"]) == 0 and net.value(rows["SHORT"]) == -75


async def test_the_journal_reader_computes_the_same_net_exposure_as_the_engine() -> None:
    book = _book()
    conn = await aiosqlite.connect(":memory:")
    try:
        await conn.execute("CREATE TABLE legs (group_id TEXT, role TEXT, symbol TEXT, qty INTEGER)")
        await conn.execute(
            "CREATE TABLE groups (group_id TEXT, template TEXT, state TEXT, reason TEXT, stop_trigger_paise INTEGER)"
        )
        for gid, g in book.groups.items():
            await conn.execute("INSERT INTO groups VALUES (?, '', 'COMPLETED', '', NULL)", (gid,))
            for leg in g.spec.legs:
                await conn.execute("INSERT INTO legs VALUES (?, ?, ?, ?)", (gid, leg.role.value, leg.symbol, leg.qty))
        intents = [IntentView.of(r) for r in book.intents.values()]
        rows = {r.group_id: r for r in await JournalReader(SqliteDb(conn, Path(":memory:"))).groups(intents, {"SHORT"})}
    finally:
        await conn.close()
    assert {gid: r.net_cover_qty for gid, r in rows.items()} == {gid: c[2] for gid, c in EXPOSURE_CASES.items()}
    assert rows["SHORT"].family == "escalated" and rows["RATIO2"].risk_filled_qty == 150


def test_the_ring_buffer_keeps_the_newest_samples_in_order() -> None:
    ring = RingBuffer(3)
    for i in range(5):
        ring.append(float(i), float(i * 10))
    t, v = ring.view()
    assert np.array_equal(t, [2.0, 3.0, 4.0]) and np.array_equal(v, [20.0, 30.0, 40.0])


def test_config_file_then_flags_override_the_defaults(tmp_path: Path) -> None:
    base = GuiConfig(db=tmp_path / "d.db", broker="paper:x")
    toml = tmp_path / "desk.toml"
    toml.write_text('role = "risk"\ndb = "/tmp/j.db"\ntheme = "light"\nmax_hedge_depth = 2\n')
    cfg = load(str(toml), {"db": str(tmp_path / "flag.db"), "role": None}, base)
    assert (cfg.role, cfg.db, cfg.theme, cfg.max_hedge_depth) == (Role.RISK, tmp_path / "flag.db", "light", 2)
    toml.write_text('colour = "red"\n')
    with pytest.raises(UsageError, match="unknown keys colour"):
        load(str(toml), {}, base)
    with pytest.raises(UsageError, match="role 'boss'"):
        load(None, {"role": "boss"}, base)


def test_the_sampler_records_journal_commit_latency_p50_and_p99() -> None:
    from ui.viewmodels.metrics import MetricsSampler

    sampler = MetricsSampler(capacity=8)
    sampler.sample(1.0, events=10, uncovered_qty=0, offset_ms=5, commit_us=(120, 900))
    sampler.sample(2.0, events=30, uncovered_qty=75, offset_ms=6, commit_us=None)
    t, p99 = sampler.series["commit_p99"].view()
    assert list(t) == [1.0] and list(p99) == [900.0]
    assert list(sampler.series["commit_p50"].view()[1]) == [120.0]
    assert list(sampler.series["event_rate"].view()[1]) == [20.0]


def test_manual_hedge_prefills_what_brings_net_exposure_to_zero() -> None:
    def intent(role: str, side: str, filled: int, symbol: str) -> IntentView:
        return IntentView(
            f"{role}{side}{filled}",
            "I",
            1,
            "G",
            role,
            "LEG",
            0,
            symbol,
            side,
            150,
            "MARKET",
            "FILLED",
            "FILLED",
            filled,
            "B",
            "",
            "",
        )

    def group(net: int) -> GroupRow:
        return replace(_row("G", "HEDGED", 150), hedge_symbol="H", risk_symbol="R", net_cover_qty=net)

    def esc(symbol: str, qty: int, kind: str = "MANUAL_ACTION") -> EscalationRow:
        return EscalationRow(1, kind, "CRITICAL", "OPEN", "G", "", symbol, qty, "", "", "", "")

    short = [intent("HEDGE", "BUY", 150, "H"), intent("RISK", "SELL", 150, "R")]
    # an exit escalation naming the short leg: never a buy of the short leg (it would be booked as
    # hedge and a later close would buy the short back twice); covered, so nothing
    plan = manual_hedge_plan(group(0), esc("R", 150), short)
    assert (plan.symbol, plan.qty) == ("H", 0)
    # a short the hedge does not cover: the hedge for exactly the uncovered units
    plan = manual_hedge_plan(group(-75), esc("H", 150, "HEDGE_EXHAUSTED"), short)
    assert (plan.symbol, plan.qty) == ("H", 75)
    # covered (or long): nothing, and why, rather than over-buy
    plan = manual_hedge_plan(group(0), esc("H", 150, "HEDGE_EXHAUSTED"), short)
    assert plan.qty == 0 and "over-hedge" in plan.why
