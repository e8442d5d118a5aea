-- Version 7: the time-travel audit. Every input the engine steps gets a sequence number and is
-- journaled (a tick only when it changed something), in the same transaction as the effects it
-- caused; every effect row names the input that caused it (cause_seq) and the rule that fired.
-- Checkpoints hold the engine's whole in-memory state at an input boundary: one at every start
-- (what recovery loaded) and one every few thousand inputs, so a replay need not start at zero.

CREATE TABLE inputs (
    seq          BIGINT PRIMARY KEY CHECK (seq > 0),
    kind         TEXT NOT NULL CHECK (kind IN ('events','placed','place_unsent','cancel_answered','looked_up',
                                               'broker_time','tick','recover','command')),
    epoch        BIGINT CHECK (epoch IS NULL OR epoch >= 0),
    ts_local_ns  BIGINT NOT NULL CHECK (ts_local_ns >= 0),
    ts_wall_ms   BIGINT NOT NULL CHECK (ts_wall_ms >= 0),
    ts_broker_ms BIGINT CHECK (ts_broker_ms IS NULL OR ts_broker_ms >= 0),
    command_seq  BIGINT REFERENCES commands (seq) DEFERRABLE INITIALLY DEFERRED,
    body_json    TEXT NOT NULL,
    ids_json     TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX inputs_command ON inputs (command_seq) WHERE command_seq IS NOT NULL;
CREATE FUNCTION td_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$;
CREATE TRIGGER inputs_append_only BEFORE UPDATE OR DELETE ON inputs
FOR EACH ROW EXECUTE FUNCTION td_append_only();

CREATE TABLE checkpoints (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq          BIGINT NOT NULL CHECK (seq > 0),  -- the state before this input is stepped
    kind         TEXT NOT NULL CHECK (kind IN ('START','PERIODIC')),
    epoch        BIGINT CHECK (epoch IS NULL OR epoch >= 0),
    ts_wall_ms   BIGINT NOT NULL CHECK (ts_wall_ms >= 0),
    format       BIGINT NOT NULL CHECK (format > 0),
    state        BYTEA NOT NULL
);
CREATE INDEX checkpoints_seq ON checkpoints (seq);
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE ON checkpoints
FOR EACH ROW EXECUTE FUNCTION td_append_only();

ALTER TABLE groups ADD COLUMN cause_seq BIGINT CHECK (cause_seq IS NULL OR cause_seq > 0);
ALTER TABLE intents ADD COLUMN cause_seq BIGINT CHECK (cause_seq IS NULL OR cause_seq > 0);
ALTER TABLE intents ADD COLUMN rule TEXT NOT NULL DEFAULT '';
ALTER TABLE intents ADD COLUMN why_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE hedge_nodes ADD COLUMN cause_seq BIGINT CHECK (cause_seq IS NULL OR cause_seq > 0);
ALTER TABLE hedge_nodes ADD COLUMN rule TEXT NOT NULL DEFAULT '';
ALTER TABLE hedge_nodes ADD COLUMN why_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE escalations ADD COLUMN cause_seq BIGINT CHECK (cause_seq IS NULL OR cause_seq > 0);
ALTER TABLE escalations ADD COLUMN rule TEXT NOT NULL DEFAULT '';
ALTER TABLE escalations ADD COLUMN why_json TEXT NOT NULL DEFAULT '{}';
ALTER TABLE transitions ADD COLUMN cause_seq BIGINT CHECK (cause_seq IS NULL OR cause_seq > 0);
ALTER TABLE transitions ADD COLUMN rule TEXT NOT NULL DEFAULT '';
ALTER TABLE fills ADD COLUMN cause_seq BIGINT CHECK (cause_seq IS NULL OR cause_seq > 0);
ALTER TABLE rejected_events ADD COLUMN cause_seq BIGINT CHECK (cause_seq IS NULL OR cause_seq > 0);
ALTER TABLE audit_log ADD COLUMN input_seq BIGINT CHECK (input_seq IS NULL OR input_seq > 0);
CREATE INDEX transitions_cause ON transitions (cause_seq);
CREATE INDEX fills_cause ON fills (cause_seq);
CREATE INDEX intents_cause ON intents (cause_seq);
