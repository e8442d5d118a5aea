"""A keyed, declarative QAbstractTableModel: columns are data, updates arrive in batches.

``apply(rows)`` replaces known rows and appends new ones with at most one ``beginInsertRows`` and
one ``dataChanged`` per call, whatever the number of rows (never one signal per broker event).
"""

from __future__ import annotations

import asyncio
import csv
import functools
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QFontDatabase, QFontMetrics
from PySide6.QtWidgets import QFileDialog, QTableView, QWidget

R = TypeVar("R")

ROW_ROLE = Qt.ItemDataRole.UserRole + 1  # the row object itself
SORT_ROLE = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Column(Generic[R]):
    title: str
    value: Callable[[R], Any]
    text: Callable[[Any], str] = str
    background: Callable[[R], str | None] | None = None
    align_right: bool = False
    foreground: Callable[[R], str | None] | None = None  # text colour (P&L: with a sign, never alone)
    mono: bool = False  # ids: a monospace font, so similar ids are told apart


@functools.cache
def _mono() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)  # after the QApplication exists


class KeyedTableModel(QAbstractTableModel, Generic[R]):
    def __init__(self, columns: list[Column[R]], key: Callable[[R], Hashable], parent: Any = None) -> None:
        super().__init__(parent)
        self.columns = columns
        self._key = key
        self._rows: list[R] = []
        self._index: dict[Hashable, int] = {}
        self.updates = 0  # batches applied; tests check that updates are coalesced

    # --- Qt interface -----------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section].title
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        col = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return col.text(col.value(row))
        if role == SORT_ROLE:
            return col.value(row)
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.BackgroundRole and col.background is not None:
            colour = col.background(row)
            return QBrush(QColor(colour)) if colour else None
        if role == Qt.ItemDataRole.ForegroundRole and col.background is not None and col.background(row):
            return QBrush(QColor("#101010"))
        if role == Qt.ItemDataRole.ForegroundRole and col.foreground is not None:
            colour = col.foreground(row)
            return QBrush(QColor(colour)) if colour else None
        if role == Qt.ItemDataRole.TextAlignmentRole and col.align_right:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            return col.text(col.value(row)) or None  # the whole text of a cell a column width cuts
        if role == Qt.ItemDataRole.FontRole and col.mono:
            return _mono()
        return None

    # --- batched updates --------------------------------------------------------------------

    def apply(self, rows: Iterable[R]) -> None:
        """Replace rows with known keys, append the others: one insert at most, and one
        dataChanged per run of adjacent replaced rows (a sorting proxy re-examines every row a
        dataChanged spans: one span from the first to the last of 100 rows scattered over 1,000
        would make it look at all 1,000)."""
        replaced: list[int] = []
        new: list[R] = []
        for row in rows:
            k = self._key(row)
            i = self._index.get(k)
            if i is None:
                self._index[k] = len(self._rows) + len(new)
                new.append(row)
            else:
                self._rows[i] = row
                replaced.append(i)
        replaced.sort()
        start = 0
        for n in range(1, len(replaced) + 1):
            if n == len(replaced) or replaced[n] > replaced[n - 1] + 1:
                self.dataChanged.emit(
                    self.index(replaced[start], 0), self.index(replaced[n - 1], len(self.columns) - 1)
                )
                start = n
        if new:
            self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(new) - 1)
            self._rows.extend(new)
            self.endInsertRows()
        if new or replaced:
            self.updates += 1

    def reset(self, rows: Iterable[R]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._index = {self._key(r): i for i, r in enumerate(self._rows)}
        self.endResetModel()
        self.updates += 1

    async def sync(self, rows: Iterable[R], chunk: int = 200) -> None:
        """Show exactly ``rows``: only the ones that differ are replaced or added, ``chunk`` at a
        time with the event loop served between chunks (a sorting proxy re-sorts what changed:
        3,000 rows at once would hold the desk for tens of milliseconds). A reset only when a
        row went."""
        rows = list(rows)
        if not {self._key(r) for r in rows}.issuperset(self._index):
            self.reset(rows)
            return
        fresh = [r for r in rows if (i := self._index.get(self._key(r))) is None or self._rows[i] != r]
        for n in range(0, len(fresh), chunk):
            if n:
                await asyncio.sleep(0)  # let the loop run between chunks (not a timing decision)
            self.apply(fresh[n : n + chunk])

    def touch_column(self, column: int) -> None:
        """Repaint one column of every row (time-dependent text such as an age)."""
        if self._rows:
            self.dataChanged.emit(self.index(0, column), self.index(len(self._rows) - 1, column))

    def rows(self) -> list[R]:
        return list(self._rows)

    def row(self, key: Hashable) -> R | None:
        i = self._index.get(key)
        return None if i is None else self._rows[i]

    def row_at(self, i: int) -> R:
        return self._rows[i]


def ask_export(parent: QWidget, title: str, name: str, write: Callable[[Path], object]) -> QFileDialog:
    """A non-native save dialog opened with ``open()`` (never ``exec()``: the engine keeps running,
    and Qt's own dialog lists directories off the GUI thread); ``write(path)`` on acceptance."""
    dialog = QFileDialog(parent, title, name, "CSV files (*.csv)")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog)
    dialog.fileSelected.connect(lambda p: write(Path(p)))
    dialog.open()
    return dialog


def export_in_background(path: Path, columns: Sequence[Column[R]], rows: Sequence[R]) -> asyncio.Future[int]:
    """The rows are taken now (on the GUI thread); the file is written on a worker thread, so a
    slow disk never stalls the desk or the engine on its loop."""
    return asyncio.ensure_future(asyncio.to_thread(export_csv, path, columns, list(rows)))


def export_csv(path: Path, columns: Sequence[Column[R]], rows: Sequence[R]) -> int:
    """Write ``rows`` as the table shows them (a header of column titles). Returns how many."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow([c.title for c in columns])
        for row in rows:
            out.writerow([c.text(c.value(row)) for c in columns])
    return len(rows)


FIT_ROWS = 200
REFIT_S = 5.0
WIDEN_MS = 500


def fit_columns(view: QTableView, minimum: int = 48) -> None:
    """Columns sized to their contents (headers included), never below ``minimum`` pixels, and
    re-sized when the model resets or rows arrive while it holds fewer than FIT_ROWS: nothing cut
    that fits on the screen. Only the first FIT_ROWS rows are measured, so inserts past them
    change nothing measured and cost no fit (a fit measures every column of those rows: 1,000
    live groups inserting orders all day would pay it on every burst). What a narrowed column
    still cuts is in the cell's tooltip."""
    header = view.horizontalHeader()
    header.setMinimumSectionSize(minimum)
    model = view.model()
    pending = [False]
    fitted = [-1, 0.0]  # rows measured by the last fit, and when (monotonic seconds)

    def fit() -> None:
        pending[0] = False
        fitted[:] = [model.rowCount(), time.monotonic()]
        measure_columns(view, minimum)

    def later(*_: Any) -> None:
        if not pending[0]:
            pending[0] = True
            QTimer.singleShot(0, fit)  # one fit per burst of inserts, after they land

    def inserted(_parent: Any, first: int, last: int) -> None:
        if model.rowCount() - (last - first + 1) < FIT_ROWS:  # it held fewer than FIT_ROWS before
            later()

    def reset() -> None:
        # A panel that resets at a steady pace (the chain at 4 Hz, positions on every fill) keeps
        # its rows: refit when their number changes, else at most every REFIT_S for new widths.
        if model.rowCount() != fitted[0] or time.monotonic() - fitted[1] >= REFIT_S:
            later()

    changed_rows: set[int] = set()
    widen_timer = QTimer(view)
    widen_timer.setSingleShot(True)
    widen_timer.setInterval(WIDEN_MS)

    def widen() -> None:
        # only rows on screen: what a trader reads (a row scrolled to later widens when it next changes)
        top = max(0, view.rowAt(0))
        bottom = view.rowAt(view.viewport().height() - 1)
        bottom = model.rowCount() - 1 if bottom < 0 else bottom
        rows = sorted(r for r in changed_rows if top <= r <= bottom)
        changed_rows.clear()
        if rows:
            widen_columns(view, rows, range(model.columnCount()), minimum)

    widen_timer.timeout.connect(widen)

    def grown(top: QModelIndex, bottom: QModelIndex, *_: Any) -> None:
        # a cell's new text may be wider than what its column was fitted to (a credit that
        # arrives with the first fill): widen, never narrow, measuring only the changed rows on
        # screen, at most every WIDEN_MS (a busy table signals hundreds of changes a second)
        changed_rows.update(range(top.row(), bottom.row() + 1))
        if not widen_timer.isActive():
            widen_timer.start()

    model.modelReset.connect(reset)
    model.rowsInserted.connect(inserted)
    model.dataChanged.connect(grown)
    later()


CELL_MARGIN_PX = 16  # the delegate's padding either side of a cell's text, and the focus frame
HEADER_MARGIN_PX = 24  # a header's padding and its sort arrow


def measure_columns(view: QTableView, minimum: int = 48) -> None:
    """Each column as wide as its widest text among the first FIT_ROWS rows, or its title. The
    text is measured with the cell's font (ids are monospace): one ``data()`` and one
    ``horizontalAdvance`` per cell, where Qt's ``resizeColumnsToContents`` asks the delegate
    for a size hint (eight roles per cell: 90 ms for 200 rows of the positions table, here)."""
    header = view.horizontalHeader()
    rows = range(min(view.model().rowCount(), FIT_ROWS))
    for column, width in _widths(view, rows, titles=True, columns=range(view.model().columnCount())).items():
        header.resizeSection(column, max(minimum, width))


def widen_columns(view: QTableView, rows: Iterable[int], columns: Iterable[int], minimum: int = 48) -> None:
    """Widen those of ``columns`` whose text in ``rows`` no longer fits (never narrows one)."""
    header = view.horizontalHeader()
    for column, width in _widths(view, rows, titles=False, columns=columns).items():
        if width > header.sectionSize(column):
            header.resizeSection(column, max(minimum, width))


def _widths(view: QTableView, rows: Iterable[int], titles: bool, columns: Iterable[int]) -> dict[int, int]:
    model = view.model()
    header = view.horizontalHeader()
    cell, title = view.fontMetrics(), header.fontMetrics()
    rows = list(rows)
    display, font_role = Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.FontRole
    out: dict[int, int] = {}
    for column in columns:
        if header.isSectionHidden(column):
            continue
        width = 0
        if titles:
            heading = model.headerData(column, Qt.Orientation.Horizontal, display)
            width = title.horizontalAdvance(str(heading or "")) + HEADER_MARGIN_PX
        font = model.index(rows[0], column).data(font_role) if rows else None
        metrics = QFontMetrics(font) if isinstance(font, QFont) else cell
        for row in rows:
            text = model.index(row, column).data(display)
            if text:
                width = max(width, metrics.horizontalAdvance(str(text)) + CELL_MARGIN_PX)
        out[column] = width
    return out
