"""The "Why?" context menu on a view of orders, hedge nodes or escalations."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtWidgets import QAbstractItemView, QMenu


def install_why(
    view: QAbstractItemView, ident_at: Callable[[QModelIndex], str | None], ask: Callable[[str], object]
) -> None:
    """Right-click a row: *Why?* asks for the causal chain of the id ``ident_at`` finds there."""
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def menu(pos: QPoint) -> None:
        index = view.indexAt(pos)
        ident = ident_at(index) if index.isValid() else None
        if not ident:
            return
        popup = QMenu(view)
        popup.setObjectName("whyMenu")
        action = popup.addAction("Why?")
        action.setToolTip(f"the input, rule and facts behind {ident}, back to its launch")
        action.triggered.connect(lambda: ask(ident))
        popup.popup(view.viewport().mapToGlobal(pos))  # popup(), never exec(): the loop keeps running

    view.customContextMenuRequested.connect(menu)
