"""LoveRescue integration API (partners) and app API (clients): OpenAPI examples, by operationId.

core.openapi_examples attaches them; error responses not given here are rendered by the API's own error body.
Adapted from `shared/specs/loverescue-integration-api.md` where it shows one; its placeholders ("user-uuid",
"...") are real UUIDs here. One story throughout: therapist Dr Maya Patel, her client Jane Doe and Jane's partner
John. tests/core/test_openapi_examples.py validates each against the schema.
"""

from core.openapi_examples import Example, OperationExamples

THERAPIST = "550e8400-e29b-41d4-a716-446655440000"
JANE = "7c1999a8-e4e9-565a-8af4-2d03401f3bde"
JOHN = "2f0b6c3e-9a41-4d8e-b7a5-61c2d9e0f3a8"
COUPLE = "c4a7e2d1-3b8f-4f6a-9d0c-5e1b2a3f4d6e"
JANE_LINK = "29bc14bc-6f18-548f-954f-401c480720eb"
ALERT = "d25d5613-8e36-58d9-b68d-ab7f2ffd5c65"
TASK = "8a3f1c6e-2d4b-4e9a-b1c7-0f5d3e8a2b6c"
REPORT = "e1d2c3b4-a596-4877-8a69-5b4c3d2e1f00"
JOURNAL_ENTRY = "5b9e2a7c-1f3d-4c8b-a6e0-9d2f4b7c1a35"

JANE_PERSON = {"id": JANE, "firstName": "Jane", "lastName": "Doe"}
JOHN_PERSON = {"id": JOHN, "firstName": "John", "lastName": "Doe"}
ATTACHMENT = {"type": "attachment", "score": {"style": "anxious", "anxiety": 4.2, "avoidance": 2.1}}
RISK_ALERT = {
    "id": ALERT,
    "clientId": JANE,
    "client": JANE_PERSON,
    "alertType": "RISK",
    "severity": "HIGH",
    "message": "Mood has dropped 2+ SD below baseline for 5 consecutive days",
    "metadata": {"moodBaseline": 7.2, "currentMood": 3.1, "daysBelow": 5},
    "readAt": None,
    "createdAt": "2026-02-11T07:00:00Z",
}
TASK_BODY = {
    "id": TASK,
    "description": "Complete the Gottman Love Map exercise",
    "module": "gottman_love_maps",
    "activities": ["love_map_quiz", "open_ended_questions"],
    "notes": "Focus on curiosity about partner's inner world",
    "dueDate": "2026-02-19T00:00:00.000Z",
    "priority": "high",
    "status": "pending",
    "createdAt": "2026-02-12T15:30:00Z",
    "completedAt": None,
}
JANE_LINK_BODY = {
    "linkId": JANE_LINK,
    "therapist": {"id": THERAPIST, "firstName": "Maya", "lastName": "Patel"},
    "permissionLevel": "STANDARD",
    "consent": "granted",
    "consentGrantedAt": "2026-01-15T10:00:00Z",
    "consentRevokedAt": None,
}
ACCESS_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI1NTBlODQwMC1lMjliLTQxZDQtYTcxNi00NDY2NTU0NDAwMDAifQ."
    "k3Y0x2h8Vf1sQm9pR4tZ7wL6bN5cA0dE2gH3jK8uT1o"
)

EXAMPLES = {
    # --- Partner API: /api/integration/ -------------------------------------------------------------------
    "integration_auth": OperationExamples(
        request={
            "apiKey": "lr_int_k7q2m9x4v1nc_4eC39HqLyjWDarjtT1zdp7dc9kQ2mX8vBn5YwR3s",
            "apiSecret": "sk_live_Zt8Pq3Wn6Rk1Vx9Lm4Hc7By2Jd5Fg0Ns3Qa8Te6U",
            "therapistId": THERAPIST,
        },
        responses={
            200: {"token": ACCESS_TOKEN, "expiresIn": 3600, "tokenType": "Bearer"},
            401: Example({"error": "Invalid API secret", "code": "AUTH_FAILED"}, summary="Wrong secret"),
        },
    ),
    "integration_clients_list": OperationExamples(
        responses={
            200: {
                "clients": [
                    {
                        "id": JANE,
                        "linkId": JANE_LINK,
                        "firstName": "Jane",
                        "lastName": "Doe",
                        "email": "jane@example.com",
                        "permissionLevel": "STANDARD",
                        "consentGrantedAt": "2026-01-15T10:00:00Z",
                        "couple": {
                            "id": COUPLE,
                            "status": "active",
                            "partner1": JANE_PERSON,
                            "partner2": {"id": None, "withheld": True},
                        },
                        "latestActivity": "2026-02-10",
                        "latestMood": 7,
                        "courseWeek": 8,
                        "courseActive": True,
                        "unreadAlerts": 2,
                    }
                ],
                "total": 1,
            },
            401: Example({"error": "Token expired", "code": "TOKEN_EXPIRED"}, summary="Token expired (after 1 hour)"),
        },
    ),
    "integration_client_progress": OperationExamples(
        responses={
            200: {
                "clientId": JANE,
                "assessmentScores": [{**ATTACHMENT, "completedAt": "2026-01-20T18:30:00Z"}],
                "activityCompletion": {
                    "totalDays": 90,
                    "daysActive": 62,
                    "completionRate": 69,
                    "streak": 12,
                    "tasksCompleted": 8,
                    "tasksPending": 2,
                },
                "courseProgress": {
                    "currentWeek": 8,
                    "isActive": True,
                    "completedWeeks": [1, 2, 3, 4, 5, 6, 7],
                    "weeklyStrategies": [
                        {
                            "weekNumber": 8,
                            "theme": "Gottman — Turning Toward",
                            "completedDays": 3,
                            "completedAt": None,
                        }
                    ],
                },
                "moodTrends": [{"date": "2026-02-10", "mood": 7, "closeness": 6}],
                "ratioTrends": [{"date": "2026-02-10", "positive": 5, "negative": 1, "ratio": 5.0}],
            },
            403: Example(
                {"error": "Client has not granted consent to this therapist", "code": "NO_CONSENT"},
                summary="No consent",
            ),
        },
    ),
    "integration_client_session_prep": OperationExamples(
        responses={
            200: {
                "report": {
                    "id": REPORT,
                    "therapistId": THERAPIST,
                    "clientId": JANE,
                    "reportDate": "2026-02-12T08:00:00Z",
                    "lastSessionDate": "2026-02-05T16:00:00Z",
                    "activitiesCompleted": ["love_map_quiz", "daily_check_in"],
                    "assessmentChanges": {
                        "attachment": {
                            "before": {"style": "anxious", "anxiety": 4.6, "avoidance": 2.3},
                            "after": {"style": "anxious", "anxiety": 4.2, "avoidance": 2.1},
                        }
                    },
                    "moodTrends": {"average": 6.5, "trend": "improving"},
                    "crisisFlags": [],
                    "generatedSummary": "Since last session, client completed 5/7 daily activities; mood improving.",
                    "expertInsights": [{"expert": "Gottman", "insight": "5:1 ratio improved from 3.2 to 4.8."}],
                }
            }
        },
    ),
    "integration_couple_dynamics": OperationExamples(
        responses={
            200: [
                Example(
                    {
                        "couple": {"id": COUPLE, "status": "active"},
                        "consent": {"partner1": True, "partner2": True},
                        "partner1": {
                            "user": JANE_PERSON,
                            "assessmentScores": [{**ATTACHMENT, "completedAt": "2026-01-20T18:30:00Z"}],
                            "activityDays": 28,
                            "moodAvg": 6.8,
                        },
                        "partner2": {
                            "user": JOHN_PERSON,
                            "assessmentScores": [
                                {
                                    "type": "attachment",
                                    "score": {"style": "avoidant", "anxiety": 2.0, "avoidance": 4.4},
                                    "completedAt": "2026-01-22T19:10:00Z",
                                }
                            ],
                            "activityDays": 22,
                            "moodAvg": 5.9,
                        },
                        "matchups": [
                            {
                                "score": 72,
                                "alignments": {"compatible": ["quality_time"], "misses": ["conflict_style"]},
                                "generatedAt": "2026-02-10T06:00:00Z",
                            }
                        ],
                        "coupleProfile": {
                            "attachmentDynamic": {"pattern": "anxious-avoidant"},
                            "strengths": ["shared humour"],
                            "growthEdges": ["repair after conflict"],
                        },
                    },
                    summary="Both partners consented",
                ),
                Example(
                    {
                        "couple": {"id": COUPLE, "status": "active"},
                        "consent": {"partner1": True, "partner2": False},
                        "partner1": {
                            "user": JANE_PERSON,
                            "assessmentScores": [{**ATTACHMENT, "completedAt": "2026-01-20T18:30:00Z"}],
                            "activityDays": 28,
                            "moodAvg": 6.8,
                        },
                        "partner2": {
                            "withheld": True,
                            "reason": "This partner has not granted consent to this therapist",
                        },
                        "matchups": [],
                        "coupleProfile": None,
                    },
                    summary="One partner withheld",
                ),
            ]
        },
    ),
    "integration_alerts_list": OperationExamples(
        responses={200: {"alerts": [RISK_ALERT], "unreadCount": 3, "total": 15}},
    ),
    "integration_alert_read": OperationExamples(
        request=Example({}, summary="No body"),
        responses={200: {"alert": {**RISK_ALERT, "readAt": "2026-02-11T09:12:00Z"}}},
    ),
    "integration_client_assign": OperationExamples(
        request={
            "taskDescription": "Complete the Gottman Love Map exercise",
            "module": "gottman_love_maps",
            "activities": ["love_map_quiz", "open_ended_questions"],
            "notes": "Focus on curiosity about partner's inner world",
            "dueDate": "2026-02-19",
            "priority": "high",
        },
        responses={
            201: {
                "message": "Activity assigned",
                "task": {
                    "id": TASK,
                    "description": "Complete the Gottman Love Map exercise",
                    "priority": "high",
                    "dueDate": "2026-02-19T00:00:00.000Z",
                    "createdAt": "2026-02-12T15:30:00Z",
                },
            }
        },
    ),
    "integration_outcomes": OperationExamples(
        responses={
            200: {
                "outcomes": {
                    "summary": {
                        "totalClients": 12,
                        "activeInCourse": 8,
                        "courseCompleted": 3,
                        "totalCrisisAlerts": 1,
                        "totalMilestones": 15,
                        "avgCourseWeek": 6.4,
                    },
                    "clients": [
                        {
                            "clientId": JANE,
                            "assessmentTypes": 5,
                            "courseWeek": 8,
                            "courseCompleted": False,
                            "crisisAlerts": 0,
                            "milestones": 3,
                        }
                    ],
                }
            }
        },
    ),
    "integration_webhook_register": OperationExamples(
        request={
            "webhookUrl": "https://api.supertool.com/api/webhooks/loverescue",
            "events": ["alert.created", "alert.critical", "milestone.achieved"],
        },
        responses={
            200: {
                "message": "Webhook registered successfully",
                "webhookUrl": "https://api.supertool.com/api/webhooks/loverescue",
                "webhookSecret": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "events": ["alert.created", "alert.critical", "milestone.achieved"],
            }
        },
    ),
    # --- App API: /api/app/ (the signed-in client, Jane) ----------------------------------------------------
    "api_app_checkins_create": OperationExamples(
        request={"date": "2026-02-12", "mood": 7, "closeness": 6, "crisis": False},
        responses={
            201: {
                "date": "2026-02-12",
                "mood": 7,
                "closeness": 6,
                "crisis": False,
                "updatedAt": "2026-02-12T20:15:00Z",
            },
            200: Example(
                {"date": "2026-02-12", "mood": 6, "closeness": 6, "crisis": False, "updatedAt": "2026-02-12T21:40:00Z"},
                summary="That day's check-in replaced",
            ),
        },
    ),
    "api_app_ratios_create": OperationExamples(
        request={"date": "2026-02-12", "positive": 5, "negative": 1},
        responses={
            201: {"date": "2026-02-12", "positive": 5, "negative": 1, "ratio": 5.0},
            200: Example(
                {"date": "2026-02-12", "positive": 6, "negative": 0, "ratio": None},
                summary="That day's ratio replaced (no negatives: no ratio)",
            ),
        },
    ),
    "api_app_activities_create": OperationExamples(
        request={"date": "2026-02-12", "activity": "love_map_quiz", "weekNumber": 8},
        responses={
            201: {
                "id": 4812,
                "date": "2026-02-12",
                "activity": "love_map_quiz",
                "weekNumber": 8,
                "weeklyStrategy": {
                    "weekNumber": 8,
                    "theme": "Gottman — Turning Toward",
                    "completedDays": 4,
                    "completedAt": None,
                },
                "course": {"currentWeek": 8, "isActive": True, "completedAt": None},
            }
        },
    ),
    "api_app_assessments_create": OperationExamples(
        request={**ATTACHMENT, "responses": {"q1": 4, "q2": 2, "q3": 5}},
        responses={201: {"id": 917, **ATTACHMENT, "completedAt": "2026-02-12T20:30:00Z"}},
    ),
    "api_app_journal_create": OperationExamples(
        request={"text": "We talked after dinner without phones.", "therapistHidden": False, "crisis": False},
        responses={
            201: {"id": JOURNAL_ENTRY, "therapistHidden": False, "crisis": False, "createdAt": "2026-02-12T21:05:00Z"}
        },
    ),
    "api_app_tasks_retrieve": OperationExamples(responses={200: {"tasks": [TASK_BODY]}}),
    "api_app_tasks_complete_create": OperationExamples(
        request=Example({}, summary="No body"),
        responses={200: {"task": {**TASK_BODY, "status": "completed", "completedAt": "2026-02-14T19:00:00Z"}}},
    ),
    "api_app_therapist_links_retrieve": OperationExamples(responses={200: {"links": [JANE_LINK_BODY]}}),
    "api_app_therapist_links_partial_update": OperationExamples(
        request=[
            Example({"permissionLevel": "FULL"}, summary="Share more"),
            Example({"consent": "revoked"}, summary="Revoke consent"),
        ],
        responses={200: {"link": {**JANE_LINK_BODY, "permissionLevel": "FULL"}}},
    ),
}
