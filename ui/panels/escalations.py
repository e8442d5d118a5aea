"""Escalations: severity, reason and unhedged qty, with the actions each role may take. Buttons a
role may not use are disabled with a tooltip naming the role; the engine enforces regardless."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSortFilterProxyModel, Signal
from PySide6.QtWidgets import QAbstractItemView, QHBoxLayout, QPushButton, QTableView, QVBoxLayout, QWidget

from engine.core.model import Role
from ui.enable import enable
from ui.models.columns import escalation_columns
from ui.models.table import ROW_ROLE, SORT_ROLE, KeyedTableModel, fit_columns
from ui.viewmodels.enablement import escalation_actions
from ui.viewmodels.rows import EscalationRow

# action -> (role that may use it, what it does)
ACTIONS = {
    "acknowledge": (Role.RISK, "Acknowledge the escalation (recorded with your user and role)"),
    "resolve": (Role.RISK, "Resolve the escalation, with a note saying how its cause was dealt with"),
    "manual_hedge": (Role.TRADER, "Send a manual hedge for the unhedged quantity"),
    "approve_retry": (Role.OPERATOR, "Send a new attempt of the orphaned intent, once"),
    "abandon": (Role.OPERATOR, "Close the orphaned intent without sending anything"),
}


class EscalationsPanel(QWidget):
    action_requested = Signal(str, object)  # action name, EscalationRow

    def __init__(self, role: Role, parent: Any = None) -> None:
        super().__init__(parent)
        self.model: KeyedTableModel[EscalationRow] = KeyedTableModel(escalation_columns(), lambda r: r.escalation_id)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        fit_columns(self.view)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.verticalHeader().setVisible(False)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.buttons: dict[str, QPushButton] = {}
        bar = QHBoxLayout()
        labels = {
            "acknowledge": "Acknowledge",
            "resolve": "Resolve…",
            "manual_hedge": "Manual hedge…",
            "approve_retry": "Approve retry",
        }
        for name in ACTIONS:
            button = QPushButton(labels.get(name, name.capitalize()))
            button.clicked.connect(lambda _=False, n=name: self.trigger(n))
            self.buttons[name] = button
            bar.addWidget(button)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view)
        self.role = role
        self.set_role(role)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self.update_buttons())
        self.model.modelReset.connect(self.update_buttons)
        self.model.dataChanged.connect(lambda *_: self.update_buttons())

    def set_role(self, role: Role) -> None:
        self.role = role
        self.update_buttons()

    def update_buttons(self) -> None:
        """Each button enabled only when its action can succeed for this role and this row."""
        for name, why_not in escalation_actions(self.role, self.selected()).items():
            enable(self.buttons[name], why_not, ACTIONS[name][1])

    def selected(self) -> EscalationRow | None:
        rows = self.view.selectionModel().selectedRows()
        return self.proxy.index(rows[0].row(), 0).data(ROW_ROLE) if rows else None

    def select(self, escalation_id: int) -> bool:
        for r in range(self.proxy.rowCount()):
            if self.proxy.index(r, 0).data(ROW_ROLE).escalation_id == escalation_id:
                self.view.selectRow(r)
                return True
        return False

    def trigger(self, action: str) -> None:
        """Ask the window to run an action on the selected escalation (even if the button is
        disabled: the engine, not the button, decides)."""
        row = self.selected()
        if row is not None:
            self.action_requested.emit(action, row)
