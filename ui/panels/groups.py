"""Order groups: live lifecycle per group, sortable and filterable, with cancel and close."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.core.instruments import Instrument
from ui.models.columns import group_columns
from ui.models.table import SORT_ROLE, KeyedTableModel, fit_columns
from ui.viewmodels.rows import GroupRow

EMPTY_TEXT = (
    "<b>No order groups yet.</b> Launch a group: <b>Ctrl+N</b> (Desk ▸ Launch group…), or click a bid or an"
    " ask in the <i>Option chain</i> tab. To watch the desk work first, run <code>trading-desk demo</code>."
)


class GroupsPanel(QWidget):
    group_selected = Signal(str)
    cancel_requested = Signal(str)
    close_requested = Signal(str)

    def __init__(
        self,
        launch_wall_ms: dict[str, int],
        catalog: Mapping[str, Instrument] | None = None,
        pnl: Callable[[str], Mapping[str, Any] | None] | None = None,
        parent: Any = None,
        finished_wall_ms: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(parent)
        columns = group_columns(launch_wall_ms, catalog=catalog, pnl=pnl, finished_wall_ms=finished_wall_ms)
        self.model: KeyedTableModel[GroupRow] = KeyedTableModel(columns, lambda r: r.group_id)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.view = QTableView()
        self.view.setObjectName("groupsTable")
        self.view.setModel(self.proxy)
        fit_columns(self.view)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.verticalHeader().setVisible(False)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter groups…")
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.cancel_button = QPushButton("Cancel orders")
        self.cancel_button.setToolTip("Cancel the group's working orders (passes even when HALTED)")
        self.close_button = QPushButton("Close group")
        self.close_button.setToolTip("Exit a HEDGED group: risk leg bought back first, then the hedge sold")
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.cancel_button)
        top.addWidget(self.close_button)
        self.empty = QLabel(EMPTY_TEXT)
        self.empty.setObjectName("groupsEmpty")
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("QLabel { padding: 12px; font-size: 11pt; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.empty)
        layout.addWidget(self.view)
        for signal in (self.model.modelReset, self.model.rowsInserted, self.model.rowsRemoved):
            signal.connect(self._show_empty)
        self._show_empty()
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.cancel_button.clicked.connect(lambda: self._emit(self.cancel_requested))
        self.close_button.clicked.connect(lambda: self._emit(self.close_requested))

    def _show_empty(self, *_: Any) -> None:
        self.empty.setVisible(self.model.rowCount() == 0)

    def selected_group(self) -> str | None:
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        return str(self.proxy.index(rows[0].row(), 0).data())

    def select_group(self, group_id: str) -> bool:
        for r in range(self.proxy.rowCount()):
            if self.proxy.index(r, 0).data() == group_id:
                self.view.selectRow(r)
                return True
        return False

    def _selection_changed(self, *_: Any) -> None:
        gid = self.selected_group()
        if gid:
            self.group_selected.emit(gid)

    def _emit(self, signal: Any) -> None:
        gid = self.selected_group()
        if gid:
            signal.emit(gid)
