"""What a step takes: broker events, the broker's answers to what the engine asked, the passing
of time, and a person's command. Every input carries the local monotonic time it is stepped at;
the step reads no other clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.core.commands import Command
from engine.core.effects import QueryReason
from engine.core.events import CancelAck, FeedItem, OrderSnapshot, PlaceAck
from engine.core.model import Role


@dataclass(frozen=True, slots=True)
class BrokerEvents:
    """A batch of events from the feed. ``known_keys``: the dedupe keys among them that the
    journal already holds (read before the step; only the engine writes them)."""

    now_ns: int
    events: tuple[FeedItem, ...]
    known_keys: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Placed:
    now_ns: int
    client_order_id: str
    ack: PlaceAck


@dataclass(frozen=True, slots=True)
class PlaceUnsent:
    """The order is not known to be live: the broker definitely refused it, or the interpreter held
    it back (the kill switch, at the moment of sending), or, with ``ambiguous``, the outcome is
    unknown (timeout, disconnect, lost ack) and the order may be live."""

    now_ns: int
    client_order_id: str
    reason: str
    ambiguous: bool = False


@dataclass(frozen=True, slots=True)
class CancelAnswered:
    now_ns: int
    client_order_id: str
    ack: CancelAck | None
    error: str = ""  # the cancel did not reach the broker; the order stays PENDING_CANCEL
    unknown_order: bool = False  # the broker said it never issued that broker id


@dataclass(frozen=True, slots=True)
class LookedUp:
    """The broker's answer to a Query: its snapshot of the order, or None (it never saw it)."""

    now_ns: int
    client_order_id: str
    reason: QueryReason
    snapshot: OrderSnapshot | None
    command_id: int | None = None
    error: str = ""  # the query itself failed (the broker did not answer); nothing is concluded
    known_keys: frozenset[str] = frozenset()  # of the snapshot's events, as BrokerEvents


@dataclass(frozen=True, slots=True)
class BrokerTime:
    now_ns: int
    server_ms: int | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: timers are due to be looked at."""

    now_ns: int


@dataclass(frozen=True, slots=True)
class Recover:
    """The state was just loaded from the journal: reconcile every unfinished intent, then (with
    ``resume``) let groups continue once every answer is in."""

    now_ns: int
    resume: bool = True


@dataclass(frozen=True, slots=True)
class Given:
    """A person's command, with the id its answer is returned under."""

    now_ns: int
    command_id: int
    command: Command
    wall_ms: int = 0  # for the audit log's display column only
    extra: dict[str, str] = field(default_factory=dict)
    # The desk roles the person holds, as the system that authenticated them says (read by the
    # interpreter before the step). A command in a role not held is refused; none held by default.
    held: frozenset[Role] = frozenset()


Input = BrokerEvents | Placed | PlaceUnsent | CancelAnswered | LookedUp | BrokerTime | Tick | Recover | Given
