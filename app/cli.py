"""The `trading-desk` command line (a public contract; see README)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from app import headless
from app.audit import add_parsers as add_audit_parsers
from app.brokers import BrokerUrlError, open_broker
from app.chaos import add_parser as add_chaos_parser
from app.errors import UsageError
from app.shared import journal_target
from app.simulate import add_parser as add_simulate_parser
from engine.catalog import load_catalog, load_market_model
from engine.core.book import IntentRow
from engine.core.events import OrderSnapshot
from engine.core.groups import GroupSpecError
from engine.core.instruments import CatalogError, paise_to_str
from engine.core.model import Role
from engine.paper.faults import PRESETS
from engine.paper.pricing import MarketModelError
from engine.runtime import commands
from engine.runtime.engine import Engine, EngineFailure
from engine.runtime.state import Actor, CommandError, RoleError
from engine.store.journal import Journal
from engine.store.migrations import JournalError
from engine.store.report import journal_document, journal_stream
from engine.store.users import os_user

EXPECTED_ERRORS = (
    UsageError,
    GroupSpecError,
    CatalogError,
    JournalError,
    BrokerUrlError,
    RoleError,
    CommandError,
    EngineFailure,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trading-desk", description="Execution desk for multi-leg option groups.")
    _add_gui_flags(p)
    sub = p.add_subparsers(dest="command")
    sh = sub.add_parser(
        "screenshots",
        help="a scripted session on a fresh paper desk, then screenshots of every panel and dialog"
        " and geometry.json (run under xvfb-run for what a person sees)",
    )
    sh.add_argument("--out", required=True, metavar="DIR", help="directory for the PNGs and geometry.json")
    sub.add_parser("demo", help="run the sample groups headless on the embedded defaults (journal path printed)")
    h = sub.add_parser("headless", help="run the engine with no window")
    h.add_argument("--db", required=True)
    h.add_argument("--broker", required=True)
    h.add_argument("--groups", required=True)
    h.add_argument("--json", action="store_true", help="print engine events as JSON lines")
    h.add_argument("--faults", default="none", choices=sorted(PRESETS))
    h.add_argument("--seed", type=int, default=1)
    h.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every group to settle")
    h.add_argument("--max-waves", type=int, default=3, help="risk-leg waves for a partly filled risk leg")
    h.add_argument("--max-hedge-depth", type=int, default=3, help="hedge-tree depth before escalating")
    h.add_argument("--available-margin", help="rupees available for worst-case margin (default: resources)")
    h.add_argument("--order-timeout-ms", type=int, default=5000)
    h.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "EXTRA"])
    h.add_argument("--role", default="trader", choices=[r.value for r in Role])
    h.add_argument(
        "--dry-run",
        action="store_true",
        help="print each group's bid/ask, expected net credit, max profit/loss, breakevens, margin"
        " required and free, and its stop order; send and journal nothing",
    )
    h.add_argument(
        "--stay",
        type=float,
        default=0.0,
        metavar="S",
        help="after settling, keep running S more seconds, or until every armed stop-loss has resolved",
    )
    j = sub.add_parser("journal", help="print the journal")
    j.add_argument("--db", required=True)
    j.add_argument("--json", action="store_true")
    r = sub.add_parser("recover", help="reconcile with the broker; list, approve or abandon orphaned intents")
    r.add_argument("--db", required=True)
    r.add_argument("--broker", required=True)
    act = r.add_mutually_exclusive_group()
    act.add_argument("--list", action="store_true")
    act.add_argument(
        "--approve", metavar="ID", help="send one retry of this orphan (client order or intent id; operator)"
    )
    act.add_argument(
        "--abandon", metavar="ID", help="close this orphan and send nothing (client order or intent id; operator)"
    )
    r.add_argument("--role", required=True, choices=[x.value for x in Role])
    r.add_argument("--json", action="store_true")
    i = sub.add_parser("instruments", help="list the instrument catalog")
    i.add_argument("--json", action="store_true")
    add_simulate_parser(sub)
    add_audit_parsers(sub)
    add_chaos_parser(sub)
    b = sub.add_parser("bench", help="measure engine performance as ratios in one run")
    b.add_argument("--json", action="store_true")
    b.add_argument("--quick", action="store_true", help="smaller cases (the audit's replay journal: 10,000 inputs)")
    b.add_argument(
        "--db",
        metavar="URL",
        help="PostgreSQL server for case 7 (postgresql://…, a login with CREATEDB; scratch databases only; "
        "default: a throwaway cluster)",
    )
    x = sub.add_parser("exchange", help="run the paper exchange server (websocket JSON on 127.0.0.1)")
    x.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any free port, printed)")
    x.add_argument("--state", required=True, help="SQLite state file (created if missing, resumed if present)")
    x.add_argument("--faults", default="none", choices=sorted(PRESETS))
    x.add_argument("--seed", type=int, default=1)
    x.add_argument("--tick-ms", type=int, default=50, help="how often the market moves, in ms (default 50)")
    x.add_argument("--instruments", help="instrument catalog JSON (default: the bundled catalog)")
    x.add_argument("--script", help="misbehave as this JSON script says (docs/EXCHANGE_PROTOCOL.md, Scripts)")
    x.add_argument(
        "--market",
        default="",
        help="market model JSON: spots and option pricing (default: bundled; 'none': every price walks alone)",
    )
    en = sub.add_parser("engine", help="run the one engine of a journal (no window); desks attach to it")
    en.add_argument("--db", required=True, help="journal file or postgresql:// URL")
    en.add_argument("--broker", required=True, help="paper:STATEFILE or ws://HOST:PORT")
    en.add_argument("--standby", action="store_true", help="wait for the lease instead of refusing, then take over")
    # Tests: die at this crash point as a kill -9 would (no cleanup, nothing flushed).
    en.add_argument("--crash-at", dest="crash_at", help=argparse.SUPPRESS)
    c = sub.add_parser("command", help="submit one command to the journal's engine and wait for its outcome")
    c.add_argument("--db", required=True, help="journal file or postgresql:// URL")
    c.add_argument(
        "action",
        help="halt, reduce, resume, ack ESC, resolve ESC --note N, approve ID, abandon ID, close G, cancel G,"
        " launch FILE.json",
    )
    c.add_argument("args", nargs="*")
    c.add_argument("--note", help="resolve: how the escalation's cause was dealt with")
    c.add_argument("--role", choices=[r.value for r in Role], help="act in this role (default: the one it needs)")
    c.add_argument("--json", action="store_true")
    c.add_argument("--wait", type=float, default=10.0, metavar="S", help="seconds to wait for the outcome (exit 3)")
    u = sub.add_parser("users", help="who holds which desk role: grant USER ROLE | revoke USER ROLE | list")
    u.add_argument("--db", required=True)
    u.add_argument("users_action", choices=["grant", "revoke", "list"])
    u.add_argument("rest", nargs="*")
    u.add_argument("--json", action="store_true")
    d = sub.add_parser("db", help="db init: create or upgrade a PostgreSQL journal, its roles and the engine login")
    d.add_argument("db_action", choices=["init"])
    d.add_argument("--db", required=True, help="postgresql:// URL of an administrator login")
    d.add_argument("--engine-login", default="td_engine", help="the engine's own login role (created if missing)")
    d.add_argument("--json", action="store_true")
    e = sub.add_parser("exchange-report", help="orders and positions as the exchange sees them")
    e.add_argument("--broker", required=True)
    e.add_argument("--json", action="store_true")
    _document(p)
    return p


# Help for the flags many subcommands share (units and forms included); one place, so every
# subcommand's --help says the same thing. A flag with no help anywhere fails the CLI test.
COMMON_HELP = {
    "--db": "journal: a SQLite file or a postgresql:// URL",
    "--broker": "paper:STATEFILE (the in-process paper exchange) or ws://HOST:PORT (trading-desk exchange)",
    "--json": "print one JSON document (stable field names) instead of a table",
    "--seed": "seed of the seeded random streams (an integer; the same seed replays the same run)",
    "--faults": "fault profile: none, flaky or chaos (seeded by --seed)",
    "--role": "the role to act in: trader, risk or operator (checked against the roles you hold)",
    "--groups": "groups file: a JSON list of groups (README, Groups file)",
    "--order-timeout-ms": "order timeout in broker-time milliseconds (SL-LIMIT -> cancel -> MARKET)",
    "--synchronous": "SQLite synchronous pragma for the journal: FULL (default; survives power loss) or NORMAL",
    "--list": "list the orphaned intents waiting on an operator",
    "--theme": "colour theme: dark or light",
    "args": "the command's arguments: GROUP_ID, ESCALATION_ID [NOTE], CLIENT_ORDER_ID or STATE",
    "users_action": "grant, revoke or list",
    "rest": "USER ROLE (for grant and revoke)",
    "db_action": "init: create or upgrade the schema, the desk roles and the engine login",
}
METAVARS = {"gui_db": "DB", "gui_broker": "BROKER", "gui_role": "ROLE", "gui_config": "FILE", "gui_theme": "THEME"}


def _document(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _document(sub)
            continue
        if action.dest in METAVARS:
            action.metavar = METAVARS[action.dest]
        if not action.help:
            key = action.option_strings[0] if action.option_strings else action.dest
            action.help = COMMON_HELP.get(key)


def _add_gui_flags(p: argparse.ArgumentParser) -> None:
    """Flags of the desk window (no subcommand). Distinct dests: subcommands keep their own --db."""
    p.add_argument("--db", dest="gui_db", help="journal file (default: journal.db in the user data dir)")
    p.add_argument("--broker", dest="gui_broker", help="paper:STATEFILE or ws://HOST:PORT (default: in-process paper)")
    p.add_argument("--role", dest="gui_role", choices=[r.value for r in Role], help="your role (default: trader)")
    p.add_argument("--config", dest="gui_config", help="TOML file with db, broker, role, theme, ...")
    p.add_argument("--theme", dest="gui_theme", choices=["dark", "light"])
    p.add_argument("--exit-after", dest="gui_exit_after", type=float, help=argparse.SUPPRESS)
    p.add_argument("--screenshot", dest="gui_screenshot", help=argparse.SUPPRESS)


def _gui(args: argparse.Namespace) -> int:
    from app import config
    from app.gui import check_display, run_gui

    check_display(os.environ, sys.platform)
    flags = {"db": args.gui_db, "broker": args.gui_broker, "role": args.gui_role, "theme": args.gui_theme}
    cfg = config.load(args.gui_config, flags)
    shot = Path(args.gui_screenshot) if args.gui_screenshot else None
    return run_gui(cfg, exit_after_s=args.gui_exit_after, screenshot=shot)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "gui"
    try:
        if command == "gui":
            return _gui(args)
        if command == "screenshots":
            from app.gui import check_display
            from app.screenshots import run as take_screenshots

            check_display(os.environ, sys.platform)
            return take_screenshots(Path(args.out))
        return asyncio.run(_dispatch(command, args))
    except EXPECTED_ERRORS as exc:
        print(f"trading-desk {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`journal --json | head`): end quietly. Python would complain again
        # when it flushes stdout at exit, so point stdout at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


async def _dispatch(command: str, args: argparse.Namespace) -> int:
    if command == "headless":
        return await headless.run(args, Actor(os_user(), Role(args.role)))
    if command == "journal":
        return await _journal(args)
    if command == "recover":
        return await _recover(args)
    if command == "instruments":
        return _instruments(args)
    if command == "exchange":
        return await _exchange(args)
    if command == "exchange-report":
        return await _exchange_report(args)
    if command in ("engine", "command", "users", "db"):
        from app import shared

        run = {"engine": shared.run_engine, "command": shared.run_command, "users": shared.run_users}
        return await run.get(command, shared.run_db_init)(args)
    if command == "chaos":
        from app.chaos import run_chaos

        return await run_chaos(args)
    if command in ("replay", "why"):
        from app.audit import run_replay, run_why

        return await (run_replay if command == "replay" else run_why)(args)
    if command == "simulate":
        from app.simulate import run_simulate

        return await run_simulate(args)
    if command == "bench":
        from app.bench import run_bench

        return await run_bench(args.json, args.quick, args.db)
    if command == "demo":
        from app.demo import run_demo

        return await run_demo()
    raise UsageError(f"unknown command {command}")


def _existing(path: str, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no {what} at {p}")
    return p


async def _journal(args: argparse.Namespace) -> int:
    journal = await Journal.open(journal_target(args.db))
    try:
        if args.json:
            await write_json_records(await journal_stream(journal), sys.stdout)
            return 0
        doc = await journal_document(journal)
    finally:
        await journal.close()
    for g in doc["groups"]:
        print(f"group  {g['group_id']:<24} {g['state']:<16} {g['reason']}")
    for it in doc["intents"]:
        print(
            f"intent {it['client_order_id']:<20} {it['group_id']:<16} {it['role']:<5} {it['side']:<4} "
            f"{it['qty']:>6} {it['symbol']:<22} {it['status']:<15} filled {it['filled_qty']}"
        )
    for e in doc["escalations"]:
        print(f"escalation {e['escalation_id']} {e['kind']} {e['status']} {e['reason']}")
    print(f"positions {doc['positions']}  duplicates {doc['duplicate_events']}  rejected {doc['rejected_events']}")
    return 0


async def write_json_records(doc: dict[str, Any], out: Any) -> None:
    """The document as JSON with one record per line: a list's elements (or an async iterator's,
    as ``journal_stream`` gives the long ones) each on a line of their own, written as they are
    read and encoded. The C encoder serves each line (``indent`` would force Python's pure
    encoder: 5x slower on a 100k-intent journal), one instance for every record (``json.dumps``
    with ``sort_keys`` builds a new one per call: 40% of the encoding time), and the text is
    never held whole."""
    encode = json.JSONEncoder(sort_keys=True).encode
    keys = sorted(doc)
    out.write("{\n")
    for n, key in enumerate(keys):
        value = doc[key]
        out.write(json.dumps(key) + ": ")
        if isinstance(value, AsyncIterator):
            first = True
            async for item in value:
                out.write(("[\n" if first else ",\n") + encode(item))
                first = False
            out.write("[]" if first else "\n]")
        elif isinstance(value, list) and value:
            out.write("[\n")
            out.write(",\n".join(encode(item) for item in value))
            out.write("\n]")
        else:
            out.write(encode(value))
        out.write(",\n" if n < len(keys) - 1 else "\n")
    out.write("}\n")


async def _recover(args: argparse.Namespace) -> int:
    actor = Actor(os_user(), Role(args.role))
    catalog = load_catalog()
    journal = await Journal.open(journal_target(args.db))
    if await journal.engine_alive():
        # The journal's engine is running elsewhere: never a second one. An approval or an
        # abandonment goes to it as a command; the list is read from what it journaled.
        try:
            return await _recover_through_engine(journal, args, actor)
        finally:
            await journal.close()
    try:
        broker = await open_broker(args.broker, catalog)
        # Lockstep: a one-shot tool asks the broker in order and waits for each answer.
        engine = Engine(journal, broker, catalog, lockstep=True)
        try:
            await engine.start(resume=False)
            summary = dict(engine.state.recovery_summary)
            if args.approve:
                retry = await commands.approve_retry(engine, args.approve, actor)
                out = {
                    "approved": args.approve,
                    "retry_client_order_id": retry.client_order_id,
                    "status": retry.status.value,
                }
            elif args.abandon:
                row = await commands.abandon(engine, args.abandon, actor)
                out = {"abandoned": row.client_order_id}
            else:
                out = {
                    "recovery": summary,
                    "orphaned": [_orphan_json(r) for r in engine.waiting_rows()],
                }
        finally:
            await engine.stop()
            await broker.close()
    finally:
        await journal.close()
    print(json.dumps(out, indent=1) if args.json else _recover_text(out))
    return 0


def _recover_text(out: dict[str, Any]) -> str:
    """What ``recover`` did, as a person reads it (``--json`` gives the same as one document)."""
    lines = []
    if "approved" in out:
        retry = out.get("retry_client_order_id") or (out.get("value") or "")
        lines.append(f"approved {out['approved']}: one retry sent as {retry}".rstrip() + f" {out.get('status', '')}")
    if "abandoned" in out:
        lines.append(f"abandoned {out['abandoned']}: nothing was sent")
    summary = out.get("recovery")
    if summary:
        lines.append("recovery: " + ", ".join(f"{v} {k}" for k, v in summary.items()))
    if "orphaned" in out:
        rows = out["orphaned"]
        if not rows:
            lines.append("no orphaned intent is waiting on an operator")
        else:
            lines.append(f"{len(rows)} orphaned intent(s) waiting on an operator (--approve ID or --abandon ID):")
            header = ("CLIENT ORDER ID", "GROUP", "SIDE", "QTY", "SYMBOL", "REASON")
            table = [header] + [
                (r["client_order_id"], r["group_id"], r["side"], str(r["qty"]), r["symbol"], r["reason"]) for r in rows
            ]
            widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
            for row in table:
                lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    if out.get("through_engine"):
        lines.append("(through the journal's running engine)")
    return "\n".join(lines)


def _orphan_json(r: IntentRow) -> dict[str, Any]:
    return {
        "client_order_id": r.client_order_id,
        "intent_id": r.intent_id,
        "group_id": r.group_id,
        "symbol": r.symbol,
        "side": r.side.value,
        "qty": r.qty,
        "reason": r.reason,
    }


async def _recover_through_engine(journal: Journal, args: argparse.Namespace, actor: Actor) -> int:
    from app.shared import submit_and_wait

    if args.approve or args.abandon:
        action, ident = ("approve", args.approve) if args.approve else ("abandon", args.abandon)
        outcome = await submit_and_wait(journal, action, {"ident": ident}, actor.role, 30.0)
        if outcome.status == "REFUSED":
            raise CommandError(f"{action} {ident}: {outcome.error}")
        if outcome.status != "DONE":
            raise EngineFailure(f"no answer from the journal's engine within 30 s; command {outcome.command_id} waits")
        out: dict[str, Any] = {action + "d": ident, "through_engine": True, "value": outcome.value}
    else:
        rows = await journal.load_intents("status='ORPHANED'")
        out = {
            "through_engine": True,
            "orphaned": [_orphan_json(r) for r in rows],
        }
    print(json.dumps(out, indent=1) if args.json else _recover_text(out))
    return 0


def _instruments(args: argparse.Namespace) -> int:
    catalog = load_catalog()
    rows: list[dict[str, Any]] = [
        {
            "symbol": i.symbol,
            "underlying": i.underlying,
            "lot_size": i.lot_size,
            "tick_size": paise_to_str(i.tick_paise),
            "freeze_qty": i.freeze_qty,
            "max_lots_per_order": i.freeze_qty // i.lot_size,
            "ref_price": paise_to_str(i.start_price_paise),
            "depth_lots_per_level": i.depth_lots_per_level,
            "depth_levels": i.depth_levels,
        }
        for i in catalog.values()
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(
                f"{r['symbol']:<24} lot {r['lot_size']:>4}  tick {r['tick_size']}  freeze {r['freeze_qty']:>5}  "
                f"depth {r['depth_levels']}x{r['depth_lots_per_level']} lots"
            )
    return 0


def _order_json(o: OrderSnapshot) -> dict[str, object]:
    return {
        "order_id": o.broker_order_id,
        "client_order_id": o.client_order_id,
        "symbol": o.symbol,
        "side": o.side.value,
        "qty": o.qty,
        "filled_qty": o.filled_qty,
        "status": o.status.value,
        "order_type": o.order_type.value,
        "reason": o.reason,
    }


async def _exchange(args: argparse.Namespace) -> int:
    import logging

    from engine.paper import server
    from engine.paper.faults import profile_from_name
    from engine.paper.script import ScriptError
    from engine.paper.state import PaperStateError

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a TCP port")
    if not 1 <= args.tick_ms <= 60_000:
        raise UsageError(f"--tick-ms {args.tick_ms} is not between 1 and 60000 ms")
    state = Path(args.state)
    if not state.parent.is_dir():
        raise UsageError(f"directory {state.parent} for the exchange state does not exist")
    catalog = load_catalog(Path(args.instruments) if args.instruments else None)
    try:
        script = server.load_script(Path(args.script), catalog) if args.script else None
    except ScriptError as exc:
        raise UsageError(str(exc)) from exc
    try:
        market = None if args.market == "none" else load_market_model(Path(args.market) if args.market else None)
    except MarketModelError as exc:
        raise UsageError(str(exc)) from exc
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    profile = profile_from_name(args.faults, args.seed)
    try:
        await server.run(
            state,
            catalog,
            profile,
            port=args.port,
            seed=args.seed,
            profile_name=args.faults,
            script=script,
            market=market,
            tick_interval_ms=args.tick_ms,
        )
    except PaperStateError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from exc
    return 0


async def _exchange_report(args: argparse.Namespace) -> int:
    if args.broker.startswith("paper:"):
        _existing(args.broker.removeprefix("paper:"), "paper exchange state file")
    broker = await open_broker(args.broker, load_catalog(), auto_tick=False)
    try:
        orders = [_order_json(o) for o in await broker.orders()]
        positions = await broker.positions()
    finally:
        await broker.close()
    doc: dict[str, Any] = {"orders": orders, "positions": positions}
    if args.json:
        print(json.dumps(doc, indent=1, sort_keys=True))
    else:
        for o in doc["orders"]:
            print(
                f"{o['order_id']:<10} {o['client_order_id']:<20} {o['side']:<4} {o['qty']:>6} {o['symbol']:<22} "
                f"{o['status']:<16} filled {o['filled_qty']}"
            )
        print(f"positions {doc['positions']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
