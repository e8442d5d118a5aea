"""Names the runtime's callers use, re-exported from where they live now (engine.core)."""

from __future__ import annotations

from engine.core.book import Book, GroupRuntime
from engine.core.commands import Actor, CommandError, RoleError
from engine.core.state import EngineConfig
from engine.runtime.ids import new_client_order_id

__all__ = ["Actor", "Book", "CommandError", "EngineConfig", "GroupRuntime", "RoleError", "new_client_order_id"]
