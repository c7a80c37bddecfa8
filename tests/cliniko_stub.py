"""A Cliniko stand-in: a real HTTP server on 127.0.0.1 serving Cliniko's read API from memory.

    with ClinikoStub() as stub:
        key = stub.add_account("MS0xLWtleQ-au2")        # any string; the key is the Basic user name
        stub.generate(key, patients=651, appointments=296)
        client = ClinikoClient(api_key=key, base_url=stub.base_url)
        ...
        assert stub.requests[-1].path == "/v1/individual_appointments"

What it serves (paths under `/v1`, GET only, JSON):
  patients, patients/archived, patients/deleted, patients/{id};
  individual_appointments, individual_appointments/cancelled, individual_appointments/deleted,
  individual_appointments/{id}; appointment_types, appointment_types/archived; practitioners,
  practitioners/inactive; businesses.

Behaviour, as Cliniko documents it (github.com/redguava/cliniko-api, docs.api.cliniko.com):
- HTTP Basic: the API key is the user name, the password is ignored. An unknown key or no credentials:
  401. Each key is its own account, so two organizations may hold the same Cliniko ids.
- `User-Agent` must look like `Name (email@domain)` (Cliniko may block others): 403 otherwise
  (`require_user_agent=False` turns that off).
- Ids are strings of digits (int64 in Cliniko), allocated per account from the same base: two accounts
  filled the same way have the same ids.
- Lists: `{"<resource>": [...], "total_entries": n, "links": {"self", "next"?, "previous"?}}`, ordered by
  `created_at` then id; `per_page` defaults to 50, at most 100 (more is clamped), `page` from 1. Links are
  absolute URLs on this server keeping the other query parameters.
- `q[]` (or `q`) filters `field:OPvalue` with OP one of `>=`, `>`, `<=`, `<`, `=`, `!=` on the
  DateTime fields (`updated_at`, `created_at`, `archived_at`, `cancelled_at`, `deleted_at`,
  `starts_at`, `ends_at`; UTC `2024-01-02T03:04:05Z`) and id fields (`id`, `patient_id`,
  `practitioner_id`, `appointment_type_id`, `business_id`). Anything else: 400.
- The main lists leave out archived patients, cancelled and deleted appointments, archived appointment
  types and inactive practitioners; the `/archived`, `/cancelled`, `/deleted`, `/inactive` collections hold
  them (Cliniko's documented way to read them). `/patients/deleted` entries carry `id`, `deleted_at`,
  `updated_at` and `links` only. ASSUMPTION: whether Cliniko's main lists include such records is not
  documented; the client merges both so either behaviour gives the same result.
- Rate limit per key (`rate_limit` requests per `rate_window` seconds, default 200 per 60 s, fixed windows
  starting at a key's first request): the next request gets 429 with `X-RateLimit-Reset` (the UNIX time the
  window ends, rounded up) and no body records. 401s and injected failures are not counted.
- `latency` seconds before each answer (e.g. 0.05), failure injection: `fail_next(status, count=...)` for
  the next N matching requests, `fail_path(prefix, status)` until `clear_failures()`.
- `requests`: every request received (method, path, query pairs, key, user agent, status, time).

Records are Cliniko-shaped dicts (patients: first_name, last_name, email, patient_phone_numbers
[{phone_type, number}], date_of_birth, archived_at, deleted_at, created_at, updated_at...; appointments:
starts_at, ends_at, patient/practitioner/appointment_type/business links, cancelled_at, did_not_arrive,
patient_arrived, notes, deleted_at, archived_at, updated_at...). Helpers add, edit, archive, cancel and
delete records and bump `updated_at` from the stub's `now` (injectable; whole seconds, never going
back); each takes `at=` to date a change explicitly. `generate()` writes history only (every timestamp
at least an hour before its reference), so incremental reads see exactly the later edits. ASSUMPTION:
Cliniko's timestamps are whole seconds in UTC (as in every example in its docs).
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.servers import LocalServer, Recorded, Reply

ID_BASE = 1_390_000_000_000_000_000  # Cliniko-like int64 ids
USER_AGENT_RE = re.compile(r"^.+ \([^()\s@]+@[^()\s@]+\)$")
DATETIME_FIELDS = {"updated_at", "created_at", "archived_at", "cancelled_at", "deleted_at", "starts_at", "ends_at"}
ID_FIELDS = {"id", "patient_id", "practitioner_id", "appointment_type_id", "business_id"}
FILTER_RE = re.compile(r"^(?P<field>[a-z_]+):(?P<op>>=|<=|!=|>|<|=)(?P<value>.+)$")

FIRST_NAMES = [
    "Olivia",
    "Jack",
    "Charlotte",
    "William",
    "Amelia",
    "Noah",
    "Isla",
    "Oliver",
    "Mia",
    "Leo",
    "Grace",
    "Henry",
    "Chloe",
    "Lucas",
    "Zoe",
    "Thomas",
    "Ruby",
    "James",
    "Ava",
    "Ethan",
    "Lucía",
    "Mateo",
    "Aisha",
    "Wei",
    "Priya",
    "Tomás",
    "Zoë",
    "Søren",
]
LAST_NAMES = [
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Wilson",
    "Taylor",
    "Nguyen",
    "Johnson",
    "Martin",
    "White",
    "Anderson",
    "Walker",
    "Thompson",
    "Harris",
    "Lee",
    "Ryan",
    "Kelly",
    "King",
    "García",
    "O'Brien",
    "Müller",
    "Papadopoulos",
    "Kowalski",
    "Singh",
]
APPOINTMENT_TYPES = [
    ("Initial Consultation", "Physiotherapy", 60),
    ("Standard Consultation", "Physiotherapy", 30),
    ("Remedial Massage", "Massage", 60),
    ("Hydrotherapy", "Physiotherapy", 45),
    ("Pilates Assessment", "Exercise", 45),
]
PRACTITIONERS = [
    ("Sarah", "Mitchell", "Physiotherapist"),
    ("David", "Chen", "Physiotherapist"),
    ("Emma", "Robinson", "Remedial Massage Therapist"),
]
NOTES = [
    "",
    "",
    "Follow-up in two weeks.",
    "Lower back pain, improving.",
    "Post-op knee rehab, week 3.",
    "Prefers afternoon sessions.",
    "Home exercise program updated.",
]


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@dataclass(frozen=True)
class StubRequest:
    method: str
    path: str  # without the query
    query: list[tuple[str, str]]
    api_key: str | None
    user_agent: str
    status: int
    at: float

    def params(self, name: str) -> list[str]:
        return [value for key, value in self.query if key == name]


@dataclass
class Account:
    key: str
    patients: dict[str, dict] = field(default_factory=dict)
    appointments: dict[str, dict] = field(default_factory=dict)
    appointment_types: dict[str, dict] = field(default_factory=dict)
    practitioners: dict[str, dict] = field(default_factory=dict)
    businesses: dict[str, dict] = field(default_factory=dict)
    next_id: int = ID_BASE
    window_start: float | None = None
    window_count: int = 0

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)


@dataclass
class _Failure:
    status: int
    remaining: int | None  # None: until cleared
    prefix: str | None
    headers: dict[str, str]
    body: str


# Collection path -> (store attribute, response key, which records it holds).
def _active_patient(record: dict) -> bool:
    return not record.get("archived_at") and not record.get("deleted_at")


def _active_appointment(record: dict) -> bool:
    return not record.get("cancelled_at") and not record.get("deleted_at")


COLLECTIONS: dict[str, tuple[str, str, Callable[[dict], bool]]] = {
    "patients": ("patients", "patients", _active_patient),
    "patients/archived": ("patients", "patients", lambda r: bool(r.get("archived_at")) and not r.get("deleted_at")),
    "patients/deleted": ("patients", "patients", lambda r: bool(r.get("deleted_at"))),
    "individual_appointments": ("appointments", "individual_appointments", _active_appointment),
    "individual_appointments/cancelled": (
        "appointments",
        "individual_appointments",
        lambda r: bool(r.get("cancelled_at")) and not r.get("deleted_at"),
    ),
    "individual_appointments/deleted": ("appointments", "individual_appointments", lambda r: bool(r.get("deleted_at"))),
    "appointment_types": ("appointment_types", "appointment_types", lambda r: not r.get("archived_at")),
    "appointment_types/archived": ("appointment_types", "appointment_types", lambda r: bool(r.get("archived_at"))),
    "practitioners": ("practitioners", "practitioners", lambda r: r.get("active", True)),
    "practitioners/inactive": ("practitioners", "practitioners", lambda r: not r.get("active", True)),
    "businesses": ("businesses", "businesses", lambda r: not r.get("archived_at")),
}
SINGLE = {
    "patients": "patients",
    "individual_appointments": "appointments",
    "appointment_types": "appointment_types",
    "practitioners": "practitioners",
    "businesses": "businesses",
}


class ClinikoStub:
    def __init__(
        self,
        *,
        rate_limit: int = 200,
        rate_window: float = 60.0,
        latency: float = 0.0,
        require_user_agent: bool = True,
        now: Callable[[], datetime] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.latency = latency
        self.require_user_agent = require_user_agent
        self.clock = clock  # rate-limit windows and X-RateLimit-Reset (UNIX time)
        self._now = now or (lambda: datetime.now(UTC).replace(microsecond=0))
        self._last_stamp: datetime | None = None
        self.accounts: dict[str, Account] = {}
        self.requests: list[StubRequest] = []
        self._failures: list[_Failure] = []
        self._version = 0  # bumped by every change to the data (invalidates the list cache)
        self._list_cache: dict[tuple, tuple[int, list[dict]]] = {}
        self.in_flight = 0
        self.max_in_flight = 0  # most requests being answered at once (concurrency seen)
        self._lock = threading.RLock()
        self.server = LocalServer(self._handle)

    # -- Server lifecycle --

    def start(self) -> ClinikoStub:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> ClinikoStub:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.server.url("/v1")

    # -- Inspection --

    def requests_to(self, path: str, key: str | None = None) -> list[StubRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == path and (key is None or r.api_key == key)]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- Failure injection --

    def fail_next(
        self,
        status: int,
        *,
        count: int = 1,
        path: str | None = None,
        headers: dict | None = None,
        body: str = '{"errors": "injected"}',
    ) -> None:
        """The next `count` requests (whose path starts with `path`, if given) answer `status`."""
        with self._lock:
            self._failures.append(_Failure(status, count, path, dict(headers or {}), body))

    def fail_path(self, path: str, status: int, *, headers: dict | None = None) -> None:
        """Every request whose path starts with `path` answers `status` until clear_failures()."""
        with self._lock:
            self._failures.append(_Failure(status, None, path, dict(headers or {}), '{"errors": "injected"}'))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    # -- Data --

    def stamp(self) -> datetime:
        """The stub's current time (`now`), never earlier than the previous stamp; whole seconds, like
        Cliniko (so a record edited within the second of an `updated_at:>` filter's instant is left out:
        tests that need exact boundaries inject `now`)."""
        with self._lock:
            now = self._now().replace(microsecond=0)
            if self._last_stamp is not None and now < self._last_stamp:
                now = self._last_stamp
            self._last_stamp = now
            return now

    def add_account(self, key: str) -> str:
        with self._lock:
            self.accounts.setdefault(key, Account(key))
        return key

    def account(self, key: str) -> Account:
        return self.accounts[key]

    def _link(self, resource: str, record_id: str) -> dict:
        return {"links": {"self": f"{self.base_url}/{resource}/{record_id}"}}

    def add_business(
        self,
        key: str,
        *,
        name: str = "Harbour Physio",
        country: str = "Australia",
        country_code: str = "AU",
        time_zone: str = "Australia/Sydney",
        at: datetime | None = None,
    ) -> dict:
        with self._lock:
            account = self.accounts[key]
            stamp = iso(at or self.stamp())
            record_id = account.new_id()
            record = {
                "id": record_id,
                "business_name": name,
                "country": country,
                "country_code": country_code,
                "time_zone": time_zone,
                "address_1": "1 Beach Road",
                "city": "Manly",
                "state": "NSW",
                "post_code": "2095",
                "created_at": stamp,
                "updated_at": stamp,
                "archived_at": None,
                **self._link("businesses", record_id),
            }
            account.businesses[record_id] = record
            self.touch()
            return record

    def add_practitioner(
        self,
        key: str,
        *,
        first_name: str = "Sarah",
        last_name: str = "Mitchell",
        designation: str = "Physiotherapist",
        active: bool = True,
        at: datetime | None = None,
    ) -> dict:
        with self._lock:
            account = self.accounts[key]
            stamp = iso(at or self.stamp())
            record_id = account.new_id()
            record = {
                "id": record_id,
                "first_name": first_name,
                "last_name": last_name,
                "title": "",
                "label": f"{first_name} {last_name}",
                "designation": designation,
                "active": active,
                "show_in_online_bookings": True,
                "created_at": stamp,
                "updated_at": stamp,
                **self._link("practitioners", record_id),
            }
            account.practitioners[record_id] = record
            self.touch()
            return record

    def add_appointment_type(
        self,
        key: str,
        *,
        name: str = "Initial Consultation",
        category: str = "Physiotherapy",
        duration: int = 60,
        at: datetime | None = None,
    ) -> dict:
        with self._lock:
            account = self.accounts[key]
            stamp = iso(at or self.stamp())
            record_id = account.new_id()
            record = {
                "id": record_id,
                "name": name,
                "category": category,
                "duration_in_minutes": duration,
                "color": "#00A0E0",
                "max_attendees": 1,
                "show_in_online_bookings": True,
                "created_at": stamp,
                "updated_at": stamp,
                "archived_at": None,
                **self._link("appointment_types", record_id),
            }
            account.appointment_types[record_id] = record
            self.touch()
            return record

    def add_patient(
        self,
        key: str,
        *,
        first_name: str = "Olivia",
        last_name: str = "Smith",
        email: str | None = None,
        mobile: str | None = "0412 345 678",
        other_phones: Iterable[tuple[str, str]] = (),
        date_of_birth: str | None = "1985-04-12",
        at: datetime | None = None,
        **extra,
    ) -> dict:
        with self._lock:
            account = self.accounts[key]
            stamp = iso(at or self.stamp())
            record_id = account.new_id()
            phones = ([{"phone_type": "Mobile", "number": mobile}] if mobile else []) + [
                {"phone_type": kind, "number": number} for kind, number in other_phones
            ]
            record = {
                "id": record_id,
                "first_name": first_name,
                "last_name": last_name,
                "email": email if email is not None else f"{first_name}.{last_name}@example.com".lower(),
                "patient_phone_numbers": phones,
                "date_of_birth": date_of_birth,
                "title": "",
                "sex": None,
                "gender_identity": None,
                "address_1": "",
                "city": "",
                "state": "",
                "post_code": "",
                "country": "Australia",
                "country_code": "AU",
                "time_zone": None,
                "notes": "",
                "appointment_notes": "",
                "accepted_privacy_policy": None,
                "accepted_sms_marketing": False,
                "reminder_type": "SMS",
                "archived_at": None,
                "deleted_at": None,
                "created_at": stamp,
                "updated_at": stamp,
                **self._link("patients", record_id),
                "appointments": {"links": {"self": f"{self.base_url}/patients/{record_id}/appointments"}},
                **extra,
            }
            account.patients[record_id] = record
            self.touch()
            return record

    def add_appointment(
        self,
        key: str,
        *,
        patient_id: str,
        starts_at: datetime,
        minutes: int = 30,
        practitioner_id: str | None = None,
        appointment_type_id: str | None = None,
        business_id: str | None = None,
        notes: str | None = None,
        at: datetime | None = None,
        **extra,
    ) -> dict:
        with self._lock:
            account = self.accounts[key]
            practitioner_id = practitioner_id or next(iter(account.practitioners), None)
            appointment_type_id = appointment_type_id or next(iter(account.appointment_types), None)
            business_id = business_id or next(iter(account.businesses), None)
            patient = account.patients[patient_id]
            stamp = iso(at or self.stamp())
            record_id = account.new_id()
            record = {
                "id": record_id,
                "starts_at": iso(starts_at),
                "ends_at": iso(starts_at + timedelta(minutes=minutes)),
                "patient_name": f"{patient['first_name']} {patient['last_name']}",
                "notes": notes,
                "did_not_arrive": False,
                "patient_arrived": False,
                "cancelled_at": None,
                "cancellation_note": None,
                "cancellation_reason": None,
                "cancellation_reason_description": "",
                "deleted_at": None,
                "archived_at": None,
                "email_reminder_sent": False,
                "sms_reminder_sent": False,
                "created_at": stamp,
                "updated_at": stamp,
                "patient": self._link("patients", patient_id),
                "practitioner": self._link("practitioners", practitioner_id) if practitioner_id else None,
                "appointment_type": self._link("appointment_types", appointment_type_id)
                if appointment_type_id
                else None,
                "business": self._link("businesses", business_id) if business_id else None,
                **self._link("individual_appointments", record_id),
                **extra,
            }
            account.appointments[record_id] = record
            self.touch()
            return record

    def touch(self) -> None:
        """Say the data changed (the helpers do; call it after editing record dicts by hand)."""
        with self._lock:
            self._version += 1
            self._list_cache.clear()

    def _update(self, store: dict[str, dict], record_id: str, changes: dict, at: datetime | None = None) -> dict:
        with self._lock:
            self.touch()
            record = store[record_id]
            record.update(changes)
            record["updated_at"] = iso(at or self.stamp())
            return record

    def edit_patient(self, key: str, patient_id: str, **changes) -> dict:
        if "mobile" in changes:
            changes["patient_phone_numbers"] = [{"phone_type": "Mobile", "number": changes.pop("mobile")}]
        return self._update(self.accounts[key].patients, patient_id, changes)

    def archive_patient(self, key: str, patient_id: str) -> dict:
        return self._update(self.accounts[key].patients, patient_id, {"archived_at": iso(self.stamp())})

    def unarchive_patient(self, key: str, patient_id: str) -> dict:
        return self._update(self.accounts[key].patients, patient_id, {"archived_at": None})

    def delete_patient(self, key: str, patient_id: str) -> dict:
        return self._update(self.accounts[key].patients, patient_id, {"deleted_at": iso(self.stamp())})

    def edit_appointment(self, key: str, appointment_id: str, **changes) -> dict:
        for name in ("starts_at", "ends_at"):
            if isinstance(changes.get(name), datetime):
                changes[name] = iso(changes[name])
        return self._update(self.accounts[key].appointments, appointment_id, changes)

    def cancel_appointment(
        self, key: str, appointment_id: str, *, reason: int = 50, at: datetime | None = None
    ) -> dict:
        stamp = at or self.stamp()
        changes = {
            "cancelled_at": iso(stamp),
            "cancellation_reason": reason,
            "cancellation_reason_description": "Other",
        }
        return self._update(self.accounts[key].appointments, appointment_id, changes, at=stamp)

    def delete_appointment(self, key: str, appointment_id: str) -> dict:
        return self._update(self.accounts[key].appointments, appointment_id, {"deleted_at": iso(self.stamp())})

    def archive_appointment_type(self, key: str, type_id: str) -> dict:
        return self._update(self.accounts[key].appointment_types, type_id, {"archived_at": iso(self.stamp())})

    def generate(
        self, key: str, *, patients: int, appointments: int, seed: int = 7, reference: datetime | None = None
    ) -> dict[str, list[str]]:
        """Fill an account: one business (AU), the practitioners and appointment types above, `patients`
        patients (AU mobiles, some with a Home number or none, a few without email) and `appointments`
        appointments over the 120 days before and 60 days after `reference` (default: now), spread over the
        patients, ~8% cancelled, some did-not-arrive, some with notes. Same seed and sizes: same records
        and ids in every account.

        Timestamps are history, never the future: records are created in id order over the 720 days
        before `reference` (after anything the account already holds) and last updated at least an hour
        before it, so an incremental read from `reference - 1h` on sees only later edits."""
        rng = random.Random(seed)
        reference = (reference or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
        cutoff = reference - timedelta(hours=1)
        self.add_account(key)
        account = self.accounts[key]
        existing = [
            parse_iso(record["created_at"])
            for store in (
                account.patients,
                account.appointments,
                account.businesses,
                account.practitioners,
                account.appointment_types,
            )
            for record in store.values()
        ]
        begin = max([reference - timedelta(days=720)] + [stamp + timedelta(seconds=1) for stamp in existing if stamp])
        total = 1 + len(PRACTITIONERS) + len(APPOINTMENT_TYPES) + patients + appointments
        step = max(timedelta(seconds=1), (cutoff - timedelta(days=1) - begin) / max(1, total))
        moments = (begin + step * index for index in range(total))

        def updated(created: datetime) -> datetime:
            return max(created, min(cutoff, created + timedelta(seconds=rng.randint(0, 60 * 86400))))

        if not account.businesses:
            self.add_business(key, at=next(moments))
        if not account.practitioners:
            for first, last, designation in PRACTITIONERS:
                self.add_practitioner(key, first_name=first, last_name=last, designation=designation, at=next(moments))
        if not account.appointment_types:
            for name, category, duration in APPOINTMENT_TYPES:
                self.add_appointment_type(key, name=name, category=category, duration=duration, at=next(moments))
        practitioner_ids = list(account.practitioners)
        type_ids = list(account.appointment_types)
        patient_ids = []
        for index in range(patients):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            mobile = (
                None
                if rng.random() < 0.05
                else f"04{rng.randint(10, 99)} {rng.randint(100, 999)} {rng.randint(100, 999)}"
            )
            others = [("Home", f"02 9{rng.randint(100, 999)} {rng.randint(1000, 9999)}")] if rng.random() < 0.2 else []
            email = "" if rng.random() < 0.1 else f"{first}.{last}{index}@example.com".lower().replace("'", "")
            dob = f"{rng.randint(1940, 2015)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            created = next(moments)
            record = self.add_patient(
                key,
                first_name=first,
                last_name=last,
                email=email,
                mobile=mobile,
                other_phones=others,
                date_of_birth=dob,
                at=created,
            )
            record["updated_at"] = iso(updated(created))
            patient_ids.append(record["id"])
        appointment_ids = []
        for _ in range(appointments):
            if not patient_ids:
                break
            start = reference + timedelta(days=rng.randint(-120, 60), hours=rng.randint(-4, 6))
            type_index = rng.randrange(len(type_ids))
            created = next(moments)
            record = self.add_appointment(
                key,
                patient_id=rng.choice(patient_ids),
                starts_at=start,
                minutes=APPOINTMENT_TYPES[type_index % len(APPOINTMENT_TYPES)][2],
                practitioner_id=rng.choice(practitioner_ids),
                appointment_type_id=type_ids[type_index],
                notes=rng.choice(NOTES) or None,
                did_not_arrive=start < reference and rng.random() < 0.05,
                patient_arrived=start < reference and rng.random() < 0.8,
                at=created,
            )
            record["updated_at"] = iso(updated(created))
            if rng.random() < 0.08:
                self.cancel_appointment(key, record["id"], at=updated(created))
            appointment_ids.append(record["id"])
        self.touch()
        return {"patients": patient_ids, "appointments": appointment_ids}

    # -- HTTP --

    def _handle(self, request: Recorded) -> Reply:
        parts = urlsplit(request.path)
        query = parse_qsl(parts.query, keep_blank_values=True)
        key = _basic_user(request.headers.get("Authorization", ""))
        user_agent = request.headers.get("User-Agent", "") or ""
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)  # in this request's own server thread: requests overlap
            status, headers, body = self._answer(request.method, parts.path, query, key, user_agent)
        finally:
            with self._lock:
                self.in_flight -= 1
        with self._lock:
            self.requests.append(StubRequest(request.method, parts.path, query, key, user_agent, status, self.clock()))
        return Reply(status, {"Content-Type": "application/json", **headers}, body)

    def _answer(self, method: str, path: str, query, key: str | None, user_agent: str) -> tuple[int, dict, str]:
        with self._lock:
            account = self.accounts.get(key) if key is not None else None
            if account is None:
                return 401, {"WWW-Authenticate": 'Basic realm="Cliniko"'}, '{"errors": "unauthorized"}'
            if self.require_user_agent and not USER_AGENT_RE.match(user_agent):
                return 403, {}, '{"errors": "User-Agent must be \\"App name (contact email)\\""}'
            for failure in list(self._failures):
                if failure.prefix is None or path.startswith(failure.prefix):
                    if failure.remaining is not None:
                        failure.remaining -= 1
                        if failure.remaining <= 0:
                            self._failures.remove(failure)
                    return failure.status, dict(failure.headers), failure.body
            now = self.clock()
            if account.window_start is None or now >= account.window_start + self.rate_window:
                account.window_start, account.window_count = now, 0
            if account.window_count >= self.rate_limit:
                reset = math.ceil(account.window_start + self.rate_window)
                return (
                    429,
                    {"X-RateLimit-Reset": str(reset), "X-RateLimit-Limit": str(self.rate_limit)},
                    ('{"errors": "Too many requests"}'),
                )
            account.window_count += 1
            if method != "GET":
                return 405, {}, '{"errors": "method not allowed"}'
            if not path.startswith("/v1/"):
                return 404, {}, '{"errors": "not found"}'
            resource = path[len("/v1/") :].strip("/")
            if resource in COLLECTIONS:
                status, body = self._list(account, resource, query)
                return status, {}, json.dumps(body)
            head, _, record_id = resource.rpartition("/")
            if head in SINGLE and record_id:
                record = getattr(account, SINGLE[head]).get(record_id)
                if record is None:
                    return 404, {}, '{"errors": "not found"}'
                return 200, {}, json.dumps(record)
            return 404, {}, '{"errors": "not found"}'

    def _list(self, account: Account, resource: str, query) -> tuple[int, dict]:
        store_name, response_key, include = COLLECTIONS[resource]
        params = dict(query)
        try:
            page = int(params.get("page", "1"))
            per_page = min(100, int(params.get("per_page", "50")))
        except ValueError:
            return 400, {"errors": "page and per_page must be integers"}
        if page < 1 or per_page < 1:
            return 400, {"errors": "page and per_page must be positive"}
        filters = []
        for name, value in query:
            if name in ("q[]", "q"):
                parsed = _filter(value)
                if parsed is None:
                    return 400, {"errors": f"invalid filter: {value}"}
                filters.append(parsed)
        cache_key = (account.key, resource, tuple(value for name, value in query if name in ("q[]", "q")))
        cached = self._list_cache.get(cache_key)
        if cached is not None and cached[0] == self._version:
            records = cached[1]
        else:  # filtered and sorted once per data version, not per page (large accounts stay fast)
            records = [r for r in getattr(account, store_name).values() if include(r)]
            records = [r for r in records if all(test(r) for test in filters)]
            records.sort(key=lambda r: (r.get("created_at") or "", int(r["id"])))
            self._list_cache[cache_key] = (self._version, records)
        total = len(records)
        chunk = records[(page - 1) * per_page : page * per_page]
        if resource == "patients/deleted":
            chunk = [
                {"id": r["id"], "deleted_at": r["deleted_at"], "updated_at": r["updated_at"], "links": r["links"]}
                for r in chunk
            ]
        kept = [(name, value) for name, value in query if name != "page"]
        url = f"{self.base_url}/{resource}"

        def link(number: int) -> str:
            return f"{url}?{urlencode(kept + [('page', str(number))])}"

        links = {"self": link(page)}
        if page * per_page < total:
            links["next"] = link(page + 1)
        if page > 1:
            links["previous"] = link(page - 1)
        return 200, {response_key: chunk, "total_entries": total, "links": links}


def _basic_user(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, _, _password = decoded.partition(":")
    return user or None


def _filter(expression: str) -> Callable[[dict], bool] | None:
    match = FILTER_RE.match(expression)
    if match is None:
        return None
    name, op, raw = match["field"], match["op"], match["value"]
    if name in DATETIME_FIELDS:
        wanted = parse_iso(raw)
        if wanted is None or not raw.endswith("Z"):
            return None

        def value_of(record: dict):
            stamp = record.get(name)
            return parse_iso(stamp) if stamp else None
    elif name in ID_FIELDS:
        if not raw.isdigit():
            return None
        wanted = int(raw)

        def value_of(record: dict):
            if name == "id":
                return int(record["id"])
            linked = record.get(name.removesuffix("_id"))
            try:
                return int(linked["links"]["self"].rstrip("/").rpartition("/")[2])
            except (TypeError, KeyError, ValueError):
                return None
    else:
        return None
    compare = {
        ">=": lambda a, b: a >= b,
        ">": lambda a, b: a > b,
        "<=": lambda a, b: a <= b,
        "<": lambda a, b: a < b,
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
    }[op]

    def test(record: dict) -> bool:
        value = value_of(record)
        return value is not None and compare(value, wanted)

    return test
