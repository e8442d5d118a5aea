"""Apply an enablement rule to a button or an action: enabled with a tooltip saying what it does,
or disabled with a tooltip saying why not (ui.viewmodels.enablement decides which)."""

from __future__ import annotations

from typing import Protocol


class Enableable(Protocol):
    def setEnabled(self, enabled: bool, /) -> None: ...
    def setToolTip(self, tip: str, /) -> None: ...


def enable(target: Enableable, why_not: str, what: str) -> None:
    target.setEnabled(not why_not)
    target.setToolTip(what if not why_not else why_not[:1].upper() + why_not[1:])
