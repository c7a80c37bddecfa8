"""Who acted: one `Actor` value passed to every service, and one vocabulary of actor types.

The same `ActorType` values are written by the audit trail (access log and domain events), checked by
messaging, and offered by the audit admin's filter, so a filter value always matches the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class ActorType(models.TextChoices):
    USER = "user", "Platform or staff user"
    CLIENT = "client", "LoveRescue client (app user)"
    THERAPIST = "therapist", "Therapist"
    INTEGRATION_PARTNER = "integration_partner", "LoveRescue integration partner"
    PARTNER_PLATFORM = "partner_platform", "CareOS partner platform"
    SYSTEM = "system", "System (tasks, commands)"
    ANONYMOUS = "anonymous", "Anonymous"


_ACTOR_TYPES = frozenset(ActorType.values)  # Choices.values builds a new list on each read


@dataclass(frozen=True)
class Actor:
    """The party a service acts for: `Actor.user(request.user)`, `Actor.system("payouts")`."""

    type: str
    id: str = ""

    def __post_init__(self) -> None:
        if self.type not in _ACTOR_TYPES:
            raise ValueError(f"Unknown actor type {self.type!r}; one of {', '.join(ActorType.values)}")
        object.__setattr__(self, "id", str(self.id)[:100])

    @classmethod
    def user(cls, user) -> Actor:
        return cls(ActorType.USER, str(user.pk))

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(ActorType.SYSTEM, name)

    @classmethod
    def client(cls, client_id) -> Actor:
        return cls(ActorType.CLIENT, str(client_id))

    @classmethod
    def therapist(cls, therapist_id) -> Actor:
        return cls(ActorType.THERAPIST, str(therapist_id))

    @classmethod
    def integration_partner(cls, partner_id) -> Actor:
        return cls(ActorType.INTEGRATION_PARTNER, str(partner_id))

    @classmethod
    def partner_platform(cls, slug: str) -> Actor:
        return cls(ActorType.PARTNER_PLATFORM, slug)

    @classmethod
    def anonymous(cls) -> Actor:
        return cls(ActorType.ANONYMOUS, "")

    def __str__(self) -> str:
        return f"{self.type}:{self.id}" if self.id else self.type
