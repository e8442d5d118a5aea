"""What a step returns: the journal rows of the step (one batch, committed in one transaction)
and the I/O that may run only once they are committed. Nothing here performs anything."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.core.book import GroupRuntime, IntentRow, NodeRow
from engine.core.events import FillReport, OrderRequest
from engine.core.model import EscalationKind, Severity
from engine.core.notices import EngineEvent


@dataclass
class JournalWrites:
    """Every row a step writes. Rows held by reference are serialised when the batch is flushed,
    right after the step, so they carry the state the step left them in."""

    groups_new: dict[str, GroupRuntime] = field(default_factory=dict)
    groups: dict[str, GroupRuntime] = field(default_factory=dict)
    intents_new: dict[str, IntentRow] = field(default_factory=dict)
    intents: dict[str, IntentRow] = field(default_factory=dict)
    nodes_new: dict[str, NodeRow] = field(default_factory=dict)
    nodes: dict[str, NodeRow] = field(default_factory=dict)
    escalations: list[tuple[Any, ...]] = field(default_factory=list)
    acknowledgements: list[tuple[int, str, str, int]] = field(default_factory=list)
    resolutions: list[tuple[int, str, str, int]] = field(default_factory=list)
    resolve_orphans: list[tuple[str, int]] = field(default_factory=list)
    audits: list[tuple[Any, ...]] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    processed: list[tuple[str, str | None, int]] = field(default_factory=list)
    fills: list[tuple[Any, ...]] = field(default_factory=list)
    transitions: list[tuple[Any, ...]] = field(default_factory=list)
    rejected: list[tuple[Any, ...]] = field(default_factory=list)
    # Outcomes of command rows, (status, outcome_json, error, role_needed, epoch, ts_done_ms, seq):
    # written by the interpreter from the step's replies, in the same batch as their effects.
    commands_done: list[tuple[Any, ...]] = field(default_factory=list)
    duplicates: int = 0
    now_ns: int = 0  # local monotonic time of the step that wrote the batch (group rows' stamp)
    # The time-travel audit: the input being stepped (its sequence number), the rule deciding
    # now and the facts it read (JSON). Every row staged below carries them.
    seq: int | None = None
    rule: str = ""
    why: str = "{}"
    group_causes: dict[str, int | None] = field(default_factory=dict)  # new group -> its launch input
    # Written by the interpreter: the journaled inputs (one row each) and a checkpoint of the state.
    inputs: list[tuple[Any, ...]] = field(default_factory=list)
    checkpoint: tuple[Any, ...] | None = None
    marks: list[tuple[Any, ...]] = field(default_factory=list)  # quotes observed (no decision reads them)

    def __bool__(self) -> bool:
        return any(
            (
                self.groups_new,
                self.groups,
                self.intents_new,
                self.intents,
                self.nodes_new,
                self.nodes,
                self.escalations,
                self.acknowledgements,
                self.resolutions,
                self.resolve_orphans,
                self.audits,
                self.settings,
                self.processed,
                self.fills,
                self.transitions,
                self.rejected,
                self.commands_done,
                self.duplicates,
                self.inputs,
                self.checkpoint,
                self.marks,
            )
        )

    @property
    def durable(self) -> bool:
        """Must survive a power cut before anything else happens: it journals an intent (an order
        is about to be sent), a person's command, or an alert for a person."""
        return bool(
            self.intents_new
            or self.audits
            or self.settings
            or self.escalations
            or self.acknowledgements
            or self.resolutions
            or self.commands_done
        )

    def merge(self, other: JournalWrites) -> None:
        self.groups_new.update(other.groups_new)
        self.groups.update(other.groups)
        self.intents_new.update(other.intents_new)
        self.intents.update(other.intents)
        self.nodes_new.update(other.nodes_new)
        self.nodes.update(other.nodes)
        for name in (
            "escalations",
            "acknowledgements",
            "resolutions",
            "resolve_orphans",
            "audits",
            "processed",
            "fills",
            "transitions",
            "rejected",
            "commands_done",
            "inputs",
            "marks",
        ):
            getattr(self, name).extend(getattr(other, name))
        self.settings.update(other.settings)
        self.group_causes.update(other.group_causes)
        if other.checkpoint is not None:
            self.checkpoint = other.checkpoint
        self.duplicates += other.duplicates
        self.now_ns = max(self.now_ns, other.now_ns)

    # --- staging helpers -------------------------------------------------------------------

    def intent(self, row: IntentRow) -> None:
        if row.client_order_id not in self.intents_new:
            self.intents[row.client_order_id] = row

    def node(self, node: NodeRow) -> None:
        if node.node_id not in self.nodes_new:
            self.nodes[node.node_id] = node

    def group(self, group: GroupRuntime) -> None:
        if group.spec.group_id not in self.groups_new:
            self.groups[group.spec.group_id] = group

    def fill(self, fill: FillReport, client_order_id: str, now_ns: int) -> None:
        self.fills.append(
            (
                fill.trade_id,
                client_order_id,
                fill.symbol,
                fill.side.value,
                fill.qty,
                fill.price_paise,
                fill.ts_exchange_ms,
                now_ns,
                self.seq,
            )
        )

    def transition(
        self,
        entity: str,
        entity_id: str,
        from_state: str,
        to_state: str,
        filled_qty: int | None,
        cause: str,
        ts_exchange_ms: int | None,
        now_ns: int,
    ) -> None:
        self.transitions.append(
            (entity, entity_id, from_state, to_state, filled_qty, cause, ts_exchange_ms, now_ns, self.seq, self.rule)
        )

    def reject(
        self,
        client_order_id: str | None,
        event_key: str | None,
        event: dict[str, Any],
        reason: str,
        ts_exchange_ms: int | None,
        now_ns: int,
        feed_seq: int | None = None,
    ) -> None:
        self.rejected.append(
            (
                client_order_id,
                event_key,
                json.dumps(event, sort_keys=True),
                reason,
                ts_exchange_ms,
                now_ns,
                feed_seq,
                self.seq,
            )
        )

    def escalation(
        self,
        escalation_id: int,
        kind: EscalationKind,
        severity: Severity,
        group_id: str | None,
        client_order_id: str | None,
        symbol: str,
        unhedged_qty: int,
        reason: str,
        now_ns: int,
    ) -> None:
        self.escalations.append(
            (
                escalation_id,
                kind.value,
                severity.value,
                group_id,
                client_order_id,
                symbol,
                unhedged_qty,
                reason,
                now_ns,
                self.seq,
                self.rule,
                self.why,
            )
        )

    def audit(
        self,
        now_ns: int,
        wall_ms: int,
        os_user: str,
        role: str,
        command: str,
        target: str,
        detail: dict[str, Any],
        outcome: str,
        command_seq: int | None = None,
    ) -> None:
        self.audits.append(
            (
                now_ns,
                wall_ms,
                os_user,
                role,
                command,
                target,
                json.dumps(detail, sort_keys=True),
                outcome,
                command_seq,
                self.seq,
            )
        )


# --- I/O effects: performed by the interpreter after the step's journal rows commit ---------


@dataclass(frozen=True, slots=True)
class Place:
    request: OrderRequest
    opens_exposure: bool  # the kill switch is asked again at the moment of sending


@dataclass(frozen=True, slots=True)
class Cancel:
    client_order_id: str
    broker_order_id: str


class QueryReason(StrEnum):
    RECOVERY = "RECOVERY"  # a restart: every unfinished intent is looked up
    UNKNOWN = "UNKNOWN"  # a place whose outcome is unknown
    RECONCILE = "RECONCILE"  # a PENDING_CANCEL, or fill reports the status promised
    STOP = "STOP"  # a stop past its deadline: its status is asked before any fallback
    RETRY = "RETRY"  # an operator approved a retry: the broker is asked once more first


@dataclass(frozen=True, slots=True)
class Query:
    """Ask the broker about an order we know: by broker id when we have one, else by client id."""

    client_order_id: str
    broker_order_id: str | None
    reason: QueryReason
    command_id: int | None = None  # RETRY: the command waiting on the answer


@dataclass(frozen=True, slots=True)
class AnchorClock:
    """Ask the broker for its time: broker time must run even when nothing arrives."""


@dataclass(frozen=True, slots=True)
class Notify:
    event: EngineEvent


@dataclass(frozen=True, slots=True)
class Reply:
    """The outcome of a person's command, returned to its caller once the step has committed."""

    command_id: int
    value: Any = None
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Commit:
    writes: JournalWrites


@dataclass(frozen=True, slots=True)
class Changed:
    """The step changed the engine's state without a journal row or I/O (a timer's bookkeeping
    on a group it looked at). Nothing to perform: it tells the interpreter the input must be
    journaled, so that a replay makes the same change."""


Effect = Commit | Place | Cancel | Query | AnchorClock | Notify | Reply | Changed
IO_EFFECTS = (Place, Cancel, Query, AnchorClock)
