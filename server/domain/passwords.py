"""Console passwords: argon2id hashes, computed off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.errors import InvalidArgumentError

MIN_LENGTH = 8
MAX_LENGTH = 256


class Passwords:
    """Hashes and verifies passwords; verification of an unknown name costs as much as a known one."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash = self._hasher.hash("tollgate-dummy-password")

    async def hash(self, password: str, *, param: str = "password") -> str:
        """The argon2id hash of a new password; raises InvalidArgumentError if it is too short or long."""
        if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
            raise InvalidArgumentError(f"{param} must have {MIN_LENGTH} to {MAX_LENGTH} characters", param=param)
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if `password` matches; a None hash is checked against a dummy so timing says nothing."""
        return await asyncio.to_thread(
            self._verify, password_hash or self._dummy_hash, password_hash is not None, password
        )

    def _verify(self, password_hash: str, real: bool, password: str) -> bool:
        try:
            self._hasher.verify(password_hash, password[:MAX_LENGTH])
        except (VerificationError, InvalidHashError):
            return False
        return real
