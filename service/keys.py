"""Accounts and their API keys.

A key is `ak_live_` and 43 random URL-safe characters (256 bits), shown once
when created. Only its sha256 is stored: a key this random cannot be guessed
from its hash, so a slow password hash would add nothing but latency to every
request. Keys are revocable; an account may hold several.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import get_args

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from service.errors import AuthenticationFailed, InvalidRequest, NotFound
from service.ids import new_id
from service.registry import AccountRow, ApiKeyRow, Registry
from service.settings import Plan

KEY_PREFIX = "ak_live_"
MAX_ACCOUNT_NAME = 200


@dataclass(frozen=True)
class Account:
    """Who is calling: every avatar and session belongs to one account."""

    id: str
    name: str
    plan: Plan


class KeyService:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def create(self, account_name: str, plan: Plan) -> tuple[str, str]:
        """A new key for the account `account_name`, made if it does not exist; an
        existing account is moved to `plan`. Returns (key id, plain key): the plain
        key is not stored and cannot be shown again."""
        name = account_name.strip()
        if not 0 < len(name) <= MAX_ACCOUNT_NAME:
            raise InvalidRequest(
                f"The account name must be 1 to {MAX_ACCOUNT_NAME} characters.",
                code="account.name_invalid",
                param="account",
            )
        if plan not in get_args(Plan):
            raise InvalidRequest(
                f"The plan must be one of {', '.join(get_args(Plan))}; got {plan!r}.",
                code="account.plan_invalid",
                param="plan",
            )
        plain = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = new_id("key")
        try:
            self._add_key(name, plan, key_id, plain)
        except IntegrityError:
            # Another process made the same account between our read and insert.
            self._add_key(name, plan, key_id, plain)
        return key_id, plain

    def _add_key(self, name: str, plan: Plan, key_id: str, plain: str) -> None:
        with self._registry.transaction() as session:
            account = session.scalar(select(AccountRow).where(AccountRow.name == name))
            if account is None:
                account = AccountRow(id=new_id("acct"), name=name, plan=plan)
                session.add(account)
                session.flush()
            account.plan = plan
            session.add(ApiKeyRow(id=key_id, account_id=account.id, key_hash=_digest(plain)))

    def authenticate(self, plain_key: str) -> Account:
        """The account of a valid, unrevoked key; AuthenticationFailed otherwise
        (the same error for unknown, malformed and revoked keys)."""
        if not plain_key.startswith(KEY_PREFIX) or len(plain_key) > 100:
            raise AuthenticationFailed("The API key is unknown or revoked.")
        digest = _digest(plain_key)
        with self._registry.transaction() as session:
            found = session.execute(
                select(ApiKeyRow.key_hash, AccountRow)
                .join(AccountRow, AccountRow.id == ApiKeyRow.account_id)
                .where(ApiKeyRow.key_hash == digest, ApiKeyRow.revoked_at.is_(None))
            ).first()
        # The lookup is by hash, so its timing reveals nothing about the key; the
        # final comparison is constant-time all the same.
        if found is None or not hmac.compare_digest(found[0], digest):
            raise AuthenticationFailed("The API key is unknown or revoked.")
        account: AccountRow = found[1]
        plan: Plan = "paid" if account.plan == "paid" else "free"
        return Account(id=account.id, name=account.name, plan=plan)

    def revoke(self, key_id: str) -> None:
        """Revoke a key for good (revoking twice is fine); NotFound for an unknown id."""
        with self._registry.transaction() as session:
            key = session.get(ApiKeyRow, key_id)
            if key is None:
                raise NotFound(f"No API key {key_id}.", code="key.not_found", param="key_id")
            if key.revoked_at is None:
                key.revoked_at = datetime.now(UTC)


def _digest(plain_key: str) -> str:
    return hashlib.sha256(plain_key.encode()).hexdigest()
