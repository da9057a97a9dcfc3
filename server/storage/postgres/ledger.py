"""The ledger on PostgreSQL: a hold's writes and a settlement are one statement each, so a settlement takes one
round trip and holds its locks for no longer; each statement costs the driver's Python more than the server."""

from __future__ import annotations

from server.domain.records import Hold, UsageRecord
from server.storage.sql.database import Transaction
from server.storage.sql.ledger import (
    ADD_HOLD_TO_ACCOUNT,
    ADD_HOLD_TO_TOKEN,
    ADD_TO_DAILY,
    CHARGE_ACCOUNT,
    CHARGE_TOKEN,
    DAILY_COLUMNS,
    DAILY_VALUES,
    DELETE_OPEN_HOLD,
    INSERT_HOLD,
    USAGE_COLUMNS,
    USAGE_VALUES,
    SettlementWrites,
    SqlLedger,
    hold_row,
)

# The rows are locked already (by the hold's read): the order of these writes does not matter.
_RESERVE = f"WITH account AS ({ADD_HOLD_TO_ACCOUNT}), token AS ({ADD_HOLD_TO_TOKEN}) {INSERT_HOLD}"

# Each write runs only if the one before it did, which also orders the row locks as everywhere else: the hold,
# then the account, then the token. Without an open hold nothing is written and the count is 0.
_SETTLE = (
    f"WITH settled AS ({DELETE_OPEN_HOLD} RETURNING 1),"
    f" account AS ({CHARGE_ACCOUNT} AND EXISTS (SELECT FROM settled) RETURNING 1),"
    f" token AS ({CHARGE_TOKEN} AND EXISTS (SELECT FROM account) RETURNING 1),"
    f" usage AS (INSERT INTO usage_logs ({USAGE_COLUMNS}) SELECT {USAGE_VALUES} WHERE EXISTS (SELECT FROM token)),"
    f" daily AS (INSERT INTO usage_daily ({DAILY_COLUMNS}) SELECT {DAILY_VALUES}"
    f" WHERE EXISTS (SELECT FROM token){ADD_TO_DAILY})"
    " SELECT count(*) FROM settled"
)


class PostgresLedger(SqlLedger):
    """SqlLedger with a hold's writes and a settlement as statements of data-modifying WITH queries (SQLite has
    none)."""

    async def _reserve(self, tx: Transaction, hold: Hold) -> None:
        amount = hold.amount_micros
        await tx.send(_RESERVE, (amount, hold.account_id, amount, hold.token_id, *hold_row(hold, self._db.dialect)))

    async def settle(self, hold: Hold, charge_micros: int, usage: UsageRecord) -> bool:
        writes = SettlementWrites.of(hold, charge_micros, usage, self._db.dialect)
        row = await self._db.fetchone(
            _SETTLE, (hold.request_id, *writes.account, *writes.token, *writes.usage, *writes.daily)
        )
        return row is not None and row[0] == 1
