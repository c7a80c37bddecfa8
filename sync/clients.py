"""Cliniko's REST API, thin: read patients, appointments, appointment types, practitioners and businesses.
No ORM. Returns plain dataclasses with string ids; the sync services decide what to store.

**Base URL and key.** HTTP Basic with the API key as the user name and an empty password. The shard is
the key's suffix after its last `-` (`...-au2` -> `https://api.au2.cliniko.com/v1`); Cliniko's docs: a
key "generated some time ago" without a suffix belongs to `au1`, and the shard should be validated
against `\\w{2}\\d{1,2}` (we accept `[a-z]{2}[0-9]{1,2}`, case-insensitive, and use `au1` otherwise).
Those vendor URLs are ours (a fixed domain, a validated label), so they skip the SSRF address check
(`user_supplied=False`) and keep every other guard of `core.outbound`. An explicit `base_url`
(self-hosted stand-ins, tests, `connect_cliniko --base-url`) is a user-supplied URL: it passes the SSRF
guard on every request, must be https, and plain http is accepted only with OUTBOUND_ALLOW_LOOPBACK (the
test/demo switch that also allows loopback; production refuses to start with it).

**User-Agent.** Cliniko requires `APP_VENDOR_NAME (APP_VENDOR_EMAIL)` and may block requests without a
name and a valid contact email: settings.CLINIKO_USER_AGENT, built from CLINIKO_APP_NAME and
CLINIKO_CONTACT_EMAIL unless set.

**Paging.** `per_page=100` (Cliniko's maximum; default 50), `links.next` followed to the end (only to
the same origin as the base URL: a `next` elsewhere is refused, the key is never sent to another host).
Every list answer carries `total_entries`; when it is known, `fetch_pages` fetches the remaining pages
concurrently (CLINIKO_CONCURRENCY threads) by setting `page=N` on the first page's URL, all within the
rate budget, then follows a `next` link the last page may still carry (records added meanwhile).
Offset paging can still miss a record deleted in Cliniko between two page reads (the rest shift up one
place); `Listing.complete` compares the ids received with `total_entries` so a caller can tell.

**Incremental reads.** `updated_since` sends `q[]=updated_at:>=<UTC instant>` (Cliniko's DateTime
filter, `>` with `strictly_after=True`).

**Archived, cancelled, deleted.** Cliniko's documented endpoints for these are separate collections:
`/patients/archived`, `/patients/deleted`, `/individual_appointments/cancelled`,
`/individual_appointments/deleted`, `/appointment_types/archived`, `/practitioners/inactive`
(github.com/redguava/cliniko-api; we found no documented boolean query flag for them, so we do not rely
on one, and whether the main lists also contain such records is not documented).
`include_archived`/`include_cancelled`/`include_deleted` also read those collections, with the same
filters, and merge by id (the most recently updated copy wins), so the result is right whether or not
the main list already contains such records. Deleted-patient entries may carry only `deleted_at` and a
`links.self`: their id is taken from that link.

**Rate budget.** Cliniko allows 200 requests per minute per user and answers 429 with
`X-RateLimit-Reset` (a UNIX timestamp; an HTTP date is accepted too). Every request first takes a slot
of a `core.request_budget.RequestBudget` keyed by the API key (hashed; shared through Redis across
workers) of CLINIKO_REQUESTS_PER_MINUTE per 61 s (a second of margin: BUDGET_WINDOW_SECONDS). A 429
anyway (another app using the same Cliniko user) blocks the shared budget and waits until the reset
(capped by CLINIKO_MAX_RATE_LIMIT_WAIT_SECONDS) and sends the same request again, at most
CLINIKO_MAX_RATE_LIMIT_RETRIES times in a row.

**Errors.** 5xx, 408, timeouts, connection failures and unreadable bodies are retried
CLINIKO_MAX_RETRIES times with exponential backoff (CLINIKO_RETRY_BACKOFF_SECONDS doubling, capped at
CLINIKO_RETRY_BACKOFF_MAX_SECONDS; a Retry-After is honoured within the cap), then raise
`ClinikoTransientError` (a later run may succeed). 401 raises `ClinikoAuthError`; other 4xx, a refused
URL and a malformed answer raise `ClinikoPermanentError`. Each carries a short code (`cliniko_http_500`)
safe to store on a sync run. Nothing here logs or raises the key, a patient's name, phone, email, notes,
a URL's query or a response body: log lines name the resource and the status only.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings

from core.outbound import (
    OutboundError,
    OutboundTimeoutError,
    ResponseTooLargeError,
    UnsafeURLError,
    guarded_request,
)
from core.request_budget import BudgetExhausted, RequestBudget  # noqa: F401 - re-exported for callers

logger = logging.getLogger("sync.cliniko")

PER_PAGE = 100  # Cliniko's maximum page size
DEFAULT_SHARD = "au1"
_SHARD_RE = re.compile(r"[a-z]{2}[0-9]{1,2}")
_ID_RE = re.compile(r"[0-9A-Za-z_-]{1,64}")
_RETRYABLE_STATUS = {408, 500, 502, 503, 504}
# The budget's window: Cliniko's minute plus one second, so the delay between our counting a request and
# Cliniko's (network, queueing) never lets request 201 reach Cliniko inside the minute it counts.
BUDGET_WINDOW_SECONDS = 61.0


# --- Errors --------------------------------------------------------------------------------------


class ClinikoError(Exception):
    """A Cliniko call failed. `code` is short and PHI-free; `status` the HTTP status when Cliniko answered."""

    transient = False

    def __init__(self, code: str, *, status: int | None = None, retry_after: float | None = None):
        super().__init__(code)
        self.code = code
        self.status = status
        self.retry_after = retry_after


class ClinikoTransientError(ClinikoError):
    """Retries were used up on 5xx/timeouts/429s: a later attempt may succeed."""

    transient = True


class ClinikoPermanentError(ClinikoError):
    """Retrying will not help: a 4xx, a refused URL, a malformed answer."""


class ClinikoAuthError(ClinikoPermanentError):
    """Cliniko refused the API key (401)."""


# --- Base URL ------------------------------------------------------------------------------------


def shard_from_key(api_key: str) -> str:
    """The key's shard suffix (`...-au2` -> `au2`), or `au1` for a key without one (Cliniko's rule)."""
    _, dash, suffix = api_key.strip().rpartition("-")
    suffix = suffix.lower()
    return suffix if dash and _SHARD_RE.fullmatch(suffix) else DEFAULT_SHARD


def base_url_for_key(api_key: str) -> str:
    return f"https://api.{shard_from_key(api_key)}.cliniko.com/v1"


def _check_base_url(base_url: str) -> str:
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ClinikoPermanentError("cliniko_base_url_invalid")
    if parts.scheme == "http" and not settings.OUTBOUND_ALLOW_LOOPBACK:
        raise ClinikoPermanentError("cliniko_base_url_not_https")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ClinikoPermanentError("cliniko_base_url_invalid")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def default_user_agent() -> str:
    configured = getattr(settings, "CLINIKO_USER_AGENT", "")
    if configured:
        return configured
    name = getattr(settings, "CLINIKO_APP_NAME", "Healthcare Integration Platform")
    contact = getattr(settings, "CLINIKO_CONTACT_EMAIL", "") or settings.DEFAULT_FROM_EMAIL
    return f"{name} ({contact})"


# --- Records -------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _instant(value: Any) -> datetime | None:
    """Cliniko's UTC timestamps (`2024-04-02T20:04:46Z`); "" and null (older answers use both) -> None."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _date(value: Any) -> date | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _linked_id(record: dict, name: str) -> str | None:
    """The id at the end of `record[name].links.self` (Cliniko links related records, never embeds ids)."""
    try:
        url = record[name]["links"]["self"]
    except (KeyError, TypeError):
        return None
    return _id_from_url(url)


def _id_from_url(url: Any) -> str | None:
    if not isinstance(url, str):
        return None
    tail = urlsplit(url).path.rstrip("/").rpartition("/")[2]
    return tail if _ID_RE.fullmatch(tail) else None


def _record_id(record: dict) -> str | None:
    """`id` as a string; entries that carry only `links.self` (deleted patients) take it from the link."""
    raw = record.get("id")
    if raw is not None and not isinstance(raw, bool | dict | list):
        text = str(raw)
        return text if _ID_RE.fullmatch(text) else None
    links = record.get("links")
    return _id_from_url(links.get("self")) if isinstance(links, dict) else None


@dataclass(frozen=True)
class PhoneNumber:
    phone_type: str  # "Mobile", "Home", "Work", "Fax", "Other"
    number: str


@dataclass(frozen=True)
class ClinikoPatient:
    id: str
    first_name: str
    last_name: str
    email: str
    phone_numbers: tuple[PhoneNumber, ...]
    date_of_birth: date | None
    archived_at: datetime | None
    deleted_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None

    @property
    def mobile(self) -> str | None:
        """The first Mobile number, else the first number of any type (the sync normalises it)."""
        for phone in self.phone_numbers:
            if phone.phone_type.lower() == "mobile" and phone.number:
                return phone.number
        return next((phone.number for phone in self.phone_numbers if phone.number), None)

    def __repr__(self) -> str:  # never put names or phones in tracebacks or logs
        return f"ClinikoPatient(id={self.id!r})"

    @classmethod
    def from_api(cls, record: dict) -> ClinikoPatient | None:
        record_id = _record_id(record)
        if record_id is None:
            return None
        phones = []
        for phone in record.get("patient_phone_numbers") or ():
            if isinstance(phone, dict):
                phones.append(PhoneNumber(_text(phone.get("phone_type")), _text(phone.get("number")).strip()))
        return cls(
            id=record_id,
            first_name=_text(record.get("first_name")).strip(),
            last_name=_text(record.get("last_name")).strip(),
            email=_text(record.get("email")).strip(),
            phone_numbers=tuple(phones),
            date_of_birth=_date(record.get("date_of_birth")),
            archived_at=_instant(record.get("archived_at")),
            deleted_at=_instant(record.get("deleted_at")),
            created_at=_instant(record.get("created_at")),
            updated_at=_instant(record.get("updated_at")),
        )


@dataclass(frozen=True)
class ClinikoAppointment:
    id: str
    patient_id: str | None
    practitioner_id: str | None
    appointment_type_id: str | None
    business_id: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    cancelled_at: datetime | None
    deleted_at: datetime | None
    archived_at: datetime | None
    did_not_arrive: bool
    patient_arrived: bool
    notes: str
    created_at: datetime | None
    updated_at: datetime | None

    def __repr__(self) -> str:
        return f"ClinikoAppointment(id={self.id!r})"

    @classmethod
    def from_api(cls, record: dict) -> ClinikoAppointment | None:
        record_id = _record_id(record)
        if record_id is None:
            return None
        return cls(
            id=record_id,
            patient_id=_linked_id(record, "patient"),
            practitioner_id=_linked_id(record, "practitioner"),
            appointment_type_id=_linked_id(record, "appointment_type"),
            business_id=_linked_id(record, "business"),
            starts_at=_instant(record.get("starts_at")),
            ends_at=_instant(record.get("ends_at")),
            cancelled_at=_instant(record.get("cancelled_at")),
            deleted_at=_instant(record.get("deleted_at")),
            archived_at=_instant(record.get("archived_at")),
            did_not_arrive=record.get("did_not_arrive") is True,
            patient_arrived=record.get("patient_arrived") is True,
            notes=_text(record.get("notes")),
            created_at=_instant(record.get("created_at")),
            updated_at=_instant(record.get("updated_at")),
        )


@dataclass(frozen=True)
class ClinikoAppointmentType:
    id: str
    name: str
    category: str
    duration_in_minutes: int | None
    archived_at: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_api(cls, record: dict) -> ClinikoAppointmentType | None:
        record_id = _record_id(record)
        if record_id is None:
            return None
        duration = record.get("duration_in_minutes")
        return cls(
            id=record_id,
            name=_text(record.get("name")).strip(),
            category=_text(record.get("category")).strip(),
            duration_in_minutes=duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
            archived_at=_instant(record.get("archived_at")),
            updated_at=_instant(record.get("updated_at")),
        )


@dataclass(frozen=True)
class ClinikoPractitioner:
    id: str
    first_name: str
    last_name: str
    label: str  # display name ("Randy Savage")
    designation: str
    active: bool
    updated_at: datetime | None

    @classmethod
    def from_api(cls, record: dict, *, active: bool = True) -> ClinikoPractitioner | None:
        record_id = _record_id(record)
        if record_id is None:
            return None
        first, last = _text(record.get("first_name")).strip(), _text(record.get("last_name")).strip()
        return cls(
            id=record_id,
            first_name=first,
            last_name=last,
            label=_text(record.get("label")).strip() or f"{first} {last}".strip(),
            designation=_text(record.get("designation")).strip(),
            active=active and not record.get("inactive_at"),
            updated_at=_instant(record.get("updated_at")),
        )


@dataclass(frozen=True)
class ClinikoBusiness:
    id: str
    name: str
    country: str  # "Australia"
    country_code: str  # ISO 3166-1 alpha-2 ("AU"); "" when Cliniko gave none
    time_zone: str
    updated_at: datetime | None

    @classmethod
    def from_api(cls, record: dict) -> ClinikoBusiness | None:
        record_id = _record_id(record)
        if record_id is None:
            return None
        code = _text(record.get("country_code")).strip().upper()
        return cls(
            id=record_id,
            name=_text(record.get("business_name")).strip(),
            country=_text(record.get("country")).strip(),
            country_code=code if re.fullmatch(r"[A-Z]{2}", code) else "",
            time_zone=_text(record.get("time_zone")).strip(),
            updated_at=_instant(record.get("updated_at")),
        )


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    shard: str | None  # None with an explicit base URL
    total_patients: int | None


@dataclass(frozen=True)
class Page:
    """One page of a list: raw records (dicts), Cliniko's `total_entries`, the `next` link if any."""

    records: list[dict]
    total_entries: int | None
    next_url: str | None
    url: str


@dataclass
class Listing:
    """All records of one or more collections, de-duplicated by id.

    `total_entries`: the sum of the collections' totals as Cliniko reported them; `complete`: every
    collection delivered at least as many distinct records as it counted (False when some shifted out
    of a page while reading: run again); `requests`: HTTP requests made (retries included; counted on the
    client, so approximate when one client object runs several lists at once).
    """

    records: list[dict] = field(default_factory=list)
    total_entries: int = 0
    complete: bool = True
    requests: int = 0


class Records(list):
    """A list of parsed records that also says whether the read was complete (see Listing)."""

    def __init__(self, items: Iterable = (), *, listing: Listing | None = None):
        super().__init__(items)
        listing = listing or Listing()
        self.total_entries = listing.total_entries
        self.complete = listing.complete
        self.requests = listing.requests


# --- Client --------------------------------------------------------------------------------------


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


class ClinikoClient:
    """One organization's Cliniko account. Thread-safe: `fetch_pages` uses it from several threads."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        user_agent: str | None = None,
        budget: RequestBudget | None = None,
        requests_per_minute: int | None = None,
        max_retries: int | None = None,
        backoff_seconds: float | None = None,
        backoff_max_seconds: float | None = None,
        max_rate_limit_wait: float | None = None,
        max_rate_limit_retries: int | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        resolver: Callable[..., list] | None = None,
        budget_window_seconds: float = BUDGET_WINDOW_SECONDS,
    ):
        api_key = (api_key or "").strip()
        if not api_key or any(ord(ch) < 33 or ord(ch) == 127 for ch in api_key):
            raise ClinikoPermanentError("cliniko_api_key_invalid")
        self._api_key = api_key
        if base_url:
            self.base_url = _check_base_url(base_url)
            self.shard: str | None = None
            self._user_supplied = True
        else:
            self.shard = shard_from_key(api_key)
            self.base_url = f"https://api.{self.shard}.cliniko.com/v1"
            self._user_supplied = False
        self._origin = urlsplit(self.base_url)[:2]
        self.user_agent = user_agent or default_user_agent()
        self.clock = clock
        self.sleep = sleep
        self.max_retries = _setting("CLINIKO_MAX_RETRIES", 4) if max_retries is None else max_retries
        self.backoff_seconds = (
            _setting("CLINIKO_RETRY_BACKOFF_SECONDS", 1.0) if backoff_seconds is None else backoff_seconds
        )
        self.backoff_max_seconds = (
            _setting("CLINIKO_RETRY_BACKOFF_MAX_SECONDS", 30.0) if backoff_max_seconds is None else backoff_max_seconds
        )
        self.max_rate_limit_wait = (
            _setting("CLINIKO_MAX_RATE_LIMIT_WAIT_SECONDS", 120.0)
            if max_rate_limit_wait is None
            else max_rate_limit_wait
        )
        self.max_rate_limit_retries = (
            _setting("CLINIKO_MAX_RATE_LIMIT_RETRIES", 10) if max_rate_limit_retries is None else max_rate_limit_retries
        )
        self.concurrency = max(1, _setting("CLINIKO_CONCURRENCY", 4) if concurrency is None else concurrency)
        self.timeout = timeout
        self.resolver = resolver
        rpm = _setting("CLINIKO_REQUESTS_PER_MINUTE", 200) if requests_per_minute is None else requests_per_minute
        self.budget = budget or RequestBudget(
            "cliniko", limit=rpm, window_seconds=budget_window_seconds, clock=clock, sleep=sleep
        )
        self._counter_lock = threading.Lock()
        self.requests_made = 0  # HTTP requests sent (retries included)
        self.rate_limited = 0  # 429 answers received

    def __repr__(self) -> str:
        return f"ClinikoClient(base_url={self.base_url!r})"

    # -- URLs --

    def url(
        self,
        resource: str,
        *,
        updated_since: datetime | None = None,
        strictly_after: bool = False,
        filters: Iterable[str] = (),
        per_page: int = PER_PAGE,
    ) -> str:
        """First-page URL of a collection (`patients`, `individual_appointments/cancelled`...)."""
        query: list[tuple[str, str]] = [("per_page", str(per_page))]
        if updated_since is not None:
            if updated_since.tzinfo is None:  # we store UTC: a naive instant is UTC, never local time
                updated_since = updated_since.replace(tzinfo=UTC)
            instant = updated_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            query.append(("q[]", f"updated_at:{'>' if strictly_after else '>='}{instant}"))
        query.extend(("q[]", expression) for expression in filters)
        return f"{self.base_url}/{resource.strip('/')}?{urlencode(query)}"

    def _same_origin(self, url: str) -> bool:
        return urlsplit(url)[:2] == self._origin

    # -- Requests --

    def _headers(self) -> dict[str, str]:
        token = base64.b64encode(f"{self._api_key}:".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}", "Accept": "application/json", "User-Agent": self.user_agent}

    def _count(self, *, rate_limited: bool = False) -> None:
        with self._counter_lock:
            if rate_limited:
                self.rate_limited += 1
            else:
                self.requests_made += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = min(self.backoff_max_seconds, self.backoff_seconds * (2**attempt))
        if retry_after is not None:
            delay = min(self.backoff_max_seconds, max(delay, retry_after))
        return delay

    def get_json(self, url: str, *, budget_timeout: float | None = None) -> Any:
        """GET one URL of this account under the budget, retries and error mapping of the module docstring.

        `budget_timeout` bounds the wait for a budget slot (BudgetExhausted past it), for chunked tasks.
        """
        if not self._same_origin(url):
            raise ClinikoPermanentError("cliniko_url_other_origin")
        resource = _resource_name(url, self.base_url)
        failures = 0
        rate_limits = 0
        while True:
            self.budget.acquire(self._api_key, timeout=budget_timeout)  # BudgetExhausted past the timeout
            self._count()
            try:
                response = guarded_request(
                    "GET",
                    url,
                    headers=self._headers(),
                    timeout=self.timeout,
                    user_supplied=self._user_supplied,
                    resolver=self.resolver,
                )
            except UnsafeURLError:
                raise ClinikoPermanentError("cliniko_url_refused") from None
            except (OutboundTimeoutError, ResponseTooLargeError, OutboundError) as exc:
                code = {
                    OutboundTimeoutError: "cliniko_timeout",
                    ResponseTooLargeError: "cliniko_response_too_large",
                }.get(type(exc), "cliniko_connection_error")
                if failures >= self.max_retries:
                    raise ClinikoTransientError(code) from None
                delay = self._backoff(failures, None)
                failures += 1
                logger.warning("cliniko GET %s failed (%s), retry %d in %.1fs", resource, code, failures, delay)
                self.sleep(delay)
                continue

            status = response.status_code
            if status == 200:
                try:
                    return response.json()
                except ValueError:
                    if failures >= self.max_retries:
                        raise ClinikoTransientError("cliniko_bad_json", status=status) from None
                    delay = self._backoff(failures, None)
                    failures += 1
                    self.sleep(delay)
                    continue
            if status == 429:
                self._count(rate_limited=True)
                wait = self._rate_limit_wait(response.headers)
                if rate_limits >= self.max_rate_limit_retries:
                    raise ClinikoTransientError("cliniko_rate_limited", status=429, retry_after=wait)
                rate_limits += 1
                logger.warning("cliniko GET %s -> 429, waiting %.1fs for the reset", resource, wait)
                self.budget.block(self._api_key, wait)
                self.sleep(wait)
                continue
            if status in _RETRYABLE_STATUS:
                retry_after = _retry_after(response.headers.get("Retry-After", ""))
                if failures >= self.max_retries:
                    raise ClinikoTransientError(f"cliniko_http_{status}", status=status, retry_after=retry_after)
                delay = self._backoff(failures, retry_after)
                failures += 1
                logger.warning("cliniko GET %s -> %d, retry %d in %.1fs", resource, status, failures, delay)
                self.sleep(delay)
                continue
            logger.warning("cliniko GET %s -> %d", resource, status)
            if status == 401:
                raise ClinikoAuthError("cliniko_http_401", status=status)
            raise ClinikoPermanentError(f"cliniko_http_{status}", status=status)

    def _rate_limit_wait(self, headers) -> float:
        """Seconds until Cliniko's X-RateLimit-Reset (epoch seconds or an HTTP date), else Retry-After,
        else a full window; at least 0.5 s (clock skew), at most max_rate_limit_wait."""
        wait: float | None = None
        reset = headers.get("X-RateLimit-Reset", "").strip()
        if reset:
            try:
                value = float(reset)
                # Cliniko sends a UNIX time; a small number can only be a delay in seconds.
                wait = value - self.clock() if value > 1_000_000_000 else value
            except ValueError:
                try:
                    wait = parsedate_to_datetime(reset).timestamp() - self.clock()
                except (TypeError, ValueError, IndexError, OverflowError):
                    wait = None
            if wait is not None and not math.isfinite(wait):
                wait = None
        if wait is None:
            wait = _retry_after(headers.get("Retry-After", ""))
        if wait is None:
            wait = 60.0
        return min(self.max_rate_limit_wait, max(0.5, wait))

    # -- Pages --

    def get_page(self, url: str, resource_key: str, *, budget_timeout: float | None = None) -> Page:
        """One page: the records under `resource_key` (`patients`, `individual_appointments`...)."""
        body = self.get_json(url, budget_timeout=budget_timeout)
        if not isinstance(body, dict) or not isinstance(body.get(resource_key, []), list):
            raise ClinikoPermanentError("cliniko_bad_response")
        records = [record for record in body.get(resource_key) or [] if isinstance(record, dict)]
        links = body.get("links") if isinstance(body.get("links"), dict) else {}
        next_url = links.get("next") if isinstance(links.get("next"), str) and links.get("next") else None
        if next_url is not None and not self._same_origin(next_url):
            raise ClinikoPermanentError("cliniko_url_other_origin")
        return Page(records=records, total_entries=_total(body), next_url=next_url, url=url)

    def fetch_pages(self, url: str, total_entries: int, resource_key: str, *, start_page: int = 1) -> list[Page]:
        """Pages `start_page`..last of the list whose first page is `url`, fetched concurrently (in order).

        The page count comes from `total_entries` and the URL's `per_page`. If the last page still has a
        `next` link (records were added meanwhile), it is followed to the end.
        """
        per_page = _per_page(url)
        last = max(1, math.ceil(total_entries / per_page))
        numbers = list(range(start_page, last + 1))
        if not numbers:
            return []
        urls = [_with_page(url, number) for number in numbers]
        if len(urls) == 1 or self.concurrency == 1:
            pages = [self.get_page(page_url, resource_key) for page_url in urls]
        else:
            pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(urls)), thread_name_prefix="cliniko-page")
            futures = [pool.submit(self.get_page, page_url, resource_key) for page_url in urls]
            try:
                pages = [future.result() for future in futures]
            except BaseException:
                # One page failed for good: pages not started yet are dropped; those in flight finish (no
                # thread outlives this call), then the error goes up.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
        next_url = pages[-1].next_url
        while next_url:
            page = self.get_page(next_url, resource_key)
            pages.append(page)
            next_url = page.next_url
        return pages

    def list_all(self, url: str, resource_key: str) -> Listing:
        """Every record of a collection: the first page, then the rest concurrently (or by `next` links
        when Cliniko gave no total)."""
        before = self.requests_made
        first = self.get_page(url, resource_key)
        pages = [first]
        if first.next_url:
            if first.total_entries is not None:
                pages += self.fetch_pages(url, first.total_entries, resource_key, start_page=2)
            else:
                next_url = first.next_url
                while next_url:
                    page = self.get_page(next_url, resource_key)
                    pages.append(page)
                    next_url = page.next_url
        listing = Listing(total_entries=first.total_entries or 0)
        listing.records = _merge(record for page in pages for record in page.records)
        listing.complete = len(listing.records) >= listing.total_entries
        listing.requests = self.requests_made - before
        return listing

    def _collections(self, resources: list[str], resource_key: str, **url_args) -> Listing:
        combined = Listing()
        records: list[dict] = []
        for resource in resources:
            listing = self.list_all(self.url(resource, **url_args), resource_key)
            records += listing.records
            combined.total_entries += listing.total_entries
            combined.complete = combined.complete and listing.complete
            combined.requests += listing.requests
        combined.records = _merge(records)
        return combined

    # -- Resources --

    def list_patients(
        self,
        *,
        updated_since: datetime | None = None,
        include_archived: bool = False,
        include_deleted: bool = False,
        strictly_after: bool = False,
    ) -> list[ClinikoPatient]:
        resources = ["patients"]
        if include_archived:
            resources.append("patients/archived")
        if include_deleted:
            resources.append("patients/deleted")
        listing = self._collections(resources, "patients", updated_since=updated_since, strictly_after=strictly_after)
        return _parsed(listing.records, ClinikoPatient.from_api, listing)

    def list_appointments(
        self,
        *,
        updated_since: datetime | None = None,
        include_cancelled: bool = False,
        include_deleted: bool = False,
        strictly_after: bool = False,
    ) -> list[ClinikoAppointment]:
        """Individual appointments (Cliniko's group appointments are not read)."""
        resources = ["individual_appointments"]
        if include_cancelled:
            resources.append("individual_appointments/cancelled")
        if include_deleted:
            resources.append("individual_appointments/deleted")
        listing = self._collections(
            resources, "individual_appointments", updated_since=updated_since, strictly_after=strictly_after
        )
        return _parsed(listing.records, ClinikoAppointment.from_api, listing)

    def list_appointment_types(
        self, *, updated_since: datetime | None = None, include_archived: bool = False
    ) -> list[ClinikoAppointmentType]:
        resources = ["appointment_types"] + (["appointment_types/archived"] if include_archived else [])
        listing = self._collections(resources, "appointment_types", updated_since=updated_since)
        return _parsed(listing.records, ClinikoAppointmentType.from_api, listing)

    def list_practitioners(self, *, include_inactive: bool = False) -> list[ClinikoPractitioner]:
        active = self.list_all(self.url("practitioners"), "practitioners")
        found = _parsed(active.records, ClinikoPractitioner.from_api, active)
        if include_inactive:
            inactive = self.list_all(self.url("practitioners/inactive"), "practitioners")
            known = {practitioner.id for practitioner in found}
            for record in inactive.records:
                practitioner = ClinikoPractitioner.from_api(record, active=False)
                if practitioner is not None and practitioner.id not in known:
                    found.append(practitioner)
        return found

    def list_businesses(self) -> list[ClinikoBusiness]:
        listing = self.list_all(self.url("businesses"), "businesses")
        return _parsed(listing.records, ClinikoBusiness.from_api, listing)

    def check_connection(self) -> ConnectionCheck:
        """One request (`/patients?per_page=1`): raises ClinikoAuthError for a refused key, other
        ClinikoErrors when Cliniko cannot be reached; returns the patient total on success."""
        page = self.get_page(self.url("patients", per_page=1), "patients")
        return ConnectionCheck(ok=True, shard=self.shard, total_patients=page.total_entries)


# --- Helpers -------------------------------------------------------------------------------------


def _resource_name(url: str, base_url: str) -> str:
    """The collection path for log lines (`individual_appointments`), never ids beyond it or the query."""
    path = urlsplit(url).path
    base_path = urlsplit(base_url).path
    relative = path[len(base_path) :] if path.startswith(base_path) else path
    parts = [part for part in relative.split("/") if part]
    keep = [part for part in parts[:2] if not part.isdigit()]
    return "/".join(keep) or "/"


def _total(body: dict) -> int | None:
    # Cliniko's docs show it as a number, once as a string and once misspelled ("total_entires").
    for name in ("total_entries", "total_entires"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def _per_page(url: str) -> int:
    for name, value in parse_qsl(urlsplit(url).query):
        if name == "per_page" and value.isdigit() and int(value) > 0:
            return min(int(value), PER_PAGE)
    return 50  # Cliniko's default page size


def _with_page(url: str, number: int) -> str:
    parts = urlsplit(url)
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name != "page"]
    query.append(("page", str(number)))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


_STATE_FIELDS = ("archived_at", "cancelled_at", "deleted_at")


def _merge(records: Iterable[dict]) -> list[dict]:
    """De-duplicate by id (first-seen order). Two copies are merged field by field, the copy updated
    later winning; an archived/cancelled/deleted stamp present in either copy is kept (a
    `/patients/deleted` entry may carry nothing but `deleted_at` and its link)."""
    merged: dict[str, dict] = {}
    anonymous: list[dict] = []
    for record in records:
        record_id = _record_id(record)
        if record_id is None:
            anonymous.append(record)
            continue
        seen = merged.get(record_id)
        if seen is None:
            merged[record_id] = record
            continue
        older, newer = (
            (seen, record) if _text(record.get("updated_at")) >= _text(seen.get("updated_at")) else (record, seen)
        )
        combined = {**older, **newer}
        for name in _STATE_FIELDS:
            if name in older or name in newer:
                combined[name] = newer.get(name) or older.get(name) or newer.get(name, older.get(name))
        merged[record_id] = combined
    return list(merged.values()) + anonymous


def _parsed(records: Iterable[dict], parse: Callable[[dict], Any], listing: Listing | None = None) -> Records:
    return Records((item for item in (parse(record) for record in records) if item is not None), listing=listing)


def _retry_after(value: str) -> float | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
