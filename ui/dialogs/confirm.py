"""A confirmation that says exactly what will be sent (side, qty, symbol, order type) before an
action that sends or cancels orders. Opened with ``open()`` (never ``exec()``: the engine keeps
running behind it). Esc and *Cancel* send nothing; Enter means the action, never Cancel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QLabel, QPushButton, QVBoxLayout

from ui.dialogs.buttons import action_row


class ConfirmDialog(QDialog):
    confirmed = Signal()

    def __init__(
        self, title: str, headline: str, lines: Sequence[str], action: str, parent: Any = None, *, danger: bool = False
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setObjectName("confirmDialog")
        self.setMinimumWidth(480)  # an order on one line, not wrapped word by word
        self.head = head = QLabel(f"<b>{headline}</b>")
        head.setWordWrap(True)
        self.body = QLabel("<br>".join(lines) if lines else "Nothing is sent.")
        self.body.setObjectName("confirmWhat")
        self.body.setWordWrap(True)
        self.action = QPushButton(action)
        self.action.setObjectName("confirmAction")
        if danger:
            self.action.setStyleSheet("background:#b3261e; color:white; font-weight:bold")
        self.cancel = QPushButton("Cancel")
        buttons = action_row(self.cancel, self.action)
        layout = QVBoxLayout(self)
        layout.addWidget(head)
        layout.addWidget(self.body)
        layout.addLayout(buttons)
        self.action.clicked.connect(self._confirm)
        self.cancel.clicked.connect(self.reject)

    def text(self) -> str:
        return self.body.text()

    def _confirm(self) -> None:
        self.confirmed.emit()
        self.accept()
