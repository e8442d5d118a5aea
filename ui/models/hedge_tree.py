"""The hedge recursion tree as a QAbstractItemModel: group → root nodes → child nodes.

Fed by batches of NodeView rows from the pure view model (napari's pattern: the pure model
changes, this adapter translates the change into begin/endInsertRows and dataChanged).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor

from ui.viewmodels.rows import NodeView

Index = QModelIndex | QPersistentModelIndex

HEADERS = ("Hedge", "Symbol", "Side", "Qty", "Filled", "Status", "Reason")
STATUS_COLOURS = {"working": "#7fd18b", "re-hedged below": "#9fd3ff", "short: escalated": "#ffbf47"}
STATUS_COLOURS["held by HALT: escalated"] = "#ff6b6b"


def node_title(n: NodeView) -> str:
    """What a node is, in a trader's words: the hedge leg, its re-hedges, interim and manual hedges."""
    if n.kind == "LEG":
        return "Hedge leg" if n.depth == 0 else f"Re-hedge {n.depth}"
    if n.kind == "INTERIM":
        return "Interim hedge" if n.depth == 0 else f"Interim re-hedge {n.depth}"
    return "Manual hedge" if n.depth == 0 else f"Manual re-hedge {n.depth}"


_STATUS_WORDS = {
    "WORKING": "working",
    "FILLED": "filled",
    "CHILDED": "re-hedged below",
    "EXHAUSTED": "short: escalated",
    "HALTED": "held by HALT: escalated",
}
STATUS_WORDS = (*_STATUS_WORDS.values(), "cancelled by trader")  # every status a node is shown with


def status_words(n: NodeView) -> str:
    """The node's status as a trader reads it (a trader's cancel is not an amber shortfall)."""
    if n.status == "EXHAUSTED" and "cancelled by" in n.reason:
        return "cancelled by trader"
    return _STATUS_WORDS.get(n.status, n.status.lower())


@dataclass
class _Item:
    uid: int
    parent_uid: int  # 0: the invisible root
    key: str  # group id for a group item, node id for a node item
    node: NodeView | None = None
    children: list[int] = field(default_factory=list)
    row: int = 0  # its row under its parent (rows are only ever appended)


class HedgeTreeModel(QAbstractItemModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._items: dict[int, _Item] = {0: _Item(0, 0, "")}
        self._by_key: dict[str, int] = {}
        self._next_uid = 1

    # --- Qt interface -----------------------------------------------------------------------

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008
        parent_item = self._items[int(parent.internalId()) if parent.isValid() else 0]
        if not 0 <= row < len(parent_item.children) or not 0 <= column < len(HEADERS):
            return QModelIndex()
        return self.createIndex(row, column, parent_item.children[row])

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008
        if not index.isValid():
            return QModelIndex()
        item = self._items[int(index.internalId())]
        if item.parent_uid == 0:
            return QModelIndex()
        return self._index_of(item.parent_uid)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self._items[int(parent.internalId()) if parent.isValid() else 0].children)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        item = self._items[int(index.internalId())]
        n = item.node
        if role == Qt.ItemDataRole.DisplayRole:
            if n is None:
                return item.key if index.column() == 0 else ""
            values = (node_title(n), n.symbol, n.side, n.target_qty, n.filled_qty, status_words(n), n.reason)
            return str(values[index.column()])
        if role == Qt.ItemDataRole.ToolTipRole:
            if n is None:
                return f"group {item.key}"
            return f"{n.node_id} ({n.kind}, depth {n.depth}): {status_words(n)}. {n.reason}".strip()
        if role == Qt.ItemDataRole.BackgroundRole and n is not None and index.column() == 5:
            colour = STATUS_COLOURS.get(status_words(n))
            return QBrush(QColor(colour)) if colour else None
        if role == Qt.ItemDataRole.ForegroundRole and n is not None and index.column() == 5:
            return QBrush(QColor("#101010")) if status_words(n) in STATUS_COLOURS else None
        return None

    def node_at(self, index: Index) -> NodeView | None:
        """The hedge node shown at ``index`` (None for a group row)."""
        return self._items[int(index.internalId())].node if index.isValid() else None

    # --- batched updates --------------------------------------------------------------------

    def apply(self, nodes: Iterable[NodeView]) -> None:
        """Insert new nodes (parents before children, one insert per parent per level) and
        repaint changed ones."""
        fresh: list[NodeView] = []
        for n in nodes:
            uid = self._by_key.get("N:" + n.node_id)
            if uid is None:
                fresh.append(n)
                continue
            self._items[uid].node = n
            self.dataChanged.emit(self._index_of(uid, 0), self._index_of(uid, len(HEADERS) - 1))
        groups = sorted({n.group_id for n in fresh if "G:" + n.group_id not in self._by_key})
        if groups:
            self._insert(0, [("G:" + g, g, None) for g in groups])
        by_depth: dict[int, list[NodeView]] = defaultdict(list)
        for n in fresh:
            by_depth[n.depth].append(n)
        for depth in sorted(by_depth):
            by_parent: dict[int, list[tuple[str, str, NodeView | None]]] = defaultdict(list)
            for n in by_depth[depth]:
                parent_uid = self._by_key.get("N:" + n.parent_id) if n.parent_id else None
                if parent_uid is None:
                    parent_uid = self._by_key["G:" + n.group_id]
                by_parent[parent_uid].append(("N:" + n.node_id, n.node_id, n))
            for parent_uid, items in by_parent.items():
                self._insert(parent_uid, items)

    def node_count(self) -> int:
        return sum(1 for i in self._items.values() if i.node is not None)

    def children_of(self, key: str) -> list[NodeView]:
        """Direct child nodes of a group id or a node id (tests and the detail panel use it)."""
        uid = self._by_key.get("N:" + key) or self._by_key.get("G:" + key)
        if uid is None:
            return []
        return [n for c in self._items[uid].children if (n := self._items[c].node) is not None]

    def index_of_key(self, key: str) -> QModelIndex:
        uid = self._by_key.get("N:" + key) or self._by_key.get("G:" + key)
        return QModelIndex() if uid is None else self._index_of(uid)

    # --- internals ----------------------------------------------------------------------------

    def _insert(self, parent_uid: int, items: list[tuple[str, str, NodeView | None]]) -> None:
        parent_item = self._items[parent_uid]
        start = len(parent_item.children)
        parent_index = QModelIndex() if parent_uid == 0 else self._index_of(parent_uid)
        self.beginInsertRows(parent_index, start, start + len(items) - 1)
        for map_key, key, node in items:
            uid = self._next_uid
            self._next_uid += 1
            self._items[uid] = _Item(uid, parent_uid, key, node, row=len(parent_item.children))
            self._by_key[map_key] = uid
            parent_item.children.append(uid)
        self.endInsertRows()

    def _index_of(self, uid: int, column: int = 0) -> QModelIndex:
        return self.createIndex(self._items[uid].row, column, uid)
