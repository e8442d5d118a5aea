"""Status bar: broker connection (coloured), broker-time offset, trading state, role and user,
journal path, and the latest message a person must read."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QLabel, QSizePolicy, QStatusBar

from engine.core.commands import Actor
from engine.runtime.view import ConnectionState, EngineView

CONNECTION_COLOURS = {
    ConnectionState.IN_PROCESS: "#7fd18b",
    ConnectionState.CONNECTED: "#7fd18b",
    ConnectionState.CONNECTING: "#ffbf47",
    ConnectionState.RECONNECTING: "#ffbf47",
    ConnectionState.CLOSED: "#ff6b6b",
}
TRADING_COLOURS = {"ACTIVE": "#7fd18b", "REDUCING": "#ffbf47", "HALTED": "#ff6b6b"}
LEVEL_COLOURS = {"error": "#ff6b6b", "warning": "#ffbf47", "info": ""}


def _badge(label: QLabel, text: str, colour: str) -> None:
    label.setText(text)
    label.setStyleSheet(f"QLabel {{ color: #101010; background: {colour}; padding: 1px 6px; }}" if colour else "")


class DeskStatusBar(QStatusBar):
    def __init__(self, view: EngineView, actor: Actor, db_path: str, parent: Any = None) -> None:
        super().__init__(parent)
        self.view = view
        self.message = QLabel("")
        self.message.setObjectName("statusMessage")
        # a long message is cut, never widens the window; the tooltip and the Log tab hold all of it
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.message.setMinimumWidth(120)
        self.broker = QLabel()
        self.offset = QLabel()
        self.trading = QLabel()
        self.role = QLabel()
        self.db = QLabel(f"journal {db_path}")
        self.engine = QLabel()
        self.engine.setObjectName("attachedEngine")
        self.addWidget(self.message, 1)
        for w in (self.broker, self.offset, self.trading, self.role, self.engine, self.db):
            self.addPermanentWidget(w)
        self.set_actor(actor)
        self.refresh()

    def set_actor(self, actor: Actor) -> None:
        self.role.setText(f"{actor.os_user} as {actor.role.value}")

    def show_connection(self, state: ConnectionState) -> None:
        text = "paper exchange (in-process)" if state is ConnectionState.IN_PROCESS else f"broker {state.value}"
        _badge(self.broker, text, CONNECTION_COLOURS.get(state, ""))

    def show_message(self, level: str, text: str) -> None:
        self.message.setText(text)
        self.message.setToolTip(text)
        colour = LEVEL_COLOURS.get(level, "")
        self.message.setStyleSheet(f"QLabel {{ color: {colour}; }}" if colour else "")

    def refresh(self) -> None:
        """Read what the view says now (the window calls this every half second)."""
        self.show_connection(self.view.connection())
        attached_to = getattr(self.view, "attached_to", None)  # a desk attached to another process's engine
        if attached_to is None:
            self.engine.setText("engine in this window")
        else:
            text = attached_to()
            _badge(self.engine, text, "" if text.endswith(": alive") else CONNECTION_COLOURS[ConnectionState.CLOSED])
        if not self.view.broker_usable():
            _badge(self.broker, "broker UNUSABLE: opening orders wait", CONNECTION_COLOURS[ConnectionState.CLOSED])
        state = self.view.trading_state.value
        _badge(self.trading, f"trading {state}", TRADING_COLOURS.get(state, ""))
        offset = self.view.clock_offset_ms()
        if offset is None:
            self.offset.setText("broker time: not anchored yet")
        else:
            self.offset.setText(f"broker time {offset:+d} ms")
