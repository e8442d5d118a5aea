"""Group detail: legs, the group's orders, and its audit trail (transitions with broker and local
timestamps, commands with who gave them, refused events with their reasons).

A slider under the header scrubs the group through time: each stop is an input that changed the
group or one of its orders; the panel then shows the orders as the engine held them right after
that input, rebuilt by replaying the journal (engine.audit.replay), and says so. At the right
end it follows the live book again."""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSlider, QSplitter, QTableView, QVBoxLayout, QWidget

from engine.audit.why import fmt_ms
from ui.models.columns import audit_columns, intent_columns
from ui.models.table import KeyedTableModel, fit_columns
from ui.reader import AuditLine, JournalReader
from ui.viewmodels.rows import GroupRow, IntentView


def _table(model: Any) -> QTableView:
    view = QTableView()
    view.setModel(model)
    fit_columns(view)
    view.verticalHeader().setVisible(False)
    view.horizontalHeader().setStretchLastSection(True)
    return view


class GroupDetailPanel(QWidget):
    def __init__(self, reader: JournalReader, parent: Any = None) -> None:
        super().__init__(parent)
        self.reader = reader
        self.group_id: str | None = None
        self.header = QLabel("Select a group")
        self.header.setObjectName("detailHeader")
        self.header.setWordWrap(True)
        self.orders: KeyedTableModel[IntentView] = KeyedTableModel(intent_columns(), lambda r: r.client_order_id)
        self.audit: KeyedTableModel[AuditLine] = KeyedTableModel(audit_columns(), lambda r: r.key)
        self.orders_view = _table(self.orders)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("timeSlider")
        self.slider.setEnabled(False)
        self.slider.setToolTip("scrub the group through time: each step is an input that changed it")
        self.when = QLabel("live")
        self.when.setObjectName("timeLabel")
        self.live_button = QPushButton("Live")
        self.live_button.setToolTip("back to the live book")
        self.live_button.setEnabled(False)
        time_bar = QHBoxLayout()
        time_bar.addWidget(QLabel("Time"))
        time_bar.addWidget(self.slider, 1)
        time_bar.addWidget(self.when)
        time_bar.addWidget(self.live_button)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.orders_view)
        split.addWidget(_table(self.audit))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.header)
        layout.addLayout(time_bar)
        layout.addWidget(split, 1)
        self.loads = 0
        self.inputs: list[tuple[int, str, int]] = []  # (seq, kind, wall ms) of the group's inputs
        self.at_seq: int | None = None  # the input shown; None: live
        self.rebuilds = 0
        self._live: tuple[GroupRow, list[IntentView]] | None = None
        self._scrub: asyncio.Task[None] | None = None
        self._scrub_again = False
        self.slider.valueChanged.connect(self._moved)
        self.live_button.clicked.connect(lambda: self.slider.setValue(self.slider.maximum()))

    async def show_group(self, row: GroupRow | None, orders: list[IntentView]) -> None:
        """Show a group; the audit trail is read from the journal on the desk's read connection."""
        if row is None:
            return
        same = row.group_id == self.group_id
        self.group_id = row.group_id
        self._live = (row, orders)
        if not same or self.at_seq is None:
            self._show_live()
        lines = await self.reader.audit_trail(row.group_id, [o.client_order_id for o in orders])
        inputs = await self.reader.group_inputs(row.group_id)
        if self.group_id != row.group_id:  # the selection may have moved while we read
            return
        self.audit.reset(lines)
        self.inputs = inputs
        self.slider.blockSignals(True)
        self.slider.setRange(0, len(inputs))  # the last stop (len) is "live"
        if not same or self.at_seq is None:
            self.slider.setValue(len(inputs))
        self.slider.blockSignals(False)
        self.slider.setEnabled(bool(inputs))
        self.loads += 1

    def _show_live(self) -> None:
        self.at_seq = None
        self.live_button.setEnabled(False)
        self.when.setText("live")
        if self._live is None:
            return
        row, orders = self._live
        self.header.setText(
            f"<b>{row.group_id}</b> {row.template} — <b>{row.state}</b> {row.reason}<br>"
            f"HEDGE BUY {row.hedge_qty} {row.hedge_symbol} (filled {row.hedge_filled_qty}) · "
            f"RISK SELL {row.risk_qty} {row.risk_symbol} (filled {row.risk_filled_qty})"
        )
        self.orders.reset(orders)

    def _moved(self, value: int) -> None:
        if value >= len(self.inputs):
            self._show_live()
            return
        self.at_seq = self.inputs[value][0]
        self.live_button.setEnabled(True)
        if self._scrub is not None:
            self._scrub_again = True  # coalesce: the newest position once the rebuild in flight ends
            return
        self._scrub = asyncio.ensure_future(self._rebuild())

    async def _rebuild(self) -> None:
        try:
            while True:
                self._scrub_again = False
                seq, group_id = self.at_seq, self.group_id
                if seq is None or group_id is None:
                    return
                result = await self.reader.replay_at(seq)
                if self._scrub_again or self.at_seq != seq or self.group_id != group_id:
                    continue
                self._show_at(seq, group_id, result)
                return
        finally:
            self._scrub = None

    def _show_at(self, seq: int, group_id: str, result: Any) -> None:
        kind, wall = next(((k, w) for s, k, w in self.inputs if s == seq), ("", 0))
        group = result.state.book.groups.get(group_id)
        state = (
            f"<b>{group.state.value}</b> {group.reason}"
            if group
            else "not held by the engine then (not yet launched, or finished before a restart)"
        )
        warning = ""
        if result.mismatch is not None:
            warning = (
                f"<br><font color='#ff6b6b'>replay differs from the journal at input #{result.mismatch.seq}</font>"
            )
        self.header.setText(
            f"<b>{group_id}</b> as the engine held it after input #{seq} ({kind} at {fmt_ms(wall)}): {state}{warning}"
        )
        self.when.setText(f"#{seq} {fmt_ms(wall)}")
        self.orders.reset([IntentView.of(r) for r in result.state.book.of_group(group_id)])
        self.rebuilds += 1
