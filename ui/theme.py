"""Dark (default) and light themes: a Qt style sheet from resources/ plus pyqtgraph colours."""

from __future__ import annotations

import pyqtgraph as pg  # type: ignore[import-untyped]
from PySide6.QtWidgets import QApplication

from ui.resources import RESOURCES_DIR

THEMES = {"dark": RESOURCES_DIR / "dark.qss", "light": RESOURCES_DIR / "light.qss"}


def apply_theme(name: str) -> str:
    """Apply a theme by name (unknown names fall back to dark). Returns the name applied."""
    if name not in THEMES:
        name = "dark"
    app = QApplication.instance()
    if isinstance(app, QApplication):
        app.setStyleSheet(THEMES[name].read_text(encoding="utf-8"))
    pg.setConfigOptions(
        background="#1e1f22" if name == "dark" else "#ffffff", foreground="#d8d8d8" if name == "dark" else "#202020"
    )
    return name
