"""Rebuild the engine's state at any input, by stepping the journaled inputs through ``step``
from a checkpoint, and check that doing so reproduces what the journal holds.

What "reproduces" means, input by input (rows are matched on ``cause_seq``):
- every transition (orders, intents, groups, the clock, the broker), fill, escalation, refused
  event and audit row the input caused, column for column, in order;
- every order (intent row) and hedge node it created, with its rule and the facts it read;
- at a periodic checkpoint, the whole in-memory state, field for field;
- at a restart, the state the new engine loaded, for every row it loaded;
- at the end, every order, node and group row as the journal holds it now.

The first input where any of these differ is reported: a defect in the engine (a decision that
is not a function of its input), or a journal changed after the fact.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from engine.audit.checkpoint import CheckpointError, load_state_blob
from engine.audit.codec import CodecError, decode_input, input_kind
from engine.audit.source import JournalSource
from engine.core.book import IntentRow, NodeRow
from engine.core.effects import Commit
from engine.core.state import EngineState
from engine.core.step import step
from engine.store.rows import INTENT_COLUMNS, NODE_COLUMNS, intent_values, node_values

__all__ = ["Mismatch", "ReplayError", "Replayed", "replay"]

_PAGE = 2_000  # inputs read per query

# What an order and a node are born with (the columns no later step changes).
_INTENT_CHANGING = {
    "status",
    "order_status",
    "broker_order_id",
    "filled_qty",
    "fills_qty",
    "reason",
    "ts_ack_exchange_ms",
    "ts_updated_local_ns",
    "ts_triggered_exchange_ms",
    "ts_cancel_requested_exchange_ms",
}
_INTENT_BIRTH = tuple(c for c in INTENT_COLUMNS if c not in _INTENT_CHANGING)
_NODE_CHANGING = {"filled_qty", "status", "reason", "escalation_id", "ts_updated_local_ns"}
_NODE_BIRTH = tuple(c for c in NODE_COLUMNS if c not in _NODE_CHANGING)

# Append-only tables: the columns a step's batch writes, in its tuple order (engine.core.effects).
_TABLES: dict[str, tuple[str, str]] = {
    "transitions": (
        "entity, entity_id, from_state, to_state, filled_qty, cause, ts_exchange_ms, ts_local_ns, cause_seq, rule",
        "cause_seq",
    ),
    "fills": (
        "trade_id, client_order_id, symbol, side, qty, price_paise, ts_exchange_ms, ts_local_ns, cause_seq",
        "cause_seq",
    ),
    "escalations": (
        "escalation_id, kind, severity, group_id, client_order_id, symbol, unhedged_qty, reason, ts_created_local_ns,"
        " cause_seq, rule, why_json",
        "cause_seq",
    ),
    "rejected_events": (
        "client_order_id, event_key, event_json, reason, ts_exchange_ms, ts_local_ns, feed_seq, cause_seq",
        "cause_seq",
    ),
    "audit_log": (
        "ts_local_ns, ts_wall_ms, os_user, role, command, target, detail_json, outcome, command_seq, input_seq",
        "input_seq",
    ),
    "intents": (", ".join(_INTENT_BIRTH), "cause_seq"),
    "hedge_nodes": (", ".join(_NODE_BIRTH), "cause_seq"),
    "groups": ("group_id, cause_seq", "cause_seq"),
}


# Insertion order per table, in both dialects (PostgreSQL has no rowid: the tables SQLite orders
# by rowid carry a ``seq`` identity there, which engine.store.db substitutes).
_ORDER = {"transitions": "id", "rejected_events": "id", "audit_log": "id", "escalations": "escalation_id"}


class ReplayError(RuntimeError):
    """The journal cannot be replayed (no inputs, no checkpoint, an unreadable row)."""


@dataclass(frozen=True)
class Mismatch:
    """Where replaying stopped reproducing the journal."""

    seq: int
    what: str
    journal: Any = None
    replayed: Any = None

    def describe(self) -> str:
        return (
            f"DEFECT at input #{self.seq}: {self.what}\n  journal:  {_short(self.journal)}\n"
            f"  replayed: {_short(self.replayed)}"
        )


@dataclass
class Replayed:
    state: EngineState
    at_seq: int  # the state after this input (0: before the first)
    first_seq: int  # the first input the journal holds
    last_seq: int  # the last input the journal holds
    from_checkpoint: int  # the checkpoint (its seq) the replay started from
    stepped: int = 0
    stepped_to_at: int = 0  # of them, the ones stepped to reach ``at_seq``
    checked_to: int = 0  # inputs up to here were checked against the journal
    mismatch: Mismatch | None = None
    restarts: int = 0
    checkpoints_checked: int = 0
    notes: list[str] = field(default_factory=list)


class _Diverged(Exception):
    def __init__(self, mismatch: Mismatch) -> None:
        super().__init__(mismatch.what)
        self.mismatch = mismatch


async def replay(
    journal: JournalSource, at: int | None = None, *, full: bool = False, to_end: bool = False
) -> Replayed:
    """The state after input ``at`` (default: the last), rebuilt from the nearest checkpoint at
    or before it, checking each input stepped. ``to_end``: go on checking to the journal's last
    input (the state at ``at`` is kept on the way). ``full``: start from the journal's first
    checkpoint instead, and check every input to the end."""
    bounds = await journal.fetch("SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM inputs")
    first, last = int(bounds[0][0]), int(bounds[0][1])
    points = [
        (int(seq), int(cid), str(kind))
        for cid, seq, kind in await journal.fetch("SELECT id, seq, kind FROM checkpoints ORDER BY seq, id")
    ]
    if not points:
        raise ReplayError(f"{journal.where} has no checkpoint: it was written before inputs were journaled")
    target = last if at is None else at
    if target < 0 or target > last:
        raise ReplayError(f"input #{target} is not in the journal (it holds #{first}..#{last})")
    if full:
        start = points[0]
        end = last
    else:
        end = last if to_end else target
        # the state after ``target``: a checkpoint taken before it, or a periodic one right after
        # it (a restart's checkpoint right after it holds only what the new engine loaded)
        usable = [p for p in points if p[0] <= target or (p[0] == target + 1 and (p[2] == "PERIODIC" or target == 0))]
        if not usable:
            raise ReplayError(
                f"no checkpoint at or before input #{target}: the first is at #{points[0][0]} "
                "(inputs before it were journaled by an engine that took no checkpoint)"
            )
        start = usable[-1]
    state = await _load_checkpoint(journal, start[1])
    later = {seq: (cid, kind) for seq, cid, kind in points if (seq, cid) > (start[0], start[1])}
    result = Replayed(state, start[0] - 1, first, last, start[0])
    kept: EngineState | None = None
    if target < start[0]:
        kept = _freeze(state) if end > target else state
    try:
        async for page, journaled in _pages(journal, start[0], end):
            for inp_row in page:
                seq = int(inp_row[0])
                if seq in later:
                    state = await _boundary(journal, state, seq, *later[seq], result)
                    result.state = state
                _check_rows(state, seq, inp_row, journaled)
                result.stepped += 1
                result.checked_to = seq
                if seq == target:
                    result.stepped_to_at = result.stepped
                    kept = _freeze(state) if target < end else state
        if end == last:
            await _check_final(journal, state)
    except _Diverged as exc:
        result.mismatch = exc.mismatch
    # a divergence before ``target``: the state shown is the one the diverging input left
    result.at_seq = min(target, result.mismatch.seq) if result.mismatch else target
    if kept is not None and not (result.mismatch and result.mismatch.seq <= target):
        result.state = kept
    return result


def _freeze(state: EngineState) -> EngineState:
    """A copy of ``state`` the rest of a full replay will not change."""
    new_id = state.new_id
    state.new_id = _no_ids
    try:
        frozen = copy.deepcopy(state)
    finally:
        state.new_id = new_id
    return frozen


def _no_ids() -> str:
    raise ReplayError("a copy of the state draws no ids")


async def _load_checkpoint(journal: JournalSource, checkpoint_id: int) -> EngineState:
    rows = await journal.fetch("SELECT format, state FROM checkpoints WHERE id=?", (checkpoint_id,))
    try:
        return load_state_blob(rows[0][1], _no_ids, int(rows[0][0]))
    except CheckpointError as exc:
        raise ReplayError(f"checkpoint {checkpoint_id}: {exc}") from None


async def _pages(journal: JournalSource, first: int, last: int) -> Any:
    """Inputs a page at a time, with every row they caused (by table, then by input)."""
    seq = first
    while seq <= last:
        rows = await journal.fetch(
            "SELECT seq, kind, ts_local_ns, body_json, ids_json FROM inputs WHERE seq>=? AND seq<=? ORDER BY seq"
            " LIMIT ?",
            (seq, last, _PAGE),
        )
        if not rows:
            return
        hi = int(rows[-1][0])
        journaled: dict[str, dict[int, list[tuple[Any, ...]]]] = {}
        for table, (cols, key) in _TABLES.items():
            order = _ORDER.get(table, "rowid")
            by_seq: dict[int, list[tuple[Any, ...]]] = {}
            for r in await journal.fetch(
                f"SELECT {key}, {cols} FROM {table} WHERE {key}>=? AND {key}<=? ORDER BY {key}, {order}", (seq, hi)
            ):
                by_seq.setdefault(int(r[0]), []).append(tuple(r[1:]))
            journaled[table] = by_seq
        yield rows, journaled
        seq = hi + 1


async def _boundary(
    journal: JournalSource, state: EngineState, seq: int, checkpoint_id: int, kind: str, result: Replayed
) -> EngineState:
    """A checkpoint inside the replayed range: a periodic one must equal the replayed state; a
    restart's must hold exactly the replayed rows it loaded, and the replay continues from it."""
    loaded = await _load_checkpoint(journal, checkpoint_id)
    if kind == "PERIODIC":
        mine, theirs = fingerprint(state), fingerprint(loaded)
        if mine != theirs:
            where = _first_difference(theirs, mine)
            raise _Diverged(Mismatch(seq, f"the engine's state before this input differs at {where}", theirs, mine))
        result.checkpoints_checked += 1
        return state
    for coid, row in loaded.book.intents.items():
        replayed = state.book.intents.get(coid)
        if replayed is None or intent_values(replayed) != intent_values(row):
            what = f"order {coid} as the restarted engine loaded it"
            raise _Diverged(Mismatch(seq, what, intent_values(row), replayed and intent_values(replayed)))
    for node_id, node in loaded.book.nodes.items():
        mine_node = state.book.nodes.get(node_id)
        if mine_node is None or node_values(mine_node) != node_values(node):
            what = f"hedge node {node_id} as the restarted engine loaded it"
            raise _Diverged(Mismatch(seq, what, node_values(node), mine_node and node_values(mine_node)))
    if loaded.trading_state is not state.trading_state:
        raise _Diverged(Mismatch(seq, "trading state at restart", loaded.trading_state, state.trading_state))
    result.restarts += 1
    return loaded


def _check_rows(
    state: EngineState, seq: int, row: tuple[Any, ...], journaled: dict[str, dict[int, list[tuple[Any, ...]]]]
) -> None:
    try:
        inp = decode_input(str(row[3]))
        ids = [str(i) for i in json.loads(str(row[4]))]
    except (CodecError, ValueError) as exc:
        raise _Diverged(Mismatch(seq, f"the input row cannot be read: {exc}")) from None
    if str(row[1]) != input_kind(inp) or int(row[2]) != inp.now_ns:
        raise _Diverged(Mismatch(seq, "the input row's kind or time disagrees with its body", row[1:3], inp))
    feed = iter(ids)

    def next_id() -> str:
        try:
            return next(feed)
        except StopIteration:
            raise _Diverged(Mismatch(seq, "the step drew more ids than the run did", ids, None)) from None

    state.new_id = next_id
    try:
        effects = step(state, inp, seq)
    except _Diverged:
        raise
    except Exception as exc:
        raise _Diverged(Mismatch(seq, f"the step raised {type(exc).__name__}: {exc}")) from None
    finally:
        state.new_id = _no_ids
    left = list(feed)
    if left:
        raise _Diverged(Mismatch(seq, "the step drew fewer ids than the run did", ids, ids[: len(ids) - len(left)]))
    mine = _rows_of(effects)
    for table in _TABLES:
        theirs = journaled[table].get(seq, [])
        if mine.get(table, []) != theirs:
            raise _Diverged(Mismatch(seq, f"{table} rows caused by this input", theirs, mine.get(table, [])))


def _rows_of(effects: list[Any]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for effect in effects:
        if not isinstance(effect, Commit):
            continue
        w = effect.writes
        out["transitions"] = [tuple(t) for t in w.transitions]
        out["fills"] = [tuple(f) for f in w.fills]
        out["escalations"] = [tuple(e) for e in w.escalations]
        out["rejected_events"] = [tuple(r) for r in w.rejected]
        out["audit_log"] = [tuple(a) for a in w.audits]
        out["intents"] = [_birth(r) for r in w.intents_new.values()]
        out["hedge_nodes"] = [_node_birth(n) for n in w.nodes_new.values()]
        out["groups"] = [(g, w.group_causes.get(g)) for g in w.groups_new]
    return {k: v for k, v in out.items() if v}


def _birth(row: IntentRow) -> tuple[Any, ...]:
    return tuple(_plain(getattr(row, c)) for c in _INTENT_BIRTH)


def _node_birth(node: NodeRow) -> tuple[Any, ...]:
    return tuple(_plain(getattr(node, c)) for c in _NODE_BIRTH)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


async def _check_final(journal: JournalSource, state: EngineState) -> None:
    """At the end: every row the replayed engine holds is the row the journal holds now."""
    cols = ",".join(INTENT_COLUMNS)
    for coid, row in sorted(state.book.intents.items()):
        found = await journal.fetch(f"SELECT {cols} FROM intents WHERE client_order_id=?", (coid,))
        theirs = tuple(found[0]) if found else None
        if theirs != intent_values(row):
            raise _Diverged(
                Mismatch(row.cause_seq or 0, f"order {coid} at the end of the journal", theirs, intent_values(row))
            )
    node_cols = ",".join(NODE_COLUMNS)
    for node_id, node in sorted(state.book.nodes.items()):
        found = await journal.fetch(f"SELECT {node_cols} FROM hedge_nodes WHERE node_id=?", (node_id,))
        theirs = tuple(found[0]) if found else None
        if theirs != node_values(node):
            raise _Diverged(
                Mismatch(
                    node.cause_seq or 0, f"hedge node {node_id} at the end of the journal", theirs, node_values(node)
                )
            )
    for group_id, group in sorted(state.book.groups.items()):
        found = await journal.fetch("SELECT state, reason FROM groups WHERE group_id=?", (group_id,))
        mine = (group.state.value, group.reason)
        if not found or tuple(found[0]) != mine:
            raise _Diverged(Mismatch(0, f"group {group_id} at the end of the journal", found and tuple(found[0]), mine))


# --- the state, compared field for field -----------------------------------------------------


def fingerprint(state: EngineState) -> Any:
    """The state as plain, ordered data: every field of every object (not the id port, not the
    step counters), sets sorted, so two states compare equal exactly when they hold the same."""
    return {k: _canon(v) for k, v in sorted(vars(state).items()) if k not in ("new_id", "stats")}


def _canon(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return sorted(((_canon(k), _canon(v)) for k, v in value.items()), key=repr)
    if isinstance(value, (set, frozenset)):
        return sorted((_canon(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "deque":
        return [_canon(v) for v in value]
    if dataclasses.is_dataclass(value):
        return (type(value).__name__, [(f.name, _canon(getattr(value, f.name))) for f in dataclasses.fields(value)])
    if hasattr(value, "__dict__"):
        return (type(value).__name__, sorted(((k, _canon(v)) for k, v in vars(value).items()), key=repr))
    slots = getattr(type(value), "__slots__", None)
    if slots:
        return (type(value).__name__, [(s, _canon(getattr(value, s, None))) for s in slots])
    return repr(value)


def _first_difference(a: Any, b: Any, path: str = "state") -> str:
    if type(a) is not type(b):
        return path
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b), key=repr):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}")
        return path
    if isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if x != y:
                label = x[0] if isinstance(x, tuple) and x and isinstance(x[0], str) else i
                return _first_difference(x, y, f"{path}[{label}]")
        return f"{path} (length {len(a)} vs {len(b)})"
    return path


def _short(value: Any, limit: int = 400) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
