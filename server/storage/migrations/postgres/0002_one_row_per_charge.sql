-- A call's charge is its usage row, and a hold lives only while its call runs (as on SQLite): each
-- settlement wrote the same charge twice and kept its hold forever.
-- Balance = credits in ledger_entries - cost_micros in usage_logs.

-- Holds: only the open ones; a settlement deletes its hold. The reaper scans the few that are open.
DELETE FROM holds WHERE settled_at IS NOT NULL;
DROP INDEX holds_open;
ALTER TABLE holds DROP COLUMN settled_at;

-- Charges: the usage rows have them (request_id UNIQUE there: one charge per request).
DELETE FROM ledger_entries WHERE kind = 'charge';
DROP INDEX ledger_entries_request;
ALTER TABLE ledger_entries DROP COLUMN request_id;
