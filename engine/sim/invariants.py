"""The invariants of ../shared/ARCHITECTURE.md, checked by the simulator against the truth: the
venue's own books (every order it received, every fill it made) and what the journal committed
(read through a separate read-only SQLite connection, so only committed rows count).

Checked at the moment each order reaches the venue (``at_send``):
  1. a committed intent exists for it, naming the same symbol, side and quantity;
  2. its client id has never reached the venue before;
  7. a MARKET fallback goes out only once the stop's cancel is confirmed (the venue cancelled
     it and the journal recorded that), and only for the stop's unfilled remainder;
  9. a RISK leg sell never takes the group's sold-or-working risk beyond what the journal's
     confirmed hedge fills cover in the group's ratio.
After every step of the driver (``after_step``):
  4. no order, intent or group state moves backwards (terminal stays terminal, filled
     quantities never drop, a group never goes back along its path).
At quiescence (``at_quiescence``):
  3. every fill is booked once: per order, journaled fills = the engine's confirmed quantity
     <= the venue's filled quantity, and every journaled trade id is a real venue trade;
  5. journal positions equal the venue's positions;
  6. every unit of short exposure the venue holds for a group is hedged, or the group has an
     escalation that is not resolved.
Invariant 8 (no decision on the wall clock) is checked by running the same seed on two wall
clocks years apart: the trace hashes must match (engine.sim.run.determinism)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.core.exposure import GroupFills, net_cover_qty
from engine.core.groups import GroupSpec, LegSpec
from engine.core.instruments import Instrument
from engine.core.lifecycle import PATH, risk_allowed_qty
from engine.core.model import (
    TERMINAL_GROUP_STATES,
    TERMINAL_INTENT_STATUSES,
    TERMINAL_ORDER_STATUSES,
    GroupState,
    IntentStatus,
    LegRole,
    OrderStatus,
    OrderType,
    Purpose,
    Side,
)

if TYPE_CHECKING:
    from engine.core.events import OrderRequest
    from engine.runtime.engine import Engine
    from engine.sim.venue import SimVenue

INVARIANTS = {
    1: "an intent is committed before every exchange order",
    2: "no client order id reaches the exchange twice",
    3: "every broker event is applied at most once",
    4: "no order, intent or group state moves backwards",
    5: "journal positions equal exchange positions at quiescence",
    6: "every unit of exposure is hedged or in an open escalation",
    7: "MARKET only after a confirmed cancel, and only for the remainder",
    8: "no decision on the wall clock (same seed, other wall clock: same trace)",
    9: "risk sold never above hedge confirmed",
    0: "the engine never stops on its own (only a simulated crash stops it)",
    10: "the desk settles: every group hedged, terminal or waiting on a person, once the faults stop",
}


class Violation(BaseException):
    """A broken invariant. A BaseException: raised inside the engine's own broker call (at the
    wire), it must not be taken for a broker error and swallowed."""

    def __init__(self, invariant: int, detail: str) -> None:
        super().__init__(f"invariant {invariant} ({INVARIANTS[invariant]}): {detail}")
        self.invariant = invariant
        self.detail = detail


_GROUP_RANK = {state: i for i, state in enumerate(PATH)}
_TERMINAL_NAMES = {s.value for s in TERMINAL_ORDER_STATUSES}


class Checker:
    def __init__(self, journal_path: Path, venue: SimVenue, catalog: Mapping[str, Instrument]) -> None:
        self.path = journal_path
        self.venue = venue
        self.catalog = catalog
        self.engine: Engine | None = None
        self._conn: sqlite3.Connection | None = None
        self._orders: dict[str, tuple[OrderStatus, int, int, IntentStatus]] = {}
        self._groups: dict[str, GroupState] = {}
        self.sends = 0
        self.orphaned: set[str] = set()  # client ids ever seen ORPHANED
        self.resolved: set[str] = set()  # ... and later approved for retry or abandoned by an operator

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- at the wire ------------------------------------------------------------------------

    def at_send(self, order: OrderRequest) -> None:
        self.sends += 1
        coid = order.client_order_id
        db = self._db()
        row = db.execute(
            "SELECT group_id, role, purpose, symbol, side, qty, order_type FROM intents WHERE client_order_id=?",
            (coid,),
        ).fetchone()
        if row is None:
            raise Violation(1, f"{coid} reached the exchange with no committed intent")
        group_id, role, purpose, symbol, side, qty, order_type = row
        if (symbol, side, qty, order_type) != (order.symbol, order.side.value, order.qty, order.order_type.value):
            raise Violation(
                1, f"{coid} sent as {order.side} {order.qty} {order.symbol} {order.order_type}; intent says {row}"
            )
        if self.venue.core.find(coid) is not None or coid in self.venue.sent:
            raise Violation(2, f"{coid} reached the exchange a second time")
        if order.order_type is OrderType.MARKET and purpose == Purpose.FALLBACK.value:
            self._fallback(coid, group_id, order.qty)
        if role == LegRole.RISK.value and purpose == Purpose.LEG.value and order.side is Side.SELL:
            self._risk_covered(coid, group_id, order.qty)

    def _fallback(self, coid: str, group_id: str, qty: int) -> None:
        db = self._db()
        stops = db.execute(
            "SELECT client_order_id, qty, order_status FROM intents WHERE group_id=? AND purpose='STOP'", (group_id,)
        ).fetchall()
        remainder = 0
        cancelled = False
        for stop_id, stop_qty, journaled in stops:
            at_venue = self.venue.core.find(stop_id)
            if at_venue is None:
                continue
            if at_venue.status not in TERMINAL_ORDER_STATUSES or journaled not in _TERMINAL_NAMES:
                raise Violation(
                    7,
                    f"MARKET {coid} sent while stop {stop_id} is {at_venue.status.value} at the exchange "
                    f"and {journaled} in the journal",
                )
            cancelled = cancelled or (at_venue.status is OrderStatus.CANCELLED and journaled == "CANCELLED")
            remainder += stop_qty - at_venue.filled_qty
        if not cancelled:
            raise Violation(7, f"MARKET {coid} sent with no stop of {group_id} confirmed cancelled")
        sent_before = 0
        for (other,) in db.execute(
            "SELECT client_order_id FROM intents WHERE group_id=? AND purpose='FALLBACK' AND client_order_id<>?",
            (group_id, coid),
        ).fetchall():
            o = self.venue.core.find(other)
            if o is not None:
                sent_before += o.filled_qty if o.status in TERMINAL_ORDER_STATUSES else o.qty
        if sent_before + qty > remainder:
            raise Violation(
                7, f"MARKET {coid} for {qty} after {sent_before} already sent, but the stops' remainder is {remainder}"
            )

    def _risk_covered(self, coid: str, group_id: str, qty: int) -> None:
        """The engine sizes the risk leg on the hedge tree's LEG nodes' confirmed fills; confirmed
        here means journaled fill rows (committed), whatever the engine holds in memory."""
        db = self._db()
        spec = self._spec(group_id)
        (confirmed,) = db.execute(
            "SELECT COALESCE(SUM(f.qty), 0) FROM fills f JOIN intents i ON i.client_order_id = f.client_order_id"
            " JOIN hedge_nodes n ON n.node_id = i.hedge_node_id"
            " WHERE i.group_id=? AND n.kind='LEG' AND i.side='BUY'",
            (group_id,),
        ).fetchone()
        exposed = qty
        for (risk_id,) in db.execute(
            "SELECT client_order_id FROM intents WHERE group_id=? AND role='RISK' AND purpose='LEG'", (group_id,)
        ).fetchall():
            o = self.venue.core.find(risk_id)
            if o is not None and risk_id != coid:
                exposed += o.filled_qty if o.status in TERMINAL_ORDER_STATUSES else o.qty
        allowed = risk_allowed_qty(spec, confirmed)
        if exposed > allowed:
            raise Violation(
                9,
                f"{coid} takes group {group_id}'s risk sold or working to {exposed}, "
                f"but confirmed hedge fills {confirmed} cover {allowed}",
            )

    def _spec(self, group_id: str) -> GroupSpec:
        """The group as journaled (its legs), read back the way the engine's loader reads it."""
        legs = {}
        for role, symbol, side, qty, lot, tick, freeze, limit in (
            self._db()
            .execute(
                "SELECT role, symbol, side, qty, lot_size, tick_paise, freeze_qty, limit_price_paise FROM legs"
                " WHERE group_id=?",
                (group_id,),
            )
            .fetchall()
        ):
            legs[LegRole(role)] = LegSpec(LegRole(role), symbol, Side(side), qty, lot, tick, freeze, limit)
        return GroupSpec(group_id, legs[LegRole.HEDGE], legs[LegRole.RISK])

    # --- after each step ----------------------------------------------------------------------

    def after_step(self) -> None:
        assert self.engine is not None
        book = self.engine.book
        for coid, r in book.intents.items():
            if r.status is IntentStatus.ORPHANED:
                self.orphaned.add(coid)
            elif coid in self.orphaned and r.status in (IntentStatus.RETRY_APPROVED, IntentStatus.ABANDONED):
                self.resolved.add(coid)
            now = (r.order_status, r.filled_qty, r.fills_qty, r.status)
            before = self._orders.get(coid)
            self._orders[coid] = now
            if before is None:
                continue
            status, filled, fills, intent = before
            if status in TERMINAL_ORDER_STATUSES and r.order_status is not status:
                raise Violation(4, f"order {coid} went from {status.value} to {r.order_status.value}")
            if r.filled_qty < filled or r.fills_qty < fills:
                raise Violation(4, f"order {coid} filled went from {filled}/{fills} to {r.filled_qty}/{r.fills_qty}")
            if intent in TERMINAL_INTENT_STATUSES and r.status is not intent:
                raise Violation(4, f"intent {coid} went from {intent.value} to {r.status.value}")
        for gid, g in book.groups.items():
            before_g = self._groups.get(gid)
            self._groups[gid] = g.state
            if before_g is None or before_g is g.state:
                continue
            if before_g in TERMINAL_GROUP_STATES:
                raise Violation(4, f"group {gid} left terminal {before_g.value} for {g.state.value}")
            if g.state in _GROUP_RANK and before_g in _GROUP_RANK and _GROUP_RANK[g.state] < _GROUP_RANK[before_g]:
                raise Violation(4, f"group {gid} went back from {before_g.value} to {g.state.value}")

    # --- at quiescence ------------------------------------------------------------------------

    def at_quiescence(self) -> None:
        """From the journal (every group and order, finished ones too: a restarted engine's book
        holds only what is still open) against the venue's books."""
        assert self.engine is not None
        db = self._db()
        venue_orders = {o.client_order_id: o for o in self.venue.core.orders()}
        venue_trades = {f.trade_id: f for o in venue_orders.values() for f in o.fills}
        booked: dict[str, int] = {}
        for trade_id, coid, symbol, side, qty in db.execute(
            "SELECT trade_id, client_order_id, symbol, side, qty FROM fills"
        ).fetchall():
            trade = venue_trades.get(trade_id)
            if trade is None:
                raise Violation(3, f"fill {trade_id} of {coid} is in the journal but the exchange never made it")
            if (trade.client_order_id, trade.symbol, trade.side.value, trade.qty) != (coid, symbol, side, qty):
                raise Violation(
                    3, f"fill {trade_id} is booked as {side} {qty} {symbol} of {coid}; the exchange made {trade}"
                )
            booked[coid] = booked.get(coid, 0) + qty
        intents = db.execute("SELECT client_order_id, group_id, role, purpose, side FROM intents").fetchall()
        for coid, *_ in intents:
            at_venue = venue_orders.get(coid)
            venue_filled = at_venue.filled_qty if at_venue is not None else 0
            in_book = self.engine.book.intents.get(coid)
            if booked.get(coid, 0) != venue_filled or (in_book is not None and in_book.fills_qty != venue_filled):
                raise Violation(
                    3,
                    f"order {coid}: journal fills {booked.get(coid, 0)}, engine confirmed "
                    f"{in_book.fills_qty if in_book else '-'}, exchange filled {venue_filled}",
                )
        positions = {
            sym: qty
            for sym, qty in db.execute(
                "SELECT symbol, SUM(CASE side WHEN 'BUY' THEN qty ELSE -qty END) FROM fills GROUP BY symbol"
            ).fetchall()
            if qty
        }
        venue_positions = {s: q for s, q in self.venue.core.positions().items() if q}
        if positions != venue_positions:
            raise Violation(5, f"journal positions {positions} != exchange positions {venue_positions}")
        self._exposure(intents, venue_orders)

    def _exposure(self, intents: list[tuple[str, str, str, str, str]], venue_orders: Mapping[str, Any]) -> None:
        db = self._db()
        shortfall_escalated: dict[str, int] = {}
        for gid, qty in db.execute(
            "SELECT group_id, MAX(unhedged_qty) FROM escalations WHERE status<>'RESOLVED' GROUP BY group_id"
        ).fetchall():
            shortfall_escalated[gid] = int(qty)
        by_group: dict[str, list[tuple[str, str, str, str]]] = {}
        for coid, gid, role, purpose, side in intents:
            by_group.setdefault(gid, []).append((coid, role, purpose, side))
        for gid, rows in sorted(by_group.items()):
            risk_sold = risk_bought = hedge_bought = hedge_sold = 0
            for coid, role, purpose, side in rows:
                o = venue_orders.get(coid)
                filled = o.filled_qty if o is not None else 0
                if role == "RISK":
                    if purpose == "LEG":
                        risk_sold += filled
                    else:
                        risk_bought += filled
                elif side == "SELL":
                    hedge_sold += filled
                else:
                    hedge_bought += filled
            spec = self._spec(gid)
            fills = GroupFills(risk_sold, risk_bought, hedge_bought, hedge_sold)
            short = -net_cover_qty(fills, spec.hedge.qty, spec.risk.qty)
            if short > 0 and gid not in shortfall_escalated:
                state = db.execute("SELECT state FROM groups WHERE group_id=?", (gid,)).fetchone()[0]
                raise Violation(6, f"group {gid} ({state}) is {short} short of hedge at the exchange, silently")
