"""A schema-1 journal, as the first release wrote it."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.store.migrations import MIGRATIONS_DIR


def v1_migrations(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations_v1"
    folder.mkdir()
    shutil.copy(MIGRATIONS_DIR / "001_journal.sql", folder / "001_journal.sql")
    return folder
