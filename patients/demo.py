"""Mark demo data for `manage.py seed_demo` (key "mark"), registered by patients/apps.py after the base data.

DEMO ONLY (seed_demo refuses production). Everything goes through the patients services, so the demo has
the audit trail, encryption and blind indexes real data has. What it makes, only when missing (a second
run creates and changes nothing and prints the same ids):
- in Demo Clinic (the base data's organization, owner `demo`): MARK_DEMO_PATIENTS (200) patients with Spanish mobile
  numbers, in es/ca/en/ar, each with WhatsApp messages spread over the last 90 days (patient, assistant and
  clinic senders) and appointments in the past and the next weeks (reminders planned for future ones);
- a second clinic, "Other Demo Clinic", with its owner `demo-other` (same demo password), one patient:
  its ids are another tenant's for trying the 404s;
- each clinic's settings (through clinic_settings_update): country ES, Europe/Madrid, and its own WhatsApp
  number (DEMO_WHATSAPP_NUMBER, OTHER_WHATSAPP_NUMBER), the number inbound messages are routed by.
The clock is fixed per run (`now`); history is created through the services' `now=` arguments.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from accounts.models import Organization, User
from accounts.services import membership_set, organization_create, user_create
from core.actors import Actor
from core.time import utc_now
from patients.models import Appointment, Conversation, Patient
from patients.selectors import clinic_settings
from patients.services import appointment_create, message_record, patient_create
from patients.services.clinic_settings import clinic_settings_update

OTHER_ORGANIZATION_NAME = "Other Demo Clinic"
OTHER_USERNAME = "demo-other"
ACTOR = Actor.system("seed_demo")
# Spanish fixed-line numbers (valid for phonenumbers); demo only, they reach no one.
DEMO_WHATSAPP_NUMBER = "+34930000001"
OTHER_WHATSAPP_NUMBER = "+34930000002"

FIRST = {
    "es": ["María", "José", "Lucía", "Javier", "Carmen", "Álvaro", "Sofía", "Andrés"],
    "ca": ["Jordi", "Núria", "Pau", "Montserrat", "Arnau", "Mireia", "Oriol", "Laia"],
    "en": ["Emma", "Oliver", "Grace", "Henry", "Chloe", "Jack", "Amelia", "Leo"],
    "ar": ["محمد", "فاطمة", "أحمد", "مريم", "يوسف", "ليلى", "عمر", "نور"],
}
LAST = {
    "es": ["García", "Martínez", "López", "Sánchez", "Pérez", "Gómez"],
    "ca": ["Puig", "Vidal", "Soler", "Ferrer", "Roca", "Serra"],
    "en": ["Smith", "Brown", "Taylor", "Wilson", "Evans", "Hughes"],
    "ar": ["العلي", "حسن", "المنصور", "الخطيب", "يوسف", "سالم"],
}
LINES = {
    "es": ["Hola, quería pedir cita para la semana que viene.", "¿Tienen hueco el martes por la tarde?"],
    "ca": ["Bon dia, voldria demanar hora per a la setmana vinent.", "Teniu lloc dimarts a la tarda?"],
    "en": ["Hi, I'd like to book an appointment next week.", "Is there a slot on Tuesday afternoon?"],
    "ar": ["مرحباً، أود حجز موعد الأسبوع القادم.", "هل يوجد موعد يوم الثلاثاء بعد الظهر؟"],
}
REPLIES = {
    "es": "¡Claro! Le propongo el martes a las 17:00.",
    "ca": "És clar! Li proposo dimarts a les 17:00.",
    "en": "Of course! How about Tuesday at 5 pm?",
    "ar": "بالتأكيد! هل يناسبك يوم الثلاثاء الساعة الخامسة مساءً؟",
}
LANGUAGES = ("es", "ca", "en", "ar")


def _phone(index: int) -> str:
    return f"+3461{index:07d}"  # Spanish mobile range: valid for phonenumbers


def _patients(ctx, organization, now) -> list[Patient]:
    existing = list(Patient.objects.filter(organization=organization, metadata__demo=True).order_by("pk"))
    if existing:
        return existing
    patients = []
    for index in range(settings.MARK_DEMO_PATIENTS):
        language = LANGUAGES[index % len(LANGUAGES)]
        first = FIRST[language][index % len(FIRST[language])]
        last = LAST[language][(index // 4) % len(LAST[language])]
        created = now - timedelta(days=90 - (index % 90), hours=index % 9)
        patient = patient_create(
            organization=organization,
            name=f"{first} {last}",
            phone_number=_phone(index),
            preferred_language=language,
            metadata={"demo": True},
            actor=ACTOR,
            now=created,
        )
        _history(patient, language, index, created, now)
        patients.append(patient)
    ctx.changed(f"created {len(patients)} Mark demo patients with conversations and appointments")
    return patients


def _history(patient: Patient, language: str, index: int, created, now) -> None:
    """A few WhatsApp exchanges between `created` and now, one past appointment and (for most) a future one."""
    span = (now - created).total_seconds()
    for exchange in range(1 + index % 3):
        at = created + timedelta(seconds=span * (exchange + 1) / 4)
        line = LINES[language][exchange % len(LINES[language])]
        message_record(patient=patient, sender="patient", content=line, now=at)
        message_record(patient=patient, sender="assistant", content=REPLIES[language], now=at + timedelta(minutes=1))
    past = created + timedelta(days=1, hours=9 + index % 8)
    if past < now - timedelta(hours=2):
        appointment_create(
            patient=patient, start_time=past, duration=30, appointment_type="Consulta", actor=ACTOR, now=created
        )
    if index % 4 != 3:
        future = (now + timedelta(days=1 + index % 21)).replace(hour=9 + index % 9, minute=0, second=0, microsecond=0)
        appointment_create(
            patient=patient, start_time=future, duration=45, appointment_type="Seguimiento", actor=ACTOR, now=now
        )


def _other_clinic(ctx, now) -> tuple[Organization, Patient]:
    organization = Organization.objects.filter(name=OTHER_ORGANIZATION_NAME).order_by("pk").first()
    if organization is None:
        organization = organization_create(name=OTHER_ORGANIZATION_NAME, actor=ACTOR)
        ctx.changed(f"created organization {organization.name} ({organization.public_id})")
    user = User.objects.filter(username=OTHER_USERNAME).first()
    if user is None:
        user = user_create(username=OTHER_USERNAME, password=ctx.password, actor=ACTOR)
        ctx.changed(f"created platform user {OTHER_USERNAME}")
    elif not user.check_password(ctx.password) or not user.is_active:
        user.is_active = True
        user.set_password(ctx.password)
        user.save(update_fields=["is_active", "password"])
    if not user.memberships.filter(organization=organization).exists():
        membership_set(user=user, organization=organization, role="owner", actor=ACTOR)
    patient = Patient.objects.filter(organization=organization, metadata__demo=True).order_by("pk").first()
    if patient is None:
        patient = patient_create(
            organization=organization,
            name="Ona Other",
            phone_number=_phone(9_999_999),
            preferred_language="ca",
            metadata={"demo": True},
            actor=ACTOR,
            now=now,
        )
        message_record(patient=patient, sender="patient", content="Bon dia!", now=now)
    return organization, patient


def _clinic_settings(ctx, organization, number: str) -> str:
    """The clinic's settings with its WhatsApp number, made once (a later run leaves them as they are)."""
    config = clinic_settings(organization=organization)
    if not config.whatsapp_number:
        config = clinic_settings_update(
            organization=organization, actor=ACTOR, country="ES", time_zone="Europe/Madrid", whatsapp_number=number
        )
        ctx.changed(f"set the Mark settings of {organization.name} (WhatsApp number)")
    return config.whatsapp_number


def seed(ctx) -> tuple[str, object]:
    """The "mark" key of seed_demo --json."""
    now = utc_now()
    organization = ctx.organization
    patients = _patients(ctx, organization, now)
    other, _ = _other_clinic(ctx, now)
    whatsapp_number = _clinic_settings(ctx, organization, DEMO_WHATSAPP_NUMBER)
    _clinic_settings(ctx, other, OTHER_WHATSAPP_NUMBER)
    first = patients[0]
    conversation = Conversation.objects.filter(patient=first).order_by("pk").first()
    appointment = (
        Appointment.objects.filter(patient=first, start_time__gt=now).order_by("start_time").first()
        or Appointment.objects.filter(patient=first).order_by("pk").first()
    )
    return "mark", {
        "organizationId": organization.public_id,
        "username": ctx.demo_user.username,
        "password": ctx.password,
        "otherUsername": OTHER_USERNAME,
        "otherPassword": ctx.password,
        "whatsappNumber": whatsapp_number,
        "patientId": first.public_id,
        "conversationId": conversation.public_id if conversation else None,
        "appointmentId": appointment.public_id if appointment else None,
    }
