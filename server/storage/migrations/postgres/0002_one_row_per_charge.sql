-- A call's charge is its usage row, and a hold lives only while its call runs (as on SQLite): each
-- settlement wrote the same charge twice and kept its hold forever.
-- Balance = credits in ledger_entries - cost_micros in usage_logs.
-- Replicas of the previous release still running during a rolling upgrade keep working: they may still
-- mark a hold settled (settled_at, which this release only reads) and add a charge entry (request_id).
-- Both columns go, with what such a process left, in a migration of a later release.

-- Holds: only the open ones; a settlement deletes its hold. The reaper scans the few that are open.
DELETE FROM holds WHERE settled_at IS NOT NULL;
DROP INDEX holds_open;

-- Charges: the usage rows have them (request_id UNIQUE there: one charge per request).
DELETE FROM ledger_entries WHERE kind = 'charge';
