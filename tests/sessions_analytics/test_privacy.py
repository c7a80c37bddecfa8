"""Free text about a person (progress `evaluationFeedback`, evaluation `feedback` and `comments`) stays out of
the logs and the audit tables and is encrypted at rest; the caller's `clientId` label stays out of the logs and
the access log too.

The requests are the API's own (accepted, refused with a 400, a 403 and a 404, and the reads that return the
text), with every logger at DEBUG: the loggers that do not propagate to the root (Django's) are captured too.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client

from audit.models import AccessLog, AuditEvent
from core.encryption import decrypt_str
from sessions_analytics.models import Evaluation, ProgressFeedback
from tests.sessions_analytics.factories import NOW, bearer, make_session, make_world

pytestmark = pytest.mark.django_db

# Each carries a token that appears nowhere else, so a partial copy (a truncated log line) is caught too.
PROGRESS_FEEDBACK = "PFB-7Q2X the client disclosed a bereavement; therapist slowed down well"
EVALUATION_FEEDBACK = "EFB-K9ZD strong reflective listening when the client mentioned her divorce"
EVALUATION_COMMENTS = "ECM-W4TP revisit the risk questions about self-harm next time"
REFUSED_FEEDBACK = "RFB-M3LV text of a refused evaluation about the client's panic attacks"
CLIENT_LABEL = "CLB-H8NR-sim-client"
FREE_TEXT = (PROGRESS_FEEDBACK, EVALUATION_FEEDBACK, EVALUATION_COMMENTS, REFUSED_FEEDBACK)
MARKERS = tuple(text.split()[0] for text in FREE_TEXT)


@pytest.fixture
def every_log(caplog):
    """caplog at DEBUG on every logger, including the ones that do not propagate to the root."""
    caplog.set_level(logging.DEBUG)
    loggers = [logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    for logger in loggers:
        caplog.set_level(logging.DEBUG, logger=logger.name)
    detached = [logger for logger in loggers if not logger.propagate]
    for logger in detached:
        logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        for logger in detached:
            logger.removeHandler(caplog.handler)


def logged_text(records) -> str:
    """Everything a log record could carry to a handler: message, arguments, exception, stack, extras."""
    formatter = logging.Formatter()
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
        parts.append(repr(record.__dict__))
    return "\n".join(parts)


def _records(traffic) -> list[logging.LogRecord]:
    # The requests run in the fixture: their records are the setup phase's.
    log = traffic["log"]
    return log.get_records("setup") + log.records


def _post(http, user, path, body):
    return http.post(path, json.dumps(body), content_type="application/json", **bearer(user))


@pytest.fixture
def traffic(every_log, frozen_ratelimit_clock):
    """A therapist's session with progress feedback, a supervisor's evaluation, refusals, and the reads."""
    world = make_world()
    http = Client(raise_request_exception=False)
    created = _post(
        http, world.therapist, "/api/session", {"clientId": CLIENT_LABEL, "startTime": "2026-03-02T09:00:00Z"}
    )
    assert created.status_code == 201, created.content[:300]
    session_id = created.json()["id"]
    other = make_session(world.other_therapist, world.organization, start=NOW - timedelta(days=1))
    metrics = {
        "totalMessages": 10,
        "therapistMessages": 5,
        "clientMessages": 5,
        "sessionDuration": 600,
        "activeTime": 500,
        "responseTime": 2.0,
        "conversationFlow": 70,
        "milestonesReached": ["introduction"],
    }
    progress = {"sessionId": session_id, "progressMetrics": metrics, "evaluationFeedback": PROGRESS_FEEDBACK}
    statuses = {
        "progress": _post(http, world.therapist, "/api/session/progress", progress).status_code,
        "evaluation": _post(
            http,
            world.supervisor,
            "/api/evaluation",
            {"sessionId": session_id, "feedback": EVALUATION_FEEDBACK, "rating": 4, "comments": EVALUATION_COMMENTS},
        ).status_code,
        # Refused: a bad rating (400), a therapist evaluating (403), another's session (404), too long (400).
        "bad rating": _post(
            http,
            world.supervisor,
            "/api/evaluation",
            {"sessionId": session_id, "feedback": REFUSED_FEEDBACK, "rating": 9},
        ).status_code,
        "therapist evaluating": _post(
            http,
            world.therapist,
            "/api/evaluation",
            {"sessionId": session_id, "feedback": REFUSED_FEEDBACK, "rating": 3},
        ).status_code,
        "another's session": _post(
            http,
            world.therapist,
            "/api/session/progress",
            {**progress, "sessionId": other.public_id, "evaluationFeedback": REFUSED_FEEDBACK},
        ).status_code,  # fmt: skip
        "too long": _post(
            http,
            world.supervisor,
            "/api/evaluation",
            {"sessionId": session_id, "feedback": REFUSED_FEEDBACK + "x" * 10_000, "rating": 3},
        ).status_code,
    }
    reads = {
        "progress": http.get(
            "/api/session/progress", {"sessionId": session_id, "includeFeedback": "true"}, **bearer(world.supervisor)
        ),
        "evaluations": http.get("/api/evaluation", {"sessionId": session_id}, **bearer(world.therapist)),
        "session": http.get(f"/api/session/{session_id}", **bearer(world.therapist)),
        "list": http.get("/api/session", **bearer(world.supervisor)),
    }
    return {"world": world, "session_id": session_id, "statuses": statuses, "reads": reads, "log": every_log}


def test_the_requests_did_what_they_should(traffic):
    """The checks below mean something only if the text was really stored, refused and read back."""
    assert traffic["statuses"] == {
        "progress": 200,
        "evaluation": 201,
        "bad rating": 400,
        "therapist evaluating": 403,
        "another's session": 404,
        "too long": 400,
    }
    reads = traffic["reads"]
    assert all(response.status_code == 200 for response in reads.values()), {
        name: (response.status_code, response.content[:200]) for name, response in reads.items()
    }
    feedback = reads["progress"].json()["feedback"]
    assert [entry["feedback"] for entry in feedback] == [PROGRESS_FEEDBACK]
    (evaluation,) = reads["evaluations"].json()["evaluations"]
    assert (evaluation["feedback"], evaluation["comments"]) == (EVALUATION_FEEDBACK, EVALUATION_COMMENTS)
    assert reads["session"].json()["clientId"] == CLIENT_LABEL
    assert ProgressFeedback.objects.count() == 1 and Evaluation.objects.count() == 1
    assert _records(traffic), "nothing was logged at all: the capture is not working"


def test_free_text_and_client_label_never_reach_the_logs(traffic):
    text = logged_text(_records(traffic))
    for secret in (*FREE_TEXT, *MARKERS, CLIENT_LABEL):
        assert secret not in text, f"{secret!r} reached a log record"


def test_free_text_and_client_label_never_reach_the_access_log(traffic):
    rows = list(AccessLog.objects.filter(api="therapist").values())
    assert len(rows) >= 11, rows  # one row per request above
    assert any(f"training_session:{traffic['session_id']}" in row["subject_ids"] for row in rows)
    dumped = json.dumps(rows, default=str)
    for secret in (*FREE_TEXT, *MARKERS, CLIENT_LABEL):
        assert secret not in dumped, f"{secret!r} reached the access log"


def test_audit_events_carry_no_free_text(traffic):
    events = list(AuditEvent.objects.filter(action__startswith="training_session.").values()) + list(
        AuditEvent.objects.filter(action="evaluation.created").values()
    )
    actions = {event["action"] for event in events}
    assert {"training_session.created", "training_session.progress_recorded", "evaluation.created"} <= actions
    dumped = json.dumps(events, default=str)
    for secret in (*FREE_TEXT, *MARKERS):
        assert secret not in dumped, f"{secret!r} reached an audit event"
    for event in events:
        # ids, counts, names of fields: short values only, never a sentence.
        for value in _leaves(event["metadata"]):
            assert not isinstance(value, str) or " " not in value, (event["action"], event["metadata"])
    (evaluation_event,) = [event for event in events if event["action"] == "evaluation.created"]
    assert evaluation_event["metadata"].get("rating") == 4


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _raw(model, field: str, pk) -> str:
    table, column = model._meta.db_table, model._meta.get_field(field).column
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name(column)} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_free_text_is_encrypted_at_rest(traffic):
    stored = [
        (_raw(ProgressFeedback, "feedback", ProgressFeedback.objects.get().pk), PROGRESS_FEEDBACK),
        (_raw(Evaluation, "feedback", Evaluation.objects.get().pk), EVALUATION_FEEDBACK),
        (_raw(Evaluation, "comments", Evaluation.objects.get().pk), EVALUATION_COMMENTS),
    ]
    for raw, plaintext in stored:
        assert raw and plaintext not in raw and plaintext.split()[0] not in raw
        assert decrypt_str(raw) == plaintext  # the column holds the text, encrypted under our keys


def test_refused_free_text_is_not_stored_anywhere(traffic):
    """Text of a refused request (400/403/404) is in no table in any form we can read back."""
    stored = [row.feedback for row in ProgressFeedback.objects.all()]
    stored += [text for row in Evaluation.objects.all() for text in (row.feedback, row.comments)]
    assert not any(REFUSED_FEEDBACK.split()[0] in text for text in stored)
