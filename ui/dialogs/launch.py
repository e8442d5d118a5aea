"""Launch group…: a spread from a template, previewed (lot multiple, freeze slicing, worst-case
margin) before it can be sent. Opened with ``open()``; the window receives ``launch_requested``."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from engine.core.groups import GroupSpec, GroupSpecError, parse_group
from engine.core.instruments import Instrument, paise_to_str
from engine.core.margin import MarginModel, MarginModelError, group_margin_paise
from engine.core.slicing import slice_qty
from ui.resources import RESOURCES_DIR

TEMPLATES_FILE = RESOURCES_DIR / "templates.json"


@dataclass(frozen=True)
class Template:
    name: str
    option_type: str
    hedge_strike_is: str  # "higher" or "lower"
    description: str


def load_templates(path: Path = TEMPLATES_FILE) -> list[Template]:
    return [Template(**t) for t in json.loads(path.read_text(encoding="utf-8"))]


def strikes(catalog: Mapping[str, Instrument], underlying: str, option_type: str) -> dict[int, str]:
    """Strike in rupees -> symbol, for one underlying and option type."""
    return {
        i.strike_paise // 100: i.symbol
        for i in catalog.values()
        if i.underlying == underlying and i.option_type == option_type and i.strike_paise
    }


def preview_text(spec: GroupSpec, catalog: Mapping[str, Instrument], margin: MarginModel) -> str:
    lines = []
    for leg in spec.legs:
        slices = slice_qty(leg.qty, leg.lot_size, leg.freeze_qty)
        lines.append(
            f"{leg.role.value} {leg.side.value} {leg.qty} {leg.symbol}: {leg.qty // leg.lot_size} lots of "
            f"{leg.lot_size}; {len(slices)} order(s) at freeze {leg.freeze_qty} ({' + '.join(map(str, slices))})"
        )
    worst = group_margin_paise(spec, catalog, margin)
    lines.append(f"Worst-case margin ₹{paise_to_str(worst)} of ₹{paise_to_str(margin.available_paise)} available")
    return "\n".join(lines)


class LaunchDialog(QDialog):
    launch_requested = Signal(object)  # GroupSpec

    def __init__(self, catalog: Mapping[str, Instrument], margin: MarginModel, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Launch group")
        self.catalog, self.margin = catalog, margin
        self.templates = load_templates()
        self.spec: GroupSpec | None = None
        self.template = QComboBox()
        self.template.addItems([t.name for t in self.templates])
        self.underlying = QComboBox()
        self.underlying.addItems(sorted({i.underlying for i in catalog.values() if i.option_type}))
        self.risk_strike = QComboBox()
        self.hedge_strike = QComboBox()
        self.lots = QSpinBox()
        self.lots.setRange(1, 1000)
        self.lots.setValue(2)
        self.hedge_limit = QLineEdit()
        self.hedge_limit.setPlaceholderText("optional, rupees (MARKET when empty)")
        self.group_id = QLineEdit(time.strftime("G-%H%M%S"))
        self.preview = QLabel()
        self.preview.setWordWrap(True)
        self.preview.setObjectName("launchPreview")
        self.send = QPushButton("Send")
        self.send.setEnabled(False)
        cancel = QPushButton("Cancel")
        form = QFormLayout()
        for label, widget in (
            ("Template", self.template),
            ("Underlying", self.underlying),
            ("Risk strike (sell)", self.risk_strike),
            ("Hedge strike (buy)", self.hedge_strike),
            ("Lots", self.lots),
            ("Hedge limit price", self.hedge_limit),
            ("Group id", self.group_id),
        ):
            form.addRow(label, widget)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.send)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.preview)
        layout.addLayout(buttons)
        self.template.currentIndexChanged.connect(self._fill_strikes)
        self.underlying.currentIndexChanged.connect(self._fill_strikes)
        for w in (self.risk_strike, self.hedge_strike):
            w.currentIndexChanged.connect(self.update_preview)
        self.lots.valueChanged.connect(self.update_preview)
        self.hedge_limit.textChanged.connect(self.update_preview)
        self.group_id.textChanged.connect(self.update_preview)
        self.send.clicked.connect(self._send)
        cancel.clicked.connect(self.reject)
        self._fill_strikes()

    def current_template(self) -> Template:
        return self.templates[self.template.currentIndex()]

    def _fill_strikes(self) -> None:
        t = self.current_template()
        by_strike = strikes(self.catalog, self.underlying.currentText(), t.option_type)
        for combo in (self.risk_strike, self.hedge_strike):
            combo.blockSignals(True)
            combo.clear()
            for strike in sorted(by_strike):
                combo.addItem(str(strike), by_strike[strike])
            combo.blockSignals(False)
        if len(by_strike) >= 2:  # a sensible default: adjacent strikes, hedge further out of the money
            ordered = sorted(by_strike)
            risk_i = len(ordered) // 2
            hedge_i = min(risk_i + 1, len(ordered) - 1) if t.hedge_strike_is == "higher" else max(risk_i - 1, 0)
            self.risk_strike.setCurrentIndex(risk_i)
            self.hedge_strike.setCurrentIndex(hedge_i)
        self.update_preview()

    def select(self, template: str, underlying: str, risk_strike: int, hedge_strike: int, lots: int) -> None:
        """Fill the form (keyboard-free use, and tests)."""
        self.template.setCurrentText(template)
        self.underlying.setCurrentText(underlying)
        self.risk_strike.setCurrentText(str(risk_strike))
        self.hedge_strike.setCurrentText(str(hedge_strike))
        self.lots.setValue(lots)

    def build_spec(self) -> GroupSpec:
        t = self.current_template()
        risk_symbol, hedge_symbol = self.risk_strike.currentData(), self.hedge_strike.currentData()
        if not risk_symbol or not hedge_symbol:
            raise GroupSpecError(f"no {t.option_type} strikes for {self.underlying.currentText()}")
        risk_k, hedge_k = int(self.risk_strike.currentText()), int(self.hedge_strike.currentText())
        if (hedge_k > risk_k) != (t.hedge_strike_is == "higher") or hedge_k == risk_k:
            raise GroupSpecError(f"a {t.name} needs the hedge strike {t.hedge_strike_is} than the risk strike")
        lot = self.catalog[risk_symbol].lot_size
        qty = self.lots.value() * lot
        hedge_leg: dict[str, Any] = {"role": "HEDGE", "symbol": hedge_symbol, "side": "BUY", "qty": qty}
        if self.hedge_limit.text().strip():
            hedge_leg["limit_price"] = self.hedge_limit.text().strip()
        raw = {
            "group_id": self.group_id.text().strip(),
            "template": t.name,
            "legs": [hedge_leg, {"role": "RISK", "symbol": risk_symbol, "side": "SELL", "qty": qty}],
        }
        return parse_group(raw, self.catalog)

    def update_preview(self) -> None:
        try:
            spec = self.build_spec()
            text = preview_text(spec, self.catalog, self.margin)
        except (GroupSpecError, MarginModelError, ValueError) as exc:
            self.spec = None
            self.preview.setText(f"Cannot send: {exc}")
            self.send.setEnabled(False)
            return
        self.spec = spec
        self.preview.setText(text)
        self.send.setEnabled(True)

    def _send(self) -> None:
        if self.spec is None:
            return
        self.launch_requested.emit(self.spec)
        self.accept()
