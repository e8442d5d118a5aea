"""Desk commands the engine does not offer yet, built only from its public pieces and held to
the same rules as engine/runtime/commands.py: the engine lock, a role check, an audit row for
every attempt (refused or not), and the engine's own cancel path (PENDING_CANCEL until the broker
confirms). Candidates to move into engine/runtime/commands.py."""

from __future__ import annotations

from engine.core.model import TERMINAL_GROUP_STATES, OrderStatus, Role
from engine.runtime import stops
from engine.runtime.engine import Engine
from engine.runtime.state import Actor, CommandError, RoleError

CANCELLABLE = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


async def cancel_group_orders(engine: Engine, group_id: str, actor: Actor) -> list[str]:
    """Ask the broker to cancel every working entry order of a group (never its stop-loss).

    Cancels pass in any trading state. What happens to the unfilled rest is the engine's rule: a
    cancelled hedge order leaves its node short, which the hedge tree re-hedges (or, when trading
    is HALTED, records as an escalation instead of sending anything)."""
    async with engine.exclusive():
        engine.check_running()
        try:
            engine.require(actor, Role.TRADER, "cancel_group")
            group = engine.book.groups.get(group_id)
            if group is None or group.state in TERMINAL_GROUP_STATES:
                raise CommandError(f"group {group_id} is not open")
            working = [
                r
                for r in engine.book.of_group(group_id)
                if r.purpose != "STOP" and r.order_status in CANCELLABLE and r.broker_order_id
            ]
            if not working:
                raise CommandError(f"group {group_id} has no working order to cancel")
        except (RoleError, CommandError) as exc:
            await engine.audit(actor, "cancel_group", group_id, {"refused": str(exc)}, "REFUSED")
            raise
        coids = [r.client_order_id for r in working]
        await engine.audit(actor, "cancel_group", group_id, {"orders": coids}, "OK")
        for row in working:
            await stops.request_cancel(engine, row, f"cancel requested by {actor.os_user} ({actor.role.value})")
        return coids
