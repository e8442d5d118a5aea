"""The hybrid stop-loss and group exits at run time (decisions in engine.core.stoploss/exits).

Every broker-time comparison uses the engine's BrokerClock (exchange timestamps + local
monotonic time); the local wall clock is never consulted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.core import order_fsm
from engine.core.events import Ambiguous
from engine.core.exits import ExitView, decide_exit
from engine.core.model import GroupState, IntentStatus, LegRole, OrderStatus, OrderType, Side
from engine.core.order_fsm import is_working
from engine.core.stoploss import StopAction, StopView, stop_limit_price_paise, stop_step
from engine.core.trading_state import order_refusal
from engine.runtime.ingest import snapshot_events
from engine.store.rows import IntentRow

if TYPE_CHECKING:
    from engine.runtime.engine import Engine
    from engine.runtime.state import GroupRuntime

EXIT_PURPOSES = ("STOP", "FALLBACK", "EXIT")


def _rows(engine: Engine, gid: str, purpose: str, role: LegRole | None = None) -> list[IntentRow]:
    return [r for r in engine.book.of_group(gid) if r.purpose == purpose and (role is None or r.role is role)]


def _open(rows: list[IntentRow]) -> bool:
    """May still fill: working at the broker, or orphaned (an operator may yet retry it)."""
    return any(
        r.status not in (IntentStatus.RETRY_APPROVED, IntentStatus.ABANDONED)
        and (is_working(r.order_status) or r.status is IntentStatus.ORPHANED)
        for r in rows
    )


def _fallback_due(stops: list[IntentRow], fallbacks: list[IntentRow], closing: bool) -> bool:
    """A stop cancelled short whose MARKET fallback is the stop manager's to send: nobody else may
    buy that remainder back, or the short would be exited twice."""
    if closing or fallbacks:
        return False
    return any(
        r.order_status is OrderStatus.CANCELLED and r.filled_qty < r.qty and r.ts_triggered_exchange_ms is not None
        for r in stops
    )


def exit_view(engine: Engine, group: GroupRuntime) -> ExitView:
    gid = group.spec.group_id
    stops, fallbacks = _rows(engine, gid, "STOP"), _rows(engine, gid, "FALLBACK")
    risk_exits, hedge_exits = _rows(engine, gid, "EXIT", LegRole.RISK), _rows(engine, gid, "EXIT", LegRole.HEDGE)
    hedge_buys = [r for r in engine.book.of_group(gid) if r.role is LegRole.HEDGE and r.purpose in ("LEG", "HEDGE")]
    return ExitView(
        risk_short_qty=sum(r.filled_qty for r in _rows(engine, gid, "LEG", LegRole.RISK)),
        risk_bought_qty=sum(r.filled_qty for r in stops + fallbacks + risk_exits),
        hedge_long_qty=sum(r.filled_qty for r in hedge_buys),
        hedge_sold_qty=sum(r.filled_qty for r in hedge_exits),
        stop_exists=bool(stops),
        stop_open=_open(stops) or _open(fallbacks) or _fallback_due(stops, fallbacks, group.close_requested),
        stop_cancel_requested=any(r.order_status is OrderStatus.PENDING_CANCEL for r in stops),
        stop_triggered=any(r.ts_triggered_exchange_ms is not None or r.filled_qty > 0 for r in stops),
        risk_exit_working=_open(risk_exits),
        risk_exit_waves=max((r.wave for r in risk_exits), default=0),
        hedge_exit_working=_open(hedge_exits),
        hedge_exit_waves=max((r.wave for r in hedge_exits), default=0),
        close_requested=group.close_requested,
    )


async def advance_exit(engine: Engine, group: GroupRuntime) -> bool:
    """One step of closing a HEDGED group. True when it sent an order (plan again)."""
    spec = group.spec
    d = decide_exit(exit_view(engine, group), spec.stop_trigger_paise is not None, engine.config.max_waves)
    if d.completed:
        await engine.set_group_state(group, GroupState.COMPLETED, d.reason)
        return False
    if d.stuck_qty:
        await engine.escalate_once(
            spec.group_id,
            None,
            "MANUAL_ACTION",
            spec.risk.symbol,
            d.stuck_qty,
            f"{d.reason}; buy it back by hand or retry the close",
        )
        group.waiting_on_person = True
        return False
    if d.cancel_stop:
        for row in _rows(engine, spec.group_id, "STOP"):
            if is_working(row.order_status):
                await request_cancel(engine, row, "group close requested")
        return False
    risk_buy = spec.risk.side.opposite
    if d.place_stop_qty:
        assert spec.stop_trigger_paise is not None
        limit = stop_limit_price_paise(spec.stop_trigger_paise, risk_buy, spec.risk.tick_paise)
        await _send(
            engine,
            group,
            LegRole.RISK,
            "STOP",
            spec.risk.symbol,
            risk_buy,
            d.place_stop_qty,
            1,
            OrderType.SL,
            limit,
            spec.stop_trigger_paise,
        )
        return True
    if d.risk_exit_qty:
        wave = exit_view(engine, group).risk_exit_waves + 1
        return await _send(engine, group, LegRole.RISK, "EXIT", spec.risk.symbol, risk_buy, d.risk_exit_qty, wave)
    if d.hedge_exit_qty:
        wave = exit_view(engine, group).hedge_exit_waves + 1
        await _send(
            engine, group, LegRole.HEDGE, "EXIT", spec.hedge.symbol, spec.hedge.side.opposite, d.hedge_exit_qty, wave
        )
        return True
    return False


async def _send(
    engine: Engine,
    group: GroupRuntime,
    role: LegRole,
    purpose: str,
    symbol: str,
    side: Side,
    qty: int,
    wave: int,
    order_type: OrderType = OrderType.MARKET,
    limit: int | None = None,
    trigger: int | None = None,
) -> bool:
    """Journal and send (sliced). False when the kill switch refused it: nothing was sent."""
    refusal = order_refusal(engine.trading_state, reduces_exposure=True)
    if refusal:
        await engine.escalate_once(
            group.spec.group_id,
            None,
            "MANUAL_ACTION",
            symbol,
            qty,
            f"{purpose} {side.value} {qty} {symbol} not sent: {refusal}",
        )
        return False
    await engine.send_sliced(
        group.spec.group_id,
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


_CANCELLABLE = (OrderStatus.TRIGGER_PENDING, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


async def cancel_working(engine: Engine, group_id: str, cause: str) -> list[str]:
    """Ask for the cancel of every working entry order (LEG or hedge-tree) of a group that has a
    broker id and is not already PENDING_CANCEL. Idempotent: run it again after a restart or once a
    lost ack's order shows up, and it catches what the first pass could not reach."""
    rows = [
        r
        for r in engine.book.of_group(group_id)
        if r.purpose in ("LEG", "HEDGE") and r.order_status in _CANCELLABLE and r.broker_order_id
    ]
    for row in rows:
        await request_cancel(engine, row, cause)
    return [r.client_order_id for r in rows]


async def request_cancel(engine: Engine, row: IntentRow, cause: str) -> None:
    """Ask for a cancel. The order stays PENDING_CANCEL until the broker confirms it."""
    outcome = order_fsm.apply(row.order_state, order_fsm.Trigger.CANCEL_REQUEST)
    if not outcome.accepted or row.broker_order_id is None:
        return
    now = engine.now_ns()
    row.ts_cancel_requested_exchange_ms = engine.clock.now_ms(now)
    async with engine.journal.transaction():
        await engine.ingestor.set_order_state(row, outcome.state, cause=cause, ts_exchange_ms=None, now_ns=now)
    await send_cancel(engine, row)


async def send_cancel(engine: Engine, row: IntentRow) -> None:
    """Send (or re-send: cancels are idempotent) the cancel of a PENDING_CANCEL order. A broker
    error leaves it PENDING_CANCEL; the next status lookup sends it again."""
    assert row.broker_order_id is not None
    try:
        ack = await engine.broker.cancel(row.broker_order_id)
    except (Ambiguous, ConnectionError, OSError, TimeoutError) as exc:
        engine.emit({"type": "feed_error", "error": f"cancel of {row.client_order_id} not sent: {exc}"})
        return
    engine.clock.observe(ack.ts_exchange_ms, engine.now_ns())
    engine.emit({"type": "cancel_requested", "client_order_id": row.client_order_id, "broker_status": ack.status.value})


async def service_stops(engine: Engine) -> None:
    """Drive every stop through its broker-time fallback rules."""
    for row in [r for r in engine.book.intents.values() if r.purpose == "STOP"]:
        group = engine.book.groups.get(row.group_id)
        if group is None:
            continue
        gid = row.group_id
        view = StopView(
            status=row.order_status,
            qty=row.qty,
            filled_qty=row.filled_qty,
            ts_triggered_ms=row.ts_triggered_exchange_ms,
            ts_cancel_requested_ms=row.ts_cancel_requested_exchange_ms,
            last_query_ms=engine.book.stop_queries.get(row.client_order_id),
            fallback_sent=bool(_rows(engine, gid, "FALLBACK")),
            escalated=row.client_order_id in engine.book.stop_escalated,
        )
        now_ms = engine.clock.now_ms(engine.now_ns())
        action, qty = stop_step(view, now_ms, engine.config.stop_timeout_ms, engine.config.stop_cancel_confirm_ms)
        if action is StopAction.REQUERY:
            engine.book.stop_queries[row.client_order_id] = now_ms
            assert row.broker_order_id is not None
            await engine.ingest_locked(snapshot_events(await engine.broker.order(row.broker_order_id)))
        elif action is StopAction.CANCEL:
            await request_cancel(engine, row, f"stop not filled {engine.config.stop_timeout_ms} ms after trigger")
        elif action is StopAction.MARKET and group.close_requested:
            continue  # a trader's close buys the short back itself; never both
        elif action is StopAction.MARKET:
            await _send(engine, group, LegRole.RISK, "FALLBACK", row.symbol, row.side, qty, 1)
            await engine.advance_group(gid)
        elif action is StopAction.ESCALATE:
            engine.book.stop_escalated.add(row.client_order_id)
            if row.order_status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
                kind = "MANUAL_ACTION"
                why = (
                    f"stop {row.client_order_id} was {row.order_status.value.lower()} by the broker before it "
                    "triggered; "
                    f"{qty} short is unprotected. Place a new stop or close the group"
                )
            else:
                kind = "SL_UNCONFIRMED"
                why = (
                    f"stop {row.client_order_id}: cancel not confirmed within "
                    f"{engine.config.stop_cancel_confirm_ms} ms of broker time; {qty} still short. "
                    "No MARKET order was sent: the stop may still fill"
                )
            await engine.escalate_once(gid, row.client_order_id, kind, row.symbol, qty, why)
