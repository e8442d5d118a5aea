"""What the audit reads a journal through: the engine's Journal, or a desk's read-only reader."""

from __future__ import annotations

from typing import Any, Protocol


class JournalSource(Protocol):
    where: str  # the file, or the URL without its password (for messages)

    async def fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
