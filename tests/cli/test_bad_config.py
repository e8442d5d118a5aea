"""Bad config files: each refused with a message naming the file and the key (exit 2 on the
command line: tests/ui/test_errors_and_app.py), never half-applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import config
from app.errors import UsageError
from app.gui import _margin_model


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("db = \n", "is not valid TOML"),
        ('dbb = "x.db"\n', "unknown keys dbb"),
        ('role = "admin"\n', "role 'admin' is not one of trader, risk, operator"),
        ('theme = "pink"\n', "theme 'pink' is not one of"),
        ("order_timeout_ms = -5\n", "order_timeout_ms must be a non-negative integer, got -5"),
        ("max_hedge_depth = true\n", "max_hedge_depth must be a non-negative integer, got True"),
        ('order_timeout_ms = "5000"\n', "order_timeout_ms must be a non-negative integer, got '5000'"),
        ('available_margin = "lots"\n', "available_margin 'lots' is not a number of rupees"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "desk.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as refused:
        _margin_model(config.load(str(path), {}))  # the margin figure is checked where it is read
    assert message in str(refused.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read config file .*nope\.toml"):
        config.load(str(tmp_path / "nope.toml"), {})
