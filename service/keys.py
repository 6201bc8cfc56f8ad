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

from service.errors import AuthenticationFailed, Conflict, InvalidRequest, NotFound
from service.ids import new_id
from service.registry import AccountRow, ApiKeyRow, Registry
from service.settings import Plan

KEY_PREFIX = "ak_live_"
MAX_ACCOUNT_NAME = 200


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: never the key, only its id and whose it is."""

    id: str
    account: str
    plan: Plan
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Account:
    """Who is calling: every avatar and session belongs to one account."""

    id: str
    name: str
    plan: Plan


class KeyService:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def create(self, account_name: str, plan: Plan | None) -> tuple[str, str]:
        """A new key for the account `account_name`, made on `plan` if it does not
        exist. An existing account keeps its plan: `plan` may be None or the same;
        another plan is Conflict(account.plan_mismatch), never a silent change (see
        `set_plan`). Returns (key id, plain key): the plain key is not stored and
        cannot be shown again."""
        name = _checked_name(account_name)
        if plan is not None:
            _check_plan(plan)
        plain = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = new_id("key")
        try:
            self._add_key(name, plan, key_id, plain)
        except IntegrityError:
            # Another process made the same account between our read and insert.
            self._add_key(name, plan, key_id, plain)
        return key_id, plain

    def _add_key(self, name: str, plan: Plan | None, key_id: str, plain: str) -> None:
        with self._registry.transaction() as session:
            account = session.scalar(select(AccountRow).where(AccountRow.name == name))
            if account is None:
                if plan is None:
                    raise InvalidRequest(
                        f"Account {name!r} is new: give its plan ({', '.join(get_args(Plan))}).",
                        code="account.plan_invalid",
                        param="plan",
                    )
                account = AccountRow(id=new_id("acct"), name=name, plan=plan)
                session.add(account)
                session.flush()
            elif plan is not None and account.plan != plan:
                raise Conflict(
                    f"Account {name!r} is on the {account.plan} plan; creating a key never "
                    f"changes it. To move it to {plan}: avatar-prep accounts set-plan {name} "
                    f"{plan}.",
                    code="account.plan_mismatch",
                    param="plan",
                )
            session.add(ApiKeyRow(id=key_id, account_id=account.id, key_hash=_digest(plain)))

    def set_plan(self, account_name: str, plan: Plan) -> str:
        """Move an existing account to `plan`; returns the plan it was on.
        NotFound(account.not_found) for an unknown account."""
        name = _checked_name(account_name)
        _check_plan(plan)
        with self._registry.transaction() as session:
            account = session.scalar(select(AccountRow).where(AccountRow.name == name))
            if account is None:
                raise NotFound(f"No account {name!r}.", code="account.not_found", param="account")
            before, account.plan = account.plan, plan
        return before

    def list_keys(self, account_name: str | None = None) -> list[KeyInfo]:
        """Every key (of one account when named), oldest first; no secret in it."""
        query = select(ApiKeyRow, AccountRow).join(
            AccountRow, AccountRow.id == ApiKeyRow.account_id
        )
        if account_name is not None:
            query = query.where(AccountRow.name == account_name.strip())
        with self._registry.transaction() as session:
            rows = session.execute(query.order_by(ApiKeyRow.id)).all()
        return [
            KeyInfo(
                id=key.id,
                account=account.name,
                plan="paid" if account.plan == "paid" else "free",
                created_at=key.created_at,
                revoked_at=key.revoked_at,
            )
            for key, account in rows
        ]

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

    def revoke(self, key: str) -> str:
        """Revoke a key for good (revoking twice is fine), named by its id (`key_...`)
        or by the key itself (`ak_live_...`, looked up by its hash). Returns the key
        id. NotFound for an unknown one; its message never repeats a secret."""
        with self._registry.transaction() as session:
            if key.startswith(KEY_PREFIX):
                row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == _digest(key)))
                named = "that API key"
            else:
                row = session.get(ApiKeyRow, key)
                named = f"API key {key}"
            if row is None:
                raise NotFound(f"No {named}.", code="key.not_found", param="key_id")
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            return row.id


def _checked_name(account_name: str) -> str:
    name = account_name.strip()
    if not 0 < len(name) <= MAX_ACCOUNT_NAME:
        raise InvalidRequest(
            f"The account name must be 1 to {MAX_ACCOUNT_NAME} characters.",
            code="account.name_invalid",
            param="account",
        )
    return name


def _check_plan(plan: str) -> None:
    if plan not in get_args(Plan):
        raise InvalidRequest(
            f"The plan must be one of {', '.join(get_args(Plan))}; got {plan!r}.",
            code="account.plan_invalid",
            param="plan",
        )


def _digest(plain_key: str) -> str:
    return hashlib.sha256(plain_key.encode()).hexdigest()
