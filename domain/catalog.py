"""The service catalog: three kinds of need and the categories under each (PRODUCT.md).

Codes are stable identifiers stored on requests and in the roster's `posts`; labels are
translated at display time.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.i18n import N_


@dataclass(frozen=True, slots=True)
class Category:
    code: str
    kind: str
    label: str
    urgent: bool = False


KINDS: dict[str, str] = {
    "living": N_("Daily living"),
    "development": N_("Work and development"),
    "emotional": N_("Company and care"),
}

CATEGORIES: tuple[Category, ...] = (
    Category("repair", "living", N_("Home repairs (water, power)")),
    Category("sanitation", "living", N_("Sanitation and environment")),
    Category("health", "living", N_("Health and medical care")),
    Category("elder_care", "living", N_("Elderly care")),
    Category("assistance", "living", N_("Hardship assistance")),
    Category("errand", "living", N_("Errands and paperwork")),
    Category("safety", "living", N_("Safety hazard"), urgent=True),
    Category("housing", "living", N_("Housing and property")),
    Category("employment", "development", N_("Jobs and starting a business")),
    Category("training", "development", N_("Skills training")),
    Category("agriculture", "development", N_("Farming advice")),
    Category("policy", "development", N_("Policy questions")),
    Category("companionship", "emotional", N_("Visits and company")),
    Category("family_link", "emotional", N_("Family video calls")),
    Category("counseling", "emotional", N_("Counselling")),
    Category("mediation", "emotional", N_("Dispute mediation")),
    Category("other", "", N_("Something else")),
)

CATEGORY_BY_CODE: dict[str, Category] = {c.code: c for c in CATEGORIES}
CATEGORY_CODES: frozenset[str] = frozenset(CATEGORY_BY_CODE)


def categories_of(kind: str) -> list[Category]:
    """The categories offered under a kind; "other" is offered under every kind."""
    return [c for c in CATEGORIES if c.kind == kind or c.code == "other"]


def kind_of(category: str) -> str:
    return CATEGORY_BY_CODE[category].kind
