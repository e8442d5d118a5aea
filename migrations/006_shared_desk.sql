-- Version 6: one engine, many desks. A person's command is a row the engine executes once, in
-- order, in the same transaction as its effects; roles come from the users table (SQLite) or
-- from database roles (PostgreSQL); the lease row names the engine that holds the journal.

CREATE TABLE commands (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id      TEXT NOT NULL UNIQUE CHECK (length(command_id) BETWEEN 8 AND 64),
    action          TEXT NOT NULL CHECK (action IN ('launch','cancel','close','manual_hedge','ack','resolve',
                                                    'approve','abandon','halt','reduce','resume')),
    args_json       TEXT NOT NULL,
    submitted_by    TEXT NOT NULL CHECK (length(submitted_by) > 0),
    role            TEXT NOT NULL CHECK (role IN ('trader','risk','operator')),
    ts_submitted_ms INTEGER NOT NULL CHECK (ts_submitted_ms >= 0),
    status          TEXT NOT NULL DEFAULT 'SUBMITTED'
                    CHECK (status IN ('SUBMITTED','EXECUTING','DONE','REFUSED')),
    outcome_json    TEXT,
    error           TEXT,
    role_needed     TEXT CHECK (role_needed IS NULL OR role_needed IN ('trader','risk','operator')),
    engine_epoch    INTEGER CHECK (engine_epoch IS NULL OR engine_epoch >= 0),
    ts_done_ms      INTEGER CHECK (ts_done_ms IS NULL OR ts_done_ms >= 0)
);
CREATE INDEX commands_open ON commands (status, seq);

CREATE TABLE users (
    os_user         TEXT NOT NULL CHECK (length(os_user) > 0),
    role            TEXT NOT NULL CHECK (role IN ('trader','risk','operator')),
    granted_by      TEXT NOT NULL,
    ts_granted_ms   INTEGER NOT NULL CHECK (ts_granted_ms >= 0),
    PRIMARY KEY (os_user, role)
);

CREATE TABLE lease (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    epoch           INTEGER NOT NULL CHECK (epoch >= 0),
    holder_host     TEXT NOT NULL DEFAULT '',
    holder_pid      INTEGER NOT NULL DEFAULT 0 CHECK (holder_pid >= 0),
    holder_user     TEXT NOT NULL DEFAULT '',
    ts_since_ms     INTEGER NOT NULL DEFAULT 0 CHECK (ts_since_ms >= 0),
    ts_heartbeat_ms INTEGER NOT NULL DEFAULT 0 CHECK (ts_heartbeat_ms >= 0),
    commit_seq      INTEGER NOT NULL DEFAULT 0 CHECK (commit_seq >= 0),
    status_json     TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO lease (id, epoch) VALUES (1, 0);

ALTER TABLE audit_log ADD COLUMN command_seq INTEGER REFERENCES commands(seq);
