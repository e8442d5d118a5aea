"""Launch group…: a spread from a template, previewed (lot multiple, freeze slicing, worst-case
margin) before it can be sent. Opened with ``open()``; the window receives ``launch_requested``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyqtgraph as pg  # type: ignore[import-untyped]
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.core.groups import GroupSpec, GroupSpecError, parse_group
from engine.core.instruments import Instrument, PriceError
from engine.core.margin import MarginModel, MarginModelError, group_margin_paise
from engine.core.quotes import Quote, spot_of
from engine.core.slicing import slice_qty
from engine.core.spread import SpreadFigures, payoff_paise, spread_figures
from engine.core.stoploss import stop_limit_price_paise
from ui.dialogs.buttons import action_row
from ui.format import rupees
from ui.precautions import Precautions
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


def preview_text(
    spec: GroupSpec, catalog: Mapping[str, Instrument], margin: MarginModel, free_paise: int | None = None
) -> str:
    lines = []
    for leg in spec.legs:
        slices = slice_qty(leg.qty, leg.lot_size, leg.freeze_qty)
        lines.append(
            f"{leg.role.value} {leg.side.value} {leg.qty} {leg.symbol}: {leg.qty // leg.lot_size} lots of "
            f"{leg.lot_size}; {len(slices)} order(s) at freeze {leg.freeze_qty} ({' + '.join(map(str, slices))})"
        )
    worst = group_margin_paise(spec, catalog, margin)
    if free_paise is None:
        lines.append(f"Worst-case margin {rupees(worst)} of {rupees(margin.available_paise)} available")
    else:
        lines.append(f"Worst-case margin {rupees(worst)} of {rupees(free_paise)} free now (available less open groups)")
    return "\n".join(lines)


def figures_text(spec: GroupSpec, figures: SpreadFigures) -> str:
    """What the spread costs at the current prices, as the dialog shows it."""
    lines = []
    for leg in figures.legs:
        lines.append(
            f"{leg.side} {leg.symbol}: bid {rupees(leg.bid_paise)} · ask {rupees(leg.ask_paise)}"
            f" → expected {rupees(leg.expected_paise)}"
        )
    if figures.net_credit_paise is None:
        lines.append("No price yet for every leg: credit, max loss and breakeven follow once quotes arrive")
    else:
        word = "credit" if figures.net_credit_paise >= 0 else "debit"
        lines.append(f"Expected net {word} {rupees(abs(figures.net_credit_paise))} at these prices")
        profit = "unlimited" if figures.max_profit_paise is None else rupees(figures.max_profit_paise)
        loss = "unlimited" if figures.max_loss_paise is None else rupees(figures.max_loss_paise)
        breakevens = ", ".join(rupees(b) for b in figures.breakevens_paise) or "none"
        lines.append(f"Max profit {profit} · max loss {loss} · breakeven {breakevens} (at expiry)")
    if spec.stop_trigger_paise is not None:
        buy = spec.risk.side.opposite
        limit = stop_limit_price_paise(spec.stop_trigger_paise, buy, spec.risk.tick_paise)
        lines.append(
            f"Stop-loss: SL-LIMIT {buy.value} {spec.risk.qty} {spec.risk.symbol}, trigger"
            f" {rupees(spec.stop_trigger_paise)}, limit {rupees(limit)}"
        )
    return "\n".join(lines)


class FieldError(ValueError):
    """A value one field of the dialog holds is wrong (the field is marked)."""

    def __init__(self, widget: QWidget, message: str) -> None:
        super().__init__(message)
        self.widget = widget


class LaunchDialog(QDialog):
    launch_requested = Signal(object)  # GroupSpec

    def __init__(
        self,
        catalog: Mapping[str, Instrument],
        margin: MarginModel,
        parent: Any = None,
        *,
        quote: Callable[[str], Quote | None] | None = None,
        watch: Callable[[list[str]], None] | None = None,
        margin_in_use: Callable[[], int] | None = None,
        precautions: Precautions | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Launch group")
        self.catalog, self.margin = catalog, margin
        self.quote = quote or (lambda _symbol: None)
        self.watch = watch or (lambda _symbols: None)
        self.margin_in_use = margin_in_use
        self.precautions = precautions or Precautions()
        self.figures: SpreadFigures | None = None
        self.bad_field: QWidget | None = None
        self.templates = load_templates()
        self.spec: GroupSpec | None = None
        self.template = QComboBox()
        self.template.addItems([t.name for t in self.templates])
        self.underlying = QComboBox()
        self.underlying.addItems(sorted({i.underlying for i in catalog.values() if i.option_type}))
        self.risk_strike = QComboBox()
        self.hedge_strike = QComboBox()
        self.lots = QSpinBox()
        self.lots.setRange(1, 100_000)  # the freeze quantity slices; the precautions ask to type big ones
        self.lots.setValue(2)
        self.hedge_limit = QLineEdit()
        self.hedge_limit.setPlaceholderText("optional, rupees (MARKET when empty)")
        self.group_id = QLineEdit(time.strftime("G-%H%M%S"))
        self.stop_trigger = QLineEdit()
        self.stop_trigger.setPlaceholderText("optional, rupees: an SL-LIMIT buy-back of the risk leg")
        self.costs = QLabel()
        self.costs.setWordWrap(True)
        self.costs.setObjectName("launchCosts")
        self.payoff = pg.PlotWidget(title="Payoff at expiry (₹)")
        self.payoff.setObjectName("payoffChart")
        self.payoff.setMinimumHeight(180)
        self.payoff.setLabel("bottom", "underlying at expiry", units="₹")
        self.payoff.showGrid(x=True, y=True, alpha=0.2)
        for side in ("bottom", "left"):
            self.payoff.getAxis(side).enableAutoSIPrefix(False)  # rupees as they are: no k₹, no ×0.001
        self.payoff_curve = self.payoff.plot(pen=pg.mkPen("#9fd3ff", width=2))
        self.payoff.addItem(pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen("#8a8a8a")))
        self.spot_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#ffbf47", style=Qt.PenStyle.DashLine), label="spot")
        self.payoff.addItem(self.spot_line)
        self.preview = QLabel()
        self.preview.setWordWrap(True)
        self.preview.setObjectName("launchPreview")
        self.precaution = QLabel(f"Precautions: {self.precautions.describe()}")
        self.precaution.setObjectName("launchPrecautions")
        self.precaution.setWordWrap(True)
        self.typed_qty = QLineEdit()
        self.typed_qty.setObjectName("launchTypedQty")
        self.typed_qty.setPlaceholderText("type the quantity (units) to confirm")
        self.typed_label = QLabel("Confirm quantity")
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
            ("Stop-loss trigger", self.stop_trigger),
        ):
            form.addRow(label, widget)
        form.addRow(self.typed_label, self.typed_qty)
        self.form = form
        buttons = action_row(cancel, self.send)
        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)  # it grows with its preview
        layout.addLayout(form)
        layout.addWidget(self.precaution)
        layout.addWidget(self.preview)
        layout.addWidget(self.costs)
        layout.addWidget(self.payoff)
        layout.addLayout(buttons)
        self.template.currentIndexChanged.connect(self._fill_strikes)
        self.underlying.currentIndexChanged.connect(self._fill_strikes)
        for w in (self.risk_strike, self.hedge_strike):
            w.currentIndexChanged.connect(self.update_preview)
        self.lots.valueChanged.connect(self.update_preview)
        self.hedge_limit.textChanged.connect(self.update_preview)
        self.group_id.textChanged.connect(self.update_preview)
        self.stop_trigger.textChanged.connect(self.update_preview)
        self.typed_qty.textChanged.connect(self.update_preview)
        self.prices = QTimer(self)
        self.prices.setInterval(250)  # prices at 4 Hz while the dialog is open
        self.prices.timeout.connect(self.update_costs)
        self.prices.start()
        self.finished.connect(self.prices.stop)
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
        for field, symbol in ((self.hedge_limit, hedge_symbol), (self.stop_trigger, risk_symbol)):
            if field.text().strip():
                try:  # checked here, field by field, so the message lands on the field at fault
                    self.catalog[symbol].price_to_paise(field.text().strip())
                except PriceError as exc:
                    raise FieldError(field, str(exc)) from exc
        if self.hedge_limit.text().strip():
            hedge_leg["limit_price"] = self.hedge_limit.text().strip()
        raw: dict[str, Any] = {
            "group_id": self.group_id.text().strip(),
            "template": t.name,
            "legs": [hedge_leg, {"role": "RISK", "symbol": risk_symbol, "side": "SELL", "qty": qty}],
        }
        if self.stop_trigger.text().strip():
            raw["stop_loss"] = {"trigger_price": self.stop_trigger.text().strip()}
        return parse_group(raw, self.catalog)

    def update_preview(self) -> None:
        try:
            spec = self.build_spec()
            free = None if self.margin_in_use is None else self.margin.available_paise - self.margin_in_use()
            text = preview_text(spec, self.catalog, self.margin, free)
        except (GroupSpecError, MarginModelError, ValueError) as exc:
            self.spec = None
            self.preview.setText(f"Cannot send: {exc}")
            self.send.setEnabled(False)
            self._mark_field(str(exc), exc.widget if isinstance(exc, FieldError) else None)
            return
        self._mark_field("")
        self.spec = spec
        over = self.over_precautions(spec)
        self.typed_label.setVisible(bool(over))
        self.typed_qty.setVisible(bool(over))
        typed_ok = not over or self.typed_qty.text().strip() == str(spec.risk.qty)
        if over:
            need = f"Type {spec.risk.qty} to confirm: {'; '.join(over)}"
            text += "\n" + (need if not typed_ok else f"Confirmed {spec.risk.qty} units ({'; '.join(over)})")
        self.preview.setText(text)
        self.send.setEnabled(typed_ok)
        self.watch([self.catalog[spec.risk.symbol].underlying, *(leg.symbol for leg in spec.legs)])
        self.update_costs()

    def field_for(self, problem: str) -> QWidget | None:
        """The field a validation message is about (so it is marked where the mistake is)."""
        text = problem.lower()
        for words, widget in (
            (("trigger", "stop"), self.stop_trigger),
            (("limit",), self.hedge_limit),
            (("group_id", "group id"), self.group_id),
            (("strike",), self.hedge_strike),
            (("qty", "lot", "freeze"), self.lots),
        ):
            if any(w in text for w in words):
                return widget
        return None

    def _mark_field(self, problem: str, at: QWidget | None = None) -> None:
        """A red frame and the reason as its tooltip on the field at fault; the others cleared."""
        bad = at or (self.field_for(problem) if problem else None)
        for widget in (self.stop_trigger, self.hedge_limit, self.group_id, self.hedge_strike, self.lots):
            widget.setStyleSheet("border: 1px solid #ff6b6b;" if widget is bad else "")
            widget.setToolTip(problem if widget is bad else "")
        self.bad_field = bad

    def over_precautions(self, spec: GroupSpec) -> list[str]:
        underlying = self.catalog[spec.risk.symbol].underlying
        spot = spot_of(underlying, self.quote, self.margin.underlying_ref_paise)
        notional = None if spot is None else spec.risk.qty * spot
        margin = group_margin_paise(spec, self.catalog, self.margin)
        return self.precautions.exceeded(spec.risk.qty // spec.risk.lot_size, notional, margin)

    def update_costs(self) -> None:
        """Bid/ask, expected credit, max profit and loss, breakevens, margin against free margin,
        the stop order, and the payoff chart, at the current prices."""
        spec = self.spec
        if spec is None:
            self.costs.setText("")
            self.payoff_curve.setData([], [])
            return
        quotes = {leg.symbol: q for leg in spec.legs if (q := self.quote(leg.symbol)) is not None}
        figures = self.figures = spread_figures(spec, self.catalog, quotes)
        self.costs.setText(figures_text(spec, figures))
        spot = spot_of(self.catalog[spec.risk.symbol].underlying, self.quote, self.margin.underlying_ref_paise)
        if spot is not None:
            self.spot_line.setValue(spot / 100)
        if figures.net_credit_paise is None:
            self.payoff_curve.setData([], [])
            return
        strikes = sorted(leg.strike_paise for leg in figures.legs)
        low, high = strikes[0], strikes[-1]
        pad = max(high - low, low // 50)
        xs = [low - pad + (high - low + 2 * pad) * i // 120 for i in range(121)]
        ys = [float(payoff_paise(figures.legs, x) or 0) / 100 for x in xs]
        self.payoff_curve.setData([x / 100 for x in xs], ys)

    def _send(self) -> None:
        if self.spec is None:
            return
        self.launch_requested.emit(self.spec)
        self.accept()
