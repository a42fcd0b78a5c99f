"""Volunteers and the units that claim as a body: the words the rules store.

/volunteer or /start v_<community> ──► pending ──approve (coordinator, one tap)──► approved
                                          └─decline──► declined
approved ◄──resume── paused ;  approved | paused ──leave──► left (hands back its claims)
roster import (volunteers.csv) ──► approved, bound to an account by phone when they join
"""

from __future__ import annotations

from enum import StrEnum

from domain.catalog import CATEGORY_BY_CODE
from storage.models import Volunteer


class VolunteerStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    PAUSED = "paused"
    LEFT = "left"


class OrganisationKind(StrEnum):
    DEPARTMENT = "department"  # a district department (its cadres claim; the body claims)
    ENTERPRISE = "enterprise"
    SOCIAL = "social"  # a social organisation


# Categories an offer never goes out for: a safety hazard is staff's own work.
NEVER_OFFERED: frozenset[str] = frozenset({"safety"})
# Categories offered to volunteers as soon as a need is routed, unless settings say otherwise.
DEFAULT_AUTO_OFFER: frozenset[str] = frozenset({"companionship", "errand"})
VOLUNTEER_LINK_PREFIX = "v_"


def offers(volunteer: Volunteer, category: str) -> bool:
    """Whether a volunteer gets claim cards for a category: approved, and offering it."""
    return volunteer.status == VolunteerStatus.APPROVED and category in volunteer.category_list


def valid_categories(codes: list[str]) -> list[str]:
    return [c for c in codes if c in CATEGORY_BY_CODE and c not in NEVER_OFFERED]
