"""The ledger on PostgreSQL: a hold's writes and a settlement are one statement each, so a settlement takes one
round trip and holds its locks for no longer; each statement costs the driver's Python more than the server.

A hold is written by one statement that locks the account's and the token's rows and checks the funds itself: no
row lock is held across a round trip to Tollgate, so the holds and settlements of one account do not queue behind
each other's round trips. Once the process has read a token's funds, its next hold is sized as if they were ample
and, if what it last read pays for that, written at once (one round trip; the statement refuses it if the funds
cannot pay now, or the discount changed). Otherwise, or then, the hold is sized from the funds read without locks;
and only when they moved before the write is it decided on rows locked since its read (SqlLedger's way), so it
cannot lose that race twice.
"""

from __future__ import annotations

from collections.abc import Callable

from server.domain.records import Funds, Hold, UsageRecord
from server.storage.sql.database import Database, Transaction
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
    fits,
    funds_of,
    hold_row,
)

# The rows are locked already (by the hold's read): the order of these writes does not matter.
_RESERVE = f"WITH account AS ({ADD_HOLD_TO_ACCOUNT}), token AS ({ADD_HOLD_TO_TOKEN}) {INSERT_HOLD}"

_AMPLE_MICROS = 2**62
"""Funds no hold reaches: a hold sized from them is the one its call needs when nothing limits it but the model."""
_REMEMBERED_TOKENS = 100_000

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

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._last_read: dict[str, Funds] = {}
        """Each token's funds as last read: hints only, which the write checks."""

    async def place_hold(self, account_id: str, token_id: str, size: Callable[[Funds | None], Hold]) -> bool:
        last = self._last_read.get(token_id)
        if last is not None:
            hold = size(Funds(_AMPLE_MICROS, None, last.discount))
            if fits(hold, last, False) and await self._place_if_funded(hold, last.discount):  # the write checks all
                return True
        funds, disabled = funds_of(await self._db.fetchone(FUNDS, (account_id, token_id)))
        if funds is not None:
            self._remember(token_id, funds)
        hold = size(funds)
        if funds is None or not fits(hold, funds, disabled):
            return False
        if await self._place_if_funded(hold, funds.discount):
            return True
        return await super().place_hold(account_id, token_id, size)  # the funds moved: size again, on locked rows

    async def _place_if_funded(self, hold: Hold, discount: str) -> bool:
        """Places `hold` if its account's discount is `discount` and its funds still pay for it, in one statement."""
        amount = hold.amount_micros
        checked = (hold.account_id, hold.token_id, discount, amount, amount)
        writes = (amount, hold.account_id, amount, hold.token_id, *hold_row(hold, self._db.dialect))
        return await self._db.fetchone(_PLACE_IF_FUNDED, (*checked, *writes)) is not None

    def _remember(self, token_id: str, funds: Funds) -> None:
        if len(self._last_read) >= _REMEMBERED_TOKENS and token_id not in self._last_read:
            self._last_read.clear()  # a bound, not a cache policy: the tokens still calling are read again once
        self._last_read[token_id] = funds

    async def _reserve(self, tx: Transaction, hold: Hold) -> None:
        amount = hold.amount_micros
        await tx.send(_RESERVE, (amount, hold.account_id, amount, hold.token_id, *hold_row(hold, self._db.dialect)))

    async def settle(self, hold: Hold, charge_micros: int, usage: UsageRecord) -> bool:
        writes = SettlementWrites.of(hold, charge_micros, usage, self._db.dialect)
        row = await self._db.fetchone(
            _SETTLE, (hold.request_id, *writes.account, *writes.token, *writes.usage, *writes.daily)
        )
        return row is not None and row[0] == 1
