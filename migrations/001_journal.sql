-- Trading Desk journal, version 1.
-- Money is integer paise, quantities are integer units, timestamps are integers with the unit in
-- the column name. Every money/quantity column is NOT NULL (or explicitly optional) and CHECKed.
-- SQLite syntax only: indexes are separate CREATE INDEX statements (seed defect 1).

CREATE TABLE groups (
    group_id            TEXT PRIMARY KEY CHECK (length(group_id) BETWEEN 1 AND 64),
    template            TEXT NOT NULL DEFAULT '',
    state               TEXT NOT NULL CHECK (state IN ('CREATED','VALIDATED','HEDGE_SUBMITTED',
                            'HEDGE_PARTIAL','HEDGE_FILLED','RISK_SUBMITTED','RISK_PARTIAL','RISK_FILLED',
                            'HEDGED','COMPLETED','REJECTED','FAILED','CANCELLED')),
    reason              TEXT NOT NULL DEFAULT '',
    spec_json           TEXT NOT NULL,
    ts_created_local_ns INTEGER NOT NULL CHECK (ts_created_local_ns >= 0),
    ts_updated_local_ns INTEGER NOT NULL CHECK (ts_updated_local_ns >= 0)
);

CREATE TABLE legs (
    group_id          TEXT NOT NULL REFERENCES groups (group_id),
    role              TEXT NOT NULL CHECK (role IN ('HEDGE','RISK')),
    symbol            TEXT NOT NULL,
    side              TEXT NOT NULL CHECK (side IN ('BUY','SELL')),
    qty               INTEGER NOT NULL CHECK (qty > 0),
    lot_size          INTEGER NOT NULL CHECK (lot_size > 0),
    tick_paise        INTEGER NOT NULL CHECK (tick_paise > 0),
    freeze_qty        INTEGER NOT NULL CHECK (freeze_qty >= lot_size),
    limit_price_paise INTEGER CHECK (limit_price_paise IS NULL OR limit_price_paise > 0),
    PRIMARY KEY (group_id, role),
    CHECK (qty % lot_size = 0)
);

-- One row per attempt. The first attempt's client_order_id equals its intent_id; an operator's
-- approved retry is a new row (new client id, attempt + 1) linked by intent_id.
CREATE TABLE intents (
    client_order_id     TEXT PRIMARY KEY CHECK (length(client_order_id) BETWEEN 1 AND 20
                            AND client_order_id NOT GLOB '*[^A-Za-z0-9]*'),
    intent_id           TEXT NOT NULL,
    attempt             INTEGER NOT NULL CHECK (attempt >= 1),
    group_id            TEXT NOT NULL REFERENCES groups (group_id),
    role                TEXT NOT NULL CHECK (role IN ('HEDGE','RISK')),
    wave                INTEGER NOT NULL CHECK (wave >= 1),
    symbol              TEXT NOT NULL,
    side                TEXT NOT NULL CHECK (side IN ('BUY','SELL')),
    qty                 INTEGER NOT NULL CHECK (qty > 0),
    order_type          TEXT NOT NULL CHECK (order_type IN ('MARKET','LIMIT','SL','SL-M')),
    limit_price_paise   INTEGER CHECK (limit_price_paise IS NULL OR limit_price_paise > 0),
    status              TEXT NOT NULL CHECK (status IN ('PENDING','SENT','FILLED','CANCELLED','REJECTED',
                            'UNKNOWN','ORPHANED','RETRY_APPROVED','ABANDONED')),
    order_status        TEXT NOT NULL CHECK (order_status IN ('INTENT','SUBMITTED','ACCEPTED',
                            'PARTIALLY_FILLED','FILLED','PENDING_CANCEL','CANCELLED','REJECTED','UNKNOWN')),
    broker_order_id     TEXT,
    filled_qty          INTEGER NOT NULL DEFAULT 0 CHECK (filled_qty >= 0 AND filled_qty <= qty),
    fills_qty           INTEGER NOT NULL DEFAULT 0 CHECK (fills_qty >= 0 AND fills_qty <= qty),
    reason              TEXT NOT NULL DEFAULT '',
    ts_created_local_ns INTEGER NOT NULL CHECK (ts_created_local_ns >= 0),
    ts_ack_exchange_ms  INTEGER CHECK (ts_ack_exchange_ms IS NULL OR ts_ack_exchange_ms >= 0),
    ts_updated_local_ns INTEGER NOT NULL CHECK (ts_updated_local_ns >= 0),
    UNIQUE (intent_id, attempt)
);
CREATE INDEX idx_intents_group ON intents (group_id);
CREATE INDEX idx_intents_status ON intents (status);
CREATE UNIQUE INDEX idx_intents_broker_order ON intents (broker_order_id) WHERE broker_order_id IS NOT NULL;

CREATE TABLE fills (
    trade_id        TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL REFERENCES intents (client_order_id),
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL CHECK (side IN ('BUY','SELL')),
    qty             INTEGER NOT NULL CHECK (qty > 0),
    price_paise     INTEGER NOT NULL CHECK (price_paise >= 0),
    ts_exchange_ms  INTEGER NOT NULL CHECK (ts_exchange_ms >= 0),
    ts_local_ns     INTEGER NOT NULL CHECK (ts_local_ns >= 0)
);
CREATE INDEX idx_fills_order ON fills (client_order_id);

-- Dedupe keys are kept for as long as the journal lives: an order can receive a resent event at
-- any time (seed defect 6), and a key is a few dozen bytes.
CREATE TABLE processed_events (
    event_key       TEXT PRIMARY KEY,
    client_order_id TEXT,
    ts_local_ns     INTEGER NOT NULL CHECK (ts_local_ns >= 0)
);

CREATE TABLE rejected_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT,
    event_key       TEXT,
    event_json      TEXT NOT NULL,
    reason          TEXT NOT NULL,
    ts_exchange_ms  INTEGER,
    ts_local_ns     INTEGER NOT NULL CHECK (ts_local_ns >= 0)
);
CREATE INDEX idx_rejected_order ON rejected_events (client_order_id);

-- Audit trail of every state transition, orders and groups alike.
CREATE TABLE transitions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    entity         TEXT NOT NULL CHECK (entity IN ('ORDER','GROUP','INTENT')),
    entity_id      TEXT NOT NULL,
    from_state     TEXT NOT NULL,
    to_state       TEXT NOT NULL,
    filled_qty     INTEGER CHECK (filled_qty IS NULL OR filled_qty >= 0),
    cause          TEXT NOT NULL DEFAULT '',
    ts_exchange_ms INTEGER,
    ts_local_ns    INTEGER NOT NULL CHECK (ts_local_ns >= 0)
);
CREATE INDEX idx_transitions_entity ON transitions (entity, entity_id);

CREATE TABLE escalations (
    escalation_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind               TEXT NOT NULL CHECK (kind IN ('ORPHANED_INTENT','HEDGE_EXHAUSTED','SL_UNCONFIRMED',
                           'MANUAL_ACTION','UNKNOWN_OUTCOME')),
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
CREATE INDEX idx_escalations_status ON escalations (status);

-- Append-only record of every command a person gave, with who and in which role.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_local_ns INTEGER NOT NULL CHECK (ts_local_ns >= 0),
    ts_wall_ms  INTEGER NOT NULL CHECK (ts_wall_ms >= 0),
    os_user     TEXT NOT NULL,
    role        TEXT NOT NULL,
    command     TEXT NOT NULL,
    target      TEXT NOT NULL DEFAULT '',
    detail_json TEXT NOT NULL DEFAULT '{}',
    outcome     TEXT NOT NULL CHECK (outcome IN ('OK','REFUSED','FAILED'))
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END;

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL CHECK (value >= 0)
);
INSERT INTO counters (name, value) VALUES ('duplicate_events', 0), ('rejected_events', 0);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
