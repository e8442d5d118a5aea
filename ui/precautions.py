"""Precautionary settings, as in TWS: above any of these thresholds a launch must be confirmed by
typing its quantity. They come from the desk's config (``precaution_lots``,
``precaution_notional``, ``precaution_margin``) and the launch dialog shows them."""

from __future__ import annotations

from dataclasses import dataclass

from ui.format import rupees


@dataclass(frozen=True, slots=True)
class Precautions:
    max_lots: int = 25  # per leg
    max_notional_paise: int = 5_00_00_000_00  # ₹5 crore: units x the underlying's spot
    max_margin_paise: int = 10_00_000_00  # ₹10 lakh of worst-case margin for the group

    def describe(self) -> str:
        return (
            f"type the quantity to confirm above {self.max_lots} lots, {rupees(self.max_notional_paise)} notional"
            f" or {rupees(self.max_margin_paise)} margin per group"
        )

    def exceeded(self, lots: int, notional_paise: int | None, margin_paise: int) -> list[str]:
        """The thresholds a group goes over, in words ([] when none)."""
        out = []
        if lots > self.max_lots:
            out.append(f"{lots} lots is above {self.max_lots}")
        if notional_paise is not None and notional_paise > self.max_notional_paise:
            out.append(f"notional {rupees(notional_paise)} is above {rupees(self.max_notional_paise)}")
        if margin_paise > self.max_margin_paise:
            out.append(f"margin {rupees(margin_paise)} is above {rupees(self.max_margin_paise)}")
        return out
