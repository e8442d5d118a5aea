"""Known bugs the simulator must catch, planted for one run only (``simulate --plant NAME``, and
tests/sim/test_planted.py). Each is the engine's own code with one rule broken, patched in for
the duration of the ``planted`` context and restored after; nothing outside a simulation run
can turn one on.

- ``skip_dedupe``: every event looks new (its dedupe key is made unique), so a duplicate is
  applied twice.
- ``market_before_confirm``: a stop past its deadline goes straight to MARKET instead of asking
  for the cancel and waiting for its confirmation.
- ``risk_on_status``: the hedge tree counts the status report's cumulative fill as confirmed,
  so the risk leg is sized on a status instead of fill reports.
- ``resend_orphan``: at recovery, an intent whose outcome is unknown is sent again under its own
  client id instead of being looked up (and orphaned if the venue never saw it)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from engine.core import exits, hedge_tree, ingest, recovery
from engine.core import step as step_module
from engine.core.book import IntentRow
from engine.core.context import StepContext, order_request
from engine.core.effects import Place
from engine.core.events import BrokerEvent
from engine.core.model import IntentStatus, OrderStatus
from engine.core.order_fsm import is_working
from engine.core.stoploss import StopAction, StopView


def _skip_dedupe() -> list[tuple[object, str, object]]:
    original = getattr(ingest, "dedupe_key")  # noqa: B009 (patched below: not part of its API)
    counter = itertools.count()

    def unique_key(event: BrokerEvent) -> str:
        return f"{original(event)}#{next(counter)}"

    return [(ingest, "dedupe_key", unique_key)]


def _market_before_confirm() -> list[tuple[object, str, object]]:
    original = getattr(exits, "stop_step")  # noqa: B009

    def impatient(view: StopView, now_ms: int, timeout_ms: int, confirm_ms: int) -> tuple[StopAction, int]:
        action, qty = original(view, now_ms, timeout_ms, confirm_ms)
        triggered = view.ts_triggered_ms is not None
        working = view.status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
        if action in (StopAction.CANCEL, StopAction.REQUERY) and triggered and working:
            return StopAction.MARKET, view.qty - view.filled_qty
        return action, qty

    return [(exits, "stop_step", impatient)]


def _risk_on_status() -> list[tuple[object, str, object]]:
    def on_status(order: Any) -> int:
        return int(order.filled_qty)

    def judged_on_status(row: IntentRow) -> bool:
        if row.status in (IntentStatus.RETRY_APPROVED, IntentStatus.ABANDONED):
            return False
        return row.status is IntentStatus.ORPHANED or is_working(row.order_status)

    return [(hedge_tree, "confirmed_qty", on_status), (hedge_tree, "_order_open", judged_on_status)]


def _resend_orphan() -> list[tuple[object, str, object]]:
    original = recovery.recover

    def blind(ctx: StepContext, resume_after: bool) -> None:
        for row in list(ctx.book.intents.values()):
            if row.status in (IntentStatus.PENDING, IntentStatus.UNKNOWN) and row.broker_order_id is None:
                ctx.io.append(Place(order_request(row), opens_exposure=row.purpose.opens_exposure))
        original(ctx, resume_after)

    return [(step_module, "recover", blind)]  # step dispatches Recover to its imported name


PLANTS: dict[str, Callable[[], list[tuple[object, str, object]]]] = {
    "skip_dedupe": _skip_dedupe,
    "market_before_confirm": _market_before_confirm,
    "risk_on_status": _risk_on_status,
    "resend_orphan": _resend_orphan,
}


@contextlib.contextmanager
def planted(name: str) -> Iterator[None]:
    """Plant bug ``name`` (PLANTS) for the body of the block; '' plants nothing."""
    if not name:
        yield
        return
    if name not in PLANTS:
        raise ValueError(f"unknown planted bug {name!r}; one of: {', '.join(PLANTS)}")
    patches = PLANTS[name]()
    saved = [(module, attr, getattr(module, attr)) for module, attr, _ in patches]
    try:
        for module, attr, value in patches:
            setattr(module, attr, value)
        yield
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)
