"""Seed defects 9 and 16 in the pure hedge tree, and its conservation property."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.core.hedge_tree import NodeStatus, judge

LOT = 75


def test_defect9_hedge_filling_2_of_5_lots_gets_a_child_for_exactly_the_remaining_3() -> None:
    verdict = judge(depth=0, target_qty=5 * LOT, confirmed_filled_qty=2 * LOT, lot_size=LOT, max_depth=3)
    assert verdict.status is NodeStatus.CHILDED
    assert verdict.remainder_qty == 3 * LOT


def test_defect16_past_max_depth_the_exact_remainder_is_escalated_not_raised() -> None:
    verdict = judge(depth=3, target_qty=3 * LOT, confirmed_filled_qty=LOT, lot_size=LOT, max_depth=3)
    assert verdict.status is NodeStatus.EXHAUSTED
    assert verdict.remainder_qty == 2 * LOT
    assert "max depth 3" in verdict.reason


def test_a_remainder_below_one_lot_is_escalated() -> None:
    verdict = judge(depth=0, target_qty=100, confirmed_filled_qty=75, lot_size=LOT, max_depth=3)
    assert (verdict.status, verdict.remainder_qty) == (NodeStatus.EXHAUSTED, 25)


@given(
    target_lots=st.integers(1, 60),
    fill_fractions=st.lists(st.floats(0, 1), min_size=1, max_size=10),
    max_depth=st.integers(0, 5),
)
def test_confirmed_fills_plus_escalated_qty_equal_the_exposure_to_cover(
    target_lots: int, fill_fractions: list[float], max_depth: int
) -> None:
    exposure = target_lots * LOT
    target, depth, confirmed, escalated = exposure, 0, 0, 0
    while True:
        fraction = fill_fractions[min(depth, len(fill_fractions) - 1)]
        filled = int(target // LOT * fraction) * LOT  # exchanges fill whole lots
        confirmed += filled
        verdict = judge(depth, target, filled, LOT, max_depth)
        if verdict.status is NodeStatus.FILLED:
            break
        if verdict.status is NodeStatus.EXHAUSTED:
            escalated += verdict.remainder_qty
            break
        assert verdict.remainder_qty == target - filled
        target, depth = verdict.remainder_qty, depth + 1
    assert confirmed + escalated == exposure
    assert depth <= max_depth
