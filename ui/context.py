"""What the desk window is given to work with: the engine's two ports (``EngineView`` to read,
``Commander`` to give commands) and the session's read-only facts. The application builds it
(app.gui); ui/ never imports app/, and knows the engine only through these ports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.core.commands import Actor
from engine.core.instruments import Instrument
from engine.core.margin import MarginModel
from engine.runtime.view import Commander, EngineView
from ui.precautions import Precautions


@dataclass(frozen=True)
class DeskContext:
    view: EngineView
    commander: Commander
    actor: Actor  # who gives commands from the window at start (the window may switch it)
    journal_path: Path | str  # a file or a postgresql:// URL; the desk opens its own read connection
    catalog: Mapping[str, Instrument]
    margin_model: MarginModel
    theme: str = "dark"  # until the person picks one (QSettings remembers it)
    precautions: Precautions = field(default_factory=Precautions)
