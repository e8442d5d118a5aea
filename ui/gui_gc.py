"""Garbage collection on the GUI thread only.

Python collects reference cycles in whichever thread happens to allocate past a threshold. When
that is a worker thread (``asyncio.to_thread`` under qasync: the positions panel's P&L sums, the
time-travel replay, CSV export) and a cycle holds a Qt object's wrapper, Qt deletes the object off
its thread and the process segfaults (seen in CI: "Garbage-collecting" in a worker computing P&L).
So automatic collection is switched off and the GUI thread collects on a timer, generation by
generation, with the interpreter's own thresholds (pyqtgraph's GarbageCollector does the same).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 200


class GuiThreadCollector(QObject):
    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    def check(self) -> None:
        count0, count1, count2 = gc.get_count()
        if count0 > self.threshold[0]:
            gc.collect(0)
            if count1 > self.threshold[1]:
                gc.collect(1)
                if count2 > self.threshold[2]:
                    gc.collect(2)


_installed: list[GuiThreadCollector] = []


def collect_on_gui_thread(app: QObject) -> GuiThreadCollector:
    """Install once per QApplication (call it on the GUI thread, right after creating the app)."""
    if not _installed:
        _installed.append(GuiThreadCollector(app))
    return _installed[0]


def collector_installed() -> bool:
    return bool(_installed)
