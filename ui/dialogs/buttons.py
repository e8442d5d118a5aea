"""The button row every dialog that sends ends with: Cancel, then the action on the right. Enter
is the action (when it is enabled), never Cancel; Esc cancels (QDialog's own key)."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget


def action_row(cancel: QPushButton, action: QPushButton, lead: QWidget | None = None) -> QHBoxLayout:
    cancel.setAutoDefault(False)
    action.setDefault(True)
    row = QHBoxLayout()
    if lead is None:
        row.addStretch(1)
    else:
        row.addWidget(lead, 1)
    row.addWidget(cancel)
    row.addWidget(action)
    return row
