"""Why? The causal chain of an order, a hedge node or an escalation (engine.audit.why) as a
timeline a risk manager reads: each fact, the rule that fired, the input it came from with its
local and broker time, and what the rule read; indented under it, the facts it rests on, back to
the group's launch and who gave it. A window of its own (never modal): the desk keeps running.
The text wraps and can be selected and copied into an incident report."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

from engine.audit.why import Link, render

_RULE = "#9fd3ff"
_EDGE = ("#7fd18b", "#9fd3ff", "#ffbf47", "#c9a0ff", "#8a8a8a")


def _facts(link: Link) -> str:
    shown = {k: v for k, v in link.facts.items() if k != "parent_orders"}
    return " · ".join(
        f"{html.escape(k.replace('_', ' '))} <b>{html.escape(str(v))}</b>" for k, v in sorted(shown.items())
    )


def _block(link: Link, depth: int) -> str:
    edge = _EDGE[min(depth, len(_EDGE) - 1)]
    parts = [f"<b>{html.escape(link.title)}</b>"]
    if link.rule:
        parts.append(f"<span style='color:{_RULE}'>rule</span> <code>{html.escape(link.rule)}</code>")
    i = link.input or {}
    if i and not i.get("missing"):
        offset = "" if i.get("offset_ms") is None else f" ({i['offset_ms']:+d} ms)"
        parts.append(
            f"input #{i['seq']} {html.escape(str(i['kind']))} at <b>{i['local_time']}</b> local,"
            f" broker {i['broker_time']}{offset}<br><i>{html.escape(str(i['summary']))}</i>"
        )
    elif i:
        parts.append(f"input #{i['seq']} (not in the journal)")
    if link.facts:
        parts.append("read: " + _facts(link))
    body = "<br>".join(parts)
    out = (
        f"<table width='100%' cellspacing='0' cellpadding='4' style='margin-left:{depth * 22}px'>"
        f"<tr><td style='border-left:3px solid {edge}'>{body}</td></tr></table>"
    )
    return out + "".join(_block(child, depth + 1) for child in link.because)


class WhyDialog(QDialog):
    def __init__(self, link: Link, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Why? " + link.title.split(":")[0])
        self.setModal(False)
        self.resize(1000, 640)
        self.link = link
        self.browser = QTextBrowser()
        self.browser.setObjectName("whyTimeline")
        self.browser.setOpenLinks(False)
        self.browser.setHtml(_block(link, 0))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.browser, 1)
        layout.addWidget(buttons)

    def text(self) -> str:
        """The chain as plain text (what a test or a screen reader reads; what Copy gives)."""
        return render(self.link)

    def shown(self) -> str:
        return self.browser.toPlainText()
