"""The ledger's invariants, recomputed from the database (SQLite file or PostgreSQL) after a billing scenario."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg


class _Query(Protocol):
    def __call__(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


@contextlib.contextmanager
def _query(database: Path | str) -> Iterator[_Query]:
    """Runs `?`-placeholder queries on a SQLite file or a postgresql:// URL."""
    if isinstance(database, Path):
        lite = sqlite3.connect(database)
        try:
            yield lambda sql, params=(): lite.execute(sql, params).fetchall()
        finally:
            lite.close()
        return
    with psycopg.connect(database, autocommit=True) as pg:
        yield lambda sql, params=(): pg.execute(sql.replace("?", "%s"), params).fetchall()


def assert_ledger_invariants(database: Path | str) -> None:
    """Balance = credits in the journal - charges in the usage log; nothing negative; holds add up; caps respected."""
    now: Any = datetime.now(UTC)
    if isinstance(database, Path):
        now = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with _query(database) as query:
        for account_id, balance, held in query("SELECT id, balance_micros, held_micros FROM accounts"):
            ((credits,),) = query(
                "SELECT COALESCE(SUM(amount_micros), 0) FROM ledger_entries WHERE account_id = ?", (account_id,)
            )
            ((charges,),) = query(
                "SELECT COALESCE(SUM(cost_micros), 0) FROM usage_logs WHERE account_id = ?", (account_id,)
            )
            assert balance == credits - charges, f"{account_id}: balance {balance} but {credits} - {charges}"
            assert balance >= 0 and held >= 0 and balance - held >= 0
            ((open_holds,),) = query(
                "SELECT COALESCE(SUM(amount_micros), 0) FROM holds WHERE account_id = ? AND settled_at IS NULL",
                (account_id,),
            )
            assert held == open_holds, f"{account_id}: held {held} but open holds sum to {open_holds}"
        for token_id, cap, spent, held in query(
            "SELECT id, spend_cap_micros, spent_micros, held_micros FROM api_tokens"
        ):
            assert spent >= 0 and held >= 0
            if cap:
                assert spent <= cap, f"{token_id}: spent {spent} over its cap {cap}"
            ((charged,),) = query(
                "SELECT COALESCE(SUM(cost_micros), 0) FROM usage_logs WHERE token_id = ?", (token_id,)
            )
            assert spent == charged, f"{token_id}: spent {spent} but usage rows sum to {charged}"
        ((charges,),) = query("SELECT COUNT(*) FROM ledger_entries WHERE kind = 'charge'")
        assert charges == 0, f"{charges} charges in the ledger: a call's charge is its usage row"
        ((stale,),) = query("SELECT COUNT(*) FROM holds WHERE settled_at IS NULL AND expires_at < ?", (now,))
        assert stale == 0


def database_dump(database: Path | str) -> bytes:
    """Every byte the database keeps: the SQLite file and its WAL, or pg_dump of the URL's schema."""
    if isinstance(database, Path):
        return b"".join(path.read_bytes() for path in sorted(database.parent.glob(database.name + "*")))
    parts = urlsplit(database)
    schema = unquote(parse_qs(parts.query).get("options", ["-csearch_path=public"])[0]).split("=", 1)[1]
    plain_url = parts._replace(query="").geturl()
    return subprocess.run(
        ["pg_dump", "--data-only", "--schema", schema, plain_url], capture_output=True, check=True, timeout=60
    ).stdout
