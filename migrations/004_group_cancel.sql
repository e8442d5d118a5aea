-- Version 4: a trader's cancel of a group that is still building (persisted so a restart honours it).
ALTER TABLE groups ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1));
