"""Manual hedge…: pre-filled with the escalation's unhedged qty; the trader must type the qty
again to confirm. A mismatch sends nothing and says so."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QFormLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout

from ui.dialogs.buttons import action_row


class ManualHedgeDialog(QDialog):
    confirmed = Signal(str, str, str, int)  # group id, symbol, side, qty
    refused = Signal(str)

    def __init__(self, group_id: str, symbol: str, side: str, qty: int, lot_size: int, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Manual hedge")
        self.group_id, self.symbol, self.side = group_id, symbol, side
        self.qty = QSpinBox()
        self.qty.setRange(lot_size, 1_000_000)
        self.qty.setSingleStep(lot_size)
        self.qty.setValue(max(qty, lot_size))
        self.confirm = QLineEdit()
        self.confirm.setPlaceholderText("type the quantity again")
        self.message = QLabel("")
        self.message.setObjectName("manualHedgeMessage")
        self.message.setWordWrap(True)
        self.send = QPushButton("Send hedge")
        cancel = QPushButton("Cancel")
        form = QFormLayout()
        form.addRow("Group", QLabel(group_id))
        form.addRow("Instrument", QLabel(f"{side} {symbol} (lot {lot_size})"))
        form.addRow("Quantity", self.qty)
        form.addRow("Confirm quantity", self.confirm)
        buttons = action_row(cancel, self.send)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self.send.clicked.connect(self._send)
        cancel.clicked.connect(self.reject)

    def _send(self) -> None:
        typed = self.confirm.text().strip()
        qty = self.qty.value()
        if typed != str(qty):
            why = f"manual hedge refused: confirmation {typed!r} does not match quantity {qty}; nothing was sent"
            self.message.setText(why)
            self.refused.emit(why)
            return
        self.confirmed.emit(self.group_id, self.symbol, self.side, qty)
        self.accept()
