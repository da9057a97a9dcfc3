"""Console sessions: login with name and password (throttled), logout, password changes, session authentication."""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from server.access import Principal, Role
from server.auth import sha256_hex
from server.domain.accounts import OPERATOR_NAME
from server.domain.clock import utcnow
from server.domain.login_throttle import LoginThrottle
from server.domain.passwords import Passwords
from server.domain.records import Account, Session
from server.errors import AuthenticationError, NotFoundError, PermissionDeniedError
from server.storage.base import AccountStore, SessionStore

SESSION_PREFIX = "tgs-"
SESSION_LIFETIME = timedelta(hours=12)


class Sessions:
    """Logs accounts (and the operator, by name "operator" and the operator key) into the console."""

    def __init__(
        self,
        accounts: AccountStore,
        sessions: SessionStore,
        passwords: Passwords,
        throttle: LoginThrottle,
        operator_key_sha256: str,
    ) -> None:
        self._accounts = accounts
        self._sessions = sessions
        self._passwords = passwords
        self._throttle = throttle
        self._operator_key_sha256 = operator_key_sha256.encode("ascii")

    async def login(self, name: str, password: str, client_ip: str) -> tuple[str, Session]:
        """A new session token (shown once) and its session; raises AuthenticationError or RateLimitedError."""
        await self._throttle.check(name, client_ip)
        if name == OPERATOR_NAME:
            ok = hmac.compare_digest(sha256_hex(password).encode("ascii"), self._operator_key_sha256)
            account_id = ""
        else:
            credentials = await self._accounts.credentials(name)
            matches = await self._passwords.verify(credentials.password_hash if credentials else None, password)
            ok = matches and credentials is not None and not credentials.disabled
            account_id = credentials.account_id if credentials else ""
        if not ok:
            await self._throttle.failed(name, client_ip)
            raise AuthenticationError("wrong name or password", reason="invalid_credentials")
        await self._throttle.succeeded(name)
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        session = Session(sha256_hex(token), account_id, not account_id, now + SESSION_LIFETIME)
        await self._sessions.insert_session(session, now)
        return token, session

    async def change_password(self, account_id: str, session_hash: str, current: str, new: str, client_ip: str) -> int:
        """Sets `new` if `current` is right (a wrong one counts as a failed login); ends the account's other
        sessions and returns how many did."""
        account = await self._account(account_id)
        await self._throttle.check(account.name, client_ip)
        credentials = await self._accounts.credentials(account.name)
        if credentials is None or not await self._passwords.verify(credentials.password_hash, current):
            await self._throttle.failed(account.name, client_ip)
            raise PermissionDeniedError("the current password is wrong", reason="wrong_password")
        return await self._set_password(account, await self._passwords.hash(new, param="new_password"), session_hash)

    async def reset_password(self, account_id: str, password: str) -> int:
        """The operator's: a new password for an account whose owner forgot it. Its sessions end, and so does its
        name's lock-out (an address's stays: it may be someone else's). Returns how many sessions ended."""
        account = await self._account(account_id)
        return await self._set_password(account, await self._passwords.hash(password))

    async def _account(self, account_id: str) -> Account:
        account = await self._accounts.get_account(account_id)
        if account is None:
            raise NotFoundError("no such account", param="account_id")
        return account

    async def _set_password(self, account: Account, password_hash: str, keep_session: str = "") -> int:
        ended = await self._accounts.set_password(account.id, password_hash, utcnow(), keep_session)
        if ended is None:
            raise NotFoundError("no such account", param="account_id")
        await self._throttle.succeeded(account.name)
        return ended

    async def logout(self, session_hash: str) -> None:
        await self._sessions.delete_session(session_hash)

    async def authenticate(self, credential: str, client_ip: str) -> Principal | None:
        """Authenticator of session tokens: the live session's principal, None for other credentials."""
        if not credential.startswith(SESSION_PREFIX):
            return None
        session = await self._sessions.find_session(sha256_hex(credential), utcnow())
        if session is None:
            raise AuthenticationError(
                "the console session has expired or ended; log in again", reason="invalid_session"
            )
        role = Role.OPERATOR if session.operator else Role.SESSION
        return Principal(role, account_id=session.account_id, session_hash=session.token_hash)
