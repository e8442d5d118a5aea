"""Charts: uncovered exposure, broker events/s, events per journal batch, broker-clock offset.
One curve per plot, fed by ``setData`` from numpy ring buffers (never clear-and-replot)."""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg  # type: ignore[import-untyped]
from PySide6.QtWidgets import QGridLayout, QWidget

from ui.viewmodels.metrics import MetricsSampler

TITLES = {
    "exposure": ("Uncovered short exposure", "units"),
    "event_rate": ("Broker events", "events/s"),
    "batch_size": ("Events per journal batch", "events"),
    "clock_offset": ("Broker clock offset", "ms"),
}


class ChartsPanel(QWidget):
    def __init__(self, sampler: MetricsSampler, parent: Any = None) -> None:
        super().__init__(parent)
        self.sampler = sampler
        self.curves: dict[str, pg.PlotDataItem] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(2, 2, 2, 2)
        for i, (name, (title, unit)) in enumerate(TITLES.items()):
            plot = pg.PlotWidget(title=title)
            plot.setLabel("left", unit)
            plot.setLabel("bottom", "s")
            plot.showGrid(x=True, y=True, alpha=0.2)
            curve = plot.plot(pen=pg.mkPen("#7fd18b", width=1))
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
