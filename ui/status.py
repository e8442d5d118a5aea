"""Status bar: broker connection (coloured), broker-time offset, trading state, role and user,
journal path, and the latest message a person must read."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtWidgets import QLabel, QStatusBar

from engine.broker.ws import WsBroker
from engine.runtime.engine import Engine
from engine.runtime.state import Actor

CONNECTION_COLOURS = {"CONNECTED": "#7fd18b", "CONNECTING": "#ffbf47", "RECONNECTING": "#ffbf47", "CLOSED": "#ff6b6b"}
TRADING_COLOURS = {"ACTIVE": "#7fd18b", "REDUCING": "#ffbf47", "HALTED": "#ff6b6b"}
LEVEL_COLOURS = {"error": "#ff6b6b", "warning": "#ffbf47", "info": ""}


def _badge(label: QLabel, text: str, colour: str) -> None:
    label.setText(text)
    label.setStyleSheet(f"QLabel {{ color: #101010; background: {colour}; padding: 1px 6px; }}" if colour else "")


class DeskStatusBar(QStatusBar):
    def __init__(self, engine: Engine, actor: Actor, db_path: str, parent: Any = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.message = QLabel("")
        self.message.setObjectName("statusMessage")
        self.broker = QLabel()
        self.offset = QLabel()
        self.trading = QLabel()
        self.role = QLabel()
        self.db = QLabel(f"journal {db_path}")
        self.addWidget(self.message, 1)
        for w in (self.broker, self.offset, self.trading, self.role, self.db):
            self.addPermanentWidget(w)
        self.set_actor(actor)
        broker = engine.broker
        if isinstance(broker, WsBroker):
            broker.add_state_listener(lambda state: self.show_connection(state.value))
            self.show_connection(broker.connection_state.value)
        else:
            _badge(self.broker, "paper exchange (in-process)", CONNECTION_COLOURS["CONNECTED"])
        self.refresh()

    def set_actor(self, actor: Actor) -> None:
        self.role.setText(f"{actor.os_user} as {actor.role.value}")

    def show_connection(self, state: str) -> None:
        _badge(self.broker, f"broker {state}", CONNECTION_COLOURS.get(state, ""))

    def show_message(self, level: str, text: str) -> None:
        self.message.setText(text)
        colour = LEVEL_COLOURS.get(level, "")
        self.message.setStyleSheet(f"QLabel {{ color: {colour}; }}" if colour else "")

    def refresh(self) -> None:
        state = self.engine.trading_state.value
        _badge(self.trading, f"trading {state}", TRADING_COLOURS.get(state, ""))
        clock = self.engine.clock
        if clock.anchored:
            offset = clock.offset_ms(time.time_ns() // 1_000_000, self.engine.now_ns())
            self.offset.setText(f"broker time {offset:+d} ms")
        else:
            self.offset.setText("broker time: not anchored yet")
