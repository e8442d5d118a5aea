"""The pure view model and the Qt adapters stay in sync, and updates are batched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.config import GuiConfig, load
from app.errors import UsageError
from engine.core.model import Role
from ui.models.columns import group_columns
from ui.models.hedge_tree import HedgeTreeModel
from ui.models.table import KeyedTableModel
from ui.viewmodels.desk import DeskViewModel, notice_for
from ui.viewmodels.metrics import RingBuffer
from ui.viewmodels.rows import GroupRow, NodeView


def _row(gid: str, state: str = "CREATED", hedge: int = 0) -> GroupRow:
    return GroupRow(gid, "t", state, "", "H", "R", 150, 150, hedge, 0)


def test_a_batch_of_changes_is_one_insert_and_one_data_changed(qtbot) -> None:
    model: KeyedTableModel[GroupRow] = KeyedTableModel(group_columns({}), lambda r: r.group_id)
    model.apply([_row("A"), _row("B"), _row("C")])
    with qtbot.waitSignals([model.dataChanged, model.rowsInserted], timeout=1000):
        inserted: list[tuple[int, int]] = []
        changed: list[tuple[int, int]] = []
        model.rowsInserted.connect(lambda _p, a, b: inserted.append((a, b)))
        model.dataChanged.connect(lambda tl, br: changed.append((tl.row(), br.row())))
        model.apply([_row("A", "HEDGED", 150), _row("C", "HEDGED", 150), _row("D"), _row("E")])
    assert inserted == [(3, 4)] and changed == [(0, 2)]
    assert [r.state for r in model.rows()] == ["HEDGED", "CREATED", "HEDGED", "CREATED", "CREATED"]
    assert model.index(0, 3).data() == "100%"


def test_a_parent_and_its_child_arriving_in_one_batch_nest_correctly(qtbot) -> None:
    model = HedgeTreeModel()
    parent = NodeView("N1", "G1", "", 0, "LEG", "H", "BUY", 375, 150, "CHILDED", "")
    child = NodeView("N2", "G1", "N1", 1, "LEG", "H", "BUY", 225, 0, "WORKING", "")
    model.apply([child, parent])
    assert model.rowCount() == 1 and model.index(0, 0).data() == "G1"
    g = model.index(0, 0)
    n1 = model.index(0, 0, g)
    assert n1.data() == "LEG depth 0" and model.rowCount(n1) == 1
    n2 = model.index(0, 0, n1)
    assert model.parent(n2) == n1 and model.index(0, 5, n1).data() == "WORKING"
    model.apply([NodeView("N2", "G1", "N1", 1, "LEG", "H", "BUY", 225, 225, "FILLED", "")])
    assert model.index(0, 5, n1).data() == "FILLED" and model.node_count() == 2


def test_only_rows_that_changed_are_returned_and_notices_name_what_a_person_must_see() -> None:
    vm = DeskViewModel()
    vm.seed([_row("A")], [], [], [])
    assert vm.seed([_row("A")], [], [], []).groups == []
    reject = notice_for({"type": "order_outcome", "status": "REJECTED", "client_order_id": "X", "reason": "freeze"})
    assert reject is not None and (reject.level, reject.text) == ("error", "order X rejected: freeze")
    assert notice_for({"type": "intent"}) is None
    notices = vm.absorb(
        [
            {"type": "intent", "client_order_id": "X"},
            {"type": "engine_failure", "error": "disk full"},
            {"type": "escalation", "escalation_id": 3, "kind": "HEDGE_EXHAUSTED", "group_id": "A", "reason": "thin"},
        ]
    )
    assert [(n.level, n.text.split(":")[0]) for n in notices] == [
        ("error", "engine stopped"),
        ("warning", "escalation #3 HEDGE_EXHAUSTED in A"),
    ]
    assert vm.escalations_dirty and vm.book_dirty


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
    sampler.sample(1.0, events=10, batches=2, uncovered_qty=0, offset_ms=5, commit_us=(120, 900))
    sampler.sample(2.0, events=30, batches=4, uncovered_qty=75, offset_ms=6, commit_us=None)
    t, p99 = sampler.series["commit_p99"].view()
    assert list(t) == [1.0] and list(p99) == [900.0]
    assert list(sampler.series["commit_p50"].view()[1]) == [120.0]
    assert list(sampler.series["event_rate"].view()[1]) == [20.0]
