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
from typing import TYPE_CHECKING

from engine.core.exposure import GroupFills, net_cover_qty
from engine.core.instruments import Instrument
from engine.core.lifecycle import PATH
from engine.core.model import (
    TERMINAL_GROUP_STATES,
    TERMINAL_INTENT_STATUSES,
    TERMINAL_ORDER_STATUSES,
    EscalationStatus,
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
}


class Violation(BaseException):
    """A broken invariant. A BaseException: raised inside the engine's own broker call (at the
    wire), it must not be taken for a broker error and swallowed."""

    def __init__(self, invariant: int, detail: str) -> None:
        super().__init__(f"invariant {invariant} ({INVARIANTS[invariant]}): {detail}")
        self.invariant = invariant
        self.detail = detail


_GROUP_RANK = {state: i for i, state in enumerate(PATH)}


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
        stops = self._db().execute(
            "SELECT client_order_id, qty, order_status FROM intents WHERE group_id=? AND purpose='STOP'", (group_id,)
        )
        remainder = 0
        for stop_id, stop_qty, journaled in stops.fetchall():
            at_venue = self.venue.core.find(stop_id)
            if at_venue is None:
                continue
            if at_venue.status is not OrderStatus.CANCELLED or journaled != OrderStatus.CANCELLED.value:
                raise Violation(
                    7,
                    f"MARKET {coid} sent while stop {stop_id} is {at_venue.status.value} at the exchange "
                    f"and {journaled} in the journal",
                )
            remainder += stop_qty - at_venue.filled_qty
        if qty > remainder:
            raise Violation(7, f"MARKET {coid} for {qty}, but the stops' unfilled remainder is {remainder}")

    def _risk_covered(self, coid: str, group_id: str, qty: int) -> None:
        db = self._db()
        hedge_qty, risk_qty = self._ratio(group_id)
        (confirmed,) = db.execute(
            "SELECT COALESCE(SUM(f.qty), 0) FROM fills f JOIN intents i ON i.client_order_id = f.client_order_id"
            " WHERE i.group_id=? AND i.role='HEDGE' AND i.side='BUY' AND i.purpose IN ('LEG','HEDGE')",
            (group_id,),
        ).fetchone()
        exposed = qty
        for (risk_id,) in db.execute(
            "SELECT client_order_id FROM intents WHERE group_id=? AND role='RISK' AND purpose='LEG'", (group_id,)
        ).fetchall():
            o = self.venue.core.find(risk_id)
            if o is not None and risk_id != coid:
                exposed += o.filled_qty if o.status in TERMINAL_ORDER_STATUSES else o.qty
        allowed = confirmed * risk_qty // hedge_qty
        if exposed > allowed:
            raise Violation(
                9,
                f"{coid} takes group {group_id}'s risk sold or working to {exposed}, "
                f"but confirmed hedge fills {confirmed} cover {allowed}",
            )

    def _ratio(self, group_id: str) -> tuple[int, int]:
        assert self.engine is not None
        spec = self.engine.book.groups[group_id].spec
        return spec.hedge.qty, spec.risk.qty

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
        assert self.engine is not None
        db = self._db()
        venue_orders = {o.client_order_id: o for o in self.venue.core.orders()}
        venue_trades = {f.trade_id for o in venue_orders.values() for f in o.fills}
        booked: dict[str, int] = {}
        for trade_id, coid, qty in db.execute("SELECT trade_id, client_order_id, qty FROM fills").fetchall():
            if trade_id not in venue_trades:
                raise Violation(3, f"fill {trade_id} of {coid} is in the journal but the exchange never made it")
            booked[coid] = booked.get(coid, 0) + qty
        for coid, r in self.engine.book.intents.items():
            at_venue = venue_orders.get(coid)
            venue_filled = at_venue.filled_qty if at_venue is not None else 0
            if booked.get(coid, 0) != r.fills_qty or r.fills_qty > venue_filled:
                raise Violation(
                    3,
                    f"order {coid}: journal fills {booked.get(coid, 0)}, engine confirmed {r.fills_qty}, "
                    f"exchange filled {venue_filled}",
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
        self._exposure(venue_orders)

    def _exposure(self, venue_orders: Mapping[str, object]) -> None:
        assert self.engine is not None
        book = self.engine.book
        unresolved = {
            e.group_id for e in self.engine.state.escalations.values() if e.status is not EscalationStatus.RESOLVED
        }
        for gid, group in book.groups.items():
            risk_sold = risk_bought = hedge_bought = hedge_sold = 0
            for r in book.of_group(gid):
                o = self.venue.core.find(r.client_order_id)
                filled = o.filled_qty if o is not None else 0
                if r.role is LegRole.RISK:
                    if r.purpose is Purpose.LEG:
                        risk_sold += filled
                    else:
                        risk_bought += filled
                elif r.side is Side.SELL:
                    hedge_sold += filled
                else:
                    hedge_bought += filled
            fills = GroupFills(risk_sold, risk_bought, hedge_bought, hedge_sold)
            cover = net_cover_qty(fills, group.spec.hedge.qty, group.spec.risk.qty)
            if cover < 0 and gid not in unresolved:
                raise Violation(
                    6, f"group {gid} ({group.state.value}) is {-cover} short of hedge at the exchange, silently"
                )
