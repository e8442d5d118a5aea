"""Charts: uncovered exposure, broker events/s, journal commit latency (p50 and p99), broker-clock
offset. Each curve is fed by ``setData`` from a numpy ring buffer (never clear-and-replot)."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg  # type: ignore[import-untyped]
from PySide6.QtWidgets import QGridLayout, QWidget

from ui.viewmodels.metrics import MetricsSampler

# plot title, unit, and the series drawn in it (with their pens)
TITLES = {
    "exposure": ("Uncovered short exposure", "units", (("exposure", "#7fd18b"),)),
    "event_rate": ("Broker events", "events/s", (("event_rate", "#7fd18b"),)),
    "commit": (
        "Journal commit latency (p50 green, p99 amber)",
        "µs",
        (("commit_p50", "#7fd18b"), ("commit_p99", "#f0b44c")),
    ),
    "clock_offset": ("Broker clock offset", "ms", (("clock_offset", "#7fd18b"),)),
}


class ChartsPanel(QWidget):
    def __init__(self, sampler: MetricsSampler, parent: Any = None) -> None:
        super().__init__(parent)
        self.sampler = sampler
        self.curves: dict[str, pg.PlotDataItem] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(2, 2, 2, 2)
        for i, (title, unit, series) in enumerate(TITLES.values()):
            plot = pg.PlotWidget(title=title)
            plot.setLabel("left", unit)
            plot.setLabel("bottom", "s")
            plot.showGrid(x=True, y=True, alpha=0.2)
            for name, colour in series:
                curve = plot.plot(pen=pg.mkPen(colour, width=1))
                curve.setClipToView(True)
                curve.setDownsampling(auto=True, method="peak")
                self.curves[name] = curve
            grid.addWidget(plot, i // 2, i % 2)

    def redraw(self) -> None:
        for name, curve in self.curves.items():
            buffer = self.sampler.series[name]
            if len(buffer):
                t, v = buffer.view()
                curve.setData(t, v)
