-- Version 8: marks. The engine journals the quotes (bid/ask/last) of every symbol an open group
-- trades, at most about once a second per symbol, so P&L history is auditable and every desk
-- that reads the journal shows the same figures. Marks are observations, not decisions: no step
-- reads them, and they name no input.

CREATE TABLE marks (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol         TEXT NOT NULL CHECK (length(symbol) BETWEEN 1 AND 64),
    bid_paise      BIGINT CHECK (bid_paise IS NULL OR bid_paise > 0),
    ask_paise      BIGINT CHECK (ask_paise IS NULL OR ask_paise > 0),
    last_paise     BIGINT CHECK (last_paise IS NULL OR last_paise > 0),
    bid_qty        BIGINT NOT NULL CHECK (bid_qty >= 0),
    ask_qty        BIGINT NOT NULL CHECK (ask_qty >= 0),
    last_qty       BIGINT NOT NULL CHECK (last_qty >= 0),
    ts_exchange_ms BIGINT NOT NULL CHECK (ts_exchange_ms >= 0),
    ts_local_ns    BIGINT NOT NULL CHECK (ts_local_ns >= 0),
    ts_wall_ms     BIGINT NOT NULL CHECK (ts_wall_ms >= 0),
    CHECK (bid_paise IS NULL OR ask_paise IS NULL OR bid_paise <= ask_paise)
);
CREATE INDEX marks_symbol ON marks (symbol, id);
CREATE TRIGGER marks_append_only BEFORE UPDATE ON marks
FOR EACH ROW EXECUTE FUNCTION td_append_only();
