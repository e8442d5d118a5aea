"""Everything a decision needs, in memory: the book, broker time, the kill switch, escalations,
attempts and margin in use. Loaded once from the journal at start (engine.runtime.loader); after
that only ``step`` changes it, and the journal follows from the step's effects."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from engine.core.book import Book, EscalationRecord, IntentRow
from engine.core.clock import BrokerClock
from engine.core.commands import Actor
from engine.core.instruments import Instrument
from engine.core.margin import MarginModel
from engine.core.model import TERMINAL_GROUP_STATES, EscalationStatus
from engine.core.trading_state import TradingState


@dataclass
class EngineConfig:
    max_waves: int = 3  # RISK-leg waves before the engine settles for what filled
    max_hedge_depth: int = 3  # hedge-tree depth; past it the remainder is escalated
    order_timeout_ms: int = 5_000  # broker time a working order may rest before it is cancelled
    resolve_after_ms: int = 300  # local monotonic wait before asking the broker about an order
    unknown_lookups_before_orphan: int = 3
    tick_interval_ms: int = 50
    stop_timeout_ms: int = 2_000  # broker time a triggered SL-LIMIT may take before the MARKET fallback
    stop_cancel_confirm_ms: int = 1_000  # broker time to wait for a stop's cancel to be confirmed
    batch_max: int = 500
    command_poll_ms: int = 20  # SQLite: how often the engine looks for command rows other processes submitted
    lease_renew_ms: int = 1000  # lease renewal and heartbeat period (self-fencing within ~4 s)
    clock_step_ms: int = 1_000  # an exchange timestamp this far off our estimate is a clock step
    cancel_confirm_ms: int = 3_000  # broker time a leg/hedge cancel may take before it is asked again
    broker_unusable_after_ms: int = 10_000  # local time of failed answers before the broker is unusable
    query_backoff_max_ms: int = 10_000  # longest wait between two lookups of one order
    checkpoint_every_inputs: int = 5_000  # a checkpoint of the state for replay (time-travel audit)
    mark_interval_ms: int = 1_000  # local time between two journaled marks of one symbol


@dataclass
class EngineStats:
    events: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    steps: int = 0


@dataclass
class PendingRetry:
    """An approved retry waits for the broker's last word on the orphan before it is sent."""

    row: IntentRow
    actor: Actor
    ident: str
    wall_ms: int


@dataclass
class EngineState:
    catalog: Mapping[str, Instrument]
    config: EngineConfig
    margin_model: MarginModel
    new_id: Callable[[], str]  # the id port: client order ids and node ids (seeded in a replay)
    book: Book = field(default_factory=Book)
    clock: BrokerClock = field(default_factory=BrokerClock)
    trading_state: TradingState = TradingState.ACTIVE
    escalations: dict[int, EscalationRecord] = field(default_factory=dict)
    next_escalation_id: int = 1
    group_ids: set[str] = field(default_factory=set)  # every group the journal has, finished or not
    attempts: dict[str, int] = field(default_factory=dict)  # intent id -> highest attempt
    seen_keys: set[str] = field(default_factory=set)  # dedupe keys applied since start (open groups)
    keys_of: dict[str, list[str]] = field(default_factory=dict)  # group id -> its keys, to prune
    recovering: set[str] = field(default_factory=set)  # client ids whose recovery lookup is out
    recovery_summary: dict[str, int] = field(default_factory=lambda: {"checked": 0, "adopted": 0, "orphaned": 0})
    resume_requested: bool = True
    resumed: bool = False  # recovery finished; groups are advanced and timers run
    anchoring: bool = False  # a question for the broker's time is out
    pending_retries: dict[int, PendingRetry] = field(default_factory=dict)
    stats: EngineStats = field(default_factory=EngineStats)
    broker_failing_since_ns: int | None = None  # local time of the first failed answer in a row
    broker_unusable: bool = False

    def __post_init__(self) -> None:
        self.clock.step_threshold_ms = self.config.clock_step_ms

    def margin_in_use_paise(self) -> int:
        return sum(g.margin_paise for g in self.book.groups.values() if g.state not in TERMINAL_GROUP_STATES)

    def open_escalation_id(self, group_id: str | None, kind: str, client_order_id: str | None) -> int | None:
        for e in self.escalations.values():
            if (
                e.status is not EscalationStatus.RESOLVED
                and e.group_id == group_id
                and e.kind == kind
                and (e.client_order_id or "") == (client_order_id or "")
            ):
                return e.escalation_id
        return None

    def escalation_open(self, esc_id: int) -> bool:
        e = self.escalations.get(esc_id)
        return e is not None and e.status is not EscalationStatus.RESOLVED

    def open_escalation(self, group_id: str | None, kind: str, client_order_id: str | None) -> bool:
        return self.open_escalation_id(group_id, kind, client_order_id) is not None
