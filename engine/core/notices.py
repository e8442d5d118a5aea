"""What the engine tells its listeners (the desk, ``headless --json``): frozen dataclasses, one per
kind of news. Listeners match on the class; ``to_json`` is the wire form of ``headless --json``,
whose field names are a public contract (add freely, rename only on purpose)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from engine.core.model import EscalationKind, GroupState, IntentStatus, LegRole, OrderStatus, Severity, Side


@dataclass(frozen=True, slots=True)
class EngineEvent:
    type: ClassVar[str] = "event"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, Enum) else value
        return out


@dataclass(frozen=True, slots=True)
class GroupLaunched(EngineEvent):
    type: ClassVar[str] = "group_launched"
    group_id: str
    margin_paise: int


@dataclass(frozen=True, slots=True)
class GroupStateChanged(EngineEvent):
    type: ClassVar[str] = "group_state"
    group_id: str
    previous: GroupState
    state: GroupState
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "group_id": self.group_id,
            "from": self.previous.value,
            "state": self.state.value,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class IntentJournaled(EngineEvent):
    type: ClassVar[str] = "intent"
    client_order_id: str
    group_id: str
    role: LegRole
    symbol: str
    side: Side
    qty: int
    attempt: int


@dataclass(frozen=True, slots=True)
class OrderOutcome(EngineEvent):
    """A place that did not end in an ack: rejected, ambiguous, or held by the kill switch."""

    type: ClassVar[str] = "order_outcome"
    client_order_id: str
    status: OrderStatus
    reason: str


@dataclass(frozen=True, slots=True)
class CancelRequested(EngineEvent):
    type: ClassVar[str] = "cancel_requested"
    client_order_id: str
    broker_status: OrderStatus


@dataclass(frozen=True, slots=True)
class HedgeNodeStarted(EngineEvent):
    type: ClassVar[str] = "hedge_node"
    node_id: str
    group_id: str
    parent_id: str | None
    depth: int
    kind: str
    target_qty: int


@dataclass(frozen=True, slots=True)
class HedgeNodeUpdated(EngineEvent):
    type: ClassVar[str] = "hedge_node_update"
    node_id: str
    group_id: str
    filled_qty: int
    status: str


@dataclass(frozen=True, slots=True)
class EscalationRaised(EngineEvent):
    type: ClassVar[str] = "escalation"
    escalation_id: int
    kind: EscalationKind
    severity: Severity
    group_id: str | None
    client_order_id: str | None
    symbol: str
    unhedged_qty: int
    reason: str


@dataclass(frozen=True, slots=True)
class EscalationAcknowledged(EngineEvent):
    type: ClassVar[str] = "escalation_acknowledged"
    escalation_id: int
    by: str


@dataclass(frozen=True, slots=True)
class IntentClosed(EngineEvent):
    type: ClassVar[str] = "intent_closed"
    client_order_id: str
    status: IntentStatus


@dataclass(frozen=True, slots=True)
class TradingStateChanged(EngineEvent):
    type: ClassVar[str] = "trading_state"
    state: str
    by: str


@dataclass(frozen=True, slots=True)
class EventRefused(EngineEvent):
    type: ClassVar[str] = "rejected_event"
    client_order_id: str | None
    reason: str
    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DuplicatesAbsorbed(EngineEvent):
    type: ClassVar[str] = "duplicates_absorbed"
    count: int


@dataclass(frozen=True, slots=True)
class RecoveryDone(EngineEvent):
    type: ClassVar[str] = "recovery"
    checked: int
    adopted: int
    orphaned: int


@dataclass(frozen=True, slots=True)
class FeedError(EngineEvent):
    type: ClassVar[str] = "feed_error"
    error: str


@dataclass(frozen=True, slots=True)
class EngineStopped(EngineEvent):
    type: ClassVar[str] = "engine_failure"
    error: str


@dataclass(frozen=True, slots=True)
class ClockStepped(EngineEvent):
    """The exchange's clock stepped (either way); broker time ran on, deadlines unmoved."""

    type: ClassVar[str] = "clock_step"
    delta_ms: int
    offset_ms: int  # the exchange's clock minus our continuous broker time, after the step


@dataclass(frozen=True, slots=True)
class BrokerUsability(EngineEvent):
    """The broker stopped answering for longer than allowed, or answers again."""

    type: ClassVar[str] = "broker_state"
    usable: bool
    reason: str


# Notices after which the desk re-reads escalations from the journal.
ESCALATION_NEWS = (EscalationRaised, EscalationAcknowledged, IntentClosed)
