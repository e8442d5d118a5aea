"""Group detail: legs, the group's orders, and its audit trail (transitions with broker and local
timestamps, commands with who gave them, refused events with their reasons)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QTableView, QVBoxLayout, QWidget

from ui.models.columns import audit_columns, intent_columns
from ui.models.table import KeyedTableModel
from ui.reader import AuditLine, JournalReader
from ui.viewmodels.rows import GroupRow, IntentView


def _table(model: Any) -> QTableView:
    view = QTableView()
    view.setModel(model)
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
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(_table(self.orders))
        split.addWidget(_table(self.audit))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.header)
        layout.addWidget(split, 1)
        self.loads = 0

    async def show_group(self, row: GroupRow | None, orders: list[IntentView]) -> None:
        """Show a group; the audit trail is read from the journal on the desk's read connection."""
        if row is None:
            return
        self.group_id = row.group_id
        self.header.setText(
            f"<b>{row.group_id}</b> {row.template} — <b>{row.state}</b> {row.reason}<br>"
            f"HEDGE BUY {row.hedge_qty} {row.hedge_symbol} (filled {row.hedge_filled_qty}) · "
            f"RISK SELL {row.risk_qty} {row.risk_symbol} (filled {row.risk_filled_qty})"
        )
        self.orders.reset(orders)
        lines = await self.reader.audit_trail(row.group_id, [o.client_order_id for o in orders])
        if self.group_id == row.group_id:  # the selection may have moved while we read
            self.audit.reset(lines)
            self.loads += 1
