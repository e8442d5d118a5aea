"""Hedge recursion tree: groups, their hedge nodes and child nodes, expanding as nodes appear."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex
from PySide6.QtWidgets import QHeaderView, QTreeView, QVBoxLayout, QWidget

from ui.models.hedge_tree import HedgeTreeModel

WIDEST = ("Interim re-hedge 3 ", "NIFTY26DEC24200CE ", "SELL", "9,999,999", "9,999,999", "held by HALT: escalated")


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
        # Widths fit the widest text each column can hold, measured once: ResizeToContents would
        # measure every row again on each change (1,000 live groups: seconds per burst of fills).
        metrics = self.view.fontMetrics()
        for column, widest in enumerate(WIDEST):  # the reason stretches; the trader may drag the rest
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            indent = 4 * self.view.indentation() if column == 0 else 0  # a group, then up to 3 levels of nodes
            header.resizeSection(column, metrics.horizontalAdvance(widest) + indent + 16)
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
