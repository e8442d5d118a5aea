"""Charts. *Trading*: the desk's P&L, the selected group's P&L (rupees) and the short lots no hedge
covers, per underlying, over clock time. *System*: the engine's telemetry (broker events/s,
journal commit latency p50/p99, broker-clock offset, uncovered units). Axes show clock time
(HH:MM:SS) and units in their labels, never a scale factor. Each curve is fed by ``setData`` from a
numpy ring buffer (never clear-and-replot)."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg  # type: ignore[import-untyped]
from PySide6.QtWidgets import QGridLayout, QTabWidget, QVBoxLayout, QWidget

from ui.viewmodels.metrics import MetricsSampler

# plot title, unit, and the series drawn in it (with their pens)
# Titles short enough for a laptop's quarter panel; the whole description is the plot's tooltip.
TRADING = {
    "desk_pnl": ("Desk P&L", "₹", (("desk_pnl", "#7fd18b"),)),
    "group_pnl": ("Group P&L", "₹", (("group_pnl", "#9fd3ff"),)),
    "uncovered": ("Uncovered short", "lots", ()),
}
SYSTEM = {
    "exposure": ("Uncovered short", "units", (("exposure", "#7fd18b"),)),
    "event_rate": ("Broker events", "events/s", (("event_rate", "#7fd18b"),)),
    "commit": ("Commit latency", "µs", (("commit_p50", "#7fd18b"), ("commit_p99", "#f0b44c"))),
    "clock_offset": ("Broker clock offset", "ms", (("clock_offset", "#7fd18b"),)),
}
TIPS = {
    "desk_pnl": "The desk's total P&L (realised + unrealised at the journaled marks), in rupees",
    "group_pnl": "The selected group's P&L, in rupees",
    "uncovered": "Short lots that no hedge covers, per underlying (0 is the goal)",
    "exposure": "Short units no hedge covers, summed over groups",
    "event_rate": "Broker events applied per second",
    "commit": "Journal commit latency: p50 green, p99 amber",
    "clock_offset": "The broker's clock against ours, in milliseconds",
}
TITLES = {**TRADING, **SYSTEM}
_UNDERLYING_PENS = ("#ffbf47", "#e07ce0", "#9fd3ff", "#7fd18b", "#ff6b6b")


def _plot(title: str, unit: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(title=title, axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
    plot.setLabel("left", unit)
    plot.setLabel("bottom", "clock time")
    for side in ("left", "bottom"):
        plot.getAxis(side).enableAutoSIPrefix(False)
    plot.showGrid(x=True, y=True, alpha=0.2)
    return plot


class ChartsPanel(QWidget):
    def __init__(self, sampler: MetricsSampler, parent: Any = None) -> None:
        super().__init__(parent)
        self.sampler = sampler
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.tabs = QTabWidget()
        self.plots: dict[str, pg.PlotWidget] = {}
        for name, charts in (("Trading", TRADING), ("System", SYSTEM)):
            page = QWidget()
            grid = QGridLayout(page)
            grid.setContentsMargins(2, 2, 2, 2)
            for i, (key, (title, unit, series)) in enumerate(charts.items()):
                plot = self.plots[key] = _plot(title, unit)
                plot.setToolTip(TIPS[key])
                plot.setMinimumSize(160, 110)
                for series_name, colour in series:
                    self.curves[series_name] = self._curve(plot, colour)
                grid.addWidget(plot, i // 2, i % 2)
            self.tabs.addTab(page, name)
        self.plots["uncovered"].addLegend(offset=(10, 10))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)

    @staticmethod
    def _curve(plot: pg.PlotWidget, colour: str, name: str | None = None) -> pg.PlotDataItem:
        curve = plot.plot(pen=pg.mkPen(colour, width=1), name=name)
        curve.setClipToView(True)
        curve.setDownsampling(auto=True, method="peak")
        return curve

    def redraw(self) -> None:
        for name in list(self.sampler.series):
            if name.startswith("uncovered:") and name not in self.curves:
                pen = _UNDERLYING_PENS[sum(k.startswith("uncovered:") for k in self.curves) % len(_UNDERLYING_PENS)]
                self.curves[name] = self._curve(self.plots["uncovered"], pen, name.split(":", 1)[1])
        for name, curve in self.curves.items():
            buffer = self.sampler.series[name]
            if len(buffer):
                t, v = buffer.view()
                curve.setData(t, v)
