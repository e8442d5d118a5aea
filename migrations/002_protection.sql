-- Version 2: the hedge recursion tree, stop-loss orders (TRIGGER_PENDING), purposes of orders,
-- group margin and exit, and the trading state (kill switch).
-- SQLite cannot alter a CHECK constraint, so intents is rebuilt with its rows copied unchanged.

CREATE TABLE hedge_nodes (
    node_id            TEXT PRIMARY KEY,
    group_id           TEXT NOT NULL REFERENCES groups (group_id),
    parent_id          TEXT REFERENCES hedge_nodes (node_id),
    depth              INTEGER NOT NULL CHECK (depth >= 0),
    kind               TEXT NOT NULL CHECK (kind IN ('LEG','INTERIM','MANUAL')),
    symbol             TEXT NOT NULL,
    side               TEXT NOT NULL CHECK (side IN ('BUY','SELL')),
    lot_size           INTEGER NOT NULL CHECK (lot_size > 0),
    target_qty         INTEGER NOT NULL CHECK (target_qty > 0),
    filled_qty         INTEGER NOT NULL DEFAULT 0 CHECK (filled_qty >= 0),
    status             TEXT NOT NULL CHECK (status IN ('WORKING','FILLED','CHILDED','EXHAUSTED','HALTED')),
    reason             TEXT NOT NULL DEFAULT '',
    escalation_id      INTEGER REFERENCES escalations (escalation_id),
    ts_created_local_ns INTEGER NOT NULL CHECK (ts_created_local_ns >= 0),
    ts_updated_local_ns INTEGER NOT NULL CHECK (ts_updated_local_ns >= 0)
);
CREATE INDEX idx_hedge_nodes_group ON hedge_nodes (group_id);

CREATE TABLE intents_v2 (
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
    order_status        TEXT NOT NULL CHECK (order_status IN ('INTENT','SUBMITTED','TRIGGER_PENDING','ACCEPTED',
                            'PARTIALLY_FILLED','FILLED','PENDING_CANCEL','CANCELLED','REJECTED','UNKNOWN')),
    broker_order_id     TEXT,
    filled_qty          INTEGER NOT NULL DEFAULT 0 CHECK (filled_qty >= 0 AND filled_qty <= qty),
    fills_qty           INTEGER NOT NULL DEFAULT 0 CHECK (fills_qty >= 0 AND fills_qty <= qty),
    reason              TEXT NOT NULL DEFAULT '',
    ts_created_local_ns INTEGER NOT NULL CHECK (ts_created_local_ns >= 0),
    ts_ack_exchange_ms  INTEGER CHECK (ts_ack_exchange_ms IS NULL OR ts_ack_exchange_ms >= 0),
    ts_updated_local_ns INTEGER NOT NULL CHECK (ts_updated_local_ns >= 0),
    purpose             TEXT NOT NULL DEFAULT 'LEG' CHECK (purpose IN ('LEG','HEDGE','STOP','FALLBACK','EXIT')),
    hedge_node_id       TEXT REFERENCES hedge_nodes (node_id),
    trigger_price_paise INTEGER CHECK (trigger_price_paise IS NULL OR trigger_price_paise > 0),
    UNIQUE (intent_id, attempt)
);
INSERT INTO intents_v2 (client_order_id, intent_id, attempt, group_id, role, wave, symbol, side, qty, order_type,
    limit_price_paise, status, order_status, broker_order_id, filled_qty, fills_qty, reason, ts_created_local_ns,
    ts_ack_exchange_ms, ts_updated_local_ns)
SELECT client_order_id, intent_id, attempt, group_id, role, wave, symbol, side, qty, order_type,
    limit_price_paise, status, order_status, broker_order_id, filled_qty, fills_qty, reason, ts_created_local_ns,
    ts_ack_exchange_ms, ts_updated_local_ns FROM intents;
DROP TABLE intents;
ALTER TABLE intents_v2 RENAME TO intents;
CREATE INDEX idx_intents_group ON intents (group_id);
CREATE INDEX idx_intents_status ON intents (status);
CREATE INDEX idx_intents_node ON intents (hedge_node_id);
CREATE UNIQUE INDEX idx_intents_broker_order ON intents (broker_order_id) WHERE broker_order_id IS NOT NULL;

ALTER TABLE groups ADD COLUMN margin_paise INTEGER NOT NULL DEFAULT 0 CHECK (margin_paise >= 0);
ALTER TABLE groups ADD COLUMN exit_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE groups ADD COLUMN stop_trigger_paise INTEGER CHECK (stop_trigger_paise IS NULL OR stop_trigger_paise > 0);

INSERT INTO settings (key, value) VALUES ('trading_state', 'ACTIVE');
