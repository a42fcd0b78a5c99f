"""Personal links that tie a family member's own Telegram account to the entry a resident made
for them, so that they too are asked for the verdict on the requests made for them.

    resident ─► "link for Mum" ─► code (random, single use, 7 days) ─► /start b_<code>
    family member opens it ─► consent ─► linked: `beneficiaries.account_id` is their account

A code is only a key to one entry: it tells nothing about the entry, it cannot be guessed
(96 random bits), and it is spent by the first account that completes the link. The resident
who made it cannot spend it on themselves.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Account, Beneficiary, BeneficiaryLink

START_PREFIX = "b_"
LINK_LIFETIME = timedelta(days=7)
# token_urlsafe(12) gives 16 characters; Telegram's start parameter allows A-Z a-z 0-9 _ -.
CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,32}")


class Outcome(StrEnum):
    LINKED = "linked"
    INVALID = "invalid"  # unknown, used or expired: the same answer for all three
    OWN_ENTRY = "own_entry"  # the resident who made the link, or the entry is their own
    TAKEN = "taken"  # the entry is already tied to another account
    ALREADY = "already"  # the entry is already tied to this account


def new_code() -> str:
    return secrets.token_urlsafe(12)


async def create_link(
    session: AsyncSession, beneficiary: Beneficiary, by_account_id: int, now: datetime
) -> BeneficiaryLink:
    """A fresh code for `beneficiary` (the caller checked that `by_account_id` owns it)."""
    assert beneficiary.id is not None
    link = BeneficiaryLink(
        code=new_code(),
        beneficiary_id=beneficiary.id,
        created_by_account_id=by_account_id,
        created_at=now,
        expires_at=now + LINK_LIFETIME,
    )
    session.add(link)
    return link


async def find_link(
    session: AsyncSession, code: str, now: datetime
) -> tuple[BeneficiaryLink, Beneficiary] | None:
    """The unused, unexpired link for `code` and its entry (locked until the transaction ends,
    so that two accounts opening it at once cannot both spend it), or None."""
    if not CODE_PATTERN.fullmatch(code):
        return None
    link = await session.get(BeneficiaryLink, code, with_for_update=True)
    if link is None or link.used_at is not None or link.expires_at <= now:
        return None
    beneficiary = await session.get(Beneficiary, link.beneficiary_id, with_for_update=True)
    if beneficiary is None or beneficiary.is_self:
        return None
    return link, beneficiary


def check(link: BeneficiaryLink, beneficiary: Beneficiary, account_id: int | None) -> Outcome:
    """Whether the account `account_id` (None: not created yet) may spend the link."""
    if account_id is not None and account_id in (
        link.created_by_account_id,
        beneficiary.owner_account_id,
    ):
        return Outcome.OWN_ENTRY
    if beneficiary.account_id is not None:
        return Outcome.ALREADY if beneficiary.account_id == account_id else Outcome.TAKEN
    return Outcome.LINKED


def spend(
    session: AsyncSession,
    link: BeneficiaryLink,
    beneficiary: Beneficiary,
    account: Account,
    now: datetime,
) -> None:
    """Tie the entry to `account` (check() said LINKED). An account with no home yet is placed
    in the family member's grid, where the entry says they live."""
    assert account.id is not None
    beneficiary.account_id = account.id
    link.used_at = now
    link.used_by_account_id = account.id
    if account.home_grid_code is None:
        account.home_grid_code = beneficiary.grid_code
    session.add_all([beneficiary, link, account])
