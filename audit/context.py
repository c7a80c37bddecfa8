"""What views and authentication tell the access log about a request: who acted, for which
organization, and which subjects (clients, patients, leads) the response touched."""

from core.actors import Actor


def _http_request(request):
    return getattr(request, "_request", request)  # DRF Request wraps Django's HttpRequest


def set_actor(request, actor: Actor) -> None:
    _http_request(request).audit_actor = (actor.type, actor.id)


def set_organization(request, organization_id: str) -> None:
    _http_request(request).audit_organization = organization_id


def note_subjects(request, subject_type: str, ids) -> None:
    """Record subject ids this request read or wrote: `note_subjects(request, "client", [c.id, ...])`."""
    http_request = _http_request(request)
    subjects = getattr(http_request, "audit_subjects", None)
    if subjects is None:
        subjects = http_request.audit_subjects = []
    subjects.extend(f"{subject_type}:{value}" for value in ids)
