"""When a group counts as settled: two rules the simulator found wrong (tests/sim)."""

from __future__ import annotations

from engine.core.book import Book, GroupRuntime, IntentRow
from engine.core.model import GroupState, IntentStatus, LegRole, OrderStatus, OrderType, Purpose, Side
from tests.core.stepkit import spread


def _exit_row(status: IntentStatus, order_status: OrderStatus) -> IntentRow:
    return IntentRow(
        "TDEXIT00000000000001", "I1", 1, "G1", LegRole.RISK, 1, "NIFTY26DEC24000CE", Side.BUY, 150,
        OrderType.MARKET, None, status=status, order_status=order_status, purpose=Purpose.EXIT,
    )  # fmt: skip


def test_a_close_stuck_on_a_person_is_settled_and_one_still_working_is_not() -> None:
    """Found by simulation (none seed 31): every exit bounced off an empty book, the engine raised
    MANUAL_ACTION and waited on a person, yet the group never counted as settled."""
    group = GroupRuntime(spread(), GroupState.HEDGED, close_requested=True)
    assert not group.settled, "closing: not settled while the engine is still working it"
    group.waiting_on_person = True
    assert group.settled, "stuck on a person (escalated): settled until the person acts"


def test_an_exit_whose_orphan_the_operator_decided_no_longer_holds_its_group_unsettled() -> None:
    """Found by simulation (flaky seed 1): an exit sent while disconnected was orphaned and the
    operator approved a retry; the retry filled and the group COMPLETED, but the orphan's own row
    (RETRY_APPROVED, order status UNKNOWN for ever) kept the group unsettled."""
    book = Book()
    book.groups["G1"] = GroupRuntime(spread(), GroupState.COMPLETED, close_requested=True)
    book.add(_exit_row(IntentStatus.ORPHANED, OrderStatus.UNKNOWN))
    assert book.group_settled("G1"), "an orphan waits on the operator: settled for now"
    book.intents["TDEXIT00000000000001"].status = IntentStatus.RETRY_APPROVED
    assert book.group_settled("G1")
    book.intents["TDEXIT00000000000001"].status = IntentStatus.UNKNOWN
    assert not book.group_settled("G1"), "an exit whose outcome is unknown may still fill"
