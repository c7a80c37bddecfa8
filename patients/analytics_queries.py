"""The SQL aggregates behind Mark's analytics endpoints: scoped reads (selectors) that return a few
aggregate rows each, never a row per conversation, appointment or patient (one exception, documented:
the cancellation reasons, see `appointment_aggregates`). Intervals and hours are computed by the
database in the clinic's time zone (TruncDay/TruncWeek/TruncMonth, ExtractHour with tzinfo).
The arithmetic on those rows (buckets, percentages, averages) is patients/analytics.py.

Query counts are fixed: conversations 3, appointments 3, patients 3 (tests/patients/test_api_analytics.py).
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from django.db.models import Count, DateField, Min, Q, Sum
from django.db.models.functions import ExtractHour, TruncDay, TruncMonth, TruncWeek

from patients.analytics import HIGHLY_ENGAGED_MIN, MAX_REASONS, MODERATELY_ENGAGED_MIN, DateRange, as_day
from patients.models import Appointment, Conversation, Message, Patient

_TRUNC = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
APPOINTMENT_STATUSES = [
    Appointment.Status.SCHEDULED,
    Appointment.Status.RESCHEDULED,
    Appointment.Status.COMPLETED,
    Appointment.Status.CANCELED,
]


def _bucket(field: str, interval: str, time_zone: ZoneInfo):
    """The local date the interval containing `field` starts on (Monday for weeks, the 1st for months)."""
    return _TRUNC[interval](field, tzinfo=time_zone, output_field=DateField())


def _in_range(field: str, period: DateRange) -> Q:
    return Q(**{f"{field}__gte": period.start, f"{field}__lt": period.end})


def conversation_aggregates(*, organization, period: DateRange, interval: str, language: str | None = None) -> dict:
    """Conversations that started in the range (optionally in one language): count and message total per
    bucket, per language, and count per local hour of their start. `message_count` is the kept column."""
    conversations = Conversation.objects.filter(_in_range("start_time", period), organization=organization)
    if language:
        conversations = conversations.filter(language=language)
    conversations = conversations.order_by()
    tz = period.time_zone
    by_bucket = {
        as_day(row["bucket"]): {"count": row["count"], "messages": row["messages"]}
        for row in conversations.annotate(bucket=_bucket("start_time", interval, tz))
        .values("bucket")
        .annotate(count=Count("id"), messages=Sum("message_count"))
        .values("bucket", "count", "messages")
    }
    by_language = {
        row["language"]: {"count": row["count"], "messages": row["messages"]}
        for row in conversations.values("language").annotate(count=Count("id"), messages=Sum("message_count"))
    }
    by_hour = {
        row["hour"]: row["count"]
        for row in conversations.annotate(hour=ExtractHour("start_time", tzinfo=tz))
        .values("hour")
        .annotate(count=Count("id"))
        .values("hour", "count")
    }
    return {"by_bucket": by_bucket, "by_language": by_language, "by_hour": by_hour}


def appointment_aggregates(*, organization, period: DateRange, interval: str) -> dict:
    """Appointments that start in the range: per bucket one count per status (conditional counts), per type,
    and the cancellation reasons of the canceled ones.

    The reasons are encrypted at rest (a random IV: equal texts differ in the database), so they are grouped
    by their blind index (`cancellation_reason_index`, of patients.analytics.reason_key) and only one sample
    row per shown group is decrypted: at most MAX_REASONS decryptions, whatever the number of rows. The
    shown spelling is the group's first recorded one."""
    appointments = Appointment.objects.filter(_in_range("start_time", period), organization=organization).order_by()
    by_bucket = {
        as_day(row["bucket"]): {status: row[status] for status in APPOINTMENT_STATUSES}
        for row in appointments.annotate(bucket=_bucket("start_time", interval, period.time_zone))
        .values("bucket")
        .annotate(**{status: Count("id", filter=Q(status=status)) for status in APPOINTMENT_STATUSES})
    }
    by_type = {
        row["appointment_type"]: row["count"]
        for row in appointments.values("appointment_type").annotate(count=Count("id"))
    }
    groups = list(
        appointments.filter(status=Appointment.Status.CANCELED)
        .values("cancellation_reason_index")
        .annotate(count=Count("id"), sample=Min("id"))
        .order_by("-count", "sample")
        .values_list("count", "sample")
    )
    shown = dict(
        Appointment.objects.filter(pk__in=[sample for _count, sample in groups[:MAX_REASONS]]).values_list(
            "pk", "cancellation_reason"
        )
    )
    reasons = [(shown.get(sample), count) for count, sample in groups]
    return {"by_bucket": by_bucket, "by_type": by_type, "reasons": reasons}


def patient_aggregates(*, organization, period: DateRange, interval: str) -> dict:
    """The clinic's patients registered before the range's end (archived ones left out, as in the patient
    list): per language; registrations per bucket; and how many wrote 1-2, 3-9, 10+ WhatsApp messages in
    the range (a count per patient, then a count per bucket, both in SQL)."""
    patients = Patient.objects.filter(organization=organization, archived=False, created_at__lt=period.end).order_by()
    by_language = {row["language"]: row["count"] for row in patients.values("language").annotate(count=Count("id"))}
    new_by_bucket: dict[date, int] = {
        as_day(row["bucket"]): row["count"]
        for row in patients.filter(created_at__gte=period.start)
        .annotate(bucket=_bucket("created_at", interval, period.time_zone))
        .values("bucket")
        .annotate(count=Count("id"))
        .values("bucket", "count")
    }
    per_patient = (
        Message.objects.filter(
            _in_range("created_at", period),
            organization=organization,
            sender=Message.Sender.PATIENT,
            conversation__patient__archived=False,
            conversation__patient__created_at__lt=period.end,
        )
        .order_by()
        .values("conversation__patient_id")
        .annotate(messages=Count("id"))
    )
    engaged = per_patient.aggregate(
        highly_engaged=Count("conversation__patient_id", filter=Q(messages__gte=HIGHLY_ENGAGED_MIN)),
        moderately_engaged=Count(
            "conversation__patient_id",
            filter=Q(messages__gte=MODERATELY_ENGAGED_MIN, messages__lt=HIGHLY_ENGAGED_MIN),
        ),
        low_engagement=Count("conversation__patient_id", filter=Q(messages__lt=MODERATELY_ENGAGED_MIN)),
    )
    return {"by_language": by_language, "new_by_bucket": new_by_bucket, "engaged": engaged}
