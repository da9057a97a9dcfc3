-- What a token has reserved for requests still running; spent + held never exceeds a non-zero cap.
ALTER TABLE api_tokens ADD COLUMN held_micros INTEGER NOT NULL DEFAULT 0 CHECK (held_micros >= 0);

-- One hold per request: an upper bound of its cost, reserved before the upstream is called.
CREATE TABLE holds (
    request_id    TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    token_id      TEXT NOT NULL REFERENCES api_tokens (id),
    amount_micros INTEGER NOT NULL CHECK (amount_micros >= 0),
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    settled_at    TEXT
) STRICT;
CREATE INDEX holds_open ON holds (expires_at) WHERE settled_at IS NULL;

-- One row per relayed call, metadata only: never prompt or completion text.
CREATE TABLE usage_logs (
    id                     TEXT PRIMARY KEY,
    request_id             TEXT NOT NULL UNIQUE,
    account_id             TEXT NOT NULL REFERENCES accounts (id),
    token_id               TEXT NOT NULL,
    token_name             TEXT NOT NULL,
    requested_model        TEXT NOT NULL,
    served_model           TEXT NOT NULL,
    channel                TEXT NOT NULL,
    stream                 INTEGER NOT NULL CHECK (stream IN (0, 1)),
    input_tokens           INTEGER NOT NULL CHECK (input_tokens >= 0),
    cached_tokens          INTEGER NOT NULL CHECK (cached_tokens >= 0),
    cache_write_tokens     INTEGER NOT NULL CHECK (cache_write_tokens >= 0),
    output_tokens          INTEGER NOT NULL CHECK (output_tokens >= 0),
    reasoning_tokens       INTEGER NOT NULL CHECK (reasoning_tokens >= 0),
    cost_micros            INTEGER NOT NULL CHECK (cost_micros >= 0),
    estimated              INTEGER NOT NULL CHECK (estimated IN (0, 1)),
    status                 TEXT NOT NULL,
    latency_ms             INTEGER NOT NULL,
    time_to_first_token_ms INTEGER,
    client_ip              TEXT NOT NULL,
    created_at             TEXT NOT NULL
) STRICT;
CREATE INDEX usage_logs_account ON usage_logs (account_id, id);

-- Totals per account, UTC day, model and token, kept up to date at settlement.
CREATE TABLE usage_daily (
    account_id         TEXT NOT NULL,
    day                TEXT NOT NULL,
    model              TEXT NOT NULL,
    token_id           TEXT NOT NULL,
    requests           INTEGER NOT NULL,
    input_tokens       INTEGER NOT NULL,
    cached_tokens      INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    output_tokens      INTEGER NOT NULL,
    cost_micros        INTEGER NOT NULL,
    PRIMARY KEY (account_id, day, model, token_id)
) STRICT;

-- Charges are ledger entries too: at most one per request.
ALTER TABLE ledger_entries ADD COLUMN request_id TEXT;
CREATE UNIQUE INDEX ledger_entries_request ON ledger_entries (request_id) WHERE request_id IS NOT NULL;
