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
