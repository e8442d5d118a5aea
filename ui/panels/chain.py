"""Option chain: for an underlying and expiry, strikes as rows, CE and PE as columns (bid, ask,
last, change since the open), the at-the-money strike highlighted. Quotes come through the
desk's engine (EngineView.quote, refreshed at 4 Hz; an attached desk shows journaled marks).

Click a bid to sell that strike, an ask to buy it: the launch dialog opens with the credit spread
that leg belongs to (a call sold is covered by the next call up, a put sold by the next put down;
a call bought covers the next call down, a put bought the next put up)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QModelIndex, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QTableView, QVBoxLayout, QWidget

from engine.core.instruments import Instrument
from engine.core.quotes import Quote, spot_of
from ui.format import LOSS, PROFIT, expiry_of, rupees
from ui.models.table import ROW_ROLE, Column, KeyedTableModel, fit_columns

ATM_COLOUR = "#ffd866"  # light amber, dark text (as the state colours)


@dataclass(frozen=True, slots=True)
class ChainRow:
    strike: int  # rupees
    ce: str | None  # symbols
    pe: str | None
    ce_quote: Quote | None
    pe_quote: Quote | None
    ce_open: int | None  # paise: the day's open (the quote's, else the catalog's start price)
    pe_open: int | None
    atm: bool

    @property
    def key(self) -> int:
        return self.strike


def _open(inst: Instrument | None, quote: Callable[[str], Quote | None]) -> int | None:
    if inst is None:
        return None
    q = quote(inst.symbol)
    return q.open_paise if q is not None and q.open_paise is not None else inst.start_price_paise


def _change(q: Quote | None, open_paise: int | None) -> int | None:
    if q is None or q.last_paise is None or open_paise is None:
        return None
    return q.last_paise - open_paise


def chain_columns() -> list[Column[ChainRow]]:
    def price(v: Any) -> str:
        return "" if v is None else rupees(int(v))

    def change(v: Any) -> str:
        return "" if v is None else rupees(int(v), signed=True)

    def colour(v: int | None) -> str | None:
        return None if not v else (PROFIT if v > 0 else LOSS)

    def atm(r: ChainRow) -> str | None:
        return ATM_COLOUR if r.atm else None

    def side(name: str) -> list[Column[ChainRow]]:
        def q(r: ChainRow) -> Quote | None:
            return r.ce_quote if name == "CE" else r.pe_quote

        def o(r: ChainRow) -> int | None:
            return r.ce_open if name == "CE" else r.pe_open

        return [
            Column(f"{name} bid", lambda r: getattr(q(r), "bid_paise", None), price, align_right=True),
            Column(f"{name} ask", lambda r: getattr(q(r), "ask_paise", None), price, align_right=True),
            Column(f"{name} last", lambda r: getattr(q(r), "last_paise", None), price, align_right=True),
            Column(
                f"{name} chg",
                lambda r: _change(q(r), o(r)),
                change,
                align_right=True,
                foreground=lambda r: colour(_change(q(r), o(r))),
            ),
        ]

    return [*side("CE"), Column("Strike", lambda r: r.strike, str, atm, align_right=True), *side("PE")]


# column -> (option type, side of the order a click there places)
CLICKS = {0: ("CE", "SELL"), 1: ("CE", "BUY"), 5: ("PE", "SELL"), 6: ("PE", "BUY")}


class ChainPanel(QWidget):
    # template name, underlying, risk strike, hedge strike (rupees)
    spread_picked = Signal(str, str, int, int)

    def __init__(
        self,
        catalog: Mapping[str, Instrument],
        quote: Callable[[str], Quote | None],
        watch: Callable[[list[str]], None],
        spot_paise: Mapping[str, int],
        parent: Any = None,
    ) -> None:
        super().__init__(parent)
        self.catalog, self.quote, self.watch, self.spot = catalog, quote, watch, spot_paise
        self.underlying = QComboBox()
        self.underlying.addItems(sorted({i.underlying for i in catalog.values() if i.option_type}))
        counts: dict[str, int] = {}
        for i in catalog.values():
            if i.option_type:
                counts[i.underlying] = counts.get(i.underlying, 0) + 1
        if counts:  # open on the underlying with the most strikes listed
            self.underlying.setCurrentText(max(sorted(counts), key=lambda u: counts[u]))
        self.expiry = QComboBox()
        self.model: KeyedTableModel[ChainRow] = KeyedTableModel(chain_columns(), lambda r: r.key)
        self.view = QTableView()
        self.view.setObjectName("chainTable")
        self.view.setModel(self.model)
        fit_columns(self.view)
        self.view.verticalHeader().setVisible(False)
        self.view.setToolTip("click a bid to sell that strike, an ask to buy it: the launch dialog opens")
        self.spot_label = QLabel()
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Underlying"))
        bar.addWidget(self.underlying)
        bar.addWidget(QLabel("Expiry"))
        bar.addWidget(self.expiry)
        bar.addWidget(self.spot_label, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(bar)
        layout.addWidget(self.view)
        self.underlying.currentIndexChanged.connect(self._fill_expiries)
        self.expiry.currentIndexChanged.connect(self.refresh)
        self.view.clicked.connect(self._clicked)
        self.timer = QTimer(self)
        self.timer.setInterval(250)  # quotes at 4 Hz
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.refreshes = 0
        self._fill_expiries()

    def _options(self) -> list[Instrument]:
        u, e = self.underlying.currentText(), self.expiry.currentText()
        return [i for i in self.catalog.values() if i.underlying == u and i.option_type and expiry_of(i.symbol) == e]

    def _fill_expiries(self) -> None:
        u = self.underlying.currentText()
        self.expiry.blockSignals(True)
        self.expiry.clear()
        self.expiry.addItems(sorted({expiry_of(i.symbol) for i in self.catalog.values() if i.underlying == u} - {""}))
        self.expiry.blockSignals(False)
        self.watch([u, *(i.symbol for i in self._options())])  # the underlying: its spot, where a broker quotes it
        self.refresh()

    def refresh(self) -> None:
        options = self._options()
        by_strike: dict[int, dict[str, Instrument]] = {}
        for inst in options:
            by_strike.setdefault(inst.strike_paise // 100, {})[inst.option_type] = inst
        spot = spot_of(self.underlying.currentText(), self.quote, self.spot)
        atm = min(by_strike, key=lambda k: abs(k * 100 - spot)) if spot is not None and by_strike else None
        self.spot_label.setText("" if spot is None else f"spot {rupees(spot)} · ATM {atm}")
        rows = []
        for strike in sorted(by_strike):
            ce, pe = by_strike[strike].get("CE"), by_strike[strike].get("PE")
            rows.append(
                ChainRow(
                    strike,
                    ce.symbol if ce else None,
                    pe.symbol if pe else None,
                    self.quote(ce.symbol) if ce else None,
                    self.quote(pe.symbol) if pe else None,
                    _open(ce, self.quote),
                    _open(pe, self.quote),
                    strike == atm,
                )
            )
        if [r.key for r in rows] == [r.key for r in self.model.rows()]:
            self.model.apply(rows)
        else:
            self.model.reset(rows)
        self.refreshes += 1

    def _clicked(self, index: QModelIndex) -> None:
        picked = CLICKS.get(index.column())
        row: ChainRow | None = index.data(ROW_ROLE)
        if picked is None or row is None:
            return
        option_type, side = picked
        strikes = sorted(r.strike for r in self.model.rows() if (r.ce if option_type == "CE" else r.pe))
        i = strikes.index(row.strike) if row.strike in strikes else -1
        if i < 0:
            return
        # the credit spread this leg belongs to: (risk sold, hedge bought)
        up = strikes[i + 1] if i + 1 < len(strikes) else None
        down = strikes[i - 1] if i > 0 else None
        if option_type == "CE":
            risk, hedge = (row.strike, up) if side == "SELL" else (down, row.strike)
            template = "bear call spread"
        else:
            risk, hedge = (row.strike, down) if side == "SELL" else (up, row.strike)
            template = "bull put spread"
        if risk is None or hedge is None:
            return  # the edge of the chain: no strike to pair it with
        self.spread_picked.emit(template, self.underlying.currentText(), risk, hedge)
