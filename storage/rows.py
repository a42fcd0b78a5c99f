"""Rows read together with the rows they are nearly always used with, in one statement.

Issue 14: a button on a need read the request, then its beneficiary (the task card, "is this
the resident's own need?"), then its reporter, each a statement of its own. Read here in one,
the session keeps all three (storage.database.HeldSession), so the `session.get` of the
beneficiary or the reporter that follows finds them without asking the database.
"""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Account, Beneficiary, Request


async def request_with_people(
    session: AsyncSession, request_id: int | None, *, lock: bool = False
) -> Request | None:
    """The request (None for no id or no such row), its beneficiary and its reporter's account
    loaded into the session. With `lock`, the request's row is locked for the transaction
    (PostgreSQL; only the request's: PostgreSQL refuses to lock an outer join's rows)."""
    if request_id is None:
        return None
    query = (
        select(Request, Beneficiary, Account)
        .outerjoin(Beneficiary, col(Beneficiary.id) == Request.beneficiary_id)
        .outerjoin(Account, col(Account.id) == Request.reporter_account_id)
        .where(Request.id == request_id)
    )
    if lock:
        # What the lock guards is what the database holds now, not a copy read earlier.
        query = query.with_for_update(of=Request).execution_options(populate_existing=True)  # type: ignore[arg-type]
    row = (await session.exec(query)).first()
    return row[0] if row is not None else None
