-- Trading Desk journal, PostgreSQL. PostgreSQL journals start at schema version 5: this file is
-- the whole schema SQLite reaches after migrations 001..005 (002..005 are empty here).
-- Same tables, columns (names and order), defaults, CHECKs, keys and indexes as SQLite, except:
-- - INTEGER is BIGINT (nanosecond timestamps); INTEGER PRIMARY KEY AUTOINCREMENT is an identity
--   BY DEFAULT (the application inserts explicit escalation_id values).
-- - A table without an integer primary key gets a last column "seq" (always an identity), which
--   stands in for SQLite's implicit rowid: the application's ORDER BY rowid becomes ORDER BY seq.
-- - Every foreign key is DEFERRABLE INITIALLY DEFERRED: the application runs every transaction
--   with PRAGMA defer_foreign_keys=ON, so SQLite checks all of them at COMMIT only.
-- - PRIMARY KEY columns are NOT NULL (SQLite lets a non-integer primary key hold NULL).
-- - GLOB in a CHECK is a regular expression.

CREATE TABLE groups (
    group_id            TEXT PRIMARY KEY CHECK (length(group_id) BETWEEN 1 AND 64),
    template            TEXT NOT NULL DEFAULT '',
    state               TEXT NOT NULL CHECK (state IN ('CREATED','VALIDATED','HEDGE_SUBMITTED',
                            'HEDGE_PARTIAL','HEDGE_FILLED','RISK_SUBMITTED','RISK_PARTIAL','RISK_FILLED',
                            'HEDGED','COMPLETED','REJECTED','FAILED','CANCELLED')),
    reason              TEXT NOT NULL DEFAULT '',
    spec_json           TEXT NOT NULL,
    ts_created_local_ns BIGINT NOT NULL CHECK (ts_created_local_ns >= 0),
    ts_updated_local_ns BIGINT NOT NULL CHECK (ts_updated_local_ns >= 0),
    margin_paise        BIGINT NOT NULL DEFAULT 0 CHECK (margin_paise >= 0),
    exit_reason         TEXT NOT NULL DEFAULT '',
    stop_trigger_paise  BIGINT CHECK (stop_trigger_paise IS NULL OR stop_trigger_paise > 0),
    close_requested     BIGINT NOT NULL DEFAULT 0 CHECK (close_requested IN (0, 1)),
    cancel_requested    BIGINT NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);

CREATE TABLE legs (
    group_id          TEXT NOT NULL REFERENCES groups (group_id) DEFERRABLE INITIALLY DEFERRED,
    role              TEXT NOT NULL CHECK (role IN ('HEDGE','RISK')),
    symbol            TEXT NOT NULL,
    side              TEXT NOT NULL CHECK (side IN ('BUY','SELL')),
    qty               BIGINT NOT NULL CHECK (qty > 0),
    lot_size          BIGINT NOT NULL CHECK (lot_size > 0),
    tick_paise        BIGINT NOT NULL CHECK (tick_paise > 0),
    freeze_qty        BIGINT NOT NULL CHECK (freeze_qty >= lot_size),
    limit_price_paise BIGINT CHECK (limit_price_paise IS NULL OR limit_price_paise > 0),
    seq               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    PRIMARY KEY (group_id, role),
    CHECK (qty % lot_size = 0)
);

-- hedge_nodes.escalation_id refers to escalations, created below (foreign key added at the end).
CREATE TABLE hedge_nodes (
    node_id            TEXT PRIMARY KEY,
    group_id           TEXT NOT NULL REFERENCES groups (group_id) DEFERRABLE INITIALLY DEFERRED,
    parent_id          TEXT REFERENCES hedge_nodes (node_id) DEFERRABLE INITIALLY DEFERRED,
    depth              BIGINT NOT NULL CHECK (depth >= 0),
    kind               TEXT NOT NULL CHECK (kind IN ('LEG','INTERIM','MANUAL')),
    symbol             TEXT NOT NULL,
    side               TEXT NOT NULL CHECK (side IN ('BUY','SELL')),
    lot_size           BIGINT NOT NULL CHECK (lot_size > 0),
    target_qty         BIGINT NOT NULL CHECK (target_qty > 0),
    filled_qty         BIGINT NOT NULL DEFAULT 0 CHECK (filled_qty >= 0),
    status             TEXT NOT NULL CHECK (status IN ('WORKING','FILLED','CHILDED','EXHAUSTED','HALTED')),
    reason             TEXT NOT NULL DEFAULT '',
    escalation_id      BIGINT,
    ts_created_local_ns BIGINT NOT NULL CHECK (ts_created_local_ns >= 0),
    ts_updated_local_ns BIGINT NOT NULL CHECK (ts_updated_local_ns >= 0),
    seq                BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE INDEX idx_hedge_nodes_group ON hedge_nodes (group_id);

-- One row per attempt. The first attempt's client_order_id equals its intent_id; an operator's
-- approved retry is a new row (new client id, attempt + 1) linked by intent_id.
-- SQLite's "NOT GLOB '*[^A-Za-z0-9]*'" is "!~ '[^A-Za-z0-9]'" (ASCII letters and digits only).
CREATE TABLE intents (
    client_order_id     TEXT PRIMARY KEY CHECK (length(client_order_id) BETWEEN 1 AND 20
                            AND client_order_id !~ '[^A-Za-z0-9]'),
    intent_id           TEXT NOT NULL,
    attempt             BIGINT NOT NULL CHECK (attempt >= 1),
    group_id            TEXT NOT NULL REFERENCES groups (group_id) DEFERRABLE INITIALLY DEFERRED,
    role                TEXT NOT NULL CHECK (role IN ('HEDGE','RISK')),
    wave                BIGINT NOT NULL CHECK (wave >= 1),
    symbol              TEXT NOT NULL,
    side                TEXT NOT NULL CHECK (side IN ('BUY','SELL')),
    qty                 BIGINT NOT NULL CHECK (qty > 0),
    order_type          TEXT NOT NULL CHECK (order_type IN ('MARKET','LIMIT','SL','SL-M')),
    limit_price_paise   BIGINT CHECK (limit_price_paise IS NULL OR limit_price_paise > 0),
    status              TEXT NOT NULL CHECK (status IN ('PENDING','SENT','FILLED','CANCELLED','REJECTED',
                            'UNKNOWN','ORPHANED','RETRY_APPROVED','ABANDONED')),
    order_status        TEXT NOT NULL CHECK (order_status IN ('INTENT','SUBMITTED','TRIGGER_PENDING','ACCEPTED',
                            'PARTIALLY_FILLED','FILLED','PENDING_CANCEL','CANCELLED','REJECTED','UNKNOWN')),
    broker_order_id     TEXT,
    filled_qty          BIGINT NOT NULL DEFAULT 0 CHECK (filled_qty >= 0 AND filled_qty <= qty),
    fills_qty           BIGINT NOT NULL DEFAULT 0 CHECK (fills_qty >= 0 AND fills_qty <= qty),
    reason              TEXT NOT NULL DEFAULT '',
    ts_created_local_ns BIGINT NOT NULL CHECK (ts_created_local_ns >= 0),
    ts_ack_exchange_ms  BIGINT CHECK (ts_ack_exchange_ms IS NULL OR ts_ack_exchange_ms >= 0),
    ts_updated_local_ns BIGINT NOT NULL CHECK (ts_updated_local_ns >= 0),
    purpose             TEXT NOT NULL DEFAULT 'LEG' CHECK (purpose IN ('LEG','HEDGE','STOP','FALLBACK','EXIT')),
    hedge_node_id       TEXT REFERENCES hedge_nodes (node_id) DEFERRABLE INITIALLY DEFERRED,
    trigger_price_paise BIGINT CHECK (trigger_price_paise IS NULL OR trigger_price_paise > 0),
    ts_triggered_exchange_ms BIGINT
                            CHECK (ts_triggered_exchange_ms IS NULL OR ts_triggered_exchange_ms >= 0),
    ts_cancel_requested_exchange_ms BIGINT
                            CHECK (ts_cancel_requested_exchange_ms IS NULL OR ts_cancel_requested_exchange_ms >= 0),
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    UNIQUE (intent_id, attempt)
);
CREATE INDEX idx_intents_group ON intents (group_id);
CREATE INDEX idx_intents_status ON intents (status);
CREATE INDEX idx_intents_node ON intents (hedge_node_id);
CREATE UNIQUE INDEX idx_intents_broker_order ON intents (broker_order_id) WHERE broker_order_id IS NOT NULL;

CREATE TABLE fills (
    trade_id        TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL REFERENCES intents (client_order_id) DEFERRABLE INITIALLY DEFERRED,
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL CHECK (side IN ('BUY','SELL')),
    qty             BIGINT NOT NULL CHECK (qty > 0),
    price_paise     BIGINT NOT NULL CHECK (price_paise >= 0),
    ts_exchange_ms  BIGINT NOT NULL CHECK (ts_exchange_ms >= 0),
    ts_local_ns     BIGINT NOT NULL CHECK (ts_local_ns >= 0),
    seq             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
CREATE INDEX idx_fills_order ON fills (client_order_id);

-- Dedupe keys are kept for as long as the journal lives.
CREATE TABLE processed_events (
    event_key       TEXT PRIMARY KEY,
    client_order_id TEXT,
    ts_local_ns     BIGINT NOT NULL CHECK (ts_local_ns >= 0),
    seq             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);

CREATE TABLE rejected_events (
    id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    client_order_id TEXT,
    event_key       TEXT,
    event_json      TEXT NOT NULL,
    reason          TEXT NOT NULL,
    ts_exchange_ms  BIGINT,
    ts_local_ns     BIGINT NOT NULL CHECK (ts_local_ns >= 0),
    feed_seq        BIGINT CHECK (feed_seq IS NULL OR feed_seq >= 0)
);
CREATE INDEX idx_rejected_order ON rejected_events (client_order_id);

-- Audit trail of every state transition, orders and groups alike.
CREATE TABLE transitions (
    id             BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    entity         TEXT NOT NULL CHECK (entity IN ('ORDER','GROUP','INTENT','CLOCK','BROKER')),
    entity_id      TEXT NOT NULL,
    from_state     TEXT NOT NULL,
    to_state       TEXT NOT NULL,
    filled_qty     BIGINT CHECK (filled_qty IS NULL OR filled_qty >= 0),
    cause          TEXT NOT NULL DEFAULT '',
    ts_exchange_ms BIGINT,
    ts_local_ns    BIGINT NOT NULL CHECK (ts_local_ns >= 0)
);
CREATE INDEX idx_transitions_entity ON transitions (entity, entity_id);

CREATE TABLE escalations (
    escalation_id      BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    kind               TEXT NOT NULL CHECK (kind IN ('ORPHANED_INTENT','HEDGE_EXHAUSTED','SL_UNCONFIRMED',
                           'MANUAL_ACTION','UNKNOWN_OUTCOME','CANCEL_UNCONFIRMED','BROKER_UNUSABLE')),
    severity           TEXT NOT NULL CHECK (severity IN ('INFO','WARNING','CRITICAL')),
    status             TEXT NOT NULL CHECK (status IN ('OPEN','ACKNOWLEDGED','RESOLVED')),
    group_id           TEXT REFERENCES groups (group_id) DEFERRABLE INITIALLY DEFERRED,
    client_order_id    TEXT REFERENCES intents (client_order_id) DEFERRABLE INITIALLY DEFERRED,
    symbol             TEXT NOT NULL DEFAULT '',
    unhedged_qty       BIGINT NOT NULL DEFAULT 0 CHECK (unhedged_qty >= 0),
    reason             TEXT NOT NULL,
    ts_created_local_ns BIGINT NOT NULL CHECK (ts_created_local_ns >= 0),
    acknowledged_by    TEXT,
    acknowledged_role  TEXT,
    ts_acknowledged_local_ns BIGINT,
    resolved_by        TEXT,
    resolution         TEXT NOT NULL DEFAULT '',
    ts_resolved_local_ns BIGINT
);
CREATE INDEX idx_escalations_status ON escalations (status);

ALTER TABLE hedge_nodes ADD FOREIGN KEY (escalation_id) REFERENCES escalations (escalation_id)
    DEFERRABLE INITIALLY DEFERRED;

-- Append-only record of every command a person gave, with who and in which role.
CREATE TABLE audit_log (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    ts_local_ns BIGINT NOT NULL CHECK (ts_local_ns >= 0),
    ts_wall_ms  BIGINT NOT NULL CHECK (ts_wall_ms >= 0),
    os_user     TEXT NOT NULL,
    role        TEXT NOT NULL,
    command     TEXT NOT NULL,
    target      TEXT NOT NULL DEFAULT '',
    detail_json TEXT NOT NULL DEFAULT '{}',
    outcome     TEXT NOT NULL CHECK (outcome IN ('OK','REFUSED','FAILED'))
);
-- SQLite's RAISE(ABORT) triggers, as one function. SQLSTATE 23001 (restrict_violation) is an
-- integrity error, as SQLite's is; the messages are SQLite's. PostgreSQL also has TRUNCATE.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL CHECK (value >= 0),
    seq   BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
INSERT INTO counters (name, value) VALUES ('duplicate_events', 0), ('rejected_events', 0);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    seq   BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
);
INSERT INTO settings (key, value) VALUES ('trading_state', 'ACTIVE');
