"""`trading-desk replay` and `trading-desk why`: what the engine knew at any input, and why it
sent each order (engine.audit)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from app.errors import UsageError
from app.shared import journal_target
from engine.audit.replay import Replayed, ReplayError, replay
from engine.audit.why import WhyError, explain, fmt_ms, render
from engine.core.model import EscalationStatus
from engine.store.journal import Journal


def add_parsers(sub: Any) -> None:
    r = sub.add_parser("replay", help="rebuild the engine's state at an input and check the journal reproduces")
    r.add_argument("--db", default=None, help="journal: a SQLite file or a postgresql:// URL")
    r.add_argument("--at", type=int, default=None, help="the input (sequence number); default: the last")
    r.add_argument(
        "--check",
        choices=("to-end", "window", "full"),
        default="to-end",
        help="to-end (default): check every input from the checkpoint used to the journal's end; "
        "window: only the inputs stepped to reach --at; full: from the journal's first checkpoint",
    )
    r.add_argument("--json", action="store_true", help="one JSON document")
    w = sub.add_parser("why", help="why an order, hedge node or escalation exists: the causal chain")
    w.add_argument("ident", help="client order id, broker order id, intent id, hedge node id, or escalation (E12)")
    w.add_argument("--db", default=None, help="journal: a SQLite file or a postgresql:// URL")
    w.add_argument("--json", action="store_true", help="one JSON document")


async def run_replay(args: argparse.Namespace) -> int:
    journal = await Journal.open(journal_target(args.db))
    try:
        started = time.perf_counter()
        try:
            result = await replay(journal, args.at, full=args.check == "full", to_end=args.check in ("to-end", "full"))
        except ReplayError as exc:
            raise UsageError(str(exc)) from None
        elapsed = time.perf_counter() - started
        doc = await _document(journal, result, elapsed, args.check)
    finally:
        await journal.close()
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        print(_text(doc))
    return 0 if doc["check"]["ok"] else 1


async def _document(journal: Journal, r: Replayed, elapsed_s: float, mode: str) -> dict[str, Any]:
    s = r.state
    at = r.at_seq
    inp = await journal.fetch("SELECT kind, ts_wall_ms, ts_broker_ms FROM inputs WHERE seq=?", (at,))
    fills = await journal.fetch(
        "SELECT symbol, side, qty, price_paise FROM fills WHERE cause_seq IS NOT NULL AND cause_seq<=? ORDER BY rowid",
        (at,),
    )
    positions: dict[str, int] = {}
    for symbol, side, qty, _ in fills:
        positions[str(symbol)] = positions.get(str(symbol), 0) + (int(qty) if side == "BUY" else -int(qty))
    book = s.book
    return {
        "at": at,
        "input": None
        if not inp
        else {"kind": inp[0][0], "local_time": fmt_ms(inp[0][1]), "broker_time": fmt_ms(inp[0][2])},
        "journal_inputs": [r.first_seq, r.last_seq],
        "from_checkpoint": r.from_checkpoint,
        "stepped": r.stepped,
        "stepped_to_at": r.stepped_to_at,
        "elapsed_s": round(elapsed_s, 3),
        "trading_state": s.trading_state.value,
        "broker_usable": not s.broker_unusable,
        "broker_time": fmt_ms(s.clock.anchor_exchange_ms) if s.clock.anchored else None,
        "groups": [
            {"group_id": g, "state": rt.state.value, "reason": rt.reason, "close_requested": rt.close_requested}
            for g, rt in sorted(book.groups.items())
        ],
        "orders": [
            {
                "client_order_id": o.client_order_id,
                "group_id": o.group_id,
                "role": o.role.value,
                "purpose": o.purpose.value,
                "side": o.side.value,
                "qty": o.qty,
                "symbol": o.symbol,
                "order_type": o.order_type.value,
                "status": o.status.value,
                "order_status": o.order_status.value,
                "filled_qty": o.filled_qty,
                "fills_qty": o.fills_qty,
                "rule": o.rule,
                "cause_seq": o.cause_seq,
            }
            for o in sorted(book.intents.values(), key=lambda o: (o.cause_seq or 0, o.client_order_id))
        ],
        "hedge_nodes": [
            {
                "node_id": n.node_id,
                "group_id": n.group_id,
                "parent_id": n.parent_id,
                "depth": n.depth,
                "kind": n.kind.value,
                "target_qty": n.target_qty,
                "filled_qty": n.filled_qty,
                "status": n.status.value,
            }
            for n in sorted(book.nodes.values(), key=lambda n: (n.cause_seq or 0, n.node_id))
        ],
        "positions": dict(sorted(positions.items())),
        "escalations": [
            {
                "escalation_id": e.escalation_id,
                "kind": e.kind.value,
                "status": e.status.value,
                "group_id": e.group_id,
                "client_order_id": e.client_order_id,
            }
            for e in sorted(s.escalations.values(), key=lambda e: e.escalation_id)
        ],
        "open_escalations": sum(e.status is not EscalationStatus.RESOLVED for e in s.escalations.values()),
        "check": {
            "mode": mode,
            "ok": r.mismatch is None,
            "checked_to": r.checked_to,
            "restarts_crossed": r.restarts,
            "checkpoints_compared": r.checkpoints_checked,
            "defect": None
            if r.mismatch is None
            else {"seq": r.mismatch.seq, "what": r.mismatch.what, "text": r.mismatch.describe()},
        },
    }


def _text(d: dict[str, Any]) -> str:
    i = d["input"] or {}
    head = f"state after input #{d['at']} of #{d['journal_inputs'][1]}"
    if i:
        head += f" ({i['kind']} at {i['local_time']} local, broker {i['broker_time']})"
    lines = [
        head,
        f"  rebuilt from the checkpoint before #{d['from_checkpoint']} by stepping {d['stepped_to_at']} inputs"
        f" ({d['stepped']} stepped in all, {d['elapsed_s']:.3f} s)",
        f"trading {d['trading_state']}   broker {'usable' if d['broker_usable'] else 'UNUSABLE'}"
        f"   open escalations {d['open_escalations']}",
        "groups",
    ]
    lines += [f"  {g['group_id']:<20} {g['state']:<16} {g['reason']}" for g in d["groups"]] or ["  (none open)"]
    lines.append("orders")
    lines += [
        f"  {o['client_order_id']:<22} {o['group_id']:<12} {o['role']:<5} {o['purpose']:<8} {o['side']:<4}"
        f" {o['qty']:>6} {o['symbol']:<22} {o['order_status']:<16} filled {o['fills_qty']:<6} {o['rule']}"
        for o in d["orders"]
    ] or ["  (none)"]
    lines.append("hedge nodes")
    lines += [
        f"  {n['node_id']:<22} {n['group_id']:<12} {n['kind']:<8} depth {n['depth']}"
        f" {n['filled_qty']:>6}/{n['target_qty']:<6} {n['status']}"
        for n in d["hedge_nodes"]
    ] or ["  (none)"]
    lines.append("positions (from fills up to this input)")
    lines += [f"  {sym:<24} {qty:+d}" for sym, qty in d["positions"].items()] or ["  (flat)"]
    lines.append("escalations")
    lines += [
        f"  E{e['escalation_id']:<4} {e['kind']:<20} {e['status']:<13}"
        f" {e['group_id'] or ''} {e['client_order_id'] or ''}"
        for e in d["escalations"]
    ] or ["  (none)"]
    c = d["check"]
    if c["ok"]:
        lines.append(
            f"check ({c['mode']}): inputs to #{c['checked_to']} reproduce the journal's effects exactly"
            f" ({c['restarts_crossed']} restarts crossed, {c['checkpoints_compared']} checkpoints compared)"
        )
    else:
        lines.append(f"check ({c['mode']}): {c['defect']['text']}")
    return "\n".join(lines)


async def run_why(args: argparse.Namespace) -> int:
    journal = await Journal.open(journal_target(args.db))
    try:
        try:
            link = await explain(journal, args.ident)
        except WhyError as exc:
            raise UsageError(str(exc)) from None
    finally:
        await journal.close()
    if args.json:
        print(json.dumps(link.to_json(), indent=1, sort_keys=True))
    else:
        print(render(link))
    return 0
