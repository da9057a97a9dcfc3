-- Accounts hold the money (integer micro-USD); the CHECKs keep balances and holds from going negative.
CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    balance_micros INTEGER NOT NULL DEFAULT 0 CHECK (balance_micros >= 0),
    held_micros    INTEGER NOT NULL DEFAULT 0 CHECK (held_micros >= 0 AND held_micros <= balance_micros),
    discount       TEXT NOT NULL DEFAULT '1',
    created_at     TEXT NOT NULL
) STRICT;

-- Every movement of money, with who, when and why.
CREATE TABLE ledger_entries (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    amount_micros INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('credit', 'charge')),
    actor         TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL
) STRICT;
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id);

-- Idempotency of credits: one row per Idempotency-Key, written in the credit's own transaction.
CREATE TABLE credit_requests (
    idempotency_key TEXT PRIMARY KEY,
    fingerprint     TEXT NOT NULL,
    ledger_entry_id TEXT NOT NULL REFERENCES ledger_entries (id),
    created_at      TEXT NOT NULL
) STRICT;

-- Console sessions, known only by the hash of their token; account_id is NULL for the operator's.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT REFERENCES accounts (id),
    operator   INTEGER NOT NULL DEFAULT 0 CHECK (operator IN (0, 1)),
    expires_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    CHECK ((operator = 1) = (account_id IS NULL))
) STRICT;
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- API tokens, known only by the hash of their key. Deleted tokens keep their row (deleted_at) so
-- usage history keeps its names, and no key can ever be reused.
CREATE TABLE api_tokens (
    id                  TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL REFERENCES accounts (id),
    name                TEXT NOT NULL,
    key_hash            TEXT NOT NULL UNIQUE,
    masked_key          TEXT NOT NULL,
    spend_cap_micros    INTEGER NOT NULL DEFAULT 0 CHECK (spend_cap_micros >= 0),
    spent_micros        INTEGER NOT NULL DEFAULT 0 CHECK (spent_micros >= 0),
    expires_at          TEXT,
    allowed_models      TEXT NOT NULL DEFAULT '[]',
    allowed_ips         TEXT NOT NULL DEFAULT '[]',
    max_concurrency     INTEGER NOT NULL DEFAULT 0 CHECK (max_concurrency >= 0),
    requests_per_minute INTEGER NOT NULL DEFAULT 0 CHECK (requests_per_minute >= 0),
    tokens_per_minute   INTEGER NOT NULL DEFAULT 0 CHECK (tokens_per_minute >= 0),
    disabled            INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at          TEXT NOT NULL,
    last_used_at        TEXT,
    deleted_at          TEXT
) STRICT;
CREATE INDEX api_tokens_account ON api_tokens (account_id, id);
