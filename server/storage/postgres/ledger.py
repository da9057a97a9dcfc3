"""The ledger on PostgreSQL: a hold's writes and a settlement are one statement each, so a settlement takes one
round trip and holds its locks for no longer; each statement costs the driver's Python more than the server.

A hold first reads its funds without locking them, then writes in one statement that locks the rows and checks
the funds again: no row lock is held across a round trip to Tollgate, so the holds and settlements of one account
do not queue behind each other's round trips. Only when the funds moved in between is the hold decided on rows
locked since its read (SqlLedger's way), so it cannot lose that race twice.
"""

from __future__ import annotations

from collections.abc import Callable

from server.domain.records import Funds, Hold, UsageRecord
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
    FUNDS,
    HOLD_COLUMNS,
    INSERT_HOLD,
    USAGE_COLUMNS,
    USAGE_VALUES,
    SettlementWrites,
    SqlLedger,
    funds_of,
    hold_row,
)

# The rows are locked already (by the hold's read): the order of these writes does not matter.
_RESERVE = f"WITH account AS ({ADD_HOLD_TO_ACCOUNT}), token AS ({ADD_HOLD_TO_TOKEN}) {INSERT_HOLD}"

# The funds checked again on the rows locked (as they are once any writer before has committed), then the writes,
# each only if the one before it did: a hold sized from funds that have shrunk since is not placed (no row back).
_CHECKED_FUNDS = (
    "SELECT FROM accounts a JOIN api_tokens t ON t.account_id = a.id WHERE a.id = ? AND t.id = ? AND a.discount = ?"
    " AND NOT a.disabled AND a.balance_micros - a.held_micros >= ?"
    " AND (t.spend_cap_micros = 0 OR t.spend_cap_micros - t.spent_micros - t.held_micros >= ?) FOR NO KEY UPDATE"
)
_PLACE_IF_FUNDED = (
    f"WITH funded AS ({_CHECKED_FUNDS}),"
    f" account AS ({ADD_HOLD_TO_ACCOUNT} AND EXISTS (SELECT FROM funded) RETURNING 1),"
    f" token AS ({ADD_HOLD_TO_TOKEN} AND EXISTS (SELECT FROM account) RETURNING 1)"
    f" INSERT INTO holds ({HOLD_COLUMNS}) SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT FROM token) RETURNING 1"
)

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

    async def place_hold(self, account_id: str, token_id: str, size: Callable[[Funds | None], Hold]) -> bool:
        funds, disabled = funds_of(await self._db.fetchone(FUNDS, (account_id, token_id)))
        hold = size(funds)
        if funds is None or disabled or hold.amount_micros > funds.budget_micros:
            return False
        amount = hold.amount_micros
        checked = (account_id, token_id, funds.discount, amount, amount)
        writes = (amount, account_id, amount, token_id, *hold_row(hold, self._db.dialect))
        if await self._db.fetchone(_PLACE_IF_FUNDED, (*checked, *writes)) is not None:
            return True
        return await super().place_hold(account_id, token_id, size)  # the funds moved: size again, on locked rows

    async def _reserve(self, tx: Transaction, hold: Hold) -> None:
        amount = hold.amount_micros
        await tx.send(_RESERVE, (amount, hold.account_id, amount, hold.token_id, *hold_row(hold, self._db.dialect)))

    async def settle(self, hold: Hold, charge_micros: int, usage: UsageRecord) -> bool:
        writes = SettlementWrites.of(hold, charge_micros, usage, self._db.dialect)
        row = await self._db.fetchone(
            _SETTLE, (hold.request_id, *writes.account, *writes.token, *writes.usage, *writes.daily)
        )
        return row is not None and row[0] == 1
