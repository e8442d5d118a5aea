"""Hedge recursion tree: groups, their hedge nodes and child nodes, expanding as nodes appear."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QHeaderView, QTreeView, QVBoxLayout, QWidget

from ui.models.hedge_tree import HEADERS, STATUS_WORDS, HedgeTreeModel

STATUS_COLUMN = HEADERS.index("Status")


class HedgeTreePanel(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.model = HedgeTreeModel(self)
        self.view = QTreeView()
        self.view.setObjectName("hedgeTree")
        self.view.setModel(self.model)
        self.view.setUniformRowHeights(True)
        header = self.view.header()
        header.setStretchLastSection(True)
        header.setMinimumSectionSize(48)
        # Columns grow to fit the text of the rows that arrive, measured for those rows alone:
        # ResizeToContents would measure every row again on each change (1,000 live groups:
        # seconds per burst of fills). What changes later is a node's status, so its column
        # starts as wide as the widest status; the reason stretches; the trader may drag the rest.
        for column in range(self.model.columnCount()):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            title = str(self.model.headerData(column, Qt.Orientation.Horizontal))
            header.resizeSection(column, header.fontMetrics().horizontalAdvance(title) + 24)
        widest_status = max(self.view.fontMetrics().horizontalAdvance(w) for w in STATUS_WORDS)
        header.resizeSection(STATUS_COLUMN, widest_status + 16)
        self.model.rowsInserted.connect(self._widen)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.view)
        self.model.rowsInserted.connect(self._expand)
        self.focused: str | None = None

    def _widen(self, parent: QModelIndex, first: int, last: int) -> None:
        depth = 0
        walk = parent
        while walk.isValid():
            depth, walk = depth + 1, walk.parent()
        header, metrics = self.view.header(), self.view.fontMetrics()
        for column in range(self.model.columnCount() - 1):  # the last column stretches
            indent = (depth + 1) * self.view.indentation() if column == 0 else 0
            width = max(
                (metrics.horizontalAdvance(str(self.model.index(row, column, parent).data() or "")) for row in
                 range(first, last + 1)), default=0,
            ) + indent + 16  # fmt: skip
            if width > header.sectionSize(column):
                header.resizeSection(column, width)

    def focus_group(self, group_id: str | None) -> None:
        """Show only this group's tree (None: every group)."""
        self.focused = group_id
        for row in range(self.model.rowCount()):
            key = self.model.index(row, 0).data()
            self.view.setRowHidden(row, QModelIndex(), group_id is not None and key != group_id)

    def _expand(self, parent: QModelIndex, first: int, last: int) -> None:
        if parent.isValid():
            self.view.expand(parent)
        elif self.focused is not None:  # a new group arrives while one is in focus
            self.focus_group(self.focused)
        for row in range(first, last + 1):
            self.view.expand(self.model.index(row, 0, parent))
