"""Scripted misbehaviour of the paper exchange server: the pure part (no I/O, no clock).

A script makes the real exchange (``engine.paper.server.ExchangeServer``) misbehave in exactly
specified ways over the real protocol: withhold a reply, answer an error or a made-up reply instead
of executing, patch fields of a real reply, hold a cancel, inject events (well-formed or not), step
the exchange clock, move a market, and drop or delay logged events on their way to the clients.
The format is documented in docs/EXCHANGE_PROTOCOL.md ("Scripts"). This module parses and
validates a script (``parse_script``), counts occurrences and says which rules fire
(``Script.fire``), orders the fired actions into phases (``plan``), renders templates
(``render``), and filters live delivery (``LiveFilters``). The server does the rest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, TypeVar

T = TypeVar("T")

# Requests a rule can be about, plus "event": an event the venue commits to its log.
REQUEST_KINDS: Final = ("place", "cancel", "order", "find", "orders", "time")
RULE_KINDS: Final = (*REQUEST_KINDS, "event")

# Error codes a script may answer with (engine.paper.protocol.ERROR_CODES; kept literal so that
# this module imports nothing of the server's).
ERROR_CODES: Final = frozenset(
    {"BAD_JSON", "TOO_LARGE", "UNKNOWN_TYPE", "BAD_FIELD", "UNKNOWN_SYMBOL", "UNKNOWN_ORDER", "INTERNAL"}
)

MAX_REPEAT_CHARS: Final = 16 * 1024 * 1024  # an oversized field, yes; a memory bomb, no

# The vocabulary of templates and matches. A name is flat (``qty``) or prefixed (``order.qty``).
REQUEST_FIELDS: Final = frozenset(
    {
        "req_id",
        "client_order_id",
        "broker_order_id",
        "symbol",
        "side",
        "qty",
        "order_type",
        "limit_price_paise",
        "trigger_price_paise",
    }
)
ORDER_FIELDS: Final = frozenset(
    {
        "broker_order_id",
        "client_order_id",
        "symbol",
        "side",
        "qty",
        "order_type",
        "status",
        "filled_qty",
        "remaining_qty",
        "ts_exchange_ms",
        "reason",
        "limit_price_paise",
        "trigger_price_paise",
    }
)
REPLY_FIELDS: Final = frozenset(
    {"type", "broker_order_id", "client_order_id", "status", "ts_exchange_ms", "reason", "code", "message"}
)
EVENT_FIELDS: Final = frozenset(
    {
        "type",
        "seq",
        "trade_id",
        "broker_order_id",
        "client_order_id",
        "symbol",
        "side",
        "qty",
        "price_paise",
        "status",
        "filled_qty",
        "ts_exchange_ms",
        "reason",
    }
)
EXTRA_NAMES: Final = frozenset({"now_ms", "n", "rule", "seq"})
_PREFIXES: Final = {"request": REQUEST_FIELDS, "order": ORDER_FIELDS, "reply": REPLY_FIELDS, "event": EVENT_FIELDS}
NAMES: Final = frozenset(
    {*REQUEST_FIELDS, *ORDER_FIELDS, *REPLY_FIELDS, *EVENT_FIELDS, *EXTRA_NAMES}
    | {f"{prefix}.{name}" for prefix, names in _PREFIXES.items() for name in names}
)

_NAME = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_MISSING: Final = object()


class ScriptError(ValueError):
    """A script is malformed. The message names the rule, the action and the problem."""


class TemplateError(KeyError):
    """A template names a value this request does not have (e.g. no order to take it from)."""


# --- actions -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Withhold:
    """Execute the request but send no reply (a lost ack)."""


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """Answer this protocol error instead of executing: nothing changes at the exchange."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer this (templated) reply instead of executing; ``req_id`` is added."""

    template: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Patch:
    """Execute, then set these (templated) fields on the reply."""

    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PatchOrder:
    """Execute, then set these fields on the reply's order snapshot(s): ``order`` of an ``order``
    or ``found`` reply, and every snapshot of an ``orders`` reply that matches ``where``."""

    fields: Mapping[str, Any]
    where: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class HoldCancel:
    """Put the order in PENDING_CANCEL at the venue and never finish the cancel: the order stays
    matchable (it may keep filling) and later cancels of it are answered PENDING_CANCEL again."""


@dataclass(frozen=True, slots=True)
class Inject:
    """After the reply, append an event to the exchange's log (so it has a real seq) and deliver
    it live. ``like`` starts from the real order's status report or a fill of its remainder."""

    template: Any
    like: Literal["status", "fill"] | None = None


@dataclass(frozen=True, slots=True)
class ClockStep:
    """Step the exchange clock by ``ms`` (either sign) from now on."""

    ms: int


@dataclass(frozen=True, slots=True)
class Drop:
    """From now on, logged events matching ``where`` are not delivered live (at most ``count``;
    None: every one). They stay in the log: a replay after a reconnect delivers them."""

    where: Mapping[str, Any]
    count: int | None = None


@dataclass(frozen=True, slots=True)
class Delay:
    """From now on, logged events matching ``where`` are held back and delivered live only after
    ``after`` further events have been delivered (at most ``count`` of them; None: every one)."""

    where: Mapping[str, Any]
    after: int
    count: int | None = None


@dataclass(frozen=True, slots=True)
class Market:
    """Move a market of the venue: its last price and/or its depth."""

    symbol: str
    price_paise: int | None = None
    lots_per_level: int | None = None
    levels: int | None = None
    when: Literal["before", "after"] = "after"


Action = Withhold | ErrorReply | Answer | Patch | PatchOrder | HoldCancel | Inject | ClockStep | Drop | Delay | Market

ACTION_KEYS: Final = (
    "withhold",
    "error",
    "answer",
    "patch",
    "patch_order",
    "hold_cancel",
    "inject",
    "clock_step_ms",
    "drop",
    "delay",
    "market",
)
_OPTIONS: Final[dict[str, frozenset[str]]] = {
    "withhold": frozenset(),
    "error": frozenset({"message"}),
    "answer": frozenset(),
    "patch": frozenset(),
    "patch_order": frozenset({"where"}),
    "hold_cancel": frozenset(),
    "inject": frozenset({"like"}),
    "clock_step_ms": frozenset(),
    "drop": frozenset({"count"}),
    "delay": frozenset({"after", "count"}),
    "market": frozenset({"when"}),
}
# What each kind of rule may do. "event" rules fire inside the venue's commit: no reply to shape.
_ALLOWED: Final[dict[str, frozenset[str]]] = {
    "place": frozenset(ACTION_KEYS) - {"hold_cancel", "patch_order"},
    "cancel": frozenset(ACTION_KEYS) - {"patch_order"},
    "order": frozenset(ACTION_KEYS) - {"hold_cancel"},
    "find": frozenset(ACTION_KEYS) - {"hold_cancel"},
    "orders": frozenset(ACTION_KEYS) - {"hold_cancel"},
    "time": frozenset(ACTION_KEYS) - {"hold_cancel", "patch_order"},
    "event": frozenset({"inject", "clock_step_ms", "drop", "delay", "market"}),
}
_INSTEAD: Final = ("error", "answer", "hold_cancel")  # each replaces the normal execution


@dataclass(frozen=True, slots=True)
class Rule:
    number: int  # 1-based position in the script
    on: str
    nth: int  # 1-based occurrence among matching requests; 0: every one
    match: Mapping[str, Any]
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Fired:
    rule: Rule
    occurrence: int  # how many requests (or events) this rule has matched so far, this one included


# --- parsing -----------------------------------------------------------------------------------


def parse_script(raw: Any, symbols: Mapping[str, Any] | None = None) -> Script:
    """Validate a decoded script (a JSON list of rules). ``symbols``: the catalog, to check the
    symbols a ``market`` action names (with their tick). Raises ScriptError naming the problem."""
    if not isinstance(raw, list):
        raise ScriptError(f"a script must be a JSON list of rules, got {_kind(raw)}")
    return Script(tuple(_parse_rule(i, item, symbols) for i, item in enumerate(raw, start=1)))


def _parse_rule(number: int, raw: Any, symbols: Mapping[str, Any] | None) -> Rule:
    where = f"rule {number}"
    if not isinstance(raw, Mapping):
        raise ScriptError(f"{where}: a rule must be a JSON object, got {_kind(raw)}")
    unknown = set(raw) - {"on", "nth", "match", "do", "comment"}
    if unknown:
        raise ScriptError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; known: on, nth, match, do")
    on = raw.get("on")
    if on not in RULE_KINDS:
        raise ScriptError(f"{where}: 'on' must be one of {', '.join(RULE_KINDS)}, got {_short(on)}")
    nth = raw.get("nth", 1)
    if isinstance(nth, bool) or not isinstance(nth, int) or nth < 0:
        raise ScriptError(f"{where}: 'nth' must be an integer >= 0 (0: every time), got {_short(nth)}")
    match = raw.get("match", {})
    if not isinstance(match, Mapping):
        raise ScriptError(f"{where}: 'match' must be a JSON object of fields, got {_kind(match)}")
    for key in match:
        _check_name(f"{where}: match", str(key))
    do = raw.get("do")
    if not isinstance(do, list):
        raise ScriptError(f"{where}: 'do' must be a list of actions, got {_kind(do)}")
    actions = tuple(_parse_action(f"{where}, action {i}", on, item, symbols) for i, item in enumerate(do, start=1))
    keys = [_action_key(a) for a in actions]
    instead = [k for k in keys if k in _INSTEAD]
    if len(instead) > 1:
        raise ScriptError(f"{where}: at most one of error, answer, hold_cancel per rule, got {', '.join(instead)}")
    if instead and {"patch", "patch_order", "withhold"} & set(keys) and instead[0] != "hold_cancel":
        raise ScriptError(f"{where}: '{instead[0]}' replaces the reply; it cannot be patched or withheld")
    return Rule(number, str(on), nth, dict(match), actions)


def _parse_action(where: str, on: str, raw: Any, symbols: Mapping[str, Any] | None) -> Action:
    if not isinstance(raw, Mapping):
        raise ScriptError(f"{where}: an action must be a JSON object, got {_kind(raw)}")
    kinds = [k for k in raw if k in ACTION_KEYS]
    if len(kinds) != 1:
        found = ", ".join(map(str, raw)) or "nothing"
        raise ScriptError(f"{where}: an action has exactly one of {', '.join(ACTION_KEYS)}; got {found}")
    key = kinds[0]
    extra = set(raw) - {key} - _OPTIONS[key]
    if extra:
        raise ScriptError(f"{where}: '{key}' takes no option(s) {', '.join(sorted(map(str, extra)))}")
    if key not in _ALLOWED[on]:
        raise ScriptError(f"{where}: '{key}' is not possible in a rule on {on!r}")
    value = raw[key]
    if key == "withhold" or key == "hold_cancel":
        if value is not True:
            raise ScriptError(f"{where}: '{key}' must be true")
        return Withhold() if key == "withhold" else HoldCancel()
    if key == "error":
        if value not in ERROR_CODES:
            raise ScriptError(f"{where}: 'error' must be one of {', '.join(sorted(ERROR_CODES))}, got {_short(value)}")
        message = raw.get("message", f"scripted {value}")
        if not isinstance(message, str):
            raise ScriptError(f"{where}: 'message' must be a string")
        return ErrorReply(str(value), message)
    if key == "answer":
        if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
            raise ScriptError(f"{where}: 'answer' must be a reply object with a 'type'")
        _check_template(where, value)
        return Answer(dict(value))
    if key == "patch":
        _fields(where, key, value)
        return Patch(dict(value))
    if key == "patch_order":
        _fields(where, key, value)
        where_fields = raw.get("where", {})
        _fields(where, "where", where_fields, allow_empty=True)
        return PatchOrder(dict(value), dict(where_fields))
    if key == "inject":
        like = raw.get("like")
        if like not in (None, "status", "fill"):
            raise ScriptError(f"{where}: 'like' must be 'status' or 'fill', got {_short(like)}")
        if like is not None and not isinstance(value, Mapping):
            raise ScriptError(f"{where}: with 'like', 'inject' must be an object of fields to set")
        if on == "orders" and like is not None:
            raise ScriptError(f"{where}: an 'orders' request names no single order to be 'like'")
        _check_template(where, value)
        return Inject(dict(value) if isinstance(value, Mapping) else value, like)
    if key == "clock_step_ms":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScriptError(f"{where}: 'clock_step_ms' must be an integer number of ms, got {_short(value)}")
        return ClockStep(value)
    if key in ("drop", "delay"):
        _fields(where, key, value, allow_empty=True)
        count = raw.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ScriptError(f"{where}: 'count' must be an integer >= 1, got {_short(count)}")
        if key == "drop":
            return Drop(dict(value), count)
        after = raw.get("after")
        if isinstance(after, bool) or not isinstance(after, int) or after < 1:
            raise ScriptError(f"{where}: 'delay' needs 'after': the number (>= 1) of events to let pass first")
        return Delay(dict(value), after, count)
    return _parse_market(where, value, raw.get("when", "after"), symbols)


def _parse_market(where: str, value: Any, when: Any, symbols: Mapping[str, Any] | None) -> Market:
    if not isinstance(value, Mapping):
        raise ScriptError(f"{where}: 'market' must be an object with 'symbol'")
    unknown = set(value) - {"symbol", "price_paise", "lots_per_level", "levels"}
    if unknown:
        raise ScriptError(f"{where}: 'market' has unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    symbol = value.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise ScriptError(f"{where}: 'market' needs a 'symbol'")
    if symbols is not None and symbol not in symbols:
        raise ScriptError(f"{where}: unknown symbol {symbol!r}")
    numbers: dict[str, int | None] = {}
    for name, low in (("price_paise", 1), ("lots_per_level", 0), ("levels", 1)):
        number = value.get(name)
        if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < low):
            raise ScriptError(f"{where}: 'market' field {name!r} must be an integer >= {low}, got {_short(number)}")
        numbers[name] = number
    if all(v is None for v in numbers.values()):
        raise ScriptError(f"{where}: 'market' changes nothing: give price_paise, lots_per_level and/or levels")
    if numbers["levels"] is not None and numbers["lots_per_level"] is None:
        raise ScriptError(f"{where}: 'market' with 'levels' needs 'lots_per_level' too")
    price = numbers["price_paise"]
    tick = getattr(symbols.get(symbol), "tick_paise", None) if symbols is not None else None
    if price is not None and isinstance(tick, int) and tick > 0 and price % tick:
        raise ScriptError(f"{where}: price {price} paise is not on the {tick} paise tick of {symbol}")
    if when not in ("before", "after"):
        raise ScriptError(f"{where}: 'when' must be 'before' or 'after', got {_short(when)}")
    return Market(symbol, price, numbers["lots_per_level"], numbers["levels"], when)


def _fields(where: str, key: str, value: Any, *, allow_empty: bool = False) -> None:
    if not isinstance(value, Mapping) or (not value and not allow_empty):
        raise ScriptError(f"{where}: '{key}' must be a non-empty JSON object of fields")
    _check_template(where, value)


def _check_template(where: str, value: Any) -> None:
    """Every ``{name}`` a template uses is in the vocabulary; special forms are well-formed."""
    if isinstance(value, str):
        for name in _NAME.findall(value):
            _check_name(where, name)
    elif isinstance(value, list):
        for item in value:
            _check_template(where, item)
    elif isinstance(value, Mapping):
        if "$repeat" in value:
            times = value.get("times")
            text = value.get("$repeat")
            if set(value) != {"$repeat", "times"} or not isinstance(text, str) or not text:
                raise ScriptError(f'{where}: write a long string as {{"$repeat": "x", "times": N}}')
            if isinstance(times, bool) or not isinstance(times, int) or not 0 <= times * len(text) <= MAX_REPEAT_CHARS:
                raise ScriptError(f"{where}: '$repeat' times must give 0 to {MAX_REPEAT_CHARS} characters")
            _check_template(where, text)
        elif "$number" in value:
            if set(value) != {"$number"} or value["$number"] not in ("NaN", "Infinity", "-Infinity"):
                raise ScriptError(f'{where}: \'$number\' is one of "NaN", "Infinity", "-Infinity"')
        else:
            for item in value.values():
                _check_template(where, item)


def _check_name(where: str, name: str) -> None:
    if name not in NAMES:
        raise ScriptError(f"{where}: unknown name {{{name}}}; see docs/EXCHANGE_PROTOCOL.md, Scripts")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _action_key(action: Action) -> str:
    return {
        Withhold: "withhold",
        ErrorReply: "error",
        Answer: "answer",
        Patch: "patch",
        PatchOrder: "patch_order",
        HoldCancel: "hold_cancel",
        Inject: "inject",
        ClockStep: "clock_step_ms",
        Drop: "drop",
        Delay: "delay",
        Market: "market",
    }[type(action)]


# --- firing ------------------------------------------------------------------------------------


@dataclass
class Script:
    """The rules and their occurrence counters (the only state)."""

    rules: tuple[Rule, ...]
    seen: list[int] = field(default_factory=list)  # per rule: matching requests so far
    fired: list[int] = field(default_factory=list)  # per rule: times it fired

    def __post_init__(self) -> None:
        self.seen = [0] * len(self.rules)
        self.fired = [0] * len(self.rules)

    def wants(self, kind: str) -> bool:
        return any(r.on == kind for r in self.rules)

    def fire(self, kind: str, fields: Mapping[str, Any]) -> list[Fired]:
        """Count this request (or event) for every rule it matches; return the rules that fire now,
        in script order. ``fields``: a match context (``context()``)."""
        out: list[Fired] = []
        for i, rule in enumerate(self.rules):
            if rule.on != kind or not matches(rule.match, fields):
                continue
            self.seen[i] += 1
            if rule.nth == 0 or rule.nth == self.seen[i]:
                self.fired[i] += 1
                out.append(Fired(rule, self.seen[i]))
        return out

    def stats(self) -> dict[str, int]:
        out = {"script_rules_fired": sum(self.fired)}
        for i, rule in enumerate(self.rules):
            out[f"script_rule{rule.number}_seen"] = self.seen[i]
            out[f"script_rule{rule.number}_fired"] = self.fired[i]
        return out


@dataclass
class Plan:
    """The fired actions of one request, in the order the server applies them."""

    before: list[tuple[ClockStep | Drop | Delay | Market, Fired]] = field(default_factory=list)
    instead: tuple[ErrorReply | Answer | HoldCancel, Fired] | None = None
    after: list[tuple[Market, Fired]] = field(default_factory=list)
    patches: list[tuple[Patch | PatchOrder, Fired]] = field(default_factory=list)
    withhold: bool = False
    injects: list[tuple[Inject, Fired]] = field(default_factory=list)


def plan(fired: Sequence[Fired]) -> Plan:
    """Phases: before execution (clock steps, drop/delay filters, ``market`` with when=before),
    instead of execution (the first error/answer/hold_cancel of any fired rule), after execution
    (``market`` when=after), then the reply (patched, or withheld), then injected events."""
    p = Plan()
    for f in fired:
        for action in f.rule.actions:
            if isinstance(action, Market) and action.when == "after":
                p.after.append((action, f))
            elif isinstance(action, ClockStep | Drop | Delay | Market):
                p.before.append((action, f))
            elif isinstance(action, ErrorReply | Answer | HoldCancel):
                if p.instead is None:
                    p.instead = (action, f)
            elif isinstance(action, Patch | PatchOrder):
                p.patches.append((action, f))
            elif isinstance(action, Withhold):
                p.withhold = True
            else:
                p.injects.append((action, f))
    return p


# --- matching and templating -------------------------------------------------------------------


def context(
    request: Mapping[str, Any] | None = None,
    order: Mapping[str, Any] | None = None,
    reply: Mapping[str, Any] | None = None,
    event: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The names a match or a template sees. Flat names resolve reply, then request, then event,
    then order (``{broker_order_id}`` of a place is the real id its reply carries); prefixed names
    (``order.status``) say which one. ``order`` gets ``remaining_qty`` added."""
    out: dict[str, Any] = {}
    if order is not None:
        order = dict(order)
        qty, filled = order.get("qty"), order.get("filled_qty")
        if isinstance(qty, int) and isinstance(filled, int):
            order["remaining_qty"] = qty - filled
    for prefix, values in (("order", order), ("event", event), ("request", request), ("reply", reply)):
        if values is None:
            continue
        names = _PREFIXES[prefix]
        for key, value in values.items():
            if key in names:
                out[key] = value
                out[f"{prefix}.{key}"] = value
    out.update(extra)
    return out


def matches(where: Mapping[str, Any], fields: Any) -> bool:
    """Every field of ``where`` is in ``fields`` with the same JSON value (true is not 1)."""
    if not isinstance(fields, Mapping):
        return False
    return all(same(fields.get(key, _MISSING), value) for key, value in where.items())


def same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) if type(a) is type(b) or (_number(a) and _number(b)) else False


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def render(template: Any, names: Mapping[str, Any]) -> Any:
    """Fill a template. A string that is exactly ``{name}`` becomes the value itself (an int stays
    an int); other strings get each ``{name}`` replaced by its text. ``{"$repeat": s, "times": n}``
    is s repeated n times; ``{"$number": "NaN"}`` is NaN (or Infinity, -Infinity). Raises
    TemplateError naming a name that ``names`` does not have."""
    if isinstance(template, str):
        whole = _NAME.fullmatch(template)
        if whole:
            return _value(whole.group(1), names)
        return _NAME.sub(lambda m: _text(_value(m.group(1), names)), template)
    if isinstance(template, list):
        return [render(item, names) for item in template]
    if isinstance(template, Mapping):
        if "$repeat" in template:
            return str(render(template["$repeat"], names)) * int(template["times"])
        if "$number" in template:
            return float(str(template["$number"]).lower().replace("infinity", "inf"))
        return {str(key): render(value, names) for key, value in template.items()}
    return template


def _value(name: str, names: Mapping[str, Any]) -> Any:
    value = names.get(name, _MISSING)
    if value is _MISSING:
        raise TemplateError(name)
    return value


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def status_like(order: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """The order's status report as the venue would send it now (``inject`` with like=status)."""
    return {
        "type": "order",
        "broker_order_id": order.get("broker_order_id"),
        "client_order_id": order.get("client_order_id"),
        "status": order.get("status"),
        "filled_qty": order.get("filled_qty"),
        "ts_exchange_ms": now_ms,
        "reason": "",
    }


def fill_like(order: Mapping[str, Any], now_ms: int, trade_id: str, price_paise: int) -> dict[str, Any]:
    """A fill of the order's unfilled remainder (its whole qty if none is left), as the venue would
    send it (``inject`` with like=fill)."""
    qty, filled = order.get("qty"), order.get("filled_qty")
    remaining = qty - filled if isinstance(qty, int) and isinstance(filled, int) else qty
    return {
        "type": "fill",
        "trade_id": trade_id,
        "broker_order_id": order.get("broker_order_id"),
        "client_order_id": order.get("client_order_id"),
        "symbol": order.get("symbol"),
        "side": order.get("side"),
        "qty": remaining if isinstance(remaining, int) and remaining > 0 else qty,
        "price_paise": price_paise,
        "ts_exchange_ms": now_ms,
    }


# --- live delivery filters ---------------------------------------------------------------------


@dataclass
class _Filter:
    where: Mapping[str, Any]
    left: int | None  # None: unlimited
    after: int = 0  # delay only


@dataclass
class _Held(Generic[T]):
    item: T
    wait: int  # further deliveries still to let pass


@dataclass
class FilterStats:
    dropped: int = 0
    delayed: int = 0


class LiveFilters(Generic[T]):
    """Drops and delays of live delivery, applied to every logged event before it is offered to
    the connections. ``offer(item)`` returns what to deliver now, in order: the item (unless it is
    dropped or held back), then any held items whose wait ran out. Only delivered items count as
    "further events" for a held one. ``event_of`` gives an item's event (a dict, or anything)."""

    def __init__(self, event_of: Callable[[T], Any]) -> None:
        self._event_of = event_of
        self._drops: list[_Filter] = []
        self._delays: list[_Filter] = []
        self._held: list[_Held[T]] = []
        self.stats = FilterStats()

    @property
    def active(self) -> bool:
        return bool(self._drops or self._delays or self._held)

    def drop(self, where: Mapping[str, Any], count: int | None = None) -> None:
        self._drops.append(_Filter(dict(where), count))

    def delay(self, where: Mapping[str, Any], after: int, count: int | None = None) -> None:
        self._delays.append(_Filter(dict(where), count, after))

    def held(self) -> int:
        return len(self._held)

    def offer(self, item: T) -> list[T]:
        event = self._event_of(item)
        out: list[T] = []
        if _take(self._drops, event) is not None:
            self.stats.dropped += 1
        else:
            delay = _take(self._delays, event)
            if delay is not None:
                self.stats.delayed += 1
                self._held.append(_Held(item, delay.after))
            else:
                out.append(item)
        index = 0
        while index < len(out):  # each delivery lets every held item come one step closer
            index += 1
            due = []
            for held in self._held:
                held.wait -= 1
                if held.wait <= 0:
                    due.append(held)
            for held in due:
                self._held.remove(held)
                out.append(held.item)
        return out


def _take(filters: list[_Filter], event: Any) -> _Filter | None:
    for f in filters:
        if matches(f.where, event):
            if f.left is not None:
                f.left -= 1
                if f.left <= 0:
                    filters.remove(f)
            return f
    return None
