"""Launching from the dialog and watching the group and its hedge tree live in the window."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.ui.conftest import DeskHarness, until
from ui.dialogs.launch import LaunchDialog
from ui.main_window import MainWindow

HEDGE = "NIFTY26DEC24200CE"
RISK_SYMBOL = "NIFTY26DEC24000CE"


def _fill_launch(window: MainWindow, group_id: str, lots: int, limit: str = "") -> LaunchDialog:
    dialog = window.open_launch_dialog()
    dialog.select("bear call spread", "NIFTY", 24000, 24200, lots)
    dialog.group_id.setText(group_id)
    dialog.hedge_limit.setText(limit)
    return dialog


async def test_a_group_launched_from_the_dialog_reaches_hedged_in_the_table(desk: DeskHarness, qtbot) -> None:
    window = await desk.open()
    dialog = _fill_launch(window, "G1", lots=2)
    assert dialog.isVisible() and dialog.send.isEnabled()
    preview = dialog.preview.text()
    assert f"HEDGE BUY 150 {HEDGE}: 2 lots of 75; 1 order(s) at freeze 1800 (150)" in preview
    assert "Worst-case margin ₹" in preview

    qtbot.mouseClick(dialog.send, Qt.MouseButton.LeftButton)

    row = await until(
        lambda: (r := window.groups.model.row("G1")) is not None and r.state == "HEDGED" and r, what="G1 HEDGED"
    )
    assert (row.hedge_fill_pct, row.risk_fill_pct, row.net_cover_qty) == (100.0, 100.0, 0)
    assert row.family == "working"
    assert await desk.journal_rows("SELECT state FROM groups WHERE group_id='G1'") == [("HEDGED",)]
    shown = {r.client_order_id for r in window.intents.model.rows()}
    assert shown == set(await desk.exchange_client_ids()) and len(shown) == 2
    window.groups.select_group("G1")
    await until(lambda: window.detail.loads and window.detail.audit.rows(), what="audit trail")
    changes = [(line.entity, line.change) for line in window.detail.audit.rows()]
    assert any(line.source == "COMMAND" and line.who == "tina (trader)" for line in window.detail.audit.rows())
    assert any(e == "GROUP" and c.endswith("→ HEDGED") for e, c in changes)


async def test_a_freeze_sized_leg_is_previewed_as_slices_and_a_wrong_spread_cannot_be_sent(desk: DeskHarness) -> None:
    window = await desk.open()
    dialog = _fill_launch(window, "BIG", lots=30)  # 2250 units > freeze 1800: two balanced slices
    assert "30 lots of 75; 2 order(s) at freeze 1800 (1125 + 1125)" in dialog.preview.text()
    dialog.select("bear call spread", "NIFTY", 24200, 24000, 2)  # hedge below the short call: not a bear call
    assert not dialog.send.isEnabled()
    assert "hedge strike higher" in dialog.preview.text()
    dialog.reject()


async def test_a_thin_hedge_grows_child_nodes_in_the_tree_and_raises_an_escalation(desk: DeskHarness) -> None:
    broker = await desk.open_broker()
    broker.core.set_depth(HEDGE, lots_per_level=2, levels=1)  # 2 of 5 lots fill, no refill without a step
    window = await desk.open()
    _fill_launch(window, "G1", lots=5).send.click()

    def chain_statuses() -> list[str]:
        roots = window.tree.model.children_of("G1")
        chain = list(roots[:1])
        while chain and (children := window.tree.model.children_of(chain[-1].node_id)):
            chain.extend(children)
        return [n.status for n in chain]

    # the view refreshes at most 20 times a second: wait for the settled tree, not the first four rows
    await until(lambda: chain_statuses() == ["CHILDED", "CHILDED", "CHILDED", "EXHAUSTED"], what="exhausted chain")
    (root,) = window.tree.model.children_of("G1")
    assert (root.depth, root.target_qty, root.filled_qty, root.status) == (0, 375, 150, "CHILDED")
    chain = [root]
    while children := window.tree.model.children_of(chain[-1].node_id):
        chain.extend(children)
    assert [(n.depth, n.target_qty, n.status) for n in chain] == [
        (0, 375, "CHILDED"),
        (1, 225, "CHILDED"),
        (2, 225, "CHILDED"),
        (3, 225, "EXHAUSTED"),
    ]
    assert window.tree.view.isExpanded(window.tree.model.index_of_key(chain[2].node_id))
    esc = await until(lambda: window.escalations.model.rows(), what="escalation row")
    assert [(e.kind, e.unhedged_qty, e.status) for e in esc] == [("HEDGE_EXHAUSTED", 225, "OPEN")]
    await until(lambda: window.docks["escalations"].windowTitle() == "Escalations (1)", what="tab title count")
    await until(lambda: (r := window.groups.model.row("G1")) and r.family == "escalated", what="amber group")
