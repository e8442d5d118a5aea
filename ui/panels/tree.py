"""Hedge recursion tree: groups, their hedge nodes and child nodes, expanding as nodes appear."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex
from PySide6.QtWidgets import QHeaderView, QTreeView, QVBoxLayout, QWidget

from ui.models.hedge_tree import HedgeTreeModel


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
        for column in range(self.model.columnCount() - 1):  # the reason stretches; the rest fit their text
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.view)
        self.model.rowsInserted.connect(self._expand)
        self.focused: str | None = None

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
