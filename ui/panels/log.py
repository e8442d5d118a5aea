"""Log panel: every notice a person must see (refused commands, rejects, failures), newest last."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtWidgets import QPlainTextEdit, QVBoxLayout, QWidget


class LogPanel(QWidget):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setMaximumBlockCount(5000)
        self.lines: list[tuple[str, str]] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.text)

    def add(self, level: str, message: str) -> None:
        self.lines.append((level, message))
        del self.lines[:-5000]
        self.text.appendPlainText(f"{time.strftime('%H:%M:%S')} {level.upper():<7} {message}")
