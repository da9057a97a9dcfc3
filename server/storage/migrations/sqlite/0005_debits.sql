-- Debits: the operator takes money back (a mistaken credit, a refunded payment), recorded as a ledger
-- entry of kind 'debit' with a negative amount, keyed for idempotency in credit_requests like a credit.
-- SQLite cannot change a CHECK in place: ledger_entries is rebuilt, and credit_requests with it, since
-- it refers to ledger_entries (children first, so no reference is left dangling on the way).
CREATE TABLE ledger_entries_with_debits (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    amount_micros INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('credit', 'debit', 'charge')),
    actor         TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    request_id    TEXT
) STRICT;
INSERT INTO ledger_entries_with_debits (id, account_id, amount_micros, kind, actor, reason, created_at, request_id)
    SELECT id, account_id, amount_micros, kind, actor, reason, created_at, request_id FROM ledger_entries;

CREATE TABLE credit_requests_with_debits (
    idempotency_key TEXT PRIMARY KEY,
    fingerprint     TEXT NOT NULL,
    ledger_entry_id TEXT NOT NULL REFERENCES ledger_entries_with_debits (id),
    created_at      TEXT NOT NULL
) STRICT;
INSERT INTO credit_requests_with_debits (idempotency_key, fingerprint, ledger_entry_id, created_at)
    SELECT idempotency_key, fingerprint, ledger_entry_id, created_at FROM credit_requests;

DROP TABLE credit_requests;
DROP TABLE ledger_entries;
-- Renaming the parent rewrites the child's reference to it: credit_requests refers to ledger_entries again.
ALTER TABLE ledger_entries_with_debits RENAME TO ledger_entries;
ALTER TABLE credit_requests_with_debits RENAME TO credit_requests;
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id);
CREATE UNIQUE INDEX ledger_entries_request ON ledger_entries (request_id) WHERE request_id IS NOT NULL;
