"""Loads the instrument catalog from resources/ (the only I/O around engine.core.instruments)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.core.instruments import CatalogError, Instrument, parse_catalog
from engine.core.margin import MarginModel, MarginModelError, parse_margin_model
from engine.paper.pricing import MarketModel, MarketModelError, parse_market_model

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


def _read_model(target: Path, what: str, error: type[ValueError]) -> object:
    try:
        return json.loads(target.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise error(f"cannot read {what} {target}: {exc}") from exc


def load_margin_model(path: Path | None = None) -> MarginModel:
    return parse_margin_model(_read_model(path or DEFAULT_MARGIN_MODEL, "margin model", MarginModelError))


DEFAULT_MARKET_MODEL = RESOURCES_DIR / "paper_market.json"


def load_market_model(path: Path | None = None) -> MarketModel:
    """The paper exchange's market model (spot processes, option pricing); MarketModelError names the file."""
    target = path or DEFAULT_MARKET_MODEL
    raw = _read_model(target, "paper market model", MarketModelError)
    try:
        return parse_market_model(raw)
    except MarketModelError as exc:
        raise MarketModelError(f"{target}: {exc}") from exc
