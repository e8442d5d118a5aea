"""A group's flow: the lifecycle decision (engine.core.lifecycle) carried out on a step's context,
with its hedge tree, interim exposure, waves, cancel and exit, to a fixed point in memory."""

from __future__ import annotations

from engine.core.book import GroupRuntime
from engine.core.cancels import cancel_working
from engine.core.context import StepContext
from engine.core.exits import advance_exit
from engine.core.exposure import confirmed_qty
from engine.core.hedge_tree import service_nodes, start_node, tree_progress, uncovered_exposure
from engine.core.lifecycle import Wave, decide, decide_cancelled
from engine.core.model import TERMINAL_GROUP_STATES, GroupState, IntentStatus, LegRole, NodeKind, Purpose
from engine.core.trading_state import order_refusal

MAX_PASSES = 100  # each pass settles or sends one batch of orders; bounded by depth and waves


class StepError(RuntimeError):
    """A decision could not settle: a bug, never a broker's doing. The engine stops (crash-only)."""


def advance_group(ctx: StepContext, group_id: str) -> None:
    book = ctx.book
    group = book.groups.get(group_id)
    if group is None:
        return
    spec = group.spec
    for _ in range(MAX_PASSES):
        service_nodes(ctx, group)
        if group.state not in (GroupState.CREATED, GroupState.REJECTED):
            gap = uncovered_exposure(book, group)
            if gap > 0:  # interim exposure: hedge it now, from confirmed fills
                with ctx.because("hedge.interim_exposure", uncovered_qty=gap, group_state=group.state.value):
                    start_node(ctx, group_id, NodeKind.INTERIM, spec.hedge.symbol, spec.hedge.side, gap)
                continue
        if group.state in TERMINAL_GROUP_STATES:
            return  # nothing left to decide (a cancel asked for earlier no longer applies)
        if group.state is GroupState.HEDGED:
            if advance_exit(ctx, group):
                continue
            return
        views = [r.view() for r in book.of_group(group_id)]
        progress = tree_progress(book, group_id)
        if group.cancel_requested:
            with ctx.because("group.cancel_requested"):
                cancel_working(ctx, group_id, "group cancelled by trader")
            group.waiting_on_person = (
                progress.orphaned
                or any(v.intent_status is IntentStatus.ORPHANED for v in views)
                or any(book.cancel_stuck(r) for r in book.of_group(group_id))
            )
            ended = decide_cancelled(spec, views, progress)
            if ended is not None:
                ctx.set_group_state(group, ended.state, ended.reason)
                if ended.state is GroupState.HEDGED:
                    continue  # refused for a terminal group: the next pass returns above
            return
        decision = decide(spec, group.state, views, ctx.config.max_waves, progress)
        group.waiting_on_person = decision.waiting_on_person or any(
            book.cancel_stuck(r) for r in book.of_group(group_id)
        )
        with ctx.because("group.lifecycle"):
            ctx.set_group_state(group, decision.state, decision.reason)
        if decision.state is GroupState.HEDGED:
            continue  # the exit side (stop-loss, close) takes over
        if decision.start_hedge:
            with ctx.because("launch.hedge_leg_first", hedge_qty=spec.hedge.qty, risk_qty=spec.risk.qty):
                start_node(
                    ctx,
                    group_id,
                    NodeKind.LEG,
                    spec.hedge.symbol,
                    spec.hedge.side,
                    spec.hedge.qty,
                    reduces_exposure=False,
                    limit_price_paise=spec.hedge.limit_price_paise,
                )
            continue
        if decision.place is None or not send_wave(ctx, group, decision.place):
            return
    raise StepError(f"group {group_id} did not settle after {MAX_PASSES} planning passes")


def send_wave(ctx: StepContext, group: GroupRuntime, wave: Wave) -> bool:
    """Send one wave of a leg; False (and the group waits on a person) when the kill switch says no."""
    refusal = order_refusal(ctx.state.trading_state, reduces_exposure=False)
    if not refusal and ctx.state.broker_unusable:
        refusal = "the broker is unusable; opening orders wait until it answers"
    if refusal:
        group.waiting_on_person = True
        ctx.set_group_state(group, group.state, f"{wave.role.value} wave not sent: {refusal}")
        return False
    spec = group.spec
    leg = spec.hedge if wave.role is spec.hedge.role else spec.risk
    hedge = tree_progress(ctx.book, spec.group_id)
    risk_rows = [r for r in ctx.book.of_group(spec.group_id) if r.role is LegRole.RISK and r.purpose is Purpose.LEG]
    rule = "risk.sized_to_confirmed_hedge" if leg is spec.risk else "hedge.leg_wave"
    facts = {
        "wave": wave.wave,
        "qty": wave.qty,
        "hedge_confirmed_qty": hedge.filled_qty,
        "hedge_qty": spec.hedge.qty,
        "risk_qty": spec.risk.qty,
        "risk_confirmed_filled_qty": sum(confirmed_qty(r) for r in risk_rows),
        "trading_state": ctx.state.trading_state.value,
    }
    with ctx.because(rule, **facts):
        ctx.send_sliced(
            spec.group_id,
            leg.role,
            wave.wave,
            leg.symbol,
            leg.side,
            wave.qty,
            limit=leg.limit_price_paise,
            purpose=Purpose.LEG,
        )
    return True
