"""Conversation exports (GET /api/v1/conversations/{id}/export?format=pdf|csv|json): pure rendering.

No ORM and no request here: the view builds an `ExportConversation` (plain data) from the selector's rows
and calls `render(conversation, format)`, which returns the file's bytes, media type and file name.

- PDF (fpdf2): the shipped DejaVu Sans font (patients/fonts/, Bitstream Vera licence) embedded as a subset,
  with HarfBuzz text shaping (uharfbuzz) on, so Arabic letters take their joined forms and an Arabic
  paragraph runs right to left (fpdf2 applies the Unicode bidi algorithm and reorders each line), next to
  Spanish and Catalan text (ñ, l·l, accents) in the same file. Times in the clinic's time zone.
- CSV: one row per message, UTF-8 with a BOM (spreadsheets then read accents and Arabic right), every
  cell that a spreadsheet would take for a formula (starting with = + - @, a tab or a carriage return, or
  their full-width forms) prefixed with `'` (OWASP "CSV injection"). Times in UTC ISO 8601.
- JSON: the conversation as GET /conversations/{id} shows it (plus `summary`, `message_count` and
  `exported_at`), UTF-8. Times in UTC ISO 8601.

A voice message in an export carries its transcription (if any) and duration, never the signed audio URL:
an export is a file kept outside the app, where the URL (a credential that expires) would be a leak and
then a dead link.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF

from core.time import iso_utc

# fontTools (fpdf2's font subsetter) logs every pruned table at INFO: noise in the app's logs. fpdf2 warns
# "Font ... is missing the following glyphs: '<the characters>'", which quotes message text: never logged
# (message text never reaches the logs, at any level); its errors raise anyway.
logging.getLogger("fontTools").setLevel(logging.WARNING)
logging.getLogger("fpdf").setLevel(logging.ERROR)

FONT_PATH = Path(__file__).resolve().parent / "fonts" / "DejaVuSans.ttf"
FONT_FAMILY = "DejaVuSans"

FORMATS = ("pdf", "csv", "json")
MEDIA_TYPES = {"pdf": "application/pdf", "csv": "text/csv; charset=utf-8", "json": "application/json"}

# Leading characters that make a spreadsheet read a cell as a formula (and their full-width forms, which
# some spreadsheets normalise).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
CSV_COLUMNS = (
    "conversation_id",
    "patient_id",
    "patient_name",
    "message_id",
    "timestamp",
    "sender",
    "content_type",
    "content",
    "duration_seconds",
)
SENDER_LABELS = {"patient": "Patient", "assistant": "Assistant", "system": "Clinic"}


@dataclass(frozen=True)
class ExportMessage:
    id: str
    timestamp: datetime
    sender: str
    content_type: str  # text or voice
    content: str | None  # the text; for a voice message its transcription, None without one
    duration: float | None = None  # voice: seconds


@dataclass(frozen=True)
class ExportConversation:
    id: str
    patient_id: str
    patient_name: str
    start_time: datetime
    end_time: datetime | None
    language: str
    message_count: int
    summary: str | None
    metadata: dict | None
    exported_at: datetime
    clinic_name: str = ""
    time_zone: str = "UTC"  # IANA name: the PDF shows times in it
    messages: list[ExportMessage] = field(default_factory=list)


@dataclass(frozen=True)
class ExportFile:
    content: bytes
    media_type: str
    filename: str


def render(conversation: ExportConversation, fmt: str) -> ExportFile:
    """The export file of `conversation` in `fmt` (one of FORMATS; anything else is a ValueError)."""
    renderers = {"pdf": render_pdf, "csv": render_csv, "json": render_json}
    if fmt not in renderers:
        raise ValueError(f"unknown export format {fmt!r}")
    return ExportFile(
        content=renderers[fmt](conversation), media_type=MEDIA_TYPES[fmt], filename=f"{conversation.id}.{fmt}"
    )


# --- JSON ----------------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return iso_utc(value) if value is not None else None


def export_dict(conversation: ExportConversation) -> dict:
    return {
        "id": conversation.id,
        "patient_id": conversation.patient_id,
        "patient_name": conversation.patient_name,
        "start_time": _iso(conversation.start_time),
        "end_time": _iso(conversation.end_time),
        "language": conversation.language,
        "message_count": conversation.message_count,
        "summary": conversation.summary,
        "metadata": conversation.metadata,
        "exported_at": _iso(conversation.exported_at),
        "messages": [
            {
                "id": message.id,
                "timestamp": _iso(message.timestamp),
                "sender": message.sender,
                "content_type": message.content_type,
                "content": message.content,
                "duration": message.duration,
            }
            for message in conversation.messages
        ],
    }


def render_json(conversation: ExportConversation) -> bytes:
    return json.dumps(export_dict(conversation), ensure_ascii=False, indent=2).encode("utf-8")


# --- CSV -----------------------------------------------------------------------------------------------


def csv_safe(value) -> str:
    """A cell a spreadsheet shows as text: None -> "", a formula-looking value gets a leading `'`."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def render_csv(conversation: ExportConversation) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for message in conversation.messages:
        row = (
            conversation.id,
            conversation.patient_id,
            conversation.patient_name,
            message.id,
            _iso(message.timestamp),
            message.sender,
            message.content_type,
            message.content,
            message.duration,
        )
        writer.writerow([csv_safe(cell) for cell in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


# --- PDF -----------------------------------------------------------------------------------------------


def _is_rtl(text: str) -> bool:
    """True if the first letter with a strong direction is right-to-left (Arabic, Hebrew...)."""
    for char in text:
        direction = unicodedata.bidirectional(char)
        if direction in ("R", "AL"):
            return True
        if direction == "L":
            return False
    return False


def _needs_shaping(text: str) -> bool:
    """Text with a character past Latin (from the combining marks, U+0300, on: Arabic, Hebrew, Indic...).
    HarfBuzz shaping costs about as much as the rest of the PDF, and plain Latin text (NFC) does not need it."""
    return any(ord(ch) >= 0x0300 for ch in text)


def _printable(text: str) -> str:
    """NFC text without control characters (newlines kept, tabs as spaces); format characters such as ZWNJ
    and bidi marks stay (the shaping engine uses them)."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    return "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cs", "Co"))


class _ConversationPdf(FPDF):
    def __init__(self, footer_text: str):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._footer_text = footer_text

    def paragraph(self, text: str, *, size: float, height: float, grey: bool = False) -> None:
        """One block of text across the page: shaped when it needs it, right-aligned when it reads right
        to left (fpdf2 reorders each line by the Unicode bidi algorithm when shaping is on)."""
        text = _printable(text) or " "
        self.set_font(FONT_FAMILY, size=size)
        self.set_text_color(*((90, 90, 90) if grey else (0, 0, 0)))
        self.set_text_shaping(_needs_shaping(text))
        self.multi_cell(self.epw, height, text, align="R" if _is_rtl(text) else "L", new_x="LMARGIN", new_y="NEXT")

    def footer(self):
        # Runs at a page break, possibly in the middle of a shaped paragraph: keep its shaping state.
        shaping = self.text_shaping
        self.set_text_shaping(False)
        self.set_y(-12)
        self.set_font(FONT_FAMILY, size=8)
        self.set_text_color(120, 120, 120)
        self.cell(0, 5, f"{self._footer_text} - {self.page_no()}/{{nb}}", align="C")
        self.text_shaping = shaping


def render_pdf(conversation: ExportConversation) -> bytes:
    zone = ZoneInfo(conversation.time_zone or "UTC")

    def local(value: datetime | None) -> str:
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M") if value is not None else "-"

    pdf = _ConversationPdf(footer_text=conversation.id)
    pdf.set_title(f"Conversation {conversation.id}")
    pdf.set_creator("Mark")
    pdf.set_creation_date(conversation.exported_at)
    pdf.add_font(FONT_FAMILY, "", str(FONT_PATH))
    pdf.set_text_shaping(True)  # HarfBuzz (uharfbuzz); `paragraph` turns it off for plain Latin text
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()

    pdf.paragraph(f"Conversation {conversation.id}", size=15, height=8)
    details = [
        ("Clinic", conversation.clinic_name),
        ("Patient", f"{conversation.patient_name} ({conversation.patient_id})"),
        ("Start", local(conversation.start_time)),
        ("End", local(conversation.end_time) if conversation.end_time else "open"),
        ("Time zone", conversation.time_zone),
        ("Language", conversation.language),
        ("Messages", str(conversation.message_count)),
        ("Exported", local(conversation.exported_at)),
        ("Summary", conversation.summary or ""),
    ]
    for label, value in details:
        if value:
            pdf.paragraph(f"{label}: {value}", size=9, height=5)
    pdf.ln(3)

    for message in conversation.messages:
        label = SENDER_LABELS.get(message.sender, message.sender)
        pdf.paragraph(f"{local(message.timestamp)}  {label}", size=8, height=4.5, grey=True)
        text = message.content or ""
        if message.content_type == "voice":
            seconds = f", {message.duration:.0f} s" if message.duration is not None else ""
            text = f"[Voice message{seconds}] {text}".strip()
        pdf.paragraph(text, size=10, height=5.5)
        pdf.ln(2)
    return bytes(pdf.output())
