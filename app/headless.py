"""`trading-desk headless`: the engine with no window."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from app.brokers import open_broker, open_paper_lockstep
from app.errors import UsageError
from app.shared import submit_and_wait
from engine.broker.paper import PaperBroker
from engine.broker.ws import WsBroker
from engine.catalog import load_catalog, load_margin_model
from engine.core.groups import GroupSpec, parse_groups
from engine.core.margin import MarginModel, group_margin_paise
from engine.core.model import TERMINAL_GROUP_STATES, TERMINAL_ORDER_STATUSES, GroupState, Purpose, Role
from engine.core.quotes import Quote
from engine.core.spread import spread_figures
from engine.core.stoploss import stop_limit_price_paise
from engine.runtime.command_rows import spec_to_item
from engine.runtime.engine import Engine
from engine.runtime.ids import seeded_ids
from engine.runtime.lockstep import VirtualClock, run_until, run_until_settled
from engine.runtime.state import Actor, EngineConfig
from engine.store.db import is_postgres
from engine.store.journal import Journal


def read_groups(path: Path, catalog: dict[str, Any]) -> list[GroupSpec]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read groups file {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"groups file {path} is not valid JSON: {exc}") from exc
    return parse_groups(raw, catalog)


async def run(args: argparse.Namespace, actor: Actor) -> int:
    if actor.role is not Role.TRADER:
        raise UsageError(f"headless launches groups, which needs --role trader (got {actor.role.value})")
    catalog = load_catalog()
    specs = read_groups(Path(args.groups), catalog)  # validate everything before writing anything
    config = EngineConfig(
        max_waves=args.max_waves,
        order_timeout_ms=args.order_timeout_ms,
        max_hedge_depth=getattr(args, "max_hedge_depth", 3),
    )
    margin_model = load_margin_model()
    if getattr(args, "available_margin", None):
        try:
            available = int(Decimal(args.available_margin) * 100)
        except InvalidOperation as exc:
            raise UsageError(f"--available-margin {args.available_margin!r} is not a number of rupees") from exc
        margin_model = dataclasses.replace(margin_model, available_paise=available)
    if getattr(args, "dry_run", False):
        return await dry_run(args, specs, catalog, margin_model)
    journal = await Journal.open(args.db if is_postgres(args.db) else Path(args.db), synchronous=args.synchronous)
    if await journal.engine_alive():
        # The journal has its engine already (a desk or `trading-desk engine`): never a second
        # one. The groups go to it as launch commands, each group once whoever else submits it.
        try:
            return await _through_live_engine(journal, specs, args)
        finally:
            await journal.close()
    lockstep = args.broker.startswith("paper:")
    clock = VirtualClock()
    stayed_s = 0.0
    try:
        if lockstep:
            # The in-process exchange runs on the engine's virtual clock: a seeded run replays
            # exactly (the same journal, row for row, timestamps aside), as fast as it can decide.
            broker: PaperBroker | WsBroker = await open_paper_lockstep(
                args.broker, catalog, args.faults, args.seed, clock
            )
        else:
            broker = await open_broker(args.broker, catalog, faults=args.faults, seed=args.seed)
    except BaseException:
        await journal.close()
        raise
    if lockstep:
        used = await journal.fetch("SELECT (SELECT COUNT(*) FROM intents) + (SELECT COUNT(*) FROM hedge_nodes)")
        engine = Engine(
            journal,
            broker,
            catalog,
            config,
            margin_model=margin_model,
            monotonic_ns=clock.now_ns,
            id_factory=seeded_ids(args.seed, int(used[0][0])),
            lockstep=True,
        )
    else:
        engine = Engine(journal, broker, catalog, config, margin_model=margin_model)
    if args.json:
        engine.subscribe(lambda m: print(json.dumps(m.to_json(), sort_keys=True), flush=True))
    try:
        await engine.start()
        existing = await journal.group_ids()
        launched = 0
        for spec in specs:
            if spec.group_id not in existing:
                await engine.launch(spec, actor)
                launched += 1
        if isinstance(broker, PaperBroker) and lockstep:
            limit_ms = int(args.timeout * 1000)
            settled = await run_until_settled(engine, broker, clock, tick_ms=config.tick_interval_ms, limit_ms=limit_ms)
            if settled and args.stay > 0:
                stay_ms = int(args.stay * 1000)
                stay_from = clock.now_ms()
                await run_until(
                    engine,
                    broker,
                    clock,
                    lambda: stops_resolved(engine),
                    tick_ms=config.tick_interval_ms,
                    limit_ms=stay_ms,
                )
                stayed_s = (clock.now_ms() - stay_from) / 1000
        else:
            settled = await engine.wait_settled(args.timeout)
            if settled and args.stay > 0:
                stayed_s = await _stay_live(engine, args.stay)
        summary = _summary(engine, launched, len(specs) - launched, broker.stats(), settled)
        summary["stayed_s"] = stayed_s
        summary["armed_stops"] = sum(
            1
            for r in engine.book.intents.values()
            if r.purpose is Purpose.STOP and r.order_status not in TERMINAL_ORDER_STATUSES
        )
    finally:
        await engine.stop()
        await broker.close()
        await journal.close()
    if args.json:
        print(json.dumps(summary, sort_keys=True), flush=True)
    else:
        for group in summary["groups"]:
            print(f"{group['group_id']:<24} {group['state']:<16} {group['reason']}")
        print(
            f"launched {launched}, already known {summary['skipped']}, duplicates absorbed "
            f"{summary['duplicates_absorbed']}, rejected events {summary['rejected_events']}"
        )
    if not settled:
        print(f"error: not settled after {args.timeout}s: {', '.join(summary['unsettled'])}", file=sys.stderr)
        return 3
    return 0


async def _through_live_engine(journal: Journal, specs: list[GroupSpec], args: argparse.Namespace) -> int:
    outcomes = []
    for spec in specs:
        outcome = await submit_and_wait(journal, "launch", {"group": spec_to_item(spec)}, Role.TRADER, args.timeout)
        outcomes.append(outcome)
        if args.json:
            print(json.dumps({"type": "command", **outcome.to_json()}, sort_keys=True), flush=True)
    launched = sum(o.status == "DONE" for o in outcomes)
    already = sum(o.status == "REFUSED" and "already exists" in (o.error or "") for o in outcomes)
    refused = [o for o in outcomes if o.status != "DONE" and "already exists" not in (o.error or "")]
    ids = [s.group_id for s in specs]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    marks = ",".join("?" * len(ids))
    while True:
        rows = await journal.fetch(
            f"SELECT group_id, state, reason FROM groups WHERE group_id IN ({marks})", tuple(ids)
        )
        open_escalated = {
            str(g)
            for (g,) in await journal.fetch(
                f"SELECT DISTINCT group_id FROM escalations WHERE status!='RESOLVED' AND group_id IN ({marks})",
                tuple(ids),
            )
        }
        settled = all(
            GroupState(s) is GroupState.HEDGED or GroupState(s) in TERMINAL_GROUP_STATES or g in open_escalated
            for g, s, _ in rows
        ) and len(rows) == len(ids) - len(refused)
        if settled or loop.time() >= deadline:
            break
        await asyncio.sleep(0.1)  # polling the journal the engine writes; --timeout bounds it
    summary = {
        "type": "summary",
        "through_engine": True,
        "launched": launched,
        "skipped": already,
        "refused": [o.to_json() for o in refused],
        "groups": [{"group_id": g, "state": s, "reason": r} for g, s, r in rows],
        "settled": settled,
    }
    print(json.dumps(summary, sort_keys=True))
    return 0 if settled and not refused else 1


def stops_resolved(engine: Engine) -> bool:
    """No armed stop-loss is still resting or working."""
    return not any(
        r.purpose is Purpose.STOP and r.order_status not in TERMINAL_ORDER_STATUSES
        for r in engine.book.intents.values()
    )


async def _stay_live(engine: Engine, stay_s: float) -> float:
    """Keep the live engine running ``stay_s`` more seconds, or until every armed stop resolved."""
    loop = asyncio.get_running_loop()
    until = loop.time() + stay_s
    news = asyncio.Event()
    engine.subscribe(lambda event: news.set())  # any news may be a stop resolving
    while loop.time() < until and not stops_resolved(engine) and engine.failure is None:
        news.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(until - loop.time()):
                await news.wait()
    return stay_s - max(0.0, until - loop.time())


def _summary(engine: Engine, launched: int, skipped: int, faults: dict[str, int], settled: bool) -> dict[str, Any]:
    groups = [
        {"group_id": g, "state": rt.state.value, "reason": rt.reason, "waiting_on_person": rt.waiting_on_person}
        for g, rt in sorted(engine.book.groups.items())
    ]
    return {
        "type": "summary",
        "settled": settled,
        "launched": launched,
        "skipped": skipped,
        "groups": groups,
        "unsettled": engine.unsettled_groups(),
        "events": engine.stats["events"],
        "duplicates_absorbed": engine.stats["duplicates"],
        "rejected_events": engine.stats["rejected"],
        "exchange_faults": faults,
    }


async def dry_run(
    args: argparse.Namespace, specs: list[GroupSpec], catalog: dict[str, Any], margin_model: MarginModel
) -> int:
    """What each group would cost at the broker's current prices, and the margin it needs against
    the margin free now; nothing is sent and nothing is journaled."""
    in_use = 0
    exists = is_postgres(args.db) or await asyncio.to_thread(Path(args.db).is_file)
    if exists:  # the margin open groups of this journal use (a dry run creates no journal)
        journal = await Journal.open(args.db if is_postgres(args.db) else Path(args.db))
        try:
            terminal = tuple(s.value for s in TERMINAL_GROUP_STATES)
            marks = ",".join("?" * len(terminal))
            rows = await journal.fetch(
                f"SELECT COALESCE(SUM(margin_paise), 0) FROM groups WHERE state NOT IN ({marks})", terminal
            )
            in_use = int(rows[0][0])
        finally:
            await journal.close()
    broker = await open_broker(args.broker, catalog, faults="none", seed=args.seed)
    try:
        symbols = sorted({leg.symbol for spec in specs for leg in spec.legs})
        quotes: dict[str, Quote] = {}
        stream = broker.quotes(symbols)
        async with asyncio.timeout(10):
            while len(quotes) < len(symbols):
                q = await anext(stream)
                quotes[q.symbol] = q
    finally:
        await broker.close()
    free = margin_model.available_paise - in_use
    out = []
    for spec in specs:
        required = group_margin_paise(spec, catalog, margin_model)
        stop = None
        if spec.stop_trigger_paise is not None:
            buy = spec.risk.side.opposite
            stop = {
                "order_type": "SL",
                "side": buy.value,
                "qty": spec.risk.qty,
                "symbol": spec.risk.symbol,
                "trigger_paise": spec.stop_trigger_paise,
                "limit_paise": stop_limit_price_paise(spec.stop_trigger_paise, buy, spec.risk.tick_paise),
            }
        out.append(
            {
                "group_id": spec.group_id,
                **spread_figures(spec, catalog, quotes).to_json(),
                "margin_required_paise": required,
                "margin_free_paise": free,
                "fits": required <= free,
                "stop_loss": stop,
            }
        )
    print(json.dumps({"dry_run": True, "sent": 0, "groups": out}, indent=1, sort_keys=True))
    return 0
