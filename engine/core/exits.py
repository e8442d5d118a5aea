"""Closing a HEDGED group: by its stop-loss or by a trader's close. The short RISK leg is always
bought back first; the protective HEDGE is sold only once the short is closed, so the hedge is
never removed while the short is open. Pure: the orchestration below works on a step's context,
which only gathers effects."""

from __future__ import annotations

from dataclasses import dataclass

from engine.core.book import Book, GroupRuntime, IntentRow
from engine.core.context import StepContext
from engine.core.effects import QueryReason
from engine.core.exposure import confirmed_qty
from engine.core.intents import OPERATOR_OUTCOMES
from engine.core.model import EscalationKind, GroupState, IntentStatus, LegRole, OrderStatus, OrderType, Purpose, Side
from engine.core.notices import EscalationAcknowledged
from engine.core.order_fsm import is_working
from engine.core.stoploss import StopAction, StopView, stop_limit_price_paise, stop_step
from engine.core.trading_state import order_refusal


@dataclass(frozen=True, slots=True)
class ExitView:
    risk_short_qty: int  # the RISK leg's confirmed fill
    risk_bought_qty: int  # stop, fallback and exit buys, confirmed
    hedge_long_qty: int  # every confirmed hedge buy (leg tree, interim, manual)
    hedge_sold_qty: int  # exit sells of the hedge, confirmed
    stop_exists: bool
    stop_open: bool  # the stop (or its fallback) may still fill
    stop_triggered: bool  # the exchange reported the stop triggered (or it filled)
    stop_cancel_requested: bool
    risk_exit_working: bool
    risk_exit_waves: int
    hedge_exit_working: bool
    hedge_exit_waves: int
    close_requested: bool


@dataclass(frozen=True, slots=True)
class ExitDecision:
    place_stop_qty: int = 0
    cancel_stop: bool = False
    risk_exit_qty: int = 0
    hedge_exit_qty: int = 0
    completed: bool = False
    stuck_qty: int = 0  # exits exhausted: a person must act on this open short
    reason: str = ""


def decide_exit(view: ExitView, has_stop: bool, max_waves: int) -> ExitDecision:
    open_short = view.risk_short_qty - view.risk_bought_qty
    if open_short > 0:
        # A stop that ended without ever triggering (cancelled or rejected by the venue) is not a
        # reason to buy back: the stop manager escalates it and a person decides.
        buying_back = view.close_requested or (view.stop_exists and not view.stop_open and view.stop_triggered)
        if not buying_back:
            if has_stop and not view.stop_exists:
                return ExitDecision(place_stop_qty=open_short)
            return ExitDecision()
        if view.stop_open:
            return ExitDecision(cancel_stop=not view.stop_cancel_requested)
        if view.risk_exit_working:
            return ExitDecision()
        if view.risk_exit_waves < max_waves:
            return ExitDecision(risk_exit_qty=open_short)
        return ExitDecision(stuck_qty=open_short, reason=f"short {open_short} not bought back in {max_waves} waves")
    if view.risk_bought_qty == 0:
        return ExitDecision()  # nothing has started closing
    open_long = view.hedge_long_qty - view.hedge_sold_qty
    how = "closed by trader" if view.close_requested else "stop-loss executed"
    if open_long > 0:
        if view.hedge_exit_working:
            return ExitDecision()
        if view.hedge_exit_waves < max_waves:
            return ExitDecision(hedge_exit_qty=open_long)
        return ExitDecision(completed=True, reason=f"{how}; hedge long {open_long} left open (no exposure)")
    return ExitDecision(completed=True, reason=how)


# --- closing at work, on a step's context ------------------------------------------------------


def _rows(book: Book, gid: str, purpose: Purpose, role: LegRole | None = None) -> list[IntentRow]:
    return [r for r in book.of_group(gid) if r.purpose is purpose and (role is None or r.role is role)]


def may_still_fill(rows: list[IntentRow]) -> bool:
    """Working at the broker, or orphaned (an operator may yet retry it)."""
    return any(
        r.status not in OPERATOR_OUTCOMES and (is_working(r.order_status) or r.status is IntentStatus.ORPHANED)
        for r in rows
    )


def fallback_due(stops: list[IntentRow], fallbacks: list[IntentRow], closing: bool) -> bool:
    """A stop cancelled short whose MARKET fallback is the stop manager's to send: nobody else may
    buy that remainder back, or the short would be exited twice."""
    if closing or fallbacks:
        return False
    return any(
        r.order_status is OrderStatus.CANCELLED and r.filled_qty < r.qty and r.ts_triggered_exchange_ms is not None
        for r in stops
    )


def exit_view(book: Book, group: GroupRuntime) -> ExitView:
    gid = group.spec.group_id
    stops, fallbacks = _rows(book, gid, Purpose.STOP), _rows(book, gid, Purpose.FALLBACK)
    risk_exits = _rows(book, gid, Purpose.EXIT, LegRole.RISK)
    hedge_exits = _rows(book, gid, Purpose.EXIT, LegRole.HEDGE)
    hedge_buys = [
        r for r in book.of_group(gid) if r.role is LegRole.HEDGE and r.purpose in (Purpose.LEG, Purpose.HEDGE)
    ]
    return ExitView(
        risk_short_qty=sum(r.filled_qty for r in _rows(book, gid, Purpose.LEG, LegRole.RISK)),
        risk_bought_qty=sum(confirmed_qty(r) for r in stops + fallbacks + risk_exits),
        hedge_long_qty=sum(confirmed_qty(r) for r in hedge_buys),
        hedge_sold_qty=sum(r.filled_qty for r in hedge_exits),
        stop_exists=bool(stops),
        stop_open=may_still_fill(stops)
        or may_still_fill(fallbacks)
        or fallback_due(stops, fallbacks, group.close_requested),
        stop_cancel_requested=any(r.order_status is OrderStatus.PENDING_CANCEL for r in stops),
        stop_triggered=any(r.ts_triggered_exchange_ms is not None or r.filled_qty > 0 for r in stops),
        risk_exit_working=may_still_fill(risk_exits),
        risk_exit_waves=max((r.wave for r in risk_exits), default=0),
        hedge_exit_working=may_still_fill(hedge_exits),
        hedge_exit_waves=max((r.wave for r in hedge_exits), default=0),
        close_requested=group.close_requested,
    )


def advance_exit(ctx: StepContext, group: GroupRuntime) -> bool:
    """One step of closing a HEDGED group. True when it sent an order (plan again)."""
    spec = group.spec
    view = exit_view(ctx.book, group)
    d = decide_exit(view, spec.stop_trigger_paise is not None, ctx.config.max_waves)
    if d.completed:
        ctx.set_group_state(group, GroupState.COMPLETED, d.reason)
        return False
    if d.stuck_qty:
        with ctx.because("exit.stuck", stuck_qty=d.stuck_qty):
            ctx.escalate_once(
                spec.group_id,
                None,
                EscalationKind.MANUAL_ACTION,
                spec.risk.symbol,
                d.stuck_qty,
                f"{d.reason}; buy it back by hand or retry the close",
            )
        group.waiting_on_person = True
        return False
    if d.cancel_stop:
        with ctx.because("exit.cancel_stop_for_close", close_requested=group.close_requested):
            for row in _rows(ctx.book, spec.group_id, Purpose.STOP):
                if is_working(row.order_status):
                    ctx.request_cancel(row, "group close requested")
        return False
    risk_buy = spec.risk.side.opposite
    if d.place_stop_qty:
        assert spec.stop_trigger_paise is not None
        limit = stop_limit_price_paise(spec.stop_trigger_paise, risk_buy, spec.risk.tick_paise)
        # False when the kill switch held it (escalated): planning again would spin on it
        with ctx.because(
            "stop.placed_once_hedged", trigger_paise=spec.stop_trigger_paise, limit_paise=limit, qty=d.place_stop_qty
        ):
            return send_exit(
                ctx,
                group,
                LegRole.RISK,
                Purpose.STOP,
                spec.risk.symbol,
                risk_buy,
                d.place_stop_qty,
                1,
                OrderType.SL,
                limit,
                spec.stop_trigger_paise,
            )
    if d.risk_exit_qty:
        wave = view.risk_exit_waves + 1
        with ctx.because("exit.buy_back_risk_first", qty=d.risk_exit_qty, wave=wave):
            return send_exit(ctx, group, LegRole.RISK, Purpose.EXIT, spec.risk.symbol, risk_buy, d.risk_exit_qty, wave)
    if d.hedge_exit_qty:
        wave = view.hedge_exit_waves + 1
        hedge_sell = spec.hedge.side.opposite
        with ctx.because("exit.sell_hedge_after_risk", qty=d.hedge_exit_qty, wave=wave):
            return send_exit(
                ctx, group, LegRole.HEDGE, Purpose.EXIT, spec.hedge.symbol, hedge_sell, d.hedge_exit_qty, wave
            )
    if group.close_requested:
        # Nothing to send: a close held up by a stop whose cancel was never confirmed (escalated
        # SL_UNCONFIRMED: it may still fill) waits on a person until the broker settles it.
        group.waiting_on_person = any(
            r.client_order_id in ctx.book.stop_escalated and is_working(r.order_status)
            for r in _rows(ctx.book, spec.group_id, Purpose.STOP)
        )
    return False


def send_exit(
    ctx: StepContext,
    group: GroupRuntime,
    role: LegRole,
    purpose: Purpose,
    symbol: str,
    side: Side,
    qty: int,
    wave: int,
    order_type: OrderType = OrderType.MARKET,
    limit: int | None = None,
    trigger: int | None = None,
) -> bool:
    """Journal and send (sliced). False when the kill switch refused it: nothing was sent."""
    refusal = order_refusal(ctx.state.trading_state, reduces_exposure=True)
    gid = group.spec.group_id
    if refusal:
        ctx.escalate_once(
            gid,
            None,
            EscalationKind.MANUAL_ACTION,
            symbol,
            qty,
            f"{purpose.value} {side.value} {qty} {symbol} not sent: {refusal}. Queued: it is sent as soon as"
            " trading is REDUCING or ACTIVE",
        )
        held = ctx.state.open_escalation_id(gid, EscalationKind.MANUAL_ACTION, None)
        if held is not None and held not in group.held_exit_escalations:
            group.held_exit_escalations.append(held)
        return False
    for esc_id in group.held_exit_escalations:  # the queued exit goes out now: its cause is gone
        if ctx.state.escalation_open(esc_id):
            ctx.resolve_escalation(esc_id, "engine", f"{purpose.value} {side.value} {qty} {symbol} sent: exits allowed")
            ctx.notify(EscalationAcknowledged(esc_id, "engine"))
    group.held_exit_escalations.clear()
    ctx.send_sliced(
        gid,
        role,
        wave,
        symbol,
        side,
        qty,
        limit=limit,
        order_type=order_type,
        trigger=trigger,
        purpose=purpose,
    )
    return True


def service_stops(ctx: StepContext, stops: list[IntentRow]) -> None:
    """Drive every stop through its broker-time fallback rules (engine.core.stoploss)."""
    book, config = ctx.book, ctx.config
    for row in stops:
        group = book.groups.get(row.group_id)
        if group is None:
            continue
        gid = row.group_id
        view = StopView(
            status=row.order_status,
            qty=row.qty,
            filled_qty=row.filled_qty,
            ts_triggered_ms=row.ts_triggered_exchange_ms,
            ts_cancel_requested_ms=row.ts_cancel_requested_exchange_ms,
            last_query_ms=book.stop_queries.get(row.client_order_id),
            fallback_sent=bool(_rows(book, gid, Purpose.FALLBACK)),
            escalated=row.client_order_id in book.stop_escalated,
        )
        now_ms = ctx.broker_now_ms()
        action, qty = stop_step(view, now_ms, config.stop_timeout_ms, config.stop_cancel_confirm_ms)
        if action is StopAction.REQUERY:
            if ctx.query(row, QueryReason.STOP):
                book.stop_asked[row.client_order_id] = now_ms  # counts once the answer is in
        elif action is StopAction.CANCEL:
            facts = _stop_facts(row, now_ms, config.stop_timeout_ms)
            with ctx.because("stop.cancel_after_timeout", **facts):
                ctx.request_cancel(row, f"stop not filled {config.stop_timeout_ms} ms after trigger")
        elif action is StopAction.MARKET and group.close_requested:
            continue  # a trader's close buys the short back itself; never both
        elif action is StopAction.MARKET:
            facts = _stop_facts(row, now_ms, config.stop_timeout_ms)
            with ctx.because("stop.market_after_confirmed_cancel", **facts, remainder_qty=qty):
                send_exit(ctx, group, LegRole.RISK, Purpose.FALLBACK, row.symbol, row.side, qty, 1)
            ctx.touch(gid)
        elif action is StopAction.ESCALATE:
            book.stop_escalated.add(row.client_order_id)
            if row.order_status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
                kind = EscalationKind.MANUAL_ACTION
                why = (
                    f"stop {row.client_order_id} was {row.order_status.value.lower()} by the broker before it "
                    "triggered; "
                    f"{qty} short is unprotected. Place a new stop or close the group"
                )
            else:
                kind = EscalationKind.SL_UNCONFIRMED
                why = (
                    f"stop {row.client_order_id}: cancel not confirmed within "
                    f"{config.stop_cancel_confirm_ms} ms of broker time; {qty} still short. "
                    "No MARKET order was sent: the stop may still fill"
                )
            with ctx.because("stop.escalated_not_market", **_stop_facts(row, now_ms, config.stop_timeout_ms)):
                ctx.escalate_once(gid, row.client_order_id, kind, row.symbol, qty, why)
            ctx.touch(gid)  # a close waiting on this stop now waits on a person


def _stop_facts(row: IntentRow, broker_now_ms: int, timeout_ms: int) -> dict[str, object]:
    """What a stop decision read: the trigger, broker time since it, and the cancel's state."""
    triggered = row.ts_triggered_exchange_ms
    return {
        "stop": row.client_order_id,
        "trigger_paise": row.trigger_price_paise,
        "limit_paise": row.limit_price_paise,
        "triggered_at_broker_ms": triggered,
        "broker_now_ms": broker_now_ms,
        "broker_ms_since_trigger": None if triggered is None else broker_now_ms - triggered,
        "stop_timeout_ms": timeout_ms,
        "cancel_requested_at_broker_ms": row.ts_cancel_requested_exchange_ms,
        "cancel_confirmed": row.order_status is OrderStatus.CANCELLED,
        "stop_status": row.order_status.value,
        "stop_filled_qty": row.filled_qty,
    }
