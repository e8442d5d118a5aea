"""A person's command as a row of the ``commands`` table, and back.

Every command reaches the engine this way, from the desk that hosts it, an attached desk, or
``trading-desk command``: ``action`` names it and ``args_json`` holds its arguments; who gave
it is the row's ``submitted_by``, set by the submitter's authenticated identity (the OS user on
SQLite, ``session_user`` inside ``desk_submit`` on PostgreSQL), never by an argument."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.commands import (
    Abandon,
    Acknowledge,
    Actor,
    ApproveRetry,
    CancelGroup,
    CloseGroup,
    Command,
    CommandError,
    Launch,
    ManualHedge,
    Resolve,
    SetTradingState,
)
from engine.core.groups import GroupSpec, GroupSpecError, parse_group
from engine.core.instruments import Instrument, paise_to_str
from engine.core.model import Role, Side
from engine.core.trading_state import TradingState
from engine.store.db import Db

ACTIONS = (
    "launch",
    "cancel",
    "close",
    "manual_hedge",
    "ack",
    "resolve",
    "approve",
    "abandon",
    "halt",
    "reduce",
    "resume",
)
_SWITCH = {"halt": TradingState.HALTED, "reduce": TradingState.REDUCING, "resume": TradingState.ACTIVE}


def new_command_id() -> str:
    return uuid.uuid4().hex


def spec_to_item(spec: GroupSpec) -> dict[str, Any]:
    """A group as the groups file spells it (what ``parse_group`` reads)."""
    item: dict[str, Any] = {"group_id": spec.group_id, "template": spec.template, "legs": []}
    for leg in spec.legs:
        raw: dict[str, Any] = {"role": leg.role.value, "symbol": leg.symbol, "side": leg.side.value, "qty": leg.qty}
        if leg.limit_price_paise is not None:
            raw["limit_price"] = paise_to_str(leg.limit_price_paise)
        item["legs"].append(raw)
    if spec.stop_trigger_paise is not None:
        item["stop_loss"] = {"trigger_price": paise_to_str(spec.stop_trigger_paise)}
    return item


def encode(command: Command) -> tuple[str, dict[str, Any]]:
    if isinstance(command, Launch):
        return "launch", {"group": spec_to_item(command.spec)}
    if isinstance(command, CancelGroup):
        return "cancel", {"group_id": command.group_id}
    if isinstance(command, CloseGroup):
        return "close", {"group_id": command.group_id}
    if isinstance(command, ManualHedge):
        args = {"group_id": command.group_id, "symbol": command.symbol, "side": command.side.value}
        return "manual_hedge", {**args, "qty": command.qty}
    if isinstance(command, Acknowledge):
        return "ack", {"escalation_id": command.escalation_id}
    if isinstance(command, Resolve):
        return "resolve", {"escalation_id": command.escalation_id, "note": command.note}
    if isinstance(command, ApproveRetry):
        return "approve", {"ident": command.ident}
    if isinstance(command, Abandon):
        return "abandon", {"ident": command.ident}
    return {v: k for k, v in _SWITCH.items()}[command.state], {}


def _str(args: Mapping[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value:
        raise CommandError(f"argument {key} must be a non-empty string, got {value!r}")
    return value


def _int(args: Mapping[str, Any], key: str) -> int:
    value = args.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError(f"argument {key} must be an integer, got {value!r}")
    return value


def decode(action: str, args_json: str, actor: Actor, catalog: Mapping[str, Instrument]) -> Command:
    """The command a row asks for; CommandError (the reason) when the row is malformed."""
    try:
        args = json.loads(args_json)
    except ValueError as exc:
        raise CommandError(f"arguments are not JSON: {exc}") from None
    if not isinstance(args, dict):
        raise CommandError("arguments must be a JSON object")
    if action == "launch":
        try:
            return Launch(parse_group(args.get("group"), catalog), actor)
        except GroupSpecError as exc:
            raise CommandError(str(exc)) from None
    if action == "cancel":
        return CancelGroup(_str(args, "group_id"), actor)
    if action == "close":
        return CloseGroup(_str(args, "group_id"), actor)
    if action == "manual_hedge":
        try:
            side = Side(_str(args, "side"))
        except ValueError:
            raise CommandError(f"side must be BUY or SELL, got {args.get('side')!r}") from None
        return ManualHedge(_str(args, "group_id"), _str(args, "symbol"), side, _int(args, "qty"), actor)
    if action == "ack":
        return Acknowledge(_int(args, "escalation_id"), actor)
    if action == "resolve":
        note = args.get("note")
        return Resolve(_int(args, "escalation_id"), note if isinstance(note, str) else "", actor)
    if action == "approve":
        return ApproveRetry(_str(args, "ident"), actor)
    if action == "abandon":
        return Abandon(_str(args, "ident"), actor)
    if action in _SWITCH:
        return SetTradingState(_SWITCH[action], actor)
    raise CommandError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")


def outcome_json(value: Any) -> str:
    """A command's answer as the submitter reads it (enums by value, ids as strings)."""
    if value is None:
        return "{}"
    if hasattr(value, "value") and isinstance(value.value, str):
        return json.dumps({"value": value.value})
    if isinstance(value, (str, int, float, bool)):
        return json.dumps({"value": value})
    return json.dumps({"value": str(value)})


@dataclass(frozen=True, slots=True)
class CommandRow:
    seq: int
    command_id: str
    action: str
    args_json: str
    submitted_by: str
    role: str
    status: str
    outcome_json: str | None
    error: str | None
    role_needed: str | None


_COLUMNS = "seq, command_id, action, args_json, submitted_by, role, status, outcome_json, error, role_needed"


def _row(r: tuple[Any, ...]) -> CommandRow:
    return CommandRow(
        int(r[0]),
        str(r[1]),
        str(r[2]),
        str(r[3]),
        str(r[4]),
        str(r[5]),
        str(r[6]),
        None if r[7] is None else str(r[7]),
        None if r[8] is None else str(r[8]),
        None if r[9] is None else str(r[9]),
    )


async def submitted(db: Db) -> list[CommandRow]:
    """Rows waiting for the engine, in submission order (each time from the start: on PostgreSQL
    a lower seq can become visible after a higher one)."""
    return [_row(r) for r in await db.fetch(f"SELECT {_COLUMNS} FROM commands WHERE status='SUBMITTED' ORDER BY seq")]


async def by_id(db: Db, command_id: str) -> CommandRow | None:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM commands WHERE command_id=?", (command_id,))
    return _row(rows[0]) if rows else None


async def submit(db: Db, command_id: str, action: str, args: Mapping[str, Any], role: Role, user: str) -> int:
    """Insert a command row (a retry of the same id is applied once) and return its seq.

    SQLite: ``user`` is this process's OS user (engine.store.users.os_user). PostgreSQL: through
    ``desk_submit``, which records ``session_user``; ``user`` is not sent at all."""
    if action not in ACTIONS:
        raise CommandError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
    args_json = json.dumps(dict(args), sort_keys=True)
    if db.dialect == "postgresql":
        rows = await db.fetch("SELECT desk_submit(?, ?, ?, ?)", (command_id, action, args_json, role.value))
        return int(rows[0][0])
    await db.execute("BEGIN IMMEDIATE")
    try:
        await db.execute(
            "INSERT INTO commands (command_id, action, args_json, submitted_by, role, ts_submitted_ms)"
            " VALUES (?,?,?,?,?,?) ON CONFLICT (command_id) DO NOTHING",
            (command_id, action, args_json, user, role.value, time.time_ns() // 1_000_000),
        )
        rows = await db.fetch(
            "SELECT seq, submitted_by, action, args_json, role FROM commands WHERE command_id=?", (command_id,)
        )
        await db.commit()
    except BaseException:
        if db.in_transaction:
            await db.rollback()
        raise
    seq, by, was_action, was_args, was_role = rows[0]
    if (by, was_action, was_args, was_role) != (user, action, args_json, role.value):
        raise CommandError(f"command id {command_id} was already used for a different command")
    return int(seq)
