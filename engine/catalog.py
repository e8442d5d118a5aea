"""Loads the instrument catalog from resources/ (the only I/O around engine.core.instruments)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.core.instruments import CatalogError, Instrument, parse_catalog
from engine.core.margin import MarginModel, MarginModelError, parse_margin_model

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
DEFAULT_CATALOG = RESOURCES_DIR / "instruments.json"


def load_catalog(path: Path | None = None) -> dict[str, Instrument]:
    """Read and validate a catalog file; raises CatalogError with the file named."""
    target = path or DEFAULT_CATALOG
    try:
        raw = json.loads(target.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"cannot read instrument catalog {target}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"instrument catalog {target} is not valid JSON: {exc}") from exc
    try:
        return parse_catalog(raw)
    except CatalogError as exc:
        raise CatalogError(f"{target}: {exc}") from exc


DEFAULT_MARGIN_MODEL = RESOURCES_DIR / "margin.json"


def load_margin_model(path: Path | None = None) -> MarginModel:
    target = path or DEFAULT_MARGIN_MODEL
    try:
        raw = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MarginModelError(f"cannot read margin model {target}: {exc}") from exc
    return parse_margin_model(raw)
