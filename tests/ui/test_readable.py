"""Times people read: the audit trail shows local HH:MM:SS.mmm with the broker's time beside it
and the offset, in time order with commands interleaved; a finished group's age stops."""

from __future__ import annotations

import re

from tests.ui.conftest import DeskHarness, confirm_last, until
from tests.ui.test_launch_and_tree import _fill_launch
from ui.models.columns import AGE_COLUMN

CLOCK = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$")


async def test_the_audit_trail_reads_in_clock_time_and_in_order(desk: DeskHarness) -> None:
    window = await desk.open()
    _fill_launch(window, "G1", lots=2).send.click()
    await until(lambda: (r := window.groups.model.row("G1")) is not None and r.state == "HEDGED", what="HEDGED")
    window.groups.select_group("G1")
    lines = await until(lambda: window.detail.loads and window.detail.audit.rows(), what="audit trail")
    model = window.detail.audit
    titles = [c.title for c in model.columns]
    assert titles[:3] == ["Time", "Broker time", "Offset"]
    assert not any("(ns)" in t or "(ms)" in t for t in titles), "no raw clocks on screen"
    for i, line in enumerate(lines):
        shown = model.data(model.index(i, 0))
        assert CLOCK.match(shown), (line, shown)
        if line.ts_broker_ms is not None:
            assert CLOCK.match(model.data(model.index(i, 1)))
            assert model.data(model.index(i, 2)).endswith(" ms")
    walls = [line.ts_wall_ms for line in lines]
    assert None not in walls and walls == sorted(walls), "one trail in time order"
    sources = [line.source for line in lines]
    assert sources[0] == "COMMAND" and "TRANSITION" in sources[1:], "the launch first, then what it caused"


async def test_a_finished_groups_age_stops(desk: DeskHarness) -> None:
    window = await desk.open()
    _fill_launch(window, "G1", lots=2).send.click()
    await until(lambda: (r := window.groups.model.row("G1")) is not None and r.state == "HEDGED", what="HEDGED")
    window.groups.select_group("G1")
    window.close_action.trigger()
    confirm_last(window)
    row = await until(
        lambda: (r := window.groups.model.row("G1")) is not None and r.state == "COMPLETED" and r, what="closed"
    )
    age = window.groups.model.columns[AGE_COLUMN]
    assert age.title == "Age"
    finished, launched = window.finished_wall_ms["G1"], window.launch_wall_ms["G1"]
    assert age.value(row) == max(0.0, (finished - launched) / 1000), "measured to the finish, not to now"
