"""Pure decisions: no I/O, no asyncio, no wall clock."""
