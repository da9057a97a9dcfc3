-- A call's charge is its usage row, and a hold lives only while its call runs. Each settlement wrote
-- the same charge twice (a ledger entry beside the usage row) and kept its hold forever: 19 pages per
-- call where 11 do (bench/RESULTS.md). Balance = credits in ledger_entries - cost_micros in usage_logs.
-- A process of the previous release still running during the upgrade keeps working: it may still mark
-- a hold settled (settled_at, which this release only reads) and add a charge entry (request_id).
-- Both columns go, with what such a process left, in a migration of a later release.

-- Holds: only the open ones; a settlement deletes its hold. The reaper scans the few that are open.
CREATE TABLE holds_open_only (
    request_id    TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    token_id      TEXT NOT NULL REFERENCES api_tokens (id),
    amount_micros INTEGER NOT NULL CHECK (amount_micros >= 0),
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    settled_at    TEXT
) STRICT, WITHOUT ROWID;
INSERT INTO holds_open_only (request_id, account_id, token_id, amount_micros, created_at, expires_at)
    SELECT request_id, account_id, token_id, amount_micros, created_at, expires_at FROM holds WHERE settled_at IS NULL;
DROP TABLE holds;
ALTER TABLE holds_open_only RENAME TO holds;

-- Charges: the usage rows have them (request_id UNIQUE there: one charge per request).
DELETE FROM ledger_entries WHERE kind = 'charge';

-- Daily totals keyed by their primary key alone (no second b-tree to write at every settlement).
CREATE TABLE usage_daily_by_key (
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
) STRICT, WITHOUT ROWID;
INSERT INTO usage_daily_by_key SELECT * FROM usage_daily;
DROP TABLE usage_daily;
ALTER TABLE usage_daily_by_key RENAME TO usage_daily;
