"""Intent journal: every intent with filters by status, group and text, and CSV export."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.core.model import IntentStatus
from ui.models.columns import intent_columns
from ui.models.table import (
    ROW_ROLE,
    SORT_ROLE,
    KeyedTableModel,
    ask_export,
    export_csv,
    export_in_background,
    fit_columns,
)
from ui.viewmodels.rows import IntentView


class IntentFilter(QSortFilterProxyModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.status = ""
        self.group = ""
        self.text = ""

    def set_filter(self, status: str, group: str, text: str) -> None:
        self.beginFilterChange()  # Qt >= 6.9; invalidateFilter() is deprecated
        self.status, self.group, self.text = status, group.strip(), text.strip()
        self.endFilterChange()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        row: IntentView = self.sourceModel().index(source_row, 0, source_parent).data(ROW_ROLE)
        if self.status and row.status != self.status:
            return False
        if self.group and self.group.lower() not in row.group_id.lower():
            return False
        return not self.text or row.matches(self.text)


class IntentsPanel(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.model: KeyedTableModel[IntentView] = KeyedTableModel(intent_columns(), lambda r: r.client_order_id)
        self.proxy = IntentFilter(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.status = QComboBox()
        self.status.addItems(["All statuses", *(s.value for s in IntentStatus)])
        self.group = QLineEdit()
        self.group.setPlaceholderText("group…")
        self.text = QLineEdit()
        self.text.setPlaceholderText("search id, symbol, reason…")
        export = QPushButton("Export CSV…")
        self.view = QTableView()
        self.view.setModel(self.proxy)
        fit_columns(self.view)
        self.view.setSortingEnabled(True)
        self.view.verticalHeader().setVisible(False)
        self.view.horizontalHeader().setStretchLastSection(True)
        bar = QHBoxLayout()
        for w in (self.status, self.group, self.text, export):
            bar.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view)
        self.status.currentIndexChanged.connect(self._refilter)
        self.group.textChanged.connect(self._refilter)
        self.text.textChanged.connect(self._refilter)
        export.clicked.connect(self._ask_export)
        self._dialog: QFileDialog | None = None

    def _refilter(self) -> None:
        status = "" if self.status.currentIndex() == 0 else self.status.currentText()
        self.proxy.set_filter(status, self.group.text(), self.text.text())

    def visible_rows(self) -> list[IntentView]:
        return [self.proxy.index(r, 0).data(ROW_ROLE) for r in range(self.proxy.rowCount())]

    def export_csv(self, path: Path) -> int:
        """Write the rows the filters show, in view order. Returns how many were written."""
        return export_csv(path, self.model.columns, self.visible_rows())

    def _ask_export(self) -> None:
        self._dialog = ask_export(self, "Export intents", "intents.csv", self.export_later)

    def export_later(self, path: Path) -> asyncio.Future[int]:
        """Export what the filters show, written off the GUI thread (ui.models.table)."""
        self.export_task = export_in_background(path, self.model.columns, self.visible_rows())
        return self.export_task
