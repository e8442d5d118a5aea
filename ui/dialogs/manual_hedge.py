"""Manual hedge…: pre-filled with the order that brings the group's net exposure to zero (or
nothing, saying why); the trader must type the qty again to confirm. A mismatch or a quantity
that is not a whole number of lots sends nothing and says so, next to the fields."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QFormLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout

from ui.dialogs.buttons import action_row


class ManualHedgeDialog(QDialog):
    confirmed = Signal(str, str, str, int)  # group id, symbol, side, qty
    refused = Signal(str)

    def __init__(
        self, group_id: str, symbol: str, side: str, qty: int, lot_size: int, parent: Any = None, why: str = ""
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Manual hedge")
        self.setMinimumWidth(420)
        self.group_id, self.symbol, self.side, self.lot_size = group_id, symbol, side, lot_size
        self.qty = QSpinBox()
        self.qty.setRange(0, 1_000_000)
        self.qty.setSingleStep(lot_size)
        self.qty.setValue(max(qty, 0))
        self.plan = QLabel(why)
        self.plan.setObjectName("manualHedgePlan")
        self.plan.setWordWrap(True)
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
        form.addRow("", self.plan)
        form.addRow("Confirm quantity", self.confirm)
        buttons = action_row(cancel, self.send)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self.send.clicked.connect(self._send)
        cancel.clicked.connect(self.reject)
        self.qty.valueChanged.connect(self._check)
        self._check()

    def _check(self) -> None:
        """Send only a whole number of lots above zero; say why not next to the fields."""
        qty = self.qty.value()
        problem = ""
        if qty == 0:
            problem = "quantity 0: nothing to send"
        elif qty % self.lot_size:
            problem = f"{qty} is not a whole number of lots of {self.lot_size}"
        self.send.setEnabled(not problem)
        self.message.setText(problem)

    def _send(self) -> None:
        typed = self.confirm.text().strip()
        qty = self.qty.value()
        if qty == 0 or qty % self.lot_size:
            self._check()
            return
        if typed != str(qty):
            why = f"manual hedge refused: confirmation {typed!r} does not match quantity {qty}; nothing was sent"
            self.message.setText(why)
            self.refused.emit(why)
            return
        self.confirmed.emit(self.group_id, self.symbol, self.side, qty)
        self.accept()
