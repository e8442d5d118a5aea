"""Order-group specifications and their validation (the GROUPS.json contract)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.instruments import Instrument, PriceError
from engine.core.model import LegRole, Side

GROUP_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class GroupSpecError(ValueError):
    """A group specification is invalid. The message names the group and field."""


@dataclass(frozen=True, slots=True)
class LegSpec:
    role: LegRole
    symbol: str
    side: Side
    qty: int
    lot_size: int
    tick_paise: int
    freeze_qty: int
    limit_price_paise: int | None = None


@dataclass(frozen=True, slots=True)
class GroupSpec:
    group_id: str
    hedge: LegSpec
    risk: LegSpec
    template: str = ""
    stop_trigger_paise: int | None = None  # the RISK leg's stop-loss trigger, once HEDGED

    @property
    def legs(self) -> tuple[LegSpec, LegSpec]:
        return (self.hedge, self.risk)

    def to_json(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "template": self.template,
            "legs": [
                {
                    "role": leg.role.value,
                    "symbol": leg.symbol,
                    "side": leg.side.value,
                    "qty": leg.qty,
                    "limit_price_paise": leg.limit_price_paise,
                }
                for leg in self.legs
            ],
            "stop_trigger_paise": self.stop_trigger_paise,
        }


def parse_groups(raw: Any, catalog: Mapping[str, Instrument]) -> list[GroupSpec]:
    """Validate a whole groups file before anything is written. Raises GroupSpecError."""
    if not isinstance(raw, list):
        raise GroupSpecError("groups file must be a JSON list of groups")
    specs: list[GroupSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        spec = parse_group(item, catalog, where=f"groups[{i}]")
        if spec.group_id in seen:
            raise GroupSpecError(f"groups[{i}]: group_id {spec.group_id!r} appears twice in the file")
        seen.add(spec.group_id)
        specs.append(spec)
    return specs


def parse_group(item: Any, catalog: Mapping[str, Instrument], *, where: str = "group") -> GroupSpec:
    if not isinstance(item, Mapping):
        raise GroupSpecError(f"{where} must be an object")
    group_id = item.get("group_id")
    if not isinstance(group_id, str) or not GROUP_ID_RE.match(group_id):
        raise GroupSpecError(f"{where}.group_id must be 1-64 characters of A-Z a-z 0-9 _ . : -, got {group_id!r}")
    where = f"{where} ({group_id})"
    legs_raw = item.get("legs")
    if not isinstance(legs_raw, list) or len(legs_raw) != 2:
        raise GroupSpecError(f"{where}.legs must list exactly two legs: one HEDGE and one RISK")
    legs = [_parse_leg(leg, catalog, f"{where}.legs[{j}]") for j, leg in enumerate(legs_raw)]
    by_role = {leg.role: leg for leg in legs}
    if set(by_role) != {LegRole.HEDGE, LegRole.RISK}:
        raise GroupSpecError(f"{where}.legs must have one HEDGE leg and one RISK leg")
    hedge, risk = by_role[LegRole.HEDGE], by_role[LegRole.RISK]
    if hedge.side is not Side.BUY or risk.side is not Side.SELL:
        raise GroupSpecError(f"{where}: the HEDGE leg must BUY and the RISK leg must SELL")
    if hedge.symbol == risk.symbol:
        raise GroupSpecError(f"{where}: HEDGE and RISK legs must be different instruments")
    h_inst, r_inst = catalog[hedge.symbol], catalog[risk.symbol]
    if h_inst.underlying != r_inst.underlying or h_inst.option_type != r_inst.option_type:
        raise GroupSpecError(
            f"{where}: the HEDGE must protect the RISK leg: same underlying and option type "
            f"({hedge.symbol} vs {risk.symbol})"
        )
    template = item.get("template", "")
    stop = _parse_stop(item.get("stop_loss"), catalog[risk.symbol], where)
    return GroupSpec(group_id=group_id, hedge=hedge, risk=risk, template=str(template), stop_trigger_paise=stop)


def _parse_stop(raw: Any, risk: Instrument, where: str) -> int | None:
    """``"stop_loss": {"trigger_price": "260.00"}``: buy the short RISK leg back above this price."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or "trigger_price" not in raw:
        raise GroupSpecError(f"{where}.stop_loss must be an object with trigger_price")
    try:
        return risk.price_to_paise(raw["trigger_price"])
    except PriceError as exc:
        raise GroupSpecError(f"{where}.stop_loss: {exc}") from exc


def _parse_leg(raw: Any, catalog: Mapping[str, Instrument], where: str) -> LegSpec:
    if not isinstance(raw, Mapping):
        raise GroupSpecError(f"{where} must be an object")
    try:
        role = LegRole(str(raw.get("role")))
        side = Side(str(raw.get("side")))
    except ValueError as exc:
        raise GroupSpecError(f"{where}: role must be HEDGE|RISK and side BUY|SELL ({exc})") from exc
    symbol = raw.get("symbol")
    inst = catalog.get(symbol) if isinstance(symbol, str) else None
    if inst is None:
        raise GroupSpecError(f"{where}: unknown symbol {symbol!r} (see `trading-desk instruments`)")
    qty = raw.get("qty")
    if isinstance(qty, bool) or not isinstance(qty, int):
        raise GroupSpecError(f"{where}: qty must be an integer, got {qty!r}")
    problem = inst.check_qty(qty)
    if problem:
        raise GroupSpecError(f"{where}: {problem}")
    limit = raw.get("limit_price")
    limit_paise = None
    if limit is not None:
        try:
            limit_paise = inst.price_to_paise(limit)
        except PriceError as exc:
            raise GroupSpecError(f"{where}: {exc}") from exc
    return LegSpec(role, inst.symbol, side, qty, inst.lot_size, inst.tick_paise, inst.freeze_qty, limit_paise)
