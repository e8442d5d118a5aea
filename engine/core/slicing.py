"""Child-order slicing at the exchange freeze quantity."""

from __future__ import annotations


class SliceError(ValueError):
    pass


def max_slice_qty(lot_size: int, freeze_qty: int) -> int:
    """The largest lot multiple not above the freeze quantity."""
    largest = freeze_qty - freeze_qty % lot_size
    if largest <= 0:
        raise SliceError(f"freeze qty {freeze_qty} is below one lot of {lot_size}")
    return largest


def slice_qty(qty: int, lot_size: int, freeze_qty: int) -> list[int]:
    """Split ``qty`` into child quantities, each a lot multiple and at most the freeze quantity.

    The slices are as even as whole lots allow, so no child is a tiny tail.
    """
    if qty <= 0 or qty % lot_size:
        raise SliceError(f"qty {qty} is not a positive multiple of lot size {lot_size}")
    cap_lots = max_slice_qty(lot_size, freeze_qty) // lot_size
    lots = qty // lot_size
    n = -(-lots // cap_lots)
    base, extra = divmod(lots, n)
    return [(base + (1 if i < extra else 0)) * lot_size for i in range(n)]
