-- Site-wide settings that must survive restarts (e.g. the hash of a generated operator key).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
