"""Reads of the LoveRescue app (client) API, `/api/app/...`: always scoped to the calling client.

Each returns model instances (or None); the API's output serializers (integration.api.app_serializers)
render them.
"""

from __future__ import annotations

from django.db.models import QuerySet

from integration.models import Client, TherapistClientLink, TherapistTask


def client_for_user(user_id) -> Client | None:
    """The LoveRescue client profile of a platform user, or None when the user is not a client."""
    return Client.objects.filter(user_id=user_id).first()


def client_links(*, client: Client) -> QuerySet[TherapistClientLink]:
    """The client's therapist links, oldest first, with their therapist (one query)."""
    return TherapistClientLink.objects.filter(client=client).select_related("therapist").order_by("created_at", "id")


def client_tasks(*, client: Client) -> QuerySet[TherapistTask]:
    """Tasks assigned to the client by any of their therapists, newest first (one query)."""
    return TherapistTask.objects.filter(client=client).order_by("-created_at", "id")
