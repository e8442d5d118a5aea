"""Inputs to ``step`` as journal rows (JSON), and back.

An input is a tree of frozen dataclasses (engine.core.inputs, events, commands, groups). Each
dataclass is written as a list ``[ClassName, field, field, ...]`` in field order; enums as their
value, tuples and frozensets as lists. Decoding is directed by the field types, so every value
comes back with its exact type (an ``OrderStatus``, not a string) and the step it feeds decides
exactly as it did. Only the classes named below can be decoded: a row can never build anything
else."""

from __future__ import annotations

import dataclasses
import json
import operator
import types
import typing
from enum import Enum
from typing import Any

from engine.core import commands, events, groups, inputs

__all__ = ["KINDS", "CodecError", "decode_input", "encode_input", "input_kind", "input_row"]


class CodecError(ValueError):
    """A journaled input row that cannot be read back (corrupt, or from a newer engine)."""


_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        inputs.BrokerEvents,
        inputs.Placed,
        inputs.PlaceUnsent,
        inputs.CancelAnswered,
        inputs.LookedUp,
        inputs.BrokerTime,
        inputs.Tick,
        inputs.Recover,
        inputs.Given,
        events.PlaceAck,
        events.CancelAck,
        events.FillReport,
        events.OrderUpdate,
        events.MalformedEvent,
        events.OrderSnapshot,
        commands.Actor,
        commands.Launch,
        commands.CancelGroup,
        commands.CloseGroup,
        commands.ManualHedge,
        commands.Acknowledge,
        commands.Resolve,
        commands.ApproveRetry,
        commands.Abandon,
        commands.SetTradingState,
        groups.LegSpec,
        groups.GroupSpec,
    )
}

_TAGGED = frozenset(_CLASSES.values())

KINDS: dict[type, str] = {
    inputs.BrokerEvents: "events",
    inputs.Placed: "placed",
    inputs.PlaceUnsent: "place_unsent",
    inputs.CancelAnswered: "cancel_answered",
    inputs.LookedUp: "looked_up",
    inputs.BrokerTime: "broker_time",
    inputs.Tick: "tick",
    inputs.Recover: "recover",
    inputs.Given: "command",
}

_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.init)
        _FIELDS[cls] = found
    return found


def input_kind(inp: inputs.Input) -> str:
    return KINDS[type(inp)]


def input_row(
    inp: inputs.Input, seq: int, epoch: int | None, wall_ms: int, broker_ms: int | None, drawn: list[str]
) -> tuple[Any, ...]:
    """The ``inputs`` row of a stepped input (columns of migration 007, in order)."""
    return (
        seq,
        KINDS[type(inp)],
        epoch,
        inp.now_ns,
        wall_ms,
        broker_ms if broker_ms is None or broker_ms >= 0 else None,
        inp.command_id if isinstance(inp, inputs.Given) else None,
        encode_input(inp),
        json.dumps(drawn) if drawn else "[]",
    )


def encode_input(inp: inputs.Input) -> str:
    return json.dumps(_enc(inp), separators=(",", ":"), ensure_ascii=False)


_PLAIN = frozenset({int, str, bool, type(None)})
_GETTERS: dict[type, Any] = {}


def _enc(value: Any) -> Any:
    cls = type(value)
    if cls in _PLAIN:
        return value
    if isinstance(value, Enum):
        return value.value
    getter = _GETTERS.get(cls)
    if getter is None and cls in _TAGGED:
        names = [name for name, _ in _fields(cls)]
        getter = _GETTERS[cls] = (
            operator.attrgetter(*names) if len(names) > 1 else (lambda v, n=names[0]: (getattr(v, n),))
        )
    if getter is not None:
        return [cls.__name__, *map(_enc, getter(value))]
    if isinstance(value, (tuple, list)):
        return [_enc(v) for v in value]
    if isinstance(value, frozenset):
        return sorted(_enc(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _enc(v) for k, v in value.items()}
    if isinstance(value, (int, str)):
        return value
    raise CodecError(f"cannot journal a {cls.__name__} in an input")


def decode_input(body_json: str) -> inputs.Input:
    try:
        raw = json.loads(body_json)
        value = _dec_dataclass(raw)
    except CodecError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise CodecError(f"input row cannot be read: {exc}") from None
    if type(value) not in KINDS:
        raise CodecError(f"input row holds a {type(value).__name__}, not an input")
    return typing.cast(inputs.Input, value)


def _dec_dataclass(raw: Any) -> Any:
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], str):
        raise CodecError(f"expected a tagged record, got {str(raw)[:60]!r}")
    cls = _CLASSES.get(raw[0])
    if cls is None:
        raise CodecError(f"unknown record type {raw[0]!r}")
    spec = _fields(cls)
    if len(raw) - 1 != len(spec):
        raise CodecError(f"{raw[0]} has {len(raw) - 1} fields, expected {len(spec)}")
    return cls(**{name: _dec(hint, v) for (name, hint), v in zip(spec, raw[1:], strict=True)})


def _dec(hint: Any, raw: Any) -> Any:
    if hint is Any:
        return raw
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if raw is None:
            return None
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if isinstance(raw, list) and raw and isinstance(raw[0], str) and raw[0] in _CLASSES:
            return _dec_dataclass(raw)
        return _dec(options[0], raw) if len(options) == 1 else _scalar(options, raw)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_dec(item, v) for v in _list(raw))
    if origin is frozenset:
        item = typing.get_args(hint)[0]
        return frozenset(_dec(item, v) for v in _list(raw))
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(raw, dict):
            raise CodecError("expected an object")
        return {str(k): _dec(item, v) for k, v in raw.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dec_dataclass(raw)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(raw)
    if hint in (int, str, bool):
        if raw is not None and not isinstance(raw, hint):
            raise CodecError(f"expected {hint.__name__}, got {type(raw).__name__}")
        return raw
    raise CodecError(f"cannot decode a field of type {hint!r}")


def _scalar(options: list[Any], raw: Any) -> Any:
    for option in options:
        if isinstance(option, type) and issubclass(option, Enum):
            try:
                return option(raw)
            except ValueError:
                continue
        elif isinstance(option, type) and isinstance(raw, option):
            return raw
    raise CodecError(f"{raw!r} is none of {options}")


def _list(raw: Any) -> list[Any]:
    if not isinstance(raw, list):
        raise CodecError("expected a list")
    return raw
