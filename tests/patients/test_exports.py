"""patients.exports (pure rendering, no database): the PDF read back with pypdf (Catalan and Arabic text
found, Arabic shaped and in right-to-left order), the CSV formula-injection safe, the JSON parseable and
shaped as documented."""

from __future__ import annotations

import csv
import io
import json
import logging
import unicodedata
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from pypdf import PdfReader

from patients import exports
from patients.api.conversation_serializers import ConversationExportMessageOutput, ConversationExportOutput
from patients.exports import ExportConversation, ExportMessage

CATALAN = "Bon dia, voldria canviar la cita de dimarts"
ARABIC = "مرحبا، أريد حجز موعد"
SPANISH = "¿Podría cambiar la cita? Mañana a las 10, señor Núñez"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _message(index: int, text: str | None, sender: str = "patient", **kwargs) -> ExportMessage:
    return ExportMessage(
        id=f"msg_{index:04d}",
        timestamp=START + timedelta(minutes=index),
        sender=sender,
        content_type=kwargs.pop("content_type", "text"),
        content=text,
        **kwargs,
    )


def _conversation(messages, **kwargs) -> ExportConversation:
    fields = {
        "id": "conv_TestExport1",
        "patient_id": "pat_TestPatient1",
        "patient_name": "Núria Puig",
        "start_time": START,
        "end_time": START + timedelta(minutes=30),
        "language": "ca",
        "message_count": len(messages),
        "summary": None,
        "metadata": None,
        "exported_at": START + timedelta(hours=2),
        "clinic_name": "Clínica Sol",
        "time_zone": "Europe/Madrid",
        "messages": messages,
    }
    fields.update(kwargs)
    return ExportConversation(**fields)


def _pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


# --- PDF -----------------------------------------------------------------------------------------------


@pytest.fixture
def multilingual():
    return _conversation(
        [
            _message(0, CATALAN),
            _message(1, "Bon dia! Quin dia li aniria bé? Cancel·lació sense cost.", sender="assistant"),
            _message(2, ARABIC),
            _message(3, "أهلا! ما هو اليوم المناسب لك؟", sender="assistant"),
            _message(4, SPANISH, sender="system"),
        ]
    )


def test_pdf_is_a_pdf_with_the_catalan_and_arabic_text_extractable(multilingual):
    file = exports.render(multilingual, "pdf")
    assert file.media_type == "application/pdf" and file.filename == "conv_TestExport1.pdf"
    assert file.content.startswith(b"%PDF-")
    text = _pdf_text(file.content)
    # pypdf reads fpdf2's ToUnicode maps back to the logical characters, and reorders right-to-left runs:
    # the strings are found as written. (NFKC as well, in case an extractor returns presentation forms.)
    assert CATALAN in text
    assert ARABIC in text or ARABIC in unicodedata.normalize("NFKC", text)
    assert SPANISH in text
    assert "Núria Puig (pat_TestPatient1)" in text and "Clínica Sol" in text
    # Times in the clinic's time zone (Madrid is UTC+1 in March).
    assert "2026-03-02 10:00" in text and "Europe/Madrid" in text


def test_pdf_arabic_is_found_only_because_it_is_shaped_and_reordered(multilingual):
    """The extraction test can fail: drawn without the shaping engine (and its bidi reordering), the
    Arabic glyphs run left to right in logical order and read back reversed."""
    with mock.patch.object(exports, "_needs_shaping", lambda text: False):
        text = _pdf_text(exports.render_pdf(multilingual))
    assert CATALAN in text
    assert ARABIC not in text and ARABIC not in unicodedata.normalize("NFKC", text)


def _glyphs_for(content: bytes, codepoint: str) -> int:
    """How many distinct glyphs of the embedded font stand for `codepoint` (from its ToUnicode map)."""
    page = PdfReader(io.BytesIO(content)).pages[0]
    total = 0
    for font in page["/Resources"]["/Font"].values():
        cmap = font.get_object()["/ToUnicode"].get_object().get_data().decode("latin-1")
        total += cmap.upper().count(f"<{codepoint}>")
    return total


def test_pdf_arabic_letters_take_their_joined_forms():
    """Text shaping (HarfBuzz): "ببب" is beh in its initial, medial and final forms, three glyphs of the
    font; without shaping it would be one glyph three times."""
    conversation = _conversation([_message(0, "ببب")], language="ar")
    assert _glyphs_for(exports.render_pdf(conversation), "0628") == 3
    with mock.patch.object(exports, "_needs_shaping", lambda text: False):
        assert _glyphs_for(exports.render_pdf(conversation), "0628") == 1


def test_pdf_embeds_the_shipped_font_only():
    content = exports.render_pdf(_conversation([_message(0, CATALAN)]))
    page = PdfReader(io.BytesIO(content)).pages[0]
    names = [str(font.get_object()["/BaseFont"]) for font in page["/Resources"]["/Font"].values()]
    assert names and all("DejaVuSans" in name for name in names)
    assert exports.FONT_PATH.is_file() and (exports.FONT_PATH.parent / "LICENSE").is_file()


def test_pdf_of_a_long_conversation_has_numbered_pages_and_every_message():
    messages = [_message(i, f"{CATALAN} #{i}" if i % 2 else f"{ARABIC} {i}") for i in range(150)]
    content = exports.render_pdf(_conversation(messages))
    reader = PdfReader(io.BytesIO(content))
    pages = len(reader.pages)
    assert pages > 3
    assert f"conv_TestExport1 - 1/{pages}" in reader.pages[0].extract_text()
    text = _pdf_text(content)
    assert f"{CATALAN} #149" in text and f"{CATALAN} #1\n" in text
    assert text.count("dimarts #") == 75


def test_pdf_shows_voice_messages_summary_and_survives_control_characters():
    conversation = _conversation(
        [
            _message(0, None, content_type="voice", duration=12.4),
            _message(1, "Transcripció: vull una cita", content_type="voice", duration=3.0),
            _message(2, "nul\x00 bell\x07 tab\tend\r\nline two\u200f"),
            _message(3, ""),
        ],
        summary="Canvi de cita",
        end_time=None,
    )
    text = _pdf_text(exports.render_pdf(conversation))
    assert "[Voice message, 12 s]" in text
    assert "[Voice message, 3 s] Transcripció: vull una cita" in text
    assert "Summary: Canvi de cita" in text and "End: open" in text
    assert "nul bell tab    end" in text and "line two" in text


def test_pdf_rendering_logs_no_message_text(caplog):
    """fpdf2 names the characters its font lacks in a warning: that would put message text in the logs.
    Drawn unshaped, CJK text (no glyphs in DejaVu Sans) makes fpdf2 record them as missing."""
    secret = "你好预约"
    conversation = _conversation([_message(0, secret), _message(1, ARABIC)], patient_name="Núria Puig")
    with caplog.at_level(logging.DEBUG), mock.patch.object(exports, "_needs_shaping", lambda text: False):
        exports.render_pdf(conversation)
    with caplog.at_level(logging.DEBUG):
        exports.render_pdf(conversation)
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert not any(char in logged for char in secret + ARABIC)
    assert "Núria" not in logged


# --- CSV -----------------------------------------------------------------------------------------------


def _csv_rows(content: bytes) -> list[list[str]]:
    assert content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


@pytest.mark.parametrize(
    "value",
    [
        '=HYPERLINK("http://evil.example","click")',
        "+34612345678",
        "-2+3",
        "@SUM(A1:A2)",
        "\t=1+1",
        "\r=1+1",
        "\uff1d1+1",  # full-width equals sign
    ],
)
def test_csv_cells_that_look_like_formulas_get_a_leading_quote(value):
    file = exports.render(_conversation([_message(0, value)], patient_name=value), "csv")
    header, row = _csv_rows(file.content)
    content, name = row[header.index("content")], row[header.index("patient_name")]
    assert content == "'" + value and name == "'" + value


def test_csv_has_one_row_per_message_in_utf8_with_the_text_intact():
    messages = [
        _message(0, CATALAN),
        _message(1, ARABIC, sender="assistant"),
        _message(2, 'line one\nline two, "quoted"', sender="system"),
        _message(3, "Transcripció", content_type="voice", duration=4.5),
        _message(4, None, content_type="voice"),
    ]
    file = exports.render(_conversation(messages), "csv")
    assert file.media_type == "text/csv; charset=utf-8" and file.filename == "conv_TestExport1.csv"
    rows = _csv_rows(file.content)
    assert tuple(rows[0]) == exports.CSV_COLUMNS
    assert len(rows) == 1 + len(messages)
    by_column = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [row["content"] for row in by_column] == [
        CATALAN,
        ARABIC,
        'line one\nline two, "quoted"',
        "Transcripció",
        "",
    ]
    assert [row["sender"] for row in by_column[:3]] == ["patient", "assistant", "system"]
    assert by_column[0]["timestamp"] == "2026-03-02T09:00:00.000Z"
    assert by_column[3]["duration_seconds"] == "4.5" and by_column[0]["duration_seconds"] == ""
    assert {row["conversation_id"] for row in by_column} == {"conv_TestExport1"}
    assert {row["patient_name"] for row in by_column} == {"Núria Puig"}


def test_csv_safe_leaves_ordinary_text_alone():
    assert exports.csv_safe("Hola = adiós") == "Hola = adiós"
    assert exports.csv_safe(None) == "" and exports.csv_safe(3.5) == "3.5"
    assert exports.csv_safe("-") == "'-"


# --- JSON ----------------------------------------------------------------------------------------------


def test_json_parses_with_the_documented_fields():
    messages = [
        _message(0, CATALAN),
        _message(1, ARABIC, sender="assistant"),
        _message(2, "Transcripció", content_type="voice", duration=4.5),
        _message(3, None, content_type="voice", duration=None),
    ]
    conversation = _conversation(
        messages, summary="Canvi de cita", metadata={"intent": "appointment_scheduling", "escalated": False}
    )
    file = exports.render(conversation, "json")
    assert file.media_type == "application/json" and file.filename == "conv_TestExport1.json"
    body = json.loads(file.content.decode("utf-8"))
    assert list(body) == list(ConversationExportOutput().fields)
    assert all(list(message) == list(ConversationExportMessageOutput().fields) for message in body["messages"])
    assert body["id"] == "conv_TestExport1" and body["patient_name"] == "Núria Puig"
    assert body["start_time"] == "2026-03-02T09:00:00.000Z" and body["end_time"] == "2026-03-02T09:30:00.000Z"
    assert body["exported_at"] == "2026-03-02T11:00:00.000Z"
    assert body["summary"] == "Canvi de cita" and body["metadata"]["intent"] == "appointment_scheduling"
    assert [m["content"] for m in body["messages"]] == [CATALAN, ARABIC, "Transcripció", None]
    assert [m["duration"] for m in body["messages"]] == [None, None, 4.5, None]
    assert ARABIC.encode() in file.content  # UTF-8 text, not \\u escapes


def test_json_of_an_open_conversation_has_a_null_end_time():
    body = json.loads(exports.render_json(_conversation([], end_time=None)))
    assert body["end_time"] is None and body["messages"] == [] and body["summary"] is None


def test_unknown_format_is_refused():
    with pytest.raises(ValueError):
        exports.render(_conversation([]), "xlsx")
