"""Desk configuration: embedded defaults (paper exchange and journal in the user data dir), a TOML
file (``--config``), then command-line flags, each overriding the one before."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from platformdirs import user_data_path, user_log_path

from app.errors import UsageError
from engine.core.model import Role
from engine.store.db import is_postgres
from engine.store.users import os_user
from ui.precautions import Precautions

APP_NAME = "trading-desk"
KEYS = {
    "db",
    "broker",
    "role",
    "theme",
    "settings_file",
    "max_hedge_depth",
    "order_timeout_ms",
    "available_margin",
    "precaution_lots",
    "precaution_notional",
    "precaution_margin",
}
THEMES = ("dark", "light")


@dataclass(frozen=True)
class GuiConfig:
    db: Path | str  # a journal file, or a postgresql:// URL
    broker: str
    role: Role = Role.TRADER
    user: str = ""  # not a config key: the OS user (tests set it in code)
    theme: str = "dark"
    settings_file: Path | None = None  # QSettings in an ini file instead of the platform store
    log_dir: Path | None = None
    max_hedge_depth: int = 3
    order_timeout_ms: int = 5000
    available_margin: str | None = None  # rupees; default: resources/margin.json
    # precautionary settings (TWS-style): above these a launch is confirmed by typing its quantity
    precaution_lots: int = 25
    precaution_notional: str = "50000000"  # rupees: units x the underlying's spot
    precaution_margin: str = "1000000"  # rupees of worst-case margin per group

    def precautions(self) -> Precautions:
        return Precautions(self.precaution_lots, _rupees(self.precaution_notional), _rupees(self.precaution_margin))


def _rupees(text: str) -> int:
    try:
        value = Decimal(str(text)) * 100
    except InvalidOperation as exc:
        raise UsageError(f"{text!r} is not an amount of rupees like 5000000") from exc
    if value <= 0 or value != value.to_integral_value():
        raise UsageError(f"{text!r} must be a positive amount of rupees with at most 2 decimals")
    return int(value)


def defaults() -> GuiConfig:
    data = user_data_path(APP_NAME, appauthor=False, ensure_exists=True)
    return GuiConfig(
        db=data / "journal.db",
        broker=f"paper:{data / 'paper-exchange.db'}",
        user=os_user(),
        log_dir=user_log_path(APP_NAME, appauthor=False),
    )


def read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise UsageError(f"config file {path}: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    return raw


def resolve(base: GuiConfig, overrides: dict[str, Any]) -> GuiConfig:
    """Apply overrides (None means: not given), validating each value."""
    given = {k: v for k, v in overrides.items() if v is not None}
    out: dict[str, Any] = {}
    for key, value in given.items():
        if key == "db" and is_postgres(str(value)):
            out[key] = str(value)
        elif key in ("db", "settings_file"):
            out[key] = Path(str(value)).expanduser()
        elif key == "role":
            try:
                out[key] = Role(str(value))
            except ValueError as exc:
                raise UsageError(f"role {value!r} is not one of {', '.join(r.value for r in Role)}") from exc
        elif key == "theme":
            if value not in THEMES:
                raise UsageError(f"theme {value!r} is not one of {', '.join(THEMES)}")
            out[key] = value
        elif key in ("max_hedge_depth", "order_timeout_ms", "precaution_lots"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"{key} must be a non-negative integer, got {value!r}")
            out[key] = value
        elif key in ("precaution_notional", "precaution_margin"):
            if isinstance(value, float | bool):
                raise UsageError(f"{key} must be rupees as a string or an integer, not {value!r}")
            _rupees(str(value))
            out[key] = str(value)
        else:
            out[key] = str(value)
    return replace(base, **out)


def load(config_file: str | None, flags: dict[str, Any], base: GuiConfig | None = None) -> GuiConfig:
    config = base or defaults()
    if config_file:
        config = resolve(config, read_toml(Path(config_file)))
    return resolve(config, flags)
