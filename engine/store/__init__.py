"""aiosqlite persistence: the journal, its migrations, one writer connection."""
