"""WhatsApp appointment reminder texts per language (es, ca, en, ar; anything else gets English).

Plain text with `{date}` and `{time}` (the start in MARK_TIME_ZONE) and `{clinic}`. Kept short: Twilio
delivers them as one message. When per-organization approved templates (Content SIDs) land, these stay
the free-text fallback."""

from __future__ import annotations

DEFAULT_LANGUAGE = "en"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "24h": "Reminder from {clinic}: you have an appointment on {date} at {time}.",
        "30min": "Reminder from {clinic}: your appointment starts soon, at {time}.",
    },
    "es": {
        "24h": "Recordatorio de {clinic}: tiene una cita el {date} a las {time}.",
        "30min": "Recordatorio de {clinic}: su cita empieza pronto, a las {time}.",
    },
    "ca": {
        "24h": "Recordatori de {clinic}: té una cita el {date} a les {time}.",
        "30min": "Recordatori de {clinic}: la seva cita comença aviat, a les {time}.",
    },
    "ar": {
        "24h": "تذكير من {clinic}: لديك موعد يوم {date} الساعة {time}.",
        "30min": "تذكير من {clinic}: موعدك يبدأ قريبًا، الساعة {time}.",
    },
}


def language_of(language: str | None) -> str:
    """The text language for a patient's language code: "es-ES" -> "es", "fr" -> "en"."""
    base = (language or "").split("-")[0].lower()
    return base if base in TEXTS else DEFAULT_LANGUAGE


def reminder_text(*, language: str | None, kind: str, clinic: str, date: str, time: str) -> str:
    return TEXTS[language_of(language)][kind].format(clinic=clinic, date=date, time=time)
