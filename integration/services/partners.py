"""Integration partners and their credentials (staff side: admin and `create_integration_partner`)."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.db import transaction

from audit.services import audit_event_record
from core.actors import Actor
from core.apikeys import generate_api_key, generate_secret, key_digest
from core.domain import Invalid
from core.net import parse_networks
from core.time import utc_now
from integration.models import IntegrationPartner, PartnerCredential, Therapist
from integration.services.auth import API_KEY_PREFIX, SECRET_PREFIX


class PartnerInvalid(Invalid):
    """Bad input for a partner write; the message is for staff."""


@dataclass(frozen=True)
class IssuedCredential:
    """A new credential and its API key + secret: show both once, never store or log them."""

    credential: PartnerCredential
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)


def _audit(action: str, partner: IntegrationPartner, *, actor: Actor, **metadata) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        subject_type="integration_partner",
        subject_id=str(partner.pk),
        metadata={"partner": partner.name, **metadata},
    )


def _network_problem(entry) -> str | None:
    """Why `entry` is not an IPv4/IPv6 network (with the likely intended network for a typo), or None."""
    try:
        parse_networks([entry])
    except ValueError as exc:
        problem = str(exc)
        try:
            meant = ipaddress.ip_network(str(entry).strip(), strict=False)
        except ValueError:
            return problem
        return f"{problem} (did you mean {meant}?)"
    return None


def normalize_allowed_ips(cidrs) -> list[str]:
    """Canonical CIDR strings. PartnerInvalid names every bad entry at once (its `details` lists one
    problem per entry), so staff fix the whole list in one go."""
    cidrs = list(cidrs or [])
    problems = [problem for problem in map(_network_problem, cidrs) if problem]
    if problems:
        count = f"{len(problems)} entries are" if len(problems) > 1 else "1 entry is"
        raise PartnerInvalid(f"{count} not valid; nothing was saved: " + "; ".join(problems), details=problems)
    return [str(network) for network in parse_networks(cidrs)]


@dataclass(frozen=True)
class BaaDocument:
    """A partner's signed BAA as read for a staff download: the bytes, their SHA-256 and a file name."""

    content: bytes = field(repr=False)
    sha256: str
    filename: str


PDF_MAGIC = b"%PDF-"
PDF_CONTENT_TYPES = {"application/pdf", "application/x-pdf"}


def validate_baa_document(upload) -> str:
    """Check an uploaded BAA (a PDF: `.pdf` name, PDF content type, `%PDF-` header; at most
    BAA_DOCUMENT_MAX_BYTES) and return its SHA-256. PartnerInvalid says what is wrong."""
    limit = settings.BAA_DOCUMENT_MAX_BYTES
    if upload.size is not None and upload.size > limit:
        raise PartnerInvalid(
            f"The BAA document is {_megabytes(upload.size)}; the largest accepted is {_megabytes(limit)}."
        )
    if not (upload.name or "").lower().endswith(".pdf"):
        raise PartnerInvalid("The BAA document must be a PDF file (a name ending in .pdf).")
    content_type = (getattr(upload, "content_type", None) or "").split(";")[0].strip().lower()
    if content_type and content_type not in PDF_CONTENT_TYPES:
        raise PartnerInvalid(f"The BAA document must be a PDF; this file was sent as {content_type[:80]}.")
    digest = hashlib.sha256()
    upload.seek(0)
    head = upload.read(len(PDF_MAGIC))
    if head != PDF_MAGIC:
        upload.seek(0)
        raise PartnerInvalid("The BAA document is not a PDF (its content does not start with %PDF-).")
    digest.update(head)
    for chunk in iter(lambda: upload.read(64 * 1024), b""):
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


RATE_LIMIT_MAX = 100_000


def validate_rate_limit(value) -> int | None:
    """None (the spec's default of 100/min) or an integer from 1 to RATE_LIMIT_MAX."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise PartnerInvalid("The rate limit must be a whole number of requests per minute.")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise PartnerInvalid("The rate limit must be a whole number of requests per minute.") from None
    if number != value and str(number) != str(value).strip():
        raise PartnerInvalid("The rate limit must be a whole number of requests per minute.")
    if not (1 <= number <= RATE_LIMIT_MAX):
        raise PartnerInvalid(f"The rate limit must be between 1 and {RATE_LIMIT_MAX} requests per minute.")
    return number


@transaction.atomic
def partner_create(
    *,
    name: str,
    therapists: list[Therapist] = (),
    baa_signed_at: date | None = None,
    baa_signer: str = "",
    allowed_ips: list[str] = (),
    rate_limit_per_minute: int | None = None,
    baa_document=None,
    actor: Actor,
) -> IntegrationPartner:
    """A new partner (active, no credential yet); `baa_document` an uploaded file of the signed BAA."""
    name = (name or "").strip()
    if not name:
        raise PartnerInvalid("A partner needs a name.")
    if IntegrationPartner.objects.filter(name=name).exists():
        raise PartnerInvalid(f"A partner named {name!r} already exists.")
    rate_limit_per_minute = validate_rate_limit(rate_limit_per_minute)
    document_sha256 = validate_baa_document(baa_document) if baa_document else ""
    partner = IntegrationPartner.objects.create(
        name=name,
        baa_signed_at=baa_signed_at,
        baa_signer=baa_signer,
        allowed_ips=normalize_allowed_ips(allowed_ips),
        rate_limit_per_minute=rate_limit_per_minute,
        baa_document=baa_document or "",
        baa_document_sha256=document_sha256,
    )
    partner.therapists.set(therapists)
    _audit(
        "integration.partner_created",
        partner,
        actor=actor,
        therapists=[str(t.pk) for t in therapists],
        baa_on_file=baa_signed_at is not None,
        allowed_ips=partner.allowed_ips,
        rate_limit_per_minute=rate_limit_per_minute,
        **({"baa_document": True, "baa_document_sha256": document_sha256} if baa_document else {}),
    )
    return partner


@transaction.atomic
def partner_credential_create(*, partner: IntegrationPartner, actor: Actor) -> IssuedCredential:
    """A new API key (`lr_int_...`) and secret (`sk_live_...`) for the partner."""
    key = generate_api_key(API_KEY_PREFIX)
    secret = generate_secret(SECRET_PREFIX)
    credential = PartnerCredential.objects.create(
        partner=partner,
        key_id=key.key_id,
        key_digest=key_digest(key.full_key),
        key_hint=f"{API_KEY_PREFIX}_{key.key_id}…",
        secret_hash=secret.secret_hash,
    )
    _audit("integration.credential_created", partner, actor=actor, key_id=key.key_id)
    return IssuedCredential(credential=credential, api_key=key.full_key, api_secret=secret.secret)


@transaction.atomic
def partner_credential_rotate_secret(
    *, credential: PartnerCredential, overlap: timedelta | None = None, actor: Actor
) -> str:
    """A new secret for the same API key, returned once. The old secret keeps working for `overlap`
    (default LOVERESCUE_SECRET_OVERLAP_HOURS) so the partner can deploy the new one without downtime."""
    credential = PartnerCredential.objects.select_for_update().get(pk=credential.pk)
    if overlap is None:
        overlap = timedelta(hours=settings.LOVERESCUE_SECRET_OVERLAP_HOURS)
    now = utc_now()
    secret = generate_secret(SECRET_PREFIX)
    credential.previous_secret_hash = credential.secret_hash if overlap > timedelta(0) else ""
    credential.previous_secret_expires_at = now + overlap if overlap > timedelta(0) else None
    credential.secret_hash = secret.secret_hash
    credential.secret_rotated_at = now
    credential.save(
        update_fields=["previous_secret_hash", "previous_secret_expires_at", "secret_hash", "secret_rotated_at"]
    )
    _audit(
        "integration.credential_secret_rotated",
        credential.partner,
        actor=actor,
        key_id=credential.key_id,
        overlap_seconds=int(overlap.total_seconds()),
    )
    return secret.secret


@transaction.atomic
def partner_credential_revoke(*, credential: PartnerCredential, actor: Actor) -> bool:
    """Revoke an API key: token exchange and tokens already issued with it stop working at once
    (checked on every request). False when it was already revoked."""
    credential = PartnerCredential.objects.select_for_update().select_related("partner").get(pk=credential.pk)
    if credential.revoked_at is not None:
        return False
    credential.revoked_at = utc_now()
    credential.save(update_fields=["revoked_at"])
    _audit(
        "integration.credential_revoked",
        credential.partner,
        actor=actor,
        key_id=credential.key_id,
    )
    return True


@transaction.atomic
def partner_suspend(*, partner: IntegrationPartner, actor: Actor) -> bool:
    """Suspend a partner: its live tokens stop working on their next request and the token exchange
    refuses its keys. False when it was already suspended."""
    partner = IntegrationPartner.objects.select_for_update().get(pk=partner.pk)
    if partner.status == IntegrationPartner.Status.SUSPENDED:
        return False
    partner.status = IntegrationPartner.Status.SUSPENDED
    partner.suspended_at = utc_now()
    partner.save(update_fields=["status", "suspended_at", "updated_at"])
    _audit("integration.partner_suspended", partner, actor=actor)
    return True


@transaction.atomic
def partner_reactivate(*, partner: IntegrationPartner, actor: Actor) -> bool:
    """Lift a suspension (credentials revoked meanwhile stay revoked). False when it was active."""
    partner = IntegrationPartner.objects.select_for_update().get(pk=partner.pk)
    if partner.status == IntegrationPartner.Status.ACTIVE:
        return False
    partner.status = IntegrationPartner.Status.ACTIVE
    partner.suspended_at = None
    partner.save(update_fields=["status", "suspended_at", "updated_at"])
    _audit("integration.partner_reactivated", partner, actor=actor)
    return True


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


@transaction.atomic
def partner_update(
    *,
    partner: IntegrationPartner,
    actor: Actor,
    name=UNSET,
    baa_signed_at=UNSET,
    baa_signer=UNSET,
    baa_document=UNSET,
    allowed_ips=UNSET,
    rate_limit_per_minute=UNSET,
    therapists=UNSET,
) -> IntegrationPartner:
    """Change a partner's name, BAA (signed date, signer, document), IP allowlist, rate limit or
    therapists; only the arguments given are changed. Everything applies on the partner's next request.
    One audit event names the fields that changed (with the new allowlist, rate limit and therapist
    ids; never the document). Returns the partner as saved."""
    current = IntegrationPartner.objects.select_for_update().get(pk=partner.pk)
    changed: dict[str, object] = {}
    fields: list[str] = []

    def assign(field_name: str, value, shown=True) -> None:
        if getattr(current, field_name) != value:
            setattr(current, field_name, value)
            fields.append(field_name)
            changed[field_name] = value if shown else True

    if name is not UNSET:
        name = (name or "").strip()
        if not name:
            raise PartnerInvalid("A partner needs a name.")
        if IntegrationPartner.objects.filter(name=name).exclude(pk=current.pk).exists():
            raise PartnerInvalid(f"A partner named {name!r} already exists.")
        assign("name", name)
    if baa_signed_at is not UNSET:
        assign("baa_signed_at", baa_signed_at)
        if "baa_signed_at" in changed:
            changed["baa_signed_at"] = baa_signed_at.isoformat() if baa_signed_at else None
    if baa_signer is not UNSET:
        assign("baa_signer", (baa_signer or "").strip())
    if baa_document is not UNSET:
        # A new upload (File) replaces the document; None/"" removes it.
        # The replaced file stays in private storage: a signed BAA is a record to keep, and the audit
        # events name each version by its SHA-256.
        if baa_document:
            current.baa_document = baa_document
            current.baa_document_sha256 = validate_baa_document(baa_document)
            fields += ["baa_document", "baa_document_sha256"]
            changed["baa_document"] = True
            changed["baa_document_sha256"] = current.baa_document_sha256
        elif current.baa_document:
            current.baa_document = ""
            current.baa_document_sha256 = ""
            fields += ["baa_document", "baa_document_sha256"]
            changed["baa_document"] = False
    if allowed_ips is not UNSET:
        assign("allowed_ips", normalize_allowed_ips(allowed_ips))
    if rate_limit_per_minute is not UNSET:
        assign("rate_limit_per_minute", validate_rate_limit(rate_limit_per_minute))
    if fields:
        current.save(update_fields=[*fields, "updated_at"])
    if therapists is not UNSET:
        wanted = {t.pk for t in therapists}
        existing = set(current.therapists.values_list("pk", flat=True))
        if wanted != existing:
            current.therapists.set(list(therapists))
            changed["therapists"] = sorted(str(pk) for pk in wanted)
    if changed:
        _audit(
            "integration.partner_updated",
            current,
            actor=actor,
            changed=sorted(changed),
            **{
                k: v
                for k, v in changed.items()
                if k
                in (
                    "allowed_ips",
                    "rate_limit_per_minute",
                    "therapists",
                    "baa_signed_at",
                    "baa_signer",
                    "name",
                    "baa_document_sha256",
                )
            },
        )
    return current


class BaaDocumentMissing(Invalid):
    """The partner has no BAA document, or its file is not in private storage."""


@transaction.atomic
def partner_baa_document_download(*, partner: IntegrationPartner, actor: Actor) -> BaaDocument:
    """Read the partner's signed BAA for a staff download and audit it (actor, partner, the SHA-256 of
    the very bytes returned) in one transaction, before anything is sent: no audit row, no document.
    Files are capped at upload, so reading one whole is bounded."""
    partner = IntegrationPartner.objects.get(pk=partner.pk)
    name = partner.baa_document.name if partner.baa_document else ""
    if not name:
        raise BaaDocumentMissing("This partner has no BAA document on file.")
    storage = partner.baa_document.storage
    try:
        # Storage.path() joins under PRIVATE_MEDIA_ROOT safely: a stored name that climbs out of it
        # ("../settings.py") raises instead of being read.
        with storage.open(name, "rb") as handle:
            content = handle.read(settings.BAA_DOCUMENT_MAX_BYTES + 1)
    except (FileNotFoundError, SuspiciousFileOperation):
        raise BaaDocumentMissing("The BAA document's file is missing from private storage.") from None
    sha256 = hashlib.sha256(content).hexdigest()
    _audit(
        "integration.baa_document_downloaded",
        partner,
        actor=actor,
        baa_document_sha256=sha256,
        bytes=len(content),
        **({"stored_sha256_differs": True} if partner.baa_document_sha256 not in ("", sha256) else {}),
    )
    signed = partner.baa_signed_at.isoformat() if partner.baa_signed_at else "unsigned"
    return BaaDocument(content=content, sha256=sha256, filename=f"BAA-{_file_slug(partner.name)}-{signed}.pdf")


def _file_slug(name: str) -> str:
    """The partner's name as a safe file-name part (ASCII letters, digits and dashes)."""
    slug = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in name).strip("-")
    return "-".join(part for part in slug.split("-") if part)[:60] or "partner"
