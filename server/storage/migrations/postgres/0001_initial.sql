-- The whole schema of SQLite's migrations 0001-0003 in one step. Money is BIGINT micro-USD; the
-- CHECKs are the same as on SQLite: balances and holds never go negative, one charge per request.

-- Site-wide settings that must survive restarts (e.g. the hash of a generated operator key).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    balance_micros BIGINT NOT NULL DEFAULT 0 CHECK (balance_micros >= 0),
    held_micros    BIGINT NOT NULL DEFAULT 0 CHECK (held_micros >= 0 AND held_micros <= balance_micros),
    discount       TEXT NOT NULL DEFAULT '1',
    created_at     TIMESTAMPTZ NOT NULL
);

-- Every movement of money, with who, when and why; charges name their request, at most once.
CREATE TABLE ledger_entries (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    amount_micros BIGINT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('credit', 'charge')),
    actor         TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    created_at    TIMESTAMPTZ NOT NULL,
    request_id    TEXT
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id);
CREATE UNIQUE INDEX ledger_entries_request ON ledger_entries (request_id) WHERE request_id IS NOT NULL;

-- Idempotency of credits: one row per Idempotency-Key, written in the credit's own transaction.
CREATE TABLE credit_requests (
    idempotency_key TEXT PRIMARY KEY,
    fingerprint     TEXT NOT NULL,
    ledger_entry_id TEXT NOT NULL REFERENCES ledger_entries (id),
    created_at      TIMESTAMPTZ NOT NULL
);

-- Console sessions, known only by the hash of their token; account_id is NULL for the operator's.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT REFERENCES accounts (id),
    operator   BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    CHECK (operator = (account_id IS NULL))
);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- API tokens, known only by the hash of their key. Deleted tokens keep their row (deleted_at).
-- held_micros is what running requests reserved; spent + held never exceeds a non-zero cap.
CREATE TABLE api_tokens (
    id                  TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL REFERENCES accounts (id),
    name                TEXT NOT NULL,
    key_hash            TEXT NOT NULL UNIQUE,
    masked_key          TEXT NOT NULL,
    spend_cap_micros    BIGINT NOT NULL DEFAULT 0 CHECK (spend_cap_micros >= 0),
    spent_micros        BIGINT NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
    held_micros         BIGINT NOT NULL DEFAULT 0 CHECK (held_micros >= 0),
    expires_at          TIMESTAMPTZ,
    allowed_models      JSONB NOT NULL DEFAULT '[]',
    allowed_ips         JSONB NOT NULL DEFAULT '[]',
    max_concurrency     INTEGER NOT NULL DEFAULT 0 CHECK (max_concurrency >= 0),
    requests_per_minute INTEGER NOT NULL DEFAULT 0 CHECK (requests_per_minute >= 0),
    tokens_per_minute   BIGINT NOT NULL DEFAULT 0 CHECK (tokens_per_minute >= 0),
    disabled            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at          TIMESTAMPTZ NOT NULL,
    last_used_at        TIMESTAMPTZ,
    deleted_at          TIMESTAMPTZ
);
CREATE INDEX api_tokens_account ON api_tokens (account_id, id);

-- One hold per request: an upper bound of its cost, reserved before the upstream is called.
CREATE TABLE holds (
    request_id    TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    token_id      TEXT NOT NULL REFERENCES api_tokens (id),
    amount_micros BIGINT NOT NULL CHECK (amount_micros >= 0),
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    settled_at    TIMESTAMPTZ
);
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
    stream                 BOOLEAN NOT NULL,
    input_tokens           BIGINT NOT NULL CHECK (input_tokens >= 0),
    cached_tokens          BIGINT NOT NULL CHECK (cached_tokens >= 0),
    cache_write_tokens     BIGINT NOT NULL CHECK (cache_write_tokens >= 0),
    output_tokens          BIGINT NOT NULL CHECK (output_tokens >= 0),
    reasoning_tokens       BIGINT NOT NULL CHECK (reasoning_tokens >= 0),
    cost_micros            BIGINT NOT NULL CHECK (cost_micros >= 0),
    estimated              BOOLEAN NOT NULL,
    status                 TEXT NOT NULL,
    latency_ms             BIGINT NOT NULL,
    time_to_first_token_ms BIGINT,
    client_ip              TEXT NOT NULL,
    created_at             TIMESTAMPTZ NOT NULL
);
CREATE INDEX usage_logs_account ON usage_logs (account_id, id);

-- Totals per account, UTC day (YYYY-MM-DD), model and token, kept up to date at settlement.
CREATE TABLE usage_daily (
    account_id         TEXT NOT NULL,
    day                TEXT NOT NULL,
    model              TEXT NOT NULL,
    token_id           TEXT NOT NULL,
    requests           BIGINT NOT NULL,
    input_tokens       BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    output_tokens      BIGINT NOT NULL,
    cost_micros        BIGINT NOT NULL,
    PRIMARY KEY (account_id, day, model, token_id)
);
