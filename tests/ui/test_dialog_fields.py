"""Every field of the launch dialog, mistyped: the dialog says why it cannot send and sends
nothing; the journal is untouched. (The manual-hedge dialog's confirmation: test_escalations.)"""

from __future__ import annotations

import pytest

from tests.ui.conftest import DeskHarness

BAD_FIELDS = [
    ("group_id", "", "group_id must be 1-64 characters"),
    ("group_id", "has space", "group_id must be 1-64 characters"),
    ("group_id", "a/b", "group_id must be 1-64 characters"),
    ("group_id", "x" * 65, "group_id must be 1-64 characters"),
    ("hedge_limit", "abc", "price"),
    ("hedge_limit", "-5", "price"),
    ("hedge_limit", "0", "price"),
    ("hedge_limit", "212.33", "tick"),
    ("hedge_limit", "NaN", "price"),
    ("hedge_limit", "1e9", "price"),
    ("stop_trigger", "abc", "price"),
    ("stop_trigger", "250.33", "tick"),
]


@pytest.mark.parametrize(("field", "text", "message"), BAD_FIELDS)
async def test_a_mistyped_launch_field_disables_send_and_says_why(
    desk: DeskHarness, field: str, text: str, message: str
) -> None:
    window = await desk.open()
    dialog = window.open_launch_dialog()
    dialog.select("bear call spread", "NIFTY", 24000, 24200, 2)
    dialog.group_id.setText("OK1")
    assert dialog.send.isEnabled(), dialog.preview.text()
    getattr(dialog, field).setText(text)
    assert not dialog.send.isEnabled()
    shown = dialog.preview.text()
    assert shown.startswith("Cannot send: ") and message in shown, shown
    at_fault = getattr(dialog, field)
    assert dialog.bad_field is at_fault and "#ff6b6b" in at_fault.styleSheet(), "marked where the mistake is"
    assert message in at_fault.toolTip()
    dialog.send.click()  # a click on the disabled button (or Enter) sends nothing
    dialog.reject()
    at_fault.setText("OK2" if field == "group_id" else "")  # corrected: the mark goes
    assert dialog.send.isEnabled() and dialog.bad_field is None and at_fault.styleSheet() == ""
    assert await desk.journal_rows("SELECT COUNT(*) FROM groups") == [(0,)]
    assert await desk.journal_rows("SELECT COUNT(*) FROM intents") == [(0,)]
