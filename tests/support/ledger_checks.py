"""The ledger's invariants, recomputed from the database file after a billing scenario."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def assert_ledger_invariants(database: Path) -> None:
    """Balance = credits - charges from the journal; nothing negative; holds add up; caps respected."""
    db = sqlite3.connect(database)
    try:
        for account_id, balance, held in db.execute("SELECT id, balance_micros, held_micros FROM accounts"):
            journal = db.execute(
                "SELECT COALESCE(SUM(amount_micros), 0) FROM ledger_entries WHERE account_id = ?", (account_id,)
            ).fetchone()[0]
            assert balance == journal, f"{account_id}: balance {balance} but the journal says {journal}"
            assert balance >= 0 and held >= 0 and balance - held >= 0
            open_holds = db.execute(
                "SELECT COALESCE(SUM(amount_micros), 0) FROM holds WHERE account_id = ? AND settled_at IS NULL",
                (account_id,),
            ).fetchone()[0]
            assert held == open_holds, f"{account_id}: held {held} but open holds sum to {open_holds}"
        for token_id, cap, spent, held in db.execute(
            "SELECT id, spend_cap_micros, spent_micros, held_micros FROM api_tokens"
        ):
            assert spent >= 0 and held >= 0
            if cap:
                assert spent <= cap, f"{token_id}: spent {spent} over its cap {cap}"
            charged = db.execute(
                "SELECT COALESCE(SUM(cost_micros), 0) FROM usage_logs WHERE token_id = ?", (token_id,)
            ).fetchone()[0]
            assert spent == charged, f"{token_id}: spent {spent} but usage rows sum to {charged}"
        duplicates = db.execute(
            "SELECT COUNT(*) FROM (SELECT request_id FROM ledger_entries WHERE request_id IS NOT NULL"
            " GROUP BY request_id HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        assert duplicates == 0
        stale = db.execute(
            "SELECT COUNT(*) FROM holds WHERE settled_at IS NULL AND expires_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        ).fetchone()[0]
        assert stale == 0
    finally:
        db.close()
