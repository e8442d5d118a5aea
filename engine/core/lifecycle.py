"""Group lifecycle: derived from the group's orders, never set by a broker event, and only forward.

``decide`` is the whole plan for a group: given its spec and its orders it returns the lifecycle
state and, when it is time, the next wave of orders to journal and send. The hedge leg goes first;
the risk leg is sold only against hedge quantity that the broker has confirmed filled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.core.book import OrderView
from engine.core.groups import GroupSpec, LegSpec
from engine.core.model import (
    TERMINAL_GROUP_STATES,
    GroupState,
    IntentStatus,
    LegRole,
    Purpose,
)
from engine.core.order_fsm import is_working

G = GroupState

# The forward path. Exits (REJECTED, FAILED, CANCELLED) are reachable from any non-terminal state.
PATH: tuple[GroupState, ...] = (
    G.CREATED,
    G.VALIDATED,
    G.HEDGE_SUBMITTED,
    G.HEDGE_PARTIAL,
    G.HEDGE_FILLED,
    G.RISK_SUBMITTED,
    G.RISK_PARTIAL,
    G.RISK_FILLED,
    G.HEDGED,
    G.COMPLETED,
)
_RANK = {state: i for i, state in enumerate(PATH)}
EXITS = frozenset({G.REJECTED, G.FAILED, G.CANCELLED})


def group_transition_problem(current: GroupState, new: GroupState) -> str:
    """Why ``current -> new`` is not allowed, or '' when it is (staying put is allowed)."""
    if new == current:
        return ""
    if current in TERMINAL_GROUP_STATES:
        return f"group is {current.value}: terminal states absorb"
    if new is G.REJECTED and current not in (G.CREATED, G.VALIDATED):
        return "REJECTED is only possible before any order was sent"
    if new in EXITS:
        return ""
    if _RANK[new] < _RANK[current]:
        return f"group state would move backward from {current.value} to {new.value}"
    return ""


@dataclass(frozen=True, slots=True)
class LegProgress:
    target_qty: int
    filled_qty: int
    working: bool  # some order may still fill, or its outcome is not yet known
    waves: int
    orphaned: bool  # an operator must decide on an intent of this leg
    abandoned: bool
    lot_size: int = 1

    def done(self, target_qty: int, max_waves: int) -> bool:
        if self.working or self.orphaned:
            return False
        below_one_lot = 0 < target_qty - self.filled_qty < self.lot_size
        return self.filled_qty >= target_qty or self.waves >= max_waves or self.abandoned or below_one_lot


def leg_progress(leg: LegSpec, orders: Iterable[OrderView]) -> LegProgress:
    filled = waves = 0
    working = orphaned = abandoned = False
    for o in orders:
        if o.role is not leg.role or o.purpose != Purpose.LEG or o.held:
            continue  # an order held back at sending was never a wave: the next one takes its number
        waves = max(waves, o.wave)
        status = o.intent_status
        if status is IntentStatus.ORPHANED:
            orphaned = True
        elif status is IntentStatus.ABANDONED:
            abandoned = True
        elif status is IntentStatus.RETRY_APPROVED:
            continue  # superseded by its new attempt, which is its own row
        elif is_working(o.status):
            working = True
        filled += o.filled_qty
    return LegProgress(leg.qty, filled, working, waves, orphaned, abandoned, leg.lot_size)


@dataclass(frozen=True, slots=True)
class Wave:
    role: LegRole
    wave: int
    qty: int


@dataclass(frozen=True, slots=True)
class Decision:
    state: GroupState
    reason: str = ""
    place: Wave | None = None
    waiting_on_person: bool = False
    start_hedge: bool = False


def risk_allowed_qty(spec: GroupSpec, hedge_filled_qty: int) -> int:
    """Risk qty that the confirmed hedge fill covers, rounded down to whole risk lots."""
    covered = min(hedge_filled_qty * spec.risk.qty // spec.hedge.qty, hedge_filled_qty)  # never more than filled
    return min(spec.risk.qty, covered - covered % spec.risk.lot_size)


@dataclass(frozen=True, slots=True)
class TreeProgress:
    """The HEDGE leg as its hedge tree sees it (the runtime computes it from the nodes)."""

    started: bool
    working: bool  # some node still has orders that may fill, or is waiting to be judged
    filled_qty: int  # confirmed fills over the whole tree
    orphaned: bool = False


def decide(
    spec: GroupSpec, current: GroupState, orders: list[OrderView], max_waves: int, hedge: TreeProgress
) -> Decision:
    """The next step of a group. The HEDGE leg runs as a hedge tree (partial fills recurse there);
    the RISK leg is sold in waves against the tree's confirmed fill."""
    if current in TERMINAL_GROUP_STATES or current is G.HEDGED:
        return Decision(current)
    risk = leg_progress(spec.risk, orders)
    if not hedge.started:
        return Decision(G.VALIDATED, start_hedge=True)
    if hedge.working or hedge.orphaned:
        state = G.HEDGE_PARTIAL if hedge.filled_qty > 0 else G.HEDGE_SUBMITTED
        why = "waiting on an operator for an orphaned intent" if hedge.orphaned else ""
        return Decision(state, why, waiting_on_person=hedge.orphaned)
    if hedge.filled_qty == 0:
        return Decision(G.FAILED, "hedge leg got no fill; nothing was sold")
    allowed = risk_allowed_qty(spec, hedge.filled_qty)
    if allowed == 0:
        return Decision(G.FAILED, f"hedge fill {hedge.filled_qty} covers less than one risk lot; hedge long left open")
    if risk.waves == 0:
        return Decision(G.HEDGE_FILLED, place=Wave(spec.risk.role, 1, allowed))
    if not risk.done(allowed, max_waves):
        return _leg_phase(spec.risk, risk, allowed, G.RISK_SUBMITTED, G.RISK_PARTIAL, risk.orphaned)
    if risk.filled_qty == 0:
        return Decision(
            G.FAILED, f"risk leg got no fill in {risk.waves} wave(s); hedge long {hedge.filled_qty} left open"
        )
    if any(o.fills_qty < o.filled_qty for o in orders):
        return Decision(G.RISK_FILLED, "waiting for fill reports to match reported quantities")
    shortfalls = []
    if hedge.filled_qty < spec.hedge.qty:
        shortfalls.append(f"hedge filled {hedge.filled_qty} of {spec.hedge.qty}")
    if risk.filled_qty < spec.risk.qty:
        shortfalls.append(f"risk filled {risk.filled_qty} of {spec.risk.qty}")
    return Decision(G.HEDGED, "; ".join(shortfalls))


def _leg_phase(
    leg: LegSpec,
    progress: LegProgress,
    target_qty: int,
    submitted: GroupState,
    partial: GroupState,
    waiting_on_person: bool,
) -> Decision:
    state = partial if progress.filled_qty > 0 else submitted
    if progress.working or waiting_on_person:
        why = "waiting on an operator for an orphaned intent" if waiting_on_person else ""
        return Decision(state, why, waiting_on_person=waiting_on_person)
    remainder = target_qty - progress.filled_qty
    remainder -= remainder % leg.lot_size
    if remainder <= 0:
        return Decision(state, "remainder is below one lot")
    return Decision(state, place=Wave(leg.role, progress.waves + 1, remainder))


def decide_cancelled(spec: GroupSpec, orders: list[OrderView], hedge: TreeProgress) -> Decision | None:
    """A trader cancelled a group that is still building: nothing new is sent for it. Once no
    order may still fill, it ends CANCELLED, or HEDGED if a matched spread already exists (which
    the trader then closes like any other). None: still waiting for cancels to be confirmed."""
    risk = leg_progress(spec.risk, orders)
    if hedge.working or risk.working or hedge.orphaned or risk.orphaned:
        return None  # an order may still fill, or an operator must first decide on an orphan
    if risk.filled_qty > 0:
        return Decision(
            G.HEDGED, f"cancelled by trader while building: hedge {hedge.filled_qty}, risk {risk.filled_qty}"
        )
    if hedge.filled_qty > 0:
        return Decision(G.CANCELLED, f"cancelled by trader; hedge long {hedge.filled_qty} left open (no exposure)")
    return Decision(G.CANCELLED, "cancelled by trader; nothing filled")
