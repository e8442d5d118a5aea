-- Version 5: what a hostile broker feed needs the journal to say.
-- - escalations: CANCEL_UNCONFIRMED (a leg or hedge cancel the broker never confirms) and
--   BROKER_UNUSABLE (the broker has not answered for longer than allowed).
-- - transitions: CLOCK rows (every exchange clock step, either way) and BROKER rows (the broker
--   becoming unusable and usable again).
-- - rejected_events: the feed's sequence number of a refused event, when the feed has one.
-- SQLite cannot alter a CHECK constraint: both tables are rebuilt with their rows copied unchanged.

CREATE TABLE escalations_v5 (
    escalation_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind               TEXT NOT NULL CHECK (kind IN ('ORPHANED_INTENT','HEDGE_EXHAUSTED','SL_UNCONFIRMED',
                           'MANUAL_ACTION','UNKNOWN_OUTCOME','CANCEL_UNCONFIRMED','BROKER_UNUSABLE')),
    severity           TEXT NOT NULL CHECK (severity IN ('INFO','WARNING','CRITICAL')),
    status             TEXT NOT NULL CHECK (status IN ('OPEN','ACKNOWLEDGED','RESOLVED')),
    group_id           TEXT REFERENCES groups (group_id),
    client_order_id    TEXT REFERENCES intents (client_order_id),
    symbol             TEXT NOT NULL DEFAULT '',
    unhedged_qty       INTEGER NOT NULL DEFAULT 0 CHECK (unhedged_qty >= 0),
    reason             TEXT NOT NULL,
    ts_created_local_ns INTEGER NOT NULL CHECK (ts_created_local_ns >= 0),
    acknowledged_by    TEXT,
    acknowledged_role  TEXT,
    ts_acknowledged_local_ns INTEGER,
    resolved_by        TEXT,
    resolution         TEXT NOT NULL DEFAULT '',
    ts_resolved_local_ns INTEGER
);
INSERT INTO escalations_v5 SELECT * FROM escalations;
DROP TABLE escalations;
ALTER TABLE escalations_v5 RENAME TO escalations;
CREATE INDEX idx_escalations_status ON escalations (status);

CREATE TABLE transitions_v5 (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    entity         TEXT NOT NULL CHECK (entity IN ('ORDER','GROUP','INTENT','CLOCK','BROKER')),
    entity_id      TEXT NOT NULL,
    from_state     TEXT NOT NULL,
    to_state       TEXT NOT NULL,
    filled_qty     INTEGER CHECK (filled_qty IS NULL OR filled_qty >= 0),
    cause          TEXT NOT NULL DEFAULT '',
    ts_exchange_ms INTEGER,
    ts_local_ns    INTEGER NOT NULL CHECK (ts_local_ns >= 0)
);
INSERT INTO transitions_v5 SELECT * FROM transitions;
DROP TABLE transitions;
ALTER TABLE transitions_v5 RENAME TO transitions;
CREATE INDEX idx_transitions_entity ON transitions (entity, entity_id);

ALTER TABLE rejected_events ADD COLUMN feed_seq INTEGER CHECK (feed_seq IS NULL OR feed_seq >= 0);
