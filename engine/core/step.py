"""The engine's one decision function: ``step(state, input) -> effects``.

Rules (after h11's ``_state.py``):
1. Every engine decision lives behind ``step``: group lifecycle, waves, hedge nodes, stops and
   exits, timers, the kill switch, margin, recovery and the order and intent machines.
2. ``step`` is synchronous and does no I/O: no asyncio, no database, no clock but the ``now_ns``
   of its input. What it needs is in ``EngineState``; what it wants done is in the effects.
3. The effects are one journal batch (``Commit``, first), then I/O (``Place``, ``Cancel``,
   ``Query``, ``AnchorClock``), then news (``Notify``) and answers to commands (``Reply``). The
   interpreter commits the batch before it performs any I/O, and every broker answer comes back
   as another input.
4. A step ends at a fixed point: every group its input touched is advanced until it waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.core.cancels import cancel_answered
from engine.core.command_rules import given, retry_answered
from engine.core.context import StepContext
from engine.core.effects import Changed, Effect, QueryReason
from engine.core.groupflow import StepError, advance_group
from engine.core.ingest import apply_events
from engine.core.inputs import (
    BrokerEvents,
    BrokerTime,
    CancelAnswered,
    Given,
    Input,
    LookedUp,
    Placed,
    PlaceUnsent,
    Recover,
    Tick,
)
from engine.core.placing import placed, unsent
from engine.core.recovery import looked_up, recover
from engine.core.state import EngineState
from engine.core.timers import on_tick

__all__ = ["StepError", "step"]


def _events(ctx: StepContext, inp: Any) -> None:
    apply_events(ctx, inp.events, inp.known_keys)


def _broker_time(ctx: StepContext, inp: Any) -> None:
    ctx.state.anchoring = False
    if inp.server_ms is None:
        ctx.broker_answered(False, inp.error)
        return
    ctx.observe(inp.server_ms, fresh=True)
    ctx.broker_answered(True)


def _looked_up(ctx: StepContext, inp: Any) -> None:
    if inp.reason is QueryReason.RETRY:
        retry_answered(ctx, inp)
    else:
        looked_up(ctx, inp)


_HANDLERS: dict[type, Callable[[StepContext, Any], None]] = {
    BrokerEvents: _events,
    Placed: placed,
    PlaceUnsent: unsent,
    CancelAnswered: cancel_answered,
    LookedUp: _looked_up,
    BrokerTime: _broker_time,
    Tick: lambda ctx, inp: on_tick(ctx),
    Recover: lambda ctx, inp: recover(ctx, inp.resume),
    Given: given,
}


# The rule a row names when no more specific rule is deciding: what the input itself did.
_DEFAULT_RULES: dict[type, str] = {
    BrokerEvents: "feed.event",
    Placed: "broker.place_ack",
    PlaceUnsent: "broker.place_not_sent",
    CancelAnswered: "broker.cancel_answer",
    LookedUp: "broker.lookup_answer",
    BrokerTime: "clock.broker_time",
    Tick: "timer.tick",
    Recover: "recovery.reconcile",
    Given: "command",
}


def step(state: EngineState, inp: Input, seq: int | None = None) -> list[Effect]:
    """Decide ``inp``. ``seq``: its number in the journal's inputs, named by every row it causes."""
    ctx = StepContext(state, inp.now_ns, seq, _DEFAULT_RULES[type(inp)])
    state.stats.steps += 1
    _HANDLERS[type(inp)](ctx, inp)
    if state.resumed or isinstance(inp, Given) or (isinstance(inp, LookedUp) and inp.command_id is not None):
        _advance_touched(ctx)
    state.book.resettle(ctx.touched)
    effects = ctx.effects()
    if not effects and ctx.touched:
        effects.append(Changed())
    return effects


def _advance_touched(ctx: StepContext) -> None:
    done: set[str] = set()
    while todo := sorted(ctx.touched - done):
        for group_id in todo:
            done.add(group_id)
            advance_group(ctx, group_id)
