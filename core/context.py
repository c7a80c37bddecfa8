"""Per-request context: the request id readable from services and tasks without passing the request
around, and what views and authentication tell the access log about a request (who acted, for which
organization, which subjects the response touched, why it was refused). `audit.middleware` reads these
annotations."""

from __future__ import annotations

from contextvars import ContextVar

from core.actors import Actor

request_id_var: ContextVar[str] = ContextVar("request_id", default="")


def current_request_id() -> str:
    return request_id_var.get()


def _http_request(request):
    return getattr(request, "_request", request)  # DRF Request wraps Django's HttpRequest


def set_actor(request, actor: Actor, *, on_behalf_of: Actor | None = None) -> None:
    """Who is calling, and whom they act for when that is someone else: a LoveRescue partner token acts
    for one therapist (`on_behalf_of=Actor.therapist(...)`), so the access log names both."""
    http_request = _http_request(request)
    http_request.audit_actor = (actor.type, actor.id)
    http_request.audit_on_behalf_of = str(on_behalf_of) if on_behalf_of is not None else ""


def set_organization(request, organization_id: str) -> None:
    _http_request(request).audit_organization = organization_id


def noted_subjects(request) -> list[str]:
    """The subjects noted so far, as the access log records them ("client:<id>"). The list itself: a caller
    may extend it with entries it took from here earlier (core.body_cache notes again, for a body it serves,
    exactly what computing that body noted)."""
    http_request = _http_request(request)
    subjects = getattr(http_request, "audit_subjects", None)
    if subjects is None:
        subjects = http_request.audit_subjects = []
    return subjects


def note_subjects(request, subject_type: str, ids) -> None:
    """Record subject ids this request read or wrote: `note_subjects(request, "client", [c.id, ...])`."""
    noted_subjects(request).extend(f"{subject_type}:{value}" for value in ids)


def note_refusal(request, code: str) -> None:
    """The error code a refused request was answered with ("IP_BLOCKED", "RATE_LIMITED"): the access
    log's reason column (core.envelopes notes it for every error answer, whichever layer refused)."""
    _http_request(request).audit_reason = code.upper()[:40]
