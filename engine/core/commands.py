"""A person's commands, as data. Who may give which is decided in engine.core.command_rules."""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.groups import GroupSpec
from engine.core.model import Role, Side
from engine.core.trading_state import TradingState


class RoleError(PermissionError):
    """A command was refused because the actor's role may not give it (``role_needed``), or
    because the person does not hold the role they asked to act in."""

    def __init__(self, message: str, role_needed: Role | None = None) -> None:
        super().__init__(message)
        self.role_needed = role_needed


class CommandError(ValueError):
    """A command cannot be carried out; the message says why. Nothing was written."""


@dataclass(frozen=True, slots=True)
class Actor:
    os_user: str
    role: Role


@dataclass(frozen=True, slots=True)
class Launch:
    spec: GroupSpec
    actor: Actor


@dataclass(frozen=True, slots=True)
class CancelGroup:
    group_id: str
    actor: Actor


@dataclass(frozen=True, slots=True)
class CloseGroup:
    group_id: str
    actor: Actor


@dataclass(frozen=True, slots=True)
class ManualHedge:
    group_id: str
    symbol: str
    side: Side
    qty: int
    actor: Actor


@dataclass(frozen=True, slots=True)
class Acknowledge:
    escalation_id: int
    actor: Actor


@dataclass(frozen=True, slots=True)
class Resolve:
    """Risk staff close an escalation whose cause they have dealt with, saying how (required)."""

    escalation_id: int
    note: str
    actor: Actor


@dataclass(frozen=True, slots=True)
class ApproveRetry:
    ident: str  # an intent id or a client order id
    actor: Actor


@dataclass(frozen=True, slots=True)
class Abandon:
    ident: str
    actor: Actor


@dataclass(frozen=True, slots=True)
class SetTradingState:
    state: TradingState
    actor: Actor


Command = (
    Launch | CancelGroup | CloseGroup | ManualHedge | Acknowledge | Resolve | ApproveRetry | Abandon | SetTradingState
)
