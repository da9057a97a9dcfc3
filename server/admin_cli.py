"""Operator commands on the database itself: migrate it; create, change, credit, debit accounts; passwords; tokens."""

from __future__ import annotations

import argparse
import secrets
import sys
import uuid
from datetime import datetime

from server.auth import operator_key_sha256, print_operator_key
from server.bootstrap import build_limiter, build_revocations, open_store
from server.config import Config
from server.domain.accounts import Accounts
from server.domain.catalogue import Catalogue
from server.domain.login_throttle import LoginThrottle
from server.domain.money import format_usd, parse_usd
from server.domain.passwords import Passwords
from server.domain.records import TokenSettings
from server.domain.sessions import Sessions
from server.domain.token_cache import TokenCache
from server.domain.tokens import Tokens
from server.errors import InvalidArgumentError, NotFoundError
from server.storage.base import AccountStore


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `migrate`, `account create|update|password|credit|debit` and `token create` to the `tollgate` parser."""
    commands.add_parser("migrate", help="bring the database schema to the newest version, then exit")
    account = commands.add_parser("account", help="operator: manage accounts").add_subparsers(
        dest="action", required=True
    )
    create = account.add_parser("create", help="open an account; prints its console password once")
    create.add_argument("name")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.add_argument("--discount", default="1", help="price multiplier, e.g. 0.9")
    update = account.add_parser("update", help="change an account's discount, or disable or enable it")
    update.add_argument("name")
    update.add_argument("--discount", help="price multiplier, e.g. 0.9; running requests keep theirs")
    status = update.add_mutually_exclusive_group()
    status.add_argument("--disable", dest="disabled", action="store_const", const=True, help="its keys stop at once")
    status.add_argument("--enable", dest="disabled", action="store_const", const=False)
    password = account.add_parser("password", help="set a console password (printed once); its sessions end")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    for action, help_text in (
        ("credit", "add money to an account's balance"),
        ("debit", "take money back from an account's balance, at most what running calls do not hold"),
    ):
        movement = account.add_parser(action, help=help_text)
        movement.add_argument("name")
        movement.add_argument("amount_usd", help='decimal USD, e.g. "25.00"')
        movement.add_argument("--reason", default="")
        movement.add_argument("--idempotency-key", help="repeat-safe key (default: a new one)")
    token = commands.add_parser("token", help="operator: manage API tokens").add_subparsers(
        dest="action", required=True
    )
    token_create = token.add_parser("create", help="create an API token; prints its key once")
    token_create.add_argument("--account", required=True, help="account name")
    token_create.add_argument("--name", default="default")
    token_create.add_argument("--cap", default="0", help="spend cap in USD; 0 = unlimited")
    token_create.add_argument("--expires", help="expiry, ISO 8601 with a time zone")
    token_create.add_argument("--models", default="", help="comma-separated model allow-list")
    token_create.add_argument("--ips", default="", help="comma-separated address/CIDR allow-list")
    token_create.add_argument("--concurrency", type=int, default=0, help="concurrent requests; 0 = default")
    token_create.add_argument("--rpm", type=int, default=0, help="requests per minute; 0 = no limit")
    token_create.add_argument("--tpm", type=int, default=0, help="tokens per minute; 0 = no limit")


async def run(config: Config, args: argparse.Namespace) -> None:
    """Runs one operator command against the configured database."""
    store = await open_store(config.database_url, config.database)  # migrates
    revocations = build_revocations(config)  # with Redis, running replicas hear of an account disabled here at once
    try:
        if args.command == "migrate":
            print(f"database schema at version {await store.schema_version()}")
            return
        key_sha256, generated_key = await operator_key_sha256(store, config.admin_key)
        if generated_key:
            print_operator_key(generated_key)
        nothing_cached = TokenCache(ttl=0, backstop_ttl=0, publisher=revocations)  # one command: no look-ups to keep
        passwords = Passwords()
        accounts = Accounts(store.accounts, passwords, nothing_cached)
        tokens = Tokens(store.tokens, Catalogue(config.models).ids(), nothing_cached)
        if args.command == "account" and args.action == "create":
            password = _password(args.password_stdin)
            account = await accounts.create(args.name, password, args.discount)
            print(f"account {account.name} ({account.id}) created")
            if not args.password_stdin:
                print(f"console password (shown once): {password}")
        elif args.command == "account" and args.action == "password":
            password = _password(args.password_stdin)
            limiter = build_limiter(config)  # with Redis, a lock-out of the name ends on every replica
            try:
                throttle = LoginThrottle(limiter)
                sessions = Sessions(store.accounts, store.sessions, passwords, throttle, key_sha256)
                ended = await sessions.reset_password(await _account_id(store.accounts, args.name), password)
            finally:
                await limiter.close()
            print(f"password of {args.name} set; {ended} console session(s) ended")
            if not args.password_stdin:
                print(f"console password (shown once): {password}")
        elif args.command == "account" and args.action == "update":
            asked = {"discount": args.discount, "disabled": args.disabled}
            changes = {key: value for key, value in asked.items() if value is not None}
            if not changes:
                raise InvalidArgumentError("name a change: --discount, --disable or --enable")
            account = await accounts.update(await _account_id(store.accounts, args.name), changes)
            state = "disabled" if account.disabled else "active"
            print(f"account {account.name} ({account.id}): discount {account.discount}, {state}")
        elif args.command == "account" and args.action in ("credit", "debit"):
            account_id = await _account_id(store.accounts, args.name)
            key = args.idempotency_key or f"cli-{uuid.uuid4()}"
            move = accounts.credit if args.action == "credit" else accounts.debit
            entry, account = await move(account_id, args.amount_usd, args.reason, key, "operator")
            print(
                f"{args.action}ed {format_usd(abs(entry.amount_micros))} USD; "
                f"balance {format_usd(account.balance_micros)} USD"
            )
        elif args.command == "token" and args.action == "create":
            account_id = await _account_id(store.accounts, args.account)
            token, key = await tokens.create(account_id, _settings(args))
            print(f"token {token.name} ({token.id}) created for {args.account}")
            print(f"API key (shown once): {key}")
    finally:
        if revocations is not None:
            await revocations.close()
        await store.close()


def _password(from_stdin: bool) -> str:
    """The password the operator pipes in, or a generated one (to be printed once)."""
    return sys.stdin.readline().rstrip("\n") if from_stdin else secrets.token_urlsafe(18)


async def _account_id(accounts: AccountStore, name: str) -> str:
    credentials = await accounts.credentials(name)
    if credentials is None:
        raise NotFoundError(f"no account named {name!r}")
    return credentials.account_id


def _settings(args: argparse.Namespace) -> TokenSettings:
    try:
        expires = datetime.fromisoformat(args.expires) if args.expires else None
    except ValueError:
        raise InvalidArgumentError("--expires must be ISO 8601, e.g. 2027-01-01T00:00:00+00:00") from None
    if expires is not None and expires.tzinfo is None:
        raise InvalidArgumentError("--expires needs a time zone, e.g. +00:00")
    return TokenSettings(
        name=args.name,
        spend_cap_micros=parse_usd(args.cap, param="--cap"),
        expires_at=expires,
        allowed_models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        allowed_ips=tuple(i.strip() for i in args.ips.split(",") if i.strip()),
        max_concurrency=args.concurrency,
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        disabled=False,
    )
