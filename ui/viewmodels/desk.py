"""The desk's pure view model: what every panel shows, refreshed from the engine book in batches.

Engine events only mark what is dirty (and produce notices a person must see); the rows are
recomputed from the book at the next refresh, so a burst of a thousand events costs one diff.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.core.model import OrderStatus
from engine.core.notices import (
    ESCALATION_NEWS,
    BrokerUsability,
    ClockStepped,
    EngineEvent,
    EngineStopped,
    EscalationRaised,
    EventRefused,
    FeedError,
    OrderOutcome,
    RecoveryDone,
    TradingStateChanged,
)
from engine.runtime.view import BookView, Touched
from ui.viewmodels.rows import EscalationRow, GroupRow, IntentView, NodeView, changed, group_rows


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


def notice_for(event: EngineEvent) -> Notice | None:
    """The notice a person must see for an engine event, if any."""
    match event:
        case EngineStopped(error=error):
            return Notice("error", f"engine stopped: {error}. Restart the desk to recover.")
        case OrderOutcome(client_order_id=coid, status=OrderStatus.REJECTED, reason=reason):
            return Notice("error", f"order {coid} rejected: {reason}")
        case OrderOutcome(client_order_id=coid, reason=reason):
            return Notice("warning", f"order {coid}: {reason}")
        case EventRefused(client_order_id=coid, reason=reason):
            return Notice("warning", f"broker event refused for {coid}: {reason}")
        case FeedError(error=error):
            return Notice("warning", f"broker feed error (re-subscribing): {error}")
        case EscalationRaised():
            return Notice(
                "warning",
                f"escalation #{event.escalation_id} {event.kind} in {event.group_id}: "
                f"{event.reason or event.client_order_id}",
            )
        case TradingStateChanged(state=state, by=by):
            return Notice("info", f"trading is now {state} (by {by})")
        case RecoveryDone(checked=checked, adopted=adopted, orphaned=orphaned):
            return Notice("info", f"recovery: {checked} checked, {adopted} adopted, {orphaned} orphaned")
        case ClockStepped(delta_ms=delta):
            return Notice("warning", f"the exchange clock stepped {delta:+d} ms; deadlines keep running in broker time")
        case BrokerUsability(usable=False, reason=reason):
            return Notice("error", f"broker UNUSABLE: {reason}")
        case BrokerUsability(reason=reason):
            return Notice("info", f"broker usable again: {reason}")
    return None


class DeskViewModel:
    def __init__(self) -> None:
        self.groups: dict[str, GroupRow] = {}
        self.intents: dict[str, IntentView] = {}
        self.nodes: dict[str, NodeView] = {}
        self.escalations: dict[int, EscalationRow] = {}
        self.escalations_dirty = True
        self.book_dirty = True
        self.whole_refresh_due = True  # rebuild every row next time (escalations colour groups)

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

    def absorb(self, events: Iterable[EngineEvent]) -> list[Notice]:
        notices = []
        for event in events:
            self.book_dirty = True
            if isinstance(event, ESCALATION_NEWS):
                self.escalations_dirty = True
            notice = notice_for(event)
            if notice is not None:
                notices.append(notice)
        return notices

    def refresh(self, book: BookView, touched: Touched | None = None) -> Changes:
        """Recompute rows from the book; only rows that differ are returned. ``touched``: only
        these rows can differ (the engine's commits since the last refresh), so only they are
        rebuilt: 1,000 live groups cost what the few that moved cost. None: every row."""
        self.book_dirty = False
        escalated = self.escalated_groups()
        if touched is None or self.whole_refresh_due:
            self.whole_refresh_due = False
            groups = group_rows(book.groups.values(), book.intents.values(), escalated)
            intents: Iterable[tuple[str, Any]] = book.intents.items()
            nodes: Iterable[tuple[str, Any]] = book.nodes.items()
        else:
            live = [book.groups[g] for g in sorted(touched.groups) if g in book.groups]
            groups = group_rows(live, (r for g in live for r in book.of_group(g.spec.group_id)), escalated)
            intents = ((k, book.intents[k]) for k in sorted(touched.intents) if k in book.intents)
            nodes = ((k, book.nodes[k]) for k in sorted(touched.nodes) if k in book.nodes)
        out = Changes(groups=changed(self.groups, ((g.key, g) for g in groups)))
        out.intents = changed(self.intents, ((k, IntentView.of(r)) for k, r in intents))
        out.nodes = changed(self.nodes, ((k, NodeView.of(n)) for k, n in nodes))
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
        """Hedge units the open shorts need beyond what their groups hold, summed over groups."""
        return sum(max(0, -g.net_cover_qty) for g in self.groups.values())
