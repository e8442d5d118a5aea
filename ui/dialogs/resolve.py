"""Resolve…: risk staff close an escalation whose cause they have dealt with, saying how. The
note is required (the engine refuses an empty one too) and is journaled with their user."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout

from ui.dialogs.buttons import action_row
from ui.viewmodels.rows import EscalationRow


class ResolveDialog(QDialog):
    resolved = Signal(int, str)  # escalation id, note

    def __init__(self, row: EscalationRow, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Resolve escalation #{row.escalation_id}")
        self.row = row
        self.setMinimumWidth(480)
        what = QLabel(f"<b>#{row.escalation_id} {row.severity} {row.kind}</b> in {row.group_id}<br>{row.reason}")
        what.setWordWrap(True)
        self.note = QPlainTextEdit()
        self.note.setObjectName("resolveNote")
        self.note.setPlaceholderText("how was its cause dealt with? (required; recorded with your user)")
        self.why_not = QLabel("A note is required")
        self.resolve = QPushButton("Resolve")
        self.resolve.setEnabled(False)
        cancel = QPushButton("Cancel")
        buttons = action_row(cancel, self.resolve, self.why_not)
        layout = QVBoxLayout(self)
        layout.addWidget(what)
        layout.addWidget(self.note)
        layout.addLayout(buttons)
        self.note.textChanged.connect(self._changed)
        self.resolve.clicked.connect(self._resolve)
        cancel.clicked.connect(self.reject)

    def _changed(self) -> None:
        ok = bool(self.note.toPlainText().strip())
        self.resolve.setEnabled(ok)
        self.why_not.setText("" if ok else "A note is required")

    def _resolve(self) -> None:
        note = self.note.toPlainText().strip()
        if note:
            self.resolved.emit(self.row.escalation_id, note)
            self.accept()
