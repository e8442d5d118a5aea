"""Positions and P&L: per group and per leg, net lots and units, average price, the journaled mark,
unrealised and realised P&L and the credit received; desk totals above. The figures come from the
journal's fills and marks (engine.store.report.pnl_inputs, average cost in paise), so every desk on
the journal, hosting or attached, shows the same ones. Rows sort and filter; right-click exports
what is shown to CSV."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QLabel, QLineEdit, QMenu, QTableView, QVBoxLayout, QWidget

from engine.core.instruments import Instrument
from engine.store.report import pnl_inputs
from ui.format import lots, pnl_colour, rupees
from ui.models.table import (
    ROW_ROLE,
    SORT_ROLE,
    Column,
    KeyedTableModel,
    ask_export,
    export_csv,
    export_in_background,
    fit_columns,
)
from ui.reader import JournalReader


@dataclass(frozen=True, slots=True)
class PositionRow:
    group_id: str
    leg: str  # HEDGE, RISK, or "" for the group's own line
    symbol: str
    qty: int | None
    lot_size: int
    avg_paise: int | None
    mark_paise: int | None
    unrealised_paise: int | None
    realised_paise: int
    credit_paise: int | None  # on the group's line

    @property
    def key(self) -> tuple[str, str]:
        return (self.group_id, self.symbol)

    @property
    def total_paise(self) -> int | None:
        return None if self.unrealised_paise is None else self.realised_paise + self.unrealised_paise

    def matches(self, text: str) -> bool:
        t = text.lower()
        return t in self.group_id.lower() or t in self.symbol.lower() or t in self.leg.lower()


def position_columns() -> list[Column[PositionRow]]:
    def money(v: Any) -> str:
        return "" if v is None else rupees(int(v))

    def pnl(v: Any) -> str:
        return rupees(None if v is None else int(v), signed=True)

    def lots_value(r: PositionRow) -> tuple[int | None, int]:
        return (r.qty, r.lot_size)

    def lots_text(v: Any) -> str:
        return "" if v[0] is None else lots(v[0], v[1])

    # P&L first after what the leg is: the figures a trader looks for, before the detail
    return [
        Column("Group", lambda r: r.group_id),
        Column("Leg", lambda r: r.leg or "group"),
        Column("Symbol", lambda r: r.symbol),
        Column("Lots", lots_value, lots_text, align_right=True),
        Column("P&L", lambda r: r.total_paise, pnl, align_right=True, foreground=lambda r: pnl_colour(r.total_paise)),
        Column("Avg price", lambda r: r.avg_paise, money, align_right=True),
        Column("Mark", lambda r: r.mark_paise, money, align_right=True),
        Column(
            "Unrealised",
            lambda r: r.unrealised_paise,
            pnl,
            align_right=True,
            foreground=lambda r: pnl_colour(r.unrealised_paise),
        ),
        Column(
            "Realised",
            lambda r: r.realised_paise,
            pnl,
            align_right=True,
            foreground=lambda r: pnl_colour(r.realised_paise),
        ),
        Column("Credit", lambda r: r.credit_paise, money, align_right=True),
    ]


def position_rows(pnl: Mapping[str, Any], catalog: Mapping[str, Instrument]) -> list[PositionRow]:
    rows: list[PositionRow] = []
    for gid, g in pnl["groups"].items():
        rows.append(
            PositionRow(
                gid, "", "", None, 0, None, None, g["unrealised_paise"], g["realised_paise"], g["credit_received_paise"]
            )
        )
        for symbol, leg in g["legs"].items():
            inst = catalog.get(symbol)
            rows.append(
                PositionRow(
                    gid,
                    str(leg["role"]),
                    symbol,
                    int(leg["qty"]),
                    inst.lot_size if inst else 0,
                    leg["avg_price_paise"],
                    leg["mark_paise"],
                    leg["unrealised_paise"],
                    int(leg["realised_paise"]),
                    None,
                )
            )
    return rows


class PositionFilter(QSortFilterProxyModel):
    text = ""

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        row: PositionRow = self.sourceModel().index(source_row, 0, source_parent).data(ROW_ROLE)
        return not self.text or row.matches(self.text)


class PositionsPanel(QWidget):
    loaded = Signal()  # a new read of the journal's P&L is shown

    def __init__(self, reader: JournalReader, catalog: Mapping[str, Instrument], parent: Any = None) -> None:
        super().__init__(parent)
        self.reader, self.catalog = reader, catalog
        self.model: KeyedTableModel[PositionRow] = KeyedTableModel(position_columns(), lambda r: r.key)
        self.proxy = PositionFilter(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.totals = QLabel("Desk P&L —")
        self.totals.setObjectName("deskTotals")
        self.totals.setWordWrap(True)  # the panel narrows on a laptop screen; the figures wrap, never cut
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("filter group, symbol, leg…")
        self.view = QTableView()
        self.view.setObjectName("positionsTable")
        self.view.setModel(self.proxy)
        fit_columns(self.view)
        self.view.setSortingEnabled(True)
        self.view.verticalHeader().setVisible(False)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._menu)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.totals)
        layout.addWidget(self.filter)
        layout.addWidget(self.view)
        self.filter.textChanged.connect(self._refilter)
        self.desk: dict[str, Any] = {}
        self.groups: dict[str, Any] = {}
        self.loads = 0
        self._task: asyncio.Task[None] | None = None
        self._dialog: QFileDialog | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(1000)  # marks are journaled at most once a second per symbol
        self.timer.timeout.connect(self.refresh)
        self.timer.start()

    def _refilter(self) -> None:
        self.proxy.beginFilterChange()
        self.proxy.text = self.filter.text().strip()
        self.proxy.endFilterChange()

    def refresh(self) -> asyncio.Task[None] | None:
        """Read the P&L from the journal (one read in flight at a time)."""
        if self._task is not None:
            return self._task
        self._task = asyncio.ensure_future(self._load())
        return self._task

    async def _load(self) -> None:
        try:
            inputs = await pnl_inputs(self.reader)
            # the sums over every fill run on a worker thread, off the loop the desk paints on
            pnl, rows = await asyncio.to_thread(lambda: ((p := inputs.compute()), position_rows(p, self.catalog)))
            await self.model.sync(rows)
            self.groups = dict(pnl["groups"])
            d = self.desk = dict(pnl["desk"])
            self.totals.setText(
                f"<b>Desk P&amp;L {rupees(d['total_paise'], signed=True)}</b> · today"
                f" {rupees(d.get('day_paise'), signed=True)} · realised "
                f"{rupees(d['realised_paise'], signed=True)} · unrealised {rupees(d['unrealised_paise'], signed=True)}"
                f" · credit received {rupees(d['credit_received_paise'])}"
            )
            self.loads += 1
            self.loaded.emit()
        finally:
            self._task = None

    def group_pnl(self, group_id: str) -> Mapping[str, Any] | None:
        return self.groups.get(group_id)

    def visible_rows(self) -> list[PositionRow]:
        return [self.proxy.index(r, 0).data(ROW_ROLE) for r in range(self.proxy.rowCount())]

    def export_csv(self, path: Path) -> int:
        """Write the rows the filters show, in view order. Returns how many were written."""
        return export_csv(path, self.model.columns, self.visible_rows())

    def _menu(self, pos: QPoint) -> None:
        menu = QMenu(self.view)
        menu.setObjectName("positionsMenu")
        menu.addAction("Export CSV…").triggered.connect(self._ask_export)
        menu.popup(self.view.viewport().mapToGlobal(pos))

    def _ask_export(self) -> None:
        self._dialog = ask_export(self, "Export positions", "positions.csv", self.export_later)

    def export_later(self, path: Path) -> asyncio.Future[int]:
        """Export what the filters show, written off the GUI thread (ui.models.table)."""
        self.export_task = export_in_background(path, self.model.columns, self.visible_rows())
        return self.export_task
