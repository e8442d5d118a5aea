"""The desk's pure view model: what every panel shows, refreshed from the engine book in batches.

Engine messages only mark what is dirty (and produce notices a person must see); the rows are
recomputed from the book at the next refresh, so a burst of a thousand events costs one diff.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.runtime.state import Book
from ui.viewmodels.rows import EscalationRow, GroupRow, IntentView, NodeView, changed, group_rows

ESCALATION_TYPES = frozenset({"escalation", "escalation_acknowledged", "intent_closed"})


@dataclass(frozen=True, slots=True)
class Notice:
    level: str  # "error", "warning" or "info"
    text: str


@dataclass
class Changes:
    groups: list[GroupRow] = field(default_factory=list)
    intents: list[IntentView] = field(default_factory=list)
    nodes: list[NodeView] = field(default_factory=list)
    escalations: list[EscalationRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.groups or self.intents or self.nodes or self.escalations)

    @property
    def touched_groups(self) -> set[str]:
        rows: Iterable[GroupRow | IntentView | NodeView | EscalationRow] = [
            *self.groups,
            *self.intents,
            *self.nodes,
            *self.escalations,
        ]
        return {r.group_id for r in rows}


def notice_for(message: dict[str, Any]) -> Notice | None:
    """The notice a person must see for an engine message, if any."""
    kind = message.get("type")
    if kind == "engine_failure":
        return Notice("error", f"engine stopped: {message.get('error')}. Restart the desk to recover.")
    if kind == "order_outcome" and message.get("status") == "REJECTED":
        return Notice("error", f"order {message.get('client_order_id')} rejected: {message.get('reason')}")
    if kind == "order_outcome":
        return Notice("warning", f"order {message.get('client_order_id')}: {message.get('reason')}")
    if kind == "rejected_event":
        return Notice("warning", f"broker event refused for {message.get('client_order_id')}: {message.get('reason')}")
    if kind == "feed_error":
        return Notice("warning", f"broker feed error (re-subscribing): {message.get('error')}")
    if kind == "escalation":
        return Notice(
            "warning",
            f"escalation #{message.get('escalation_id')} {message.get('kind')} in {message.get('group_id')}: "
            f"{message.get('reason') or message.get('client_order_id')}",
        )
    if kind == "trading_state":
        return Notice("info", f"trading is now {message.get('state')} (by {message.get('by')})")
    if kind == "recovery":
        return Notice(
            "info",
            f"recovery: {message.get('checked')} checked, {message.get('adopted')} adopted, "
            f"{message.get('orphaned')} orphaned",
        )
    return None


class DeskViewModel:
    def __init__(self) -> None:
        self.groups: dict[str, GroupRow] = {}
        self.intents: dict[str, IntentView] = {}
        self.nodes: dict[str, NodeView] = {}
        self.escalations: dict[int, EscalationRow] = {}
        self.escalations_dirty = True
        self.book_dirty = True

    def seed(
        self,
        groups: Iterable[GroupRow],
        intents: Iterable[IntentView],
        nodes: Iterable[NodeView],
        escalations: Iterable[EscalationRow],
    ) -> Changes:
        """Start from the journal: closed groups and finished intents are not in the engine book."""
        return Changes(
            changed(self.groups, ((g.key, g) for g in groups)),
            changed(self.intents, ((i.key, i) for i in intents)),
            changed(self.nodes, ((n.key, n) for n in nodes)),
            changed(self.escalations, ((e.key, e) for e in escalations)),
        )

    def absorb(self, messages: Iterable[dict[str, Any]]) -> list[Notice]:
        notices = []
        for message in messages:
            self.book_dirty = True
            if message.get("type") in ESCALATION_TYPES:
                self.escalations_dirty = True
            notice = notice_for(message)
            if notice is not None:
                notices.append(notice)
        return notices

    def refresh(self, book: Book) -> Changes:
        """Recompute rows from the book; only rows that differ are returned."""
        self.book_dirty = False
        escalated = self.escalated_groups()
        groups = group_rows(book.groups.values(), book.intents.values(), escalated)
        out = Changes(groups=changed(self.groups, ((g.key, g) for g in groups)))
        out.intents = changed(self.intents, ((k, IntentView.of(r)) for k, r in book.intents.items()))
        out.nodes = changed(self.nodes, ((k, NodeView.of(n)) for k, n in book.nodes.items()))
        return out

    def apply_escalations(self, rows: Iterable[EscalationRow]) -> tuple[list[EscalationRow], list[EscalationRow]]:
        """(changed rows, rows newly seen OPEN: the ones that deserve a sound)."""
        new_open = [r for r in rows if r.is_open and r.key not in self.escalations]
        rows_changed = changed(self.escalations, ((r.key, r) for r in rows))
        return rows_changed, new_open

    def escalated_groups(self) -> set[str]:
        return {e.group_id for e in self.escalations.values() if e.is_open}

    def open_escalation_count(self) -> int:
        return sum(1 for e in self.escalations.values() if e.is_open)

    def intents_of(self, group_id: str) -> list[IntentView]:
        return sorted((i for i in self.intents.values() if i.group_id == group_id), key=lambda i: i.client_order_id)

    def uncovered_short_qty(self) -> int:
        """Units sold on risk legs beyond the hedge bought for them, summed over groups."""
        return sum(max(0, -g.net_exposure_qty) for g in self.groups.values())
