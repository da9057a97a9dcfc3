"""Accounts, credentials and idempotent credits and debits."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from server.domain.records import Account, Credentials, LedgerEntry, Moved, Movement
from server.storage.sql.database import Database, Dialect, Row, set_clause

_ACCOUNT_COLUMNS = "id, name, disabled, balance_micros, held_micros, discount, created_at"
_UPDATABLE = ("disabled", "discount")
_ENTRY_COLUMNS = "id, account_id, amount_micros, kind, actor, reason, created_at"


def _account(row: Row, dialect: Dialect) -> Account:
    return Account(
        id=row[0],
        name=row[1],
        disabled=bool(row[2]),
        balance_micros=row[3],
        held_micros=row[4],
        discount=row[5],
        created_at=dialect.from_time(row[6]),
    )


def _entry(row: Row, dialect: Dialect) -> LedgerEntry:
    return LedgerEntry(
        id=row[0],
        account_id=row[1],
        amount_micros=row[2],
        kind=row[3],
        actor=row[4],
        reason=row[5],
        created_at=dialect.from_time(row[6]),
    )


class SqlAccounts:
    """AccountStore in SQL."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert_account(self, account: Account, password_hash: str) -> bool:
        changed = await self._db.execute(
            "INSERT INTO accounts"
            " (id, name, password_hash, disabled, balance_micros, held_micros, discount, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
            (
                account.id,
                account.name,
                password_hash,
                account.disabled,
                account.balance_micros,
                account.held_micros,
                account.discount,
                self._db.dialect.time(account.created_at),
            ),
        )
        return changed == 1

    async def get_account(self, account_id: str) -> Account | None:
        row = await self._db.fetchone(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,))
        return None if row is None else _account(row, self._db.dialect)

    async def list_accounts(self, after_id: str, limit: int) -> list[Account]:
        rows = await self._db.fetchall(
            f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        )
        return [_account(row, self._db.dialect) for row in rows]

    async def credentials(self, name: str) -> Credentials | None:
        row = await self._db.fetchone("SELECT id, password_hash, disabled FROM accounts WHERE name = ?", (name,))
        return None if row is None else Credentials(row[0], row[1], bool(row[2]))

    async def set_password(
        self, account_id: str, password_hash: str, now: datetime, keep_session: str = ""
    ) -> int | None:
        async with self._db.transaction() as tx:
            if not await tx.execute("UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, account_id)):
                return None
            others = (account_id, keep_session)
            live = await tx.fetchone(
                "SELECT COUNT(*) FROM sessions WHERE account_id = ? AND token_hash <> ? AND expires_at > ?",
                (*others, self._db.dialect.time(now)),
            )
            await tx.execute("DELETE FROM sessions WHERE account_id = ? AND token_hash <> ?", others)
            return int(live[0]) if live else 0

    async def update_account(self, account_id: str, changes: Mapping[str, Any]) -> Account | None:
        assignments = set_clause(changes, _UPDATABLE, "account settings")
        if changes:
            await self._db.execute(f"UPDATE accounts SET {assignments} WHERE id = ?", (*changes.values(), account_id))
        return await self.get_account(account_id)

    async def list_ledger_entries(self, account_id: str, before_id: str, limit: int) -> list[LedgerEntry]:
        # Only the operator's movements: a charge entry is what a release before one-row-per-charge wrote.
        rows = await self._db.fetchall(
            f"SELECT {_ENTRY_COLUMNS} FROM ledger_entries WHERE account_id = ? AND kind IN ('credit', 'debit')"
            f"{' AND id < ?' if before_id else ''} ORDER BY id DESC LIMIT ?",
            (account_id, *([before_id] if before_id else []), limit),
        )
        return [_entry(row, self._db.dialect) for row in rows]

    async def apply_movement(self, movement: Movement) -> Moved | None:
        dialect = self._db.dialect
        async with self._db.transaction() as tx:
            # The account's row lock makes a replayed key wait for the first request, then see it; a hold
            # takes the same lock, so what is available cannot change before the debit is written.
            row = await tx.fetchone(
                f"SELECT balance_micros - held_micros FROM accounts WHERE id = ?{dialect.lock_row}",
                (movement.account_id,),
            )
            if row is None:
                return None
            available = int(row[0])
            existing = await tx.fetchone(
                "SELECT e.id, e.account_id, e.amount_micros, e.kind, e.actor, e.reason, e.created_at, r.fingerprint"
                " FROM credit_requests r JOIN ledger_entries e ON e.id = r.ledger_entry_id"
                " WHERE r.idempotency_key = ?",
                (movement.idempotency_key,),
            )
            if existing is not None:
                return Moved(_entry(existing, dialect), existing[7], available)
            if available + movement.amount_micros < 0:
                return Moved(None, movement.fingerprint, available)
            entry = movement.entry()
            await tx.execute(
                "UPDATE accounts SET balance_micros = balance_micros + ? WHERE id = ?",
                (entry.amount_micros, entry.account_id),
            )
            at = dialect.time(entry.created_at)
            await tx.execute(
                f"INSERT INTO ledger_entries ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.id, entry.account_id, entry.amount_micros, entry.kind, entry.actor, entry.reason, at),
            )
            await tx.execute(
                "INSERT INTO credit_requests (idempotency_key, fingerprint, ledger_entry_id, created_at)"
                " VALUES (?, ?, ?, ?)",
                (movement.idempotency_key, movement.fingerprint, entry.id, at),
            )
        return Moved(entry, movement.fingerprint, available)
