"""Why did the desk send that order? The causal chain of an order, a hedge node or an
escalation, read from the journal: the input that caused it (with its local and broker time),
the rule that fired, the facts the rule read, and, recursively, the inputs behind those facts
(fills, confirmed cancels, a trigger, an operator's approval), back to the group's launch
command and the person who gave it."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from engine.audit.source import JournalSource

__all__ = ["Link", "WhyError", "explain", "fmt_ms", "render"]


class WhyError(LookupError):
    """Nothing in the journal has that id."""


@dataclass
class Link:
    """One fact of the chain: what it is, the rule (if a decision), the input it came from."""

    title: str
    rule: str = ""
    seq: int | None = None
    input: dict[str, Any] | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    because: list[Link] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title}
        if self.rule:
            out["rule"] = self.rule
        if self.seq is not None:
            out["seq"] = self.seq
        if self.input:
            out["input"] = self.input
        if self.facts:
            out["facts"] = self.facts
        if self.because:
            out["because"] = [b.to_json() for b in self.because]
        return out


def fmt_ms(epoch_ms: int | None) -> str:
    """Local time as people read it: HH:MM:SS.mmm."""
    if epoch_ms is None:
        return "-"
    t = dt.datetime.fromtimestamp(epoch_ms / 1000).astimezone()
    return t.strftime("%H:%M:%S.") + f"{epoch_ms % 1000:03d}"


_INTENT_COLS = (
    "client_order_id, intent_id, attempt, group_id, role, purpose, side, qty, symbol, order_type,"
    " limit_price_paise, trigger_price_paise, status, order_status, filled_qty, fills_qty, broker_order_id,"
    " hedge_node_id, cause_seq, rule, why_json"
)


class _Reader:
    def __init__(self, journal: JournalSource) -> None:
        self.j = journal
        self.seen: set[str] = set()

    async def one(self, sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
        rows = await self.j.fetch(sql, params)
        if not rows:
            return None
        names = [c.strip().split(" ")[-1] for c in sql.split("SELECT", 1)[1].split("FROM", 1)[0].split(",")]
        return dict(zip(names, rows[0], strict=True))

    async def order(self, ident: str) -> dict[str, Any] | None:
        sql = f"SELECT {_INTENT_COLS} FROM intents WHERE client_order_id=? OR broker_order_id=?"
        found = await self.one(sql, (ident, ident))
        if found is None:  # an intent id: its latest attempt
            found = await self.one(
                f"SELECT {_INTENT_COLS} FROM intents WHERE intent_id=? ORDER BY attempt DESC LIMIT 1", (ident,)
            )
        return found

    async def input(self, seq: int | None, about: set[str] | None = None) -> dict[str, Any] | None:
        if seq is None:
            return None
        row = await self.one(
            "SELECT seq, kind, ts_local_ns, ts_wall_ms, ts_broker_ms, command_seq, body_json FROM inputs WHERE seq=?",
            (seq,),
        )
        if row is None:
            return {"seq": seq, "missing": True}
        out: dict[str, Any] = {
            "seq": seq,
            "kind": row["kind"],
            "local_time": fmt_ms(row["ts_wall_ms"]),
            "broker_time": fmt_ms(row["ts_broker_ms"]),
            "offset_ms": None if row["ts_broker_ms"] is None else int(row["ts_broker_ms"]) - int(row["ts_wall_ms"]),
            "ts_wall_ms": row["ts_wall_ms"],
            "ts_broker_ms": row["ts_broker_ms"],
            "summary": _summary(str(row["kind"]), json.loads(str(row["body_json"])), about or set()),
        }
        if row["command_seq"] is not None:
            command = await self.command(int(row["command_seq"]))
            if command:
                out["command"] = command
        return out

    async def command(self, seq: int) -> dict[str, Any] | None:
        row = await self.one(
            "SELECT seq, action, args_json, submitted_by, role, ts_submitted_ms, status FROM commands WHERE seq=?",
            (seq,),
        )
        if row is None:
            return None
        return {
            "seq": seq,
            "action": row["action"],
            "by": row["submitted_by"],
            "role": row["role"],
            "submitted": fmt_ms(row["ts_submitted_ms"]),
            "status": row["status"],
        }

    async def transitions(self, entity: str, entity_id: str, to_state: str, upto: int | None) -> list[dict[str, Any]]:
        rows = await self.j.fetch(
            "SELECT from_state, to_state, filled_qty, cause, ts_exchange_ms, cause_seq, rule FROM transitions"
            " WHERE entity=? AND entity_id=? AND to_state=? AND (? IS NULL OR cause_seq<=?) ORDER BY id",
            (entity, entity_id, to_state, upto, upto),
        )
        keys = ("from_state", "to_state", "filled_qty", "cause", "ts_exchange_ms", "cause_seq", "rule")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def fills(self, coid: str, upto: int | None) -> list[dict[str, Any]]:
        rows = await self.j.fetch(
            "SELECT trade_id, qty, price_paise, ts_exchange_ms, cause_seq FROM fills WHERE client_order_id=?"
            " AND (? IS NULL OR cause_seq<=?) ORDER BY rowid",
            (coid, upto, upto),
        )
        keys = ("trade_id", "qty", "price_paise", "ts_exchange_ms", "cause_seq")
        return [dict(zip(keys, r, strict=True)) for r in rows]


def _summary(kind: str, body: Any, about: set[str]) -> str:
    """A line a person reads for an input body (engine.audit.codec's tagged lists)."""
    if kind == "events":
        events = body[2]
        mine = [e for e in events if about & {str(v) for v in e[1:4]}] if about else events
        parts = list(dict.fromkeys(_event(e) for e in (mine or events)))[:4]
        more = len(events) - len(mine or events)
        return "broker events: " + "; ".join(parts) + (f" (+{more} more in the batch)" if more > 0 else "")
    if kind == "command":
        cmd = body[3]
        return f"command {cmd[0]} by {cmd[-1][1]} ({cmd[-1][2]})"
    if kind == "placed":
        return f"broker accepted {body[2]} as {body[3][1]} at broker {fmt_ms(body[3][3])}"
    if kind == "place_unsent":
        return f"{body[2]} not placed: {body[3]}"
    if kind == "cancel_answered":
        ack = body[3]
        return f"cancel of {body[2]} " + (f"answered {ack[2]}" if ack else f"not sent: {body[4]}")
    if kind == "looked_up":
        snap = body[4]
        found = f"broker has it {snap[7]} filled {snap[8]}" if snap else (body[6] or "broker has no such order")
        return f"lookup ({body[3]}) of {body[2]}: {found}"
    if kind == "tick":
        return "timer: the engine looked at its deadlines"
    if kind == "broker_time":
        return f"broker time {fmt_ms(body[2])}" if body[2] else f"broker time unavailable: {body[3]}"
    return "recovery after a (re)start"


def _event(e: list[Any]) -> str:
    tag = e[0]
    if tag == "FillReport":
        return f"fill {e[1]} {e[5]} {e[6]} {e[4]} @ {_rupees(e[7])} (broker {fmt_ms(e[8])})"
    if tag == "OrderUpdate":
        return f"{e[2]} {e[3]} filled {e[4]} (broker {fmt_ms(e[5])})"
    return f"malformed: {e[2]}"


def _rupees(paise: Any) -> str:
    return "-" if paise is None else f"{int(paise) / 100:,.2f}"


def _order_title(o: dict[str, Any]) -> str:
    price = ""
    if o["limit_price_paise"] is not None:
        price = f" @ {_rupees(o['limit_price_paise'])}"
    if o["trigger_price_paise"] is not None:
        price += f" trigger {_rupees(o['trigger_price_paise'])}"
    return (
        f"order {o['client_order_id']}: {o['side']} {o['qty']} {o['symbol']} {o['order_type']}{price}"
        f" ({o['role']} {o['purpose']}, group {o['group_id']}, attempt {o['attempt']};"
        f" now {o['order_status']}, {o['fills_qty']} filled)"
    )


async def explain(journal: JournalSource, ident: str) -> Link:
    """The causal chain of an order (client order id, broker order id or intent id), a hedge node
    (its id) or an escalation (its number, or ``E`` and its number)."""
    r = _Reader(journal)
    order = await r.order(ident)
    if order is not None:
        return await _explain_order(r, order)
    node = await r.one(
        "SELECT node_id, group_id, parent_id, depth, kind, symbol, side, target_qty, filled_qty, status, reason,"
        " cause_seq, rule, why_json FROM hedge_nodes WHERE node_id=?",
        (ident,),
    )
    if node is not None:
        return await _explain_node(r, node)
    number = ident[1:] if ident[:1] in ("E", "e") else ident
    if number.isdigit():
        esc = await r.one(
            "SELECT escalation_id, kind, severity, status, group_id, client_order_id, unhedged_qty, reason,"
            " cause_seq, rule, why_json FROM escalations WHERE escalation_id=?",
            (int(number),),
        )
        if esc is not None:
            return await _explain_escalation(r, esc)
    raise WhyError(f"no order, hedge node or escalation {ident!r} in {journal.where}")


async def _explain_order(r: _Reader, o: dict[str, Any]) -> Link:
    coid = str(o["client_order_id"])
    seq = None if o["cause_seq"] is None else int(o["cause_seq"])
    link = Link(
        _order_title(o),
        str(o["rule"]) or "(journaled before rules were recorded)",
        seq,
        await r.input(seq, {coid, str(o["broker_order_id"] or "")}),
        json.loads(str(o["why_json"] or "{}")),
    )
    if coid in r.seen:
        link.title += " (explained above)"
        return link
    r.seen.add(coid)
    facts, rule = link.facts, link.rule
    if rule == "hedge.child_for_remainder":
        for parent in facts.get("parent_orders", []):
            link.because.append(await _evidence_of_order(r, str(parent["client_order_id"]), seq))
    elif rule.startswith("stop."):
        stop = facts.get("stop")
        if stop:
            link.because.append(await _evidence_of_stop(r, str(stop), seq))
    elif rule == "retry.approved_orphan":
        link.because.append(await _evidence_of_orphan(r, str(facts.get("orphan")), facts, seq))
    elif rule == "risk.sized_to_confirmed_hedge":
        link.because.append(await _hedge_fills(r, str(o["group_id"]), seq))
    if o["hedge_node_id"] and rule != "hedge.child_for_remainder":
        node = await r.one(
            "SELECT node_id, depth, kind, target_qty, rule FROM hedge_nodes WHERE node_id=?", (o["hedge_node_id"],)
        )
        if node is not None and int(node["depth"]) > 0:
            link.facts.setdefault("hedge_node_depth", node["depth"])
    link.because.append(await _launch(r, str(o["group_id"])))
    return link


async def _evidence_of_order(r: _Reader, coid: str, upto: int | None) -> Link:
    """What a re-hedge read of a parent order: its confirmed fills and its confirmed cancel."""
    o = await r.order(coid)
    if o is None:
        return Link(f"order {coid} (not in the journal)")
    fills = await r.fills(coid, upto)
    cancelled = await r.transitions("ORDER", coid, "CANCELLED", upto)
    asked = await r.transitions("ORDER", coid, "PENDING_CANCEL", upto)
    filled = sum(int(f["qty"]) for f in fills)
    link = Link(f"parent order {coid} had {filled} of {o['qty']} confirmed by fills, then its cancel was confirmed")
    for f in fills:
        link.because.append(
            Link(
                f"fill {f['trade_id']}: {f['qty']} @ {_rupees(f['price_paise'])}"
                f" at broker {fmt_ms(f['ts_exchange_ms'])}",
                "",
                f["cause_seq"],
                await r.input(f["cause_seq"], {coid}),
            )
        )
    for t in asked[:1]:
        link.because.append(await _transition_link(r, coid, "cancel asked", t))
    for t in cancelled[:1]:
        link.because.append(await _transition_link(r, coid, "cancel confirmed by the broker", t))
    if not cancelled:
        link.title = f"parent order {coid} ended {o['order_status']} with {filled} of {o['qty']} confirmed by fills"
    link.because.append(await _explain_order(r, o))
    return link


async def _transition_link(r: _Reader, coid: str, what: str, t: dict[str, Any]) -> Link:
    stamp = f" (broker {fmt_ms(t['ts_exchange_ms'])})" if t["ts_exchange_ms"] is not None else ""
    title = f"{what}: {coid} {t['from_state']} -> {t['to_state']}{stamp}; {t['cause']}"
    return Link(title, str(t["rule"]), t["cause_seq"], await r.input(t["cause_seq"], {coid}))


async def _evidence_of_stop(r: _Reader, stop: str, upto: int | None) -> Link:
    o = await r.order(stop)
    if o is None:
        return Link(f"stop {stop} (not in the journal)")
    link = Link(f"stop-loss {stop}: {o['side']} {o['qty']} {o['symbol']} trigger {_rupees(o['trigger_price_paise'])}")
    triggered = [
        t
        for state in ("ACCEPTED", "PARTIALLY_FILLED")
        for t in await r.transitions("ORDER", stop, state, upto)
        if t["from_state"] == "TRIGGER_PENDING"
    ]
    for t in triggered[:1]:
        link.because.append(await _transition_link(r, stop, "triggered at the exchange", t))
    for state, what in (("PENDING_CANCEL", "cancel asked"), ("CANCELLED", "cancel confirmed by the broker")):
        for t in (await r.transitions("ORDER", stop, state, upto))[:1]:
            link.because.append(await _transition_link(r, stop, what, t))
    link.because.append(await _explain_order(r, o))
    return link


async def _evidence_of_orphan(r: _Reader, orphan: str, facts: dict[str, Any], upto: int | None) -> Link:
    o = await r.order(orphan)
    link = Link(
        f"orphaned intent {orphan}: approved for a retry by {facts.get('approved_by')} ({facts.get('approved_role')})"
    )
    for t in await r.transitions("INTENT", orphan, "ORPHANED", upto):
        link.because.append(await _transition_link(r, orphan, "orphaned", t))
    command_seq = facts.get("command_seq")
    if command_seq is not None:
        command = await r.command(int(command_seq))
        given = await r.j.fetch("SELECT seq FROM inputs WHERE command_seq=? ORDER BY seq LIMIT 1", (command_seq,))
        gseq = int(given[0][0]) if given else None
        who = f"{command['by']} ({command['role']})" if command else "?"
        link.because.append(
            Link(
                f"approval: command #{command_seq} approve by {who}, submitted {command and command['submitted']}",
                "command.approve_retry",
                gseq,
                await r.input(gseq),
            )
        )
    if o is not None:
        link.because.append(await _explain_order(r, o))
    return link


async def _hedge_fills(r: _Reader, group_id: str, upto: int | None) -> Link:
    rows = await r.j.fetch(
        "SELECT f.trade_id, f.qty, f.price_paise, f.ts_exchange_ms, f.cause_seq, f.client_order_id FROM fills f"
        " JOIN intents i ON i.client_order_id=f.client_order_id WHERE i.group_id=? AND i.role='HEDGE'"
        " AND i.purpose IN ('LEG','HEDGE') AND (? IS NULL OR f.cause_seq<=?) ORDER BY f.rowid",
        (group_id, upto, upto),
    )
    total = sum(int(x[1]) for x in rows)
    link = Link(f"hedge leg of {group_id}: {total} confirmed by fills before this order")
    for trade, qty, price, ts, cseq, coid in rows[:20]:
        link.because.append(
            Link(
                f"fill {trade} of {coid}: {qty} @ {_rupees(price)} at broker {fmt_ms(ts)}",
                "",
                cseq,
                await r.input(cseq, {str(coid)}),
            )
        )
    return link


async def _launch(r: _Reader, group_id: str) -> Link:
    key = f"group:{group_id}"
    g = await r.one("SELECT group_id, template, state, cause_seq FROM groups WHERE group_id=?", (group_id,))
    if g is None:
        return Link(f"group {group_id} (not in the journal)")
    inp = await r.input(g["cause_seq"])
    who = ""
    if inp and inp.get("command"):
        c = inp["command"]
        who = f" by {c['by']} ({c['role']}), command #{c['seq']} at {c['submitted']}"
    title = f"group {group_id} ({g['template']}) launched{who}"
    if key in r.seen:
        return Link(title + " (see above)")
    r.seen.add(key)
    return Link(title, "command.launch", g["cause_seq"], inp)


async def _explain_node(r: _Reader, n: dict[str, Any]) -> Link:
    seq = None if n["cause_seq"] is None else int(n["cause_seq"])
    title = (
        f"hedge node {n['node_id']}: {n['kind']} depth {n['depth']}, {n['side']} {n['target_qty']} {n['symbol']}"
        f" ({n['filled_qty']} filled, {n['status']}{'; ' + str(n['reason']) if n['reason'] else ''})"
    )
    link = Link(title, str(n["rule"]), seq, await r.input(seq), json.loads(str(n["why_json"] or "{}")))
    for parent in link.facts.get("parent_orders", []):
        link.because.append(await _evidence_of_order(r, str(parent["client_order_id"]), seq))
    link.because.append(await _launch(r, str(n["group_id"])))
    return link


async def _explain_escalation(r: _Reader, e: dict[str, Any]) -> Link:
    seq = None if e["cause_seq"] is None else int(e["cause_seq"])
    title = f"escalation E{e['escalation_id']}: {e['severity']} {e['kind']} ({e['status']}), {e['reason']}"
    link = Link(title, str(e["rule"]), seq, await r.input(seq), json.loads(str(e["why_json"] or "{}")))
    stop = link.facts.get("stop")
    if stop:
        link.because.append(await _evidence_of_stop(r, str(stop), seq))
    elif e["client_order_id"]:
        o = await r.order(str(e["client_order_id"]))
        if o is not None:
            link.because.append(await _explain_order(r, o))
    if e["group_id"]:
        link.because.append(await _launch(r, str(e["group_id"])))
    return link


def render(link: Link, depth: int = 0) -> str:
    """The chain as indented text: each fact, its rule, its input (local and broker time) and
    what it read; under it, the facts it rests on, back to the launch."""
    indent = "    " * depth
    lines = [f"{indent}{'<- ' if depth else ''}{link.title}"]
    pad = indent + ("   " if depth else "") + "    "
    if link.rule:
        lines.append(f"{pad}rule   {link.rule}")
    if link.input:
        i = link.input
        if i.get("missing"):
            lines.append(f"{pad}input  #{i['seq']} (not in the journal)")
        else:
            offset = "" if i["offset_ms"] is None else f", broker {i['broker_time']} ({i['offset_ms']:+d} ms)"
            lines.append(f"{pad}input  #{i['seq']} {i['kind']} at {i['local_time']} local{offset}")
            lines.append(f"{pad}       {i['summary']}")
    if link.facts:
        shown = {k: v for k, v in link.facts.items() if k != "parent_orders"}
        lines.append(f"{pad}read   " + ", ".join(f"{k}={v}" for k, v in sorted(shown.items())))
    lines.extend(render(child, depth + 1) for child in link.because)
    return "\n".join(lines)
