"""Where the desk's resource files live (style sheets, launch templates): the repository's
resources/ directory, which the desk shares with the engine without importing engine code for it."""

from __future__ import annotations

from pathlib import Path

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
