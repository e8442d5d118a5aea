"""Domain vocabulary shared by every layer: sides, roles, order and group states, intents."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL: positions are signed, BUY positive."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class LegRole(StrEnum):
    HEDGE = "HEDGE"
    RISK = "RISK"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"
    SL_M = "SL-M"


class OrderStatus(StrEnum):
    """Per-order state. The broker reports the subset ACCEPTED..REJECTED."""

    INTENT = "INTENT"
    SUBMITTED = "SUBMITTED"
    TRIGGER_PENDING = "TRIGGER_PENDING"  # a stop order resting untriggered (Kite: "TRIGGER PENDING")
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


TERMINAL_ORDER_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})

BROKER_REPORTED_STATUSES = frozenset(
    {
        OrderStatus.TRIGGER_PENDING,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
        OrderStatus.PENDING_CANCEL,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
    }
)


class GroupState(StrEnum):
    CREATED = "CREATED"
    VALIDATED = "VALIDATED"
    HEDGE_SUBMITTED = "HEDGE_SUBMITTED"
    HEDGE_PARTIAL = "HEDGE_PARTIAL"
    HEDGE_FILLED = "HEDGE_FILLED"
    RISK_SUBMITTED = "RISK_SUBMITTED"
    RISK_PARTIAL = "RISK_PARTIAL"
    RISK_FILLED = "RISK_FILLED"
    HEDGED = "HEDGED"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL_GROUP_STATES = frozenset({GroupState.COMPLETED, GroupState.REJECTED, GroupState.FAILED, GroupState.CANCELLED})


class IntentStatus(StrEnum):
    PENDING = "PENDING"  # journaled and committed; may or may not have reached the broker
    SENT = "SENT"  # broker order id known, order live
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"  # outcome ambiguous (timeout, disconnect); resolved by lookup
    ORPHANED = "ORPHANED"  # after a restart the broker has never seen it; an operator decides
    RETRY_APPROVED = "RETRY_APPROVED"
    ABANDONED = "ABANDONED"


TERMINAL_INTENT_STATUSES = frozenset(
    {
        IntentStatus.FILLED,
        IntentStatus.CANCELLED,
        IntentStatus.REJECTED,
        IntentStatus.RETRY_APPROVED,
        IntentStatus.ABANDONED,
    }
)


class Role(StrEnum):
    TRADER = "trader"
    RISK = "risk"
    OPERATOR = "operator"


class Purpose(StrEnum):
    """Why an order exists. Only LEG orders open exposure; the rest reduce or protect it."""

    LEG = "LEG"  # a wave of the RISK leg (and, before schema 2, of the HEDGE leg)
    HEDGE = "HEDGE"  # an order of a hedge-tree node
    STOP = "STOP"  # the RISK leg's stop-loss
    FALLBACK = "FALLBACK"  # the MARKET order for a stop's confirmed unfilled remainder
    EXIT = "EXIT"  # closing a HEDGED group, risk leg first

    @property
    def opens_exposure(self) -> bool:
        return self is Purpose.LEG


EXIT_PURPOSES = frozenset({Purpose.STOP, Purpose.FALLBACK, Purpose.EXIT})


class EscalationKind(StrEnum):
    HEDGE_EXHAUSTED = "HEDGE_EXHAUSTED"  # a hedge node ended short; the remainder is in front of a person
    ORPHANED_INTENT = "ORPHANED_INTENT"  # the broker never saw a journaled intent; an operator decides
    MANUAL_ACTION = "MANUAL_ACTION"  # the engine cannot go on alone (kill switch, stop cancelled, exits out)
    SL_UNCONFIRMED = "SL_UNCONFIRMED"  # a stop's cancel was never confirmed; no MARKET order was sent
    CANCEL_UNCONFIRMED = "CANCEL_UNCONFIRMED"  # a leg or hedge cancel never confirmed: it may still fill
    BROKER_UNUSABLE = "BROKER_UNUSABLE"  # the broker has not answered for too long; opening orders wait
    UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"  # raised by schema-1 journals only: shown and acknowledged, never raised


class Severity(StrEnum):
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


class EscalationStatus(StrEnum):
    OPEN = "OPEN"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"


class NodeKind(StrEnum):
    LEG = "LEG"  # the group's HEDGE leg: protection bought before anything is sold
    INTERIM = "INTERIM"  # exposure found while the group runs (risk filled beyond its hedge)
    MANUAL = "MANUAL"  # a trader's manual hedge


class NodeStatus(StrEnum):
    WORKING = "WORKING"
    FILLED = "FILLED"
    CHILDED = "CHILDED"  # finished short; a child covers the remainder
    EXHAUSTED = "EXHAUSTED"  # finished short; the remainder is in an escalation
    HALTED = "HALTED"  # not sent because trading is halted; the target is in an escalation
