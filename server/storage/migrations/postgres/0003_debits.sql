-- Debits: the operator takes money back (a mistaken credit, a refunded payment), recorded as a ledger
-- entry of kind 'debit' with a negative amount, keyed for idempotency in credit_requests like a credit.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('credit', 'debit', 'charge'));
