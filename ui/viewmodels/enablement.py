"""Which action buttons can succeed now, for this role and this selection, and why not: pure
rules the window applies to every button (enabled, with a tooltip saying what it does; or
disabled, with a tooltip saying why). They mirror the engine's rules; the engine still decides."""

from __future__ import annotations

from engine.core.model import TERMINAL_GROUP_STATES, Role
from engine.core.trading_state import TradingState
from ui.viewmodels.rows import EscalationRow, GroupRow

TERMINAL = {s.value for s in TERMINAL_GROUP_STATES}


def _role(role: Role, needed: Role) -> str:
    return "" if role is needed else f"needs the {needed.value} role (you are {role.value})"


def desk_actions(role: Role, state: TradingState) -> dict[str, str]:
    """launch, halt, reduce, resume: '' when it can succeed, else why not."""
    launch = _role(role, Role.TRADER) or (
        "" if state is TradingState.ACTIVE else f"trading is {state.value}: no new groups"
    )
    halt = "trading is already HALTED" if state is TradingState.HALTED else ""
    if state is TradingState.REDUCING:
        reduce = "trading is already REDUCING"
    elif state is TradingState.HALTED:
        reduce = _role(role, Role.RISK) and f"easing HALTED to REDUCING {_role(role, Role.RISK)}"
    else:
        reduce = ""
    resume = _role(role, Role.RISK) or ("trading is already ACTIVE" if state is TradingState.ACTIVE else "")
    return {"launch": launch, "halt": halt, "reduce": reduce, "resume": resume}


def group_actions(role: Role, state: TradingState, group: GroupRow | None) -> dict[str, str]:
    """cancel, close for the selected group."""
    trader = _role(role, Role.TRADER)
    if group is None:
        return {"cancel": trader or "select a group first", "close": trader or "select a group first"}
    finished = f"{group.group_id} is {group.state}" if group.state in TERMINAL else ""
    cancel = trader or finished
    if not cancel and group.state == "HEDGED":
        cancel = f"{group.group_id} is HEDGED; close it instead"
    if trader or finished:
        close = trader or finished
    elif group.state != "HEDGED":
        close = f"{group.group_id} is {group.state}; only a HEDGED group can be closed"
    elif state is TradingState.HALTED:
        close = "trading is HALTED: exits wait; set trading to REDUCING to close"
    else:
        close = ""
    return {"cancel": cancel, "close": close}


def escalation_actions(role: Role, row: EscalationRow | None) -> dict[str, str]:
    """acknowledge, resolve, manual_hedge, approve_retry, abandon for the selected escalation."""
    needs = {
        "acknowledge": Role.RISK,
        "resolve": Role.RISK,
        "manual_hedge": Role.TRADER,
        "approve_retry": Role.OPERATOR,
        "abandon": Role.OPERATOR,
    }
    out = {name: _role(role, needed) for name, needed in needs.items()}
    for name in out:
        if out[name]:
            continue
        if row is None:
            out[name] = "select an escalation first"
        elif row.status == "RESOLVED":
            out[name] = f"#{row.escalation_id} is RESOLVED ({row.handled_by})"
        elif name == "acknowledge" and row.status != "OPEN":
            out[name] = f"#{row.escalation_id} is already {row.status} ({row.handled_by})"
        elif name in ("approve_retry", "abandon") and row.kind != "ORPHANED_INTENT":
            out[name] = f"#{row.escalation_id} is {row.kind}: only an orphaned intent is retried or abandoned"
        elif name == "manual_hedge" and row.kind == "ORPHANED_INTENT":
            out[name] = "an orphaned intent is approved or abandoned by an operator, not hedged by hand"
    return out
