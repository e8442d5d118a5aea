"""asyncio orchestration: feeds broker events into the core, persists effects, performs commands."""
