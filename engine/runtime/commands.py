"""A person's commands, as calls: each is one input to the engine's step (engine.core.command_rules
decides it, audits it and enforces the role); the call returns once that step has committed and
the I/O it started has been answered."""

from __future__ import annotations

from typing import Any

from engine.core.book import IntentRow
from engine.core.commands import (
    Abandon,
    Acknowledge,
    Actor,
    ApproveRetry,
    CancelGroup,
    CloseGroup,
    Command,
    ManualHedge,
    SetTradingState,
)
from engine.core.model import Side
from engine.core.trading_state import TradingState
from engine.runtime.engine import Engine


async def _run(engine: Engine, command: Command) -> Any:
    try:
        return await engine.execute(command)
    finally:
        if engine.failure is None:
            await engine.quiesce()


async def approve_retry(engine: Engine, ident: str, actor: Actor) -> IntentRow:
    row: IntentRow = await _run(engine, ApproveRetry(ident, actor))
    return row


async def abandon(engine: Engine, ident: str, actor: Actor) -> IntentRow:
    row: IntentRow = await _run(engine, Abandon(ident, actor))
    return row


async def acknowledge(engine: Engine, escalation_id: int, actor: Actor) -> None:
    await _run(engine, Acknowledge(escalation_id, actor))


async def manual_hedge(engine: Engine, group_id: str, symbol: str, side: Side, qty: int, actor: Actor) -> str:
    node_id: str = await _run(engine, ManualHedge(group_id, symbol, side, qty, actor))
    return node_id


async def set_trading_state(engine: Engine, state: TradingState, actor: Actor) -> None:
    await _run(engine, SetTradingState(state, actor))


async def close_group(engine: Engine, group_id: str, actor: Actor) -> None:
    await _run(engine, CloseGroup(group_id, actor))


async def cancel_group(engine: Engine, group_id: str, actor: Actor) -> list[str]:
    coids: list[str] = await _run(engine, CancelGroup(group_id, actor))
    return coids
