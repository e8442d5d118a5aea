-- Version 3: broker-time anchors of the hybrid stop-loss, persisted so a restart resumes its timers.
ALTER TABLE intents ADD COLUMN ts_triggered_exchange_ms INTEGER
    CHECK (ts_triggered_exchange_ms IS NULL OR ts_triggered_exchange_ms >= 0);
ALTER TABLE intents ADD COLUMN ts_cancel_requested_exchange_ms INTEGER
    CHECK (ts_cancel_requested_exchange_ms IS NULL OR ts_cancel_requested_exchange_ms >= 0);
ALTER TABLE groups ADD COLUMN close_requested INTEGER NOT NULL DEFAULT 0 CHECK (close_requested IN (0, 1));
